package redisstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/fstest"
	"time"

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

// TestMigrateV1ToV2 populates a keyspace the way schema 1 laid it out
// (the instance in a field named "node"), checks that the service refuses
// it, migrates, and reads every session back through the store.
func TestMigrateV1ToV2(t *testing.T) {
	rdb, _ := newClient(t)
	ctx := context.Background()
	ms := loadAll(t)
	const prefix, n = "v1:", 1200 // more than one SCAN batch
	if _, err := Migrate(ctx, rdb, prefix, ms[:1]); err != nil {
		t.Fatal(err)
	}
	st := New(rdb, Options{Prefix: prefix})
	now := time.Now().Truncate(time.Microsecond)
	for i := range n {
		s := domain.NewSession(domain.SessionID(fmt.Sprint("s", i)), "dev", domain.RoleViewer, "alice", time.Hour, now)
		s.Instance = fmt.Sprint("node-", i%3)
		if err := st.Create(ctx, s, domain.Quota{}); err != nil {
			t.Fatal(err)
		}
		key := prefix + "session:" + string(s.ID)
		rdb.HSet(ctx, key, "node", s.Instance)
		rdb.HDel(ctx, key, "instance")
	}
	err := EnsureSchema(ctx, rdb, prefix, ms)
	if !errors.Is(err, ErrSchema) {
		t.Fatalf("EnsureSchema on schema 1 = %v, want ErrSchema telling to migrate", err)
	}
	status, err := Schema(ctx, rdb, prefix, ms)
	if err != nil || status.Current != 1 || len(status.Pending) != len(ms)-1 || status.Empty {
		t.Fatalf("Schema = %+v, %v", status, err)
	}
	done, err := Migrate(ctx, rdb, prefix, ms)
	if err != nil || len(done) != len(ms)-1 {
		t.Fatalf("Migrate = %d applied, %v", len(done), err)
	}
	if err := EnsureSchema(ctx, rdb, prefix, ms); err != nil {
		t.Fatalf("EnsureSchema after migrating = %v", err)
	}
	for i := range n {
		s, err := st.Get(ctx, domain.SessionID(fmt.Sprint("s", i)))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprint("node-", i%3); s.Instance != want {
			t.Fatalf("session %s instance = %q, want %q", s.ID, s.Instance, want)
		}
		if ok, _ := rdb.HExists(ctx, prefix+"session:"+string(s.ID), "node").Result(); ok {
			t.Fatalf("session %s still has field node", s.ID)
		}
	}
	if c, _ := st.Count(ctx); c != n {
		t.Fatalf("Count after migrating = %d, want %d", c, n)
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
