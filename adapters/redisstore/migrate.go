package redisstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"mediasvc/domain"
)

// Migration is one keyspace migration: a Lua script that brings the
// keyspace from Version-1 to Version.
type Migration struct {
	Version int
	Name    string
	// Match, when set, is a key pattern under the prefix: the script runs
	// on each batch of matching keys. Otherwise it runs once with no keys.
	Match  string
	Script string
}

// ErrSchema is wrapped by the errors that say the keyspace's schema does
// not match the binary (older: run migrations; newer: upgrade).
var ErrSchema = errors.New("redis keyspace schema mismatch")

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.lua$`)

// LoadMigrations reads NNNN_name.lua files from fsys. Versions must run
// 1, 2, 3… without gaps.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "*.lua")
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	var ms []Migration
	for _, name := range names {
		m := migrationName.FindStringSubmatch(path.Base(name))
		if m == nil {
			return nil, fmt.Errorf("load migrations: %s is not named NNNN_name.lua", name)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("load migrations: %w", err)
		}
		v, _ := strconv.Atoi(m[1])
		mig := Migration{Version: v, Name: m[2], Script: string(b)}
		sc := bufio.NewScanner(strings.NewReader(mig.Script))
		for sc.Scan() {
			if p, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "-- match:"); ok {
				mig.Match = strings.TrimSpace(p)
			}
		}
		ms = append(ms, mig)
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("load migrations: expected version %d, found %04d_%s", i+1, m.Version, m.Name)
		}
	}
	return ms, nil
}

// SchemaStatus is where a keyspace stands.
type SchemaStatus struct {
	// Current is the keyspace's version; 0 when it has none.
	Current int
	// Latest is the newest version the binary knows.
	Latest int
	// Empty is true when the keyspace holds no sessions.
	Empty bool
	// Pending are the migrations migrate up would apply.
	Pending []Migration
}

// Schema reads the keyspace's schema version under prefix.
func Schema(ctx context.Context, rdb redis.UniversalClient, prefix string, ms []Migration) (SchemaStatus, error) {
	k := newKeys(prefix)
	st := SchemaStatus{Latest: len(ms)}
	v, err := rdb.Get(ctx, k.schema).Result()
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil:
		return st, unavailable("read schema version", err)
	default:
		if st.Current, err = strconv.Atoi(v); err != nil {
			return st, fmt.Errorf("schema version %q under %s is not a number: %w", v, k.schema, ErrSchema)
		}
	}
	n, err := rdb.HLen(ctx, k.index).Result()
	if err != nil {
		return st, unavailable("read schema version", err)
	}
	st.Empty = n == 0
	for _, m := range ms {
		if m.Version > st.Current {
			st.Pending = append(st.Pending, m)
		}
	}
	return st, nil
}

// EnsureSchema checks that the keyspace under prefix is at the newest
// version in ms. A keyspace with no version and no sessions (a new or
// restarted-empty Redis) is stamped with the newest version. It returns an
// error wrapping ErrSchema when the keyspace is older (run `mediasvc
// migrate up`) or newer (upgrade mediasvc) than ms, and one wrapping
// domain.ErrUnavailable when Redis fails.
func EnsureSchema(ctx context.Context, rdb redis.UniversalClient, prefix string, ms []Migration) error {
	st, err := Schema(ctx, rdb, prefix, ms)
	if err != nil {
		return err
	}
	switch {
	case st.Current == 0 && st.Empty:
		if err := rdb.SetNX(ctx, newKeys(prefix).schema, st.Latest, 0).Err(); err != nil {
			return unavailable("write schema version", err)
		}
		return nil
	case st.Current > st.Latest:
		return fmt.Errorf("redis keyspace %q is at schema %d, newer than this mediasvc knows (%d): upgrade mediasvc: %w",
			prefix, st.Current, st.Latest, ErrSchema)
	case st.Current < st.Latest:
		return fmt.Errorf("redis keyspace %q is at schema %d, older than this mediasvc needs (%d): run `mediasvc migrate up`: %w",
			prefix, st.Current, st.Latest, ErrSchema)
	}
	return nil
}

// Migrate applies the pending migrations in order and returns the ones it
// applied. It refuses a keyspace newer than ms, and a second migrator
// while one holds the lock.
func Migrate(ctx context.Context, rdb redis.UniversalClient, prefix string, ms []Migration) ([]Migration, error) {
	k := newKeys(prefix)
	lock := k.prefix + "migrate:lock"
	ok, err := rdb.SetNX(ctx, lock, "1", 10*time.Minute).Result()
	if err != nil {
		return nil, unavailable("lock migrations", err)
	}
	if !ok {
		return nil, fmt.Errorf("migrate: another migration holds %s (delete it if none runs): %w", lock, domain.ErrConflict)
	}
	defer rdb.Del(context.WithoutCancel(ctx), lock)
	st, err := Schema(ctx, rdb, prefix, ms)
	if err != nil {
		return nil, err
	}
	if st.Current > st.Latest {
		return nil, fmt.Errorf("migrate: keyspace is at schema %d, newer than this mediasvc knows (%d): %w", st.Current, st.Latest, ErrSchema)
	}
	var done []Migration
	for _, m := range st.Pending {
		script := redis.NewScript(m.Script)
		if m.Match == "" {
			if err := script.Run(ctx, rdb, nil, k.prefix).Err(); err != nil && !errors.Is(err, redis.Nil) {
				return done, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
			}
		} else if err := migrateKeys(ctx, rdb, k.prefix+m.Match, func(batch []string) error {
			if err := script.Run(ctx, rdb, batch, k.prefix).Err(); err != nil && !errors.Is(err, redis.Nil) {
				return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
			}
			return nil
		}); err != nil {
			return done, err
		}
		if err := rdb.Set(ctx, k.schema, m.Version, 0).Err(); err != nil {
			return done, unavailable("write schema version", err)
		}
		done = append(done, m)
	}
	return done, nil
}

// migrateKeys SCANs for keys matching pattern and hands them to fn in
// batches of at most 500. On a Redis Cluster it scans every primary and
// splits each batch by hash slot, since a script may only touch one slot.
func migrateKeys(ctx context.Context, rdb redis.UniversalClient, pattern string, fn func([]string) error) error {
	scan := func(ctx context.Context, c redis.Cmdable, bySlot bool) error {
		var cursor uint64
		for {
			batch, next, err := c.Scan(ctx, cursor, pattern, 500).Result()
			if err != nil {
				return unavailable("migration scan", err)
			}
			if bySlot {
				groups := map[int][]string{}
				for _, key := range batch {
					groups[Slot(key)] = append(groups[Slot(key)], key)
				}
				for _, g := range groups {
					if err := fn(g); err != nil {
						return err
					}
				}
			} else if len(batch) > 0 {
				if err := fn(batch); err != nil {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c, true) })
	}
	return scan(ctx, rdb, false)
}
