package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/redis/go-redis/v9"

	"mediasvc/domain"
	"mediasvc/migrations"
)

func loadAll(t *testing.T) []Migration {
	t.Helper()
	ms, err := LoadMigrations(migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 2 || ms[1].Match != "session:*" {
		t.Fatalf("migrations = %+v", ms)
	}
	return ms
}

func TestLoadMigrationsRejectsGaps(t *testing.T) {
	fsys := fstest.MapFS{"0001_a.lua": {Data: []byte("return 0")}, "0003_c.lua": {Data: []byte("return 0")}}
	if _, err := LoadMigrations(fsys); err == nil {
		t.Fatal("LoadMigrations with a gap = nil error")
	}
	if _, err := LoadMigrations(fstest.MapFS{"1_a.lua": {Data: []byte("")}}); err == nil {
		t.Fatal("LoadMigrations with a bad name = nil error")
	}
}

func TestMigrateUpFromEmpty(t *testing.T) {
	rdb, _ := newClient(t)
	ctx := context.Background()
	ms := loadAll(t)
	if err := EnsureSchema(ctx, rdb, "e:", ms); err != nil {
		t.Fatalf("EnsureSchema on an empty keyspace = %v", err)
	}
	if v, _ := rdb.Get(ctx, "e:schema").Int(); v != len(ms) {
		t.Fatalf("schema after EnsureSchema = %d, want %d", v, len(ms))
	}
	// migrate up on another empty prefix applies everything.
	done, err := Migrate(ctx, rdb, "f:", ms)
	if err != nil || len(done) != len(ms) {
		t.Fatalf("Migrate = %d applied, %v; want %d", len(done), err, len(ms))
	}
	done, err = Migrate(ctx, rdb, "f:", ms)
	if err != nil || len(done) != 0 {
		t.Fatalf("second Migrate = %d applied, %v; want none", len(done), err)
	}
}

// writeV1 writes s the way schema 1 laid sessions out: no hash tags,
// the instance in a field named "node".
func writeV1(t *testing.T, rdb redis.UniversalClient, prefix string, s domain.Session, withHash bool) {
	t.Helper()
	ctx := context.Background()
	if withHash {
		f := appendFields(nil, &s)
		f[len(f)-2] = "node"
		if err := rdb.HSet(ctx, prefix+"session:"+string(s.ID), f...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	rdb.ZAdd(ctx, prefix+"expiry", redis.Z{Score: float64(s.ExpiresAt.UnixMicro()), Member: string(s.ID)})
	rdb.HSet(ctx, prefix+"index", string(s.ID), string(s.DeviceID)+"\x00"+s.Owner)
	rdb.HIncrBy(ctx, prefix+"count:device", string(s.DeviceID), 1)
	rdb.HIncrBy(ctx, prefix+"count:owner", s.Owner, 1)
}

// TestMigrateV1ToLatest populates a keyspace the way schema 1 laid it out
// (no hash tags; the instance in a field named "node"; a lease), checks
// that the service refuses it, migrates, and reads every session back
// through the store, pops one whose hash Redis had dropped, and renews the
// lease.
func TestMigrateV1ToLatest(t *testing.T) {
	rdb, _ := newClient(t)
	ctx := context.Background()
	ms := loadAll(t)
	const prefix, n = "v1:", 1200 // more than one SCAN batch
	if _, err := Migrate(ctx, rdb, prefix, ms[:1]); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Microsecond)
	for i := range n {
		s := domain.NewSession(domain.SessionID(fmt.Sprint("s", i)), "dev", domain.RoleViewer, "alice", time.Hour, now)
		s.Instance = fmt.Sprint("node-", i%3)
		writeV1(t, rdb, prefix, s, true)
	}
	gone := domain.NewSession("gone", "dev2", domain.RoleViewer, "bob", time.Minute, now.Add(-time.Hour))
	writeV1(t, rdb, prefix, gone, false) // Redis had expired its hash
	rdb.HSet(ctx, prefix+"lease:dev", "holder", "a", "token", 7)
	rdb.Set(ctx, prefix+"fence:dev", 7, 0)

	err := EnsureSchema(ctx, rdb, prefix, ms)
	if !errors.Is(err, ErrSchema) {
		t.Fatalf("EnsureSchema on schema 1 = %v, want ErrSchema telling to migrate", err)
	}
	status, err := Schema(ctx, rdb, prefix, ms)
	if err != nil || status.Current != 1 || len(status.Pending) != len(ms)-1 {
		t.Fatalf("Schema = %+v, %v", status, err)
	}
	done, err := Migrate(ctx, rdb, prefix, ms)
	if err != nil || len(done) != len(ms)-1 {
		t.Fatalf("Migrate = %d applied, %v", len(done), err)
	}
	if err := EnsureSchema(ctx, rdb, prefix, ms); err != nil {
		t.Fatalf("EnsureSchema after migrating = %v", err)
	}
	st := New(rdb, Options{Prefix: prefix})
	for i := range n {
		s, err := st.Get(ctx, domain.SessionID(fmt.Sprint("s", i)))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprint("node-", i%3); s.Instance != want {
			t.Fatalf("session %s instance = %q, want %q", s.ID, s.Instance, want)
		}
	}
	if c, _ := st.Count(ctx); c != n+1 {
		t.Fatalf("Count after migrating = %d, want %d", c, n+1)
	}
	if left, _ := rdb.Keys(ctx, prefix+"[a-z]*").Result(); len(left) != 1 || left[0] != prefix+"schema" {
		t.Fatalf("keys left on the old layout: %v", left)
	}
	popped, err := st.PopExpired(ctx, now, 10)
	if err != nil || len(popped) != 1 || popped[0].ID != "gone" || popped[0].DeviceID != "dev2" {
		t.Fatalf("PopExpired after migrating = %+v, %v; want the session whose hash was gone", popped, err)
	}
	if err := st.Create(ctx, domain.NewSession("x", "dev2", domain.RoleViewer, "bob", time.Minute, now), domain.Quota{PerOwner: 1}); err != nil {
		t.Fatalf("Create after the pop = %v: quota not freed", err)
	}
	ls := NewLeases(rdb, prefix, time.Minute)
	if err := ls.Renew(ctx, domain.Lease{Device: "dev", Holder: "a", Token: 7}); err != nil {
		t.Fatalf("Renew of a migrated lease = %v", err)
	}
	if got, _ := ls.Acquire(ctx, "dev3", "a"); got.Token <= 7 {
		t.Fatalf("token after migrating = %d", got.Token)
	}
}

// TestMigrationShardTable checks that the migrations place sessions with
// the store's own shard table.
func TestMigrationShardTable(t *testing.T) {
	var lua strings.Builder
	for i, tag := range shardTags {
		if i > 0 {
			lua.WriteString(", ")
		}
		fmt.Fprintf(&lua, "'%s'", tag)
	}
	for _, m := range loadAll(t)[2:4] {
		flat := strings.Join(strings.Fields(m.Script), " ")
		if !strings.Contains(flat, lua.String()) {
			t.Errorf("migration %04d_%s does not carry shardTags %s", m.Version, m.Name, lua.String())
		}
	}
}

func TestRefuseNewerSchema(t *testing.T) {
	rdb, _ := newClient(t)
	ctx := context.Background()
	ms := loadAll(t)
	rdb.Set(ctx, "n:schema", len(ms)+1, 0)
	if err := EnsureSchema(ctx, rdb, "n:", ms); !errors.Is(err, ErrSchema) {
		t.Fatalf("EnsureSchema on a newer schema = %v, want ErrSchema", err)
	}
	if _, err := Migrate(ctx, rdb, "n:", ms); !errors.Is(err, ErrSchema) {
		t.Fatalf("Migrate on a newer schema = %v, want ErrSchema", err)
	}
}

func TestMigrateLock(t *testing.T) {
	rdb, _ := newClient(t)
	ctx := context.Background()
	rdb.Set(ctx, "l:migrate:lock", "1", time.Minute)
	if _, err := Migrate(ctx, rdb, "l:", loadAll(t)); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("Migrate while locked = %v, want ErrConflict", err)
	}
}
