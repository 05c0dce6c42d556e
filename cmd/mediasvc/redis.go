package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"

	"mediasvc/adapters/memstore"
	"mediasvc/adapters/redisstore"
	"mediasvc/domain"
	"mediasvc/migrations"
	"mediasvc/ports"
)

// backend is the session store and what goes with it, as store.backend
// picks: in memory, or shared through Redis.
type backend struct {
	store       ports.SessionStore
	ownerLimit  *swapLimiter
	globalLimit *swapLimiter
	groupLimit  *swapLimiter
	// limiters builds the rate limiters for a configuration.
	limiters  func(LimitsConfig) (limitSet, error)
	healthy   func() error
	instances ports.InstanceRegistry
	bus       ports.Bus
	leases    ports.DeviceLeases
	// farm and audit keep control, reservations and the audit trail.
	farm  ports.FarmStore
	audit ports.AuditLog
	// run holds the background loops (Redis monitor, heartbeat) to run
	// until the service stops; onUp is set once the app exists.
	run   []func(ctx context.Context) error
	onUp  func(ctx context.Context) error
	close func()
}

// newRedisClient opens a client for cfg.URL, read as cfg.Mode says
// (single: redis.ParseURL; cluster: redis.ParseClusterURL; sentinel:
// redis.ParseFailoverURL), with the configured timeouts. open false only
// parses the URL (nil client). It does not contact Redis.
func newRedisClient(cfg RedisConfig, open bool) (redis.UniversalClient, error) {
	t := cfg.Timeout
	switch cfg.Mode {
	case "cluster":
		opts, err := redis.ParseClusterURL(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("cluster URL (redis://host:port?addr=host2:port2&…): %w", err)
		}
		if !open {
			return nil, nil
		}
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = t, t, t, 2*t
		opts.MaxRetries = 1
		opts.ContextTimeoutEnabled = true
		return redis.NewClusterClient(opts), nil
	case "sentinel":
		opts, err := redis.ParseFailoverURL(cfg.URL)
		if err == nil && opts.MasterName == "" {
			err = errors.New("the master_name parameter is missing")
		}
		if err != nil {
			return nil, fmt.Errorf("sentinel URL (redis://sentinel:26379/db?master_name=…&addr=sentinel2:26379): %w", err)
		}
		if !open {
			return nil, nil
		}
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = t, t, t, 2*t
		opts.MaxRetries = 1
		opts.ContextTimeoutEnabled = true
		return redis.NewFailoverClient(opts), nil
	default:
		opts, err := redis.ParseURL(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("redis://, rediss:// or unix:// URL: %w", err)
		}
		if !open {
			return nil, nil
		}
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = t, t, t
		opts.PoolTimeout = 2 * t
		opts.MaxRetries = 1
		opts.ContextTimeoutEnabled = true
		return redis.NewClient(opts), nil
	}
}

// newBackend builds the store, limiters and, for Redis, the monitor and
// the instance registry. With Redis it checks the keyspace schema at once:
// a schema mismatch stops the start; an unreachable Redis does not (the
// instance starts unready and the monitor keeps trying).
func newBackend(ctx context.Context, cfg Config, self domain.Instance, log *slog.Logger, meter metric.Meter) (*backend, error) {
	if cfg.Store.Backend != "redis" {
		b := &backend{store: memstore.New(memstore.Options{}), close: func() {},
			farm: memstore.NewFarm(nil), audit: memstore.NewAudit(cfg.Audit.MaxEvents),
			limiters: func(l LimitsConfig) (ls limitSet, err error) {
				if ls.owner, err = memstore.NewLimiter("owner", l.CreateRate, l.CreateBurst, 100_000); err != nil {
					return ls, err
				}
				if ls.global, err = memstore.NewLimiter("global", l.GlobalCreateRate, l.GlobalCreateBurst, 1); err != nil {
					return ls, err
				}
				ls.group, err = memstore.NewLimiter("group_input", l.GroupInputRate, l.GroupInputBurst, 100_000)
				return ls, err
			}}
		return b, b.initLimits(cfg.Limits)
	}
	ms, err := redisstore.LoadMigrations(migrations.FS)
	if err != nil {
		return nil, err
	}
	redis.SetLogger(redisLog{log.With("component", "go-redis")})
	rdb, err := newRedisClient(cfg.Redis, true)
	if err != nil {
		return nil, err
	}
	prefix := cfg.Redis.KeyPrefix
	sctx, cancel := context.WithTimeout(ctx, 2*cfg.Redis.Timeout)
	err = redisstore.EnsureSchema(sctx, rdb, prefix, ms)
	cancel()
	switch {
	case errors.Is(err, redisstore.ErrSchema):
		_ = rdb.Close()
		return nil, err
	case err != nil:
		log.Warn("redis unreachable at start; starting unready", "err", err)
	}
	bus, err := redisstore.NewBus(rdb, redisstore.BusOptions{
		Prefix: prefix, Self: self.ID, Secrets: cfg.Redis.busSecrets(), Window: cfg.Redis.BusWindow,
		Log: log.With("component", "bus"), Meter: meter,
	})
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	reg := redisstore.NewRegistry(rdb, prefix, self, cfg.Instance.HeartbeatTTL, log.With("component", "registry"))
	b := &backend{
		store: redisstore.New(rdb, redisstore.Options{
			Prefix: prefix, KeyGrace: cfg.Redis.KeyGrace, TouchThrottle: cfg.Redis.TouchThrottle,
			Wait: redisstore.Wait{Replicas: cfg.Redis.WaitReplicas, Timeout: cfg.Redis.WaitTimeout},
		}),
		instances: reg,
		limiters: func(l LimitsConfig) (ls limitSet, err error) {
			if ls.owner, err = redisstore.NewLimiter(rdb, prefix, "owner", l.CreateRate, l.CreateBurst); err != nil {
				return ls, err
			}
			if ls.global, err = redisstore.NewLimiter(rdb, prefix, "global", l.GlobalCreateRate, l.GlobalCreateBurst); err != nil {
				return ls, err
			}
			ls.group, err = redisstore.NewLimiter(rdb, prefix, "group_input", l.GroupInputRate, l.GroupInputBurst)
			return ls, err
		},
		bus:    bus,
		leases: redisstore.NewLeases(rdb, prefix, cfg.Instance.LeaseTTL),
		farm:   redisstore.NewFarm(rdb, redisstore.FarmOptions{Prefix: prefix}),
		audit:  redisstore.NewAudit(rdb, redisstore.AuditOptions{Prefix: prefix, MaxLen: int64(cfg.Audit.MaxEvents)}),
		close:  func() { _ = rdb.Close() },
	}
	if err := b.initLimits(cfg.Limits); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	mon := redisstore.NewMonitor(rdb, cfg.Redis.HealthInterval, cfg.Redis.MaxBackoff, func(ctx context.Context) error {
		// Redis is (back) up: check the schema (stamping a restarted,
		// empty Redis), re-register, then put this instance's sessions
		// back.
		if err := redisstore.EnsureSchema(ctx, rdb, prefix, ms); err != nil {
			return err
		}
		if err := reg.Heartbeat(ctx); err != nil {
			return err
		}
		if b.onUp != nil {
			return b.onUp(ctx)
		}
		return nil
	}, log.With("component", "redis"))
	b.healthy = func() error {
		if err := mon.Healthy(); err != nil {
			return err
		}
		if !bus.Listening() { // other instances could not reach this one yet
			return fmt.Errorf("signaling bus not subscribed yet: %w", domain.ErrUnavailable)
		}
		return nil
	}
	b.run = []func(context.Context) error{mon.Run, reg.Run}
	return b, nil
}

// limitSet is the rate limiters one configuration makes: session
// creation per owner and for all, and group input per subject.
type limitSet struct{ owner, global, group ports.RateLimiter }

// initLimits builds the first rate limiters.
func (b *backend) initLimits(l LimitsConfig) error {
	ls, err := b.limiters(l)
	if err != nil {
		return err
	}
	b.ownerLimit, b.globalLimit, b.groupLimit = newSwapLimiter(ls.owner), newSwapLimiter(ls.global), newSwapLimiter(ls.group)
	return nil
}

// setLimits replaces the rate limiters (a reload). In memory the
// buckets start full again; in Redis the new rate applies to the state
// already there.
func (b *backend) setLimits(l LimitsConfig) error {
	ls, err := b.limiters(l)
	if err != nil {
		return err
	}
	b.ownerLimit.set(ls.owner)
	b.globalLimit.set(ls.global)
	b.groupLimit.set(ls.group)
	return nil
}

// migrate runs `mediasvc migrate up|status`.
func migrate(args, environ []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "up" && args[0] != "status") {
		fmt.Fprintln(stderr, "usage: mediasvc migrate up|status [-config file.yaml] [flags]   (needs redis.url / MEDIASVC_REDIS_URL)")
		return 2
	}
	cmd := args[0]
	cfg, _, err := loadConfig(args[1:], environ)
	if err != nil {
		fmt.Fprintf(stderr, "mediasvc: invalid configuration:\n%s\n", indent(err))
		return 2
	}
	if cfg.Redis.URL == "" {
		fmt.Fprintln(stderr, "mediasvc migrate: set redis.url (or MEDIASVC_REDIS_URL)")
		return 2
	}
	ms, err := redisstore.LoadMigrations(migrations.FS)
	if err != nil {
		fmt.Fprintln(stderr, "mediasvc migrate:", err)
		return 1
	}
	rdb, err := newRedisClient(cfg.Redis, true)
	if err != nil {
		fmt.Fprintln(stderr, "mediasvc migrate:", err)
		return 2
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	prefix := cfg.Redis.KeyPrefix
	st, err := redisstore.Schema(ctx, rdb, prefix, ms)
	if err != nil {
		fmt.Fprintln(stderr, "mediasvc migrate:", err)
		return 1
	}
	if cmd == "status" {
		fmt.Fprintf(stdout, "keyspace %q: schema %d, this mediasvc knows %d\n", prefix, st.Current, st.Latest)
		switch {
		case st.Current > st.Latest:
			fmt.Fprintln(stdout, "newer than this binary: upgrade mediasvc")
		case len(st.Pending) == 0:
			fmt.Fprintln(stdout, "up to date")
		default:
			for _, m := range st.Pending {
				fmt.Fprintf(stdout, "pending %04d_%s\n", m.Version, m.Name)
			}
		}
		return 0
	}
	done, err := redisstore.Migrate(ctx, rdb, prefix, ms)
	for _, m := range done {
		fmt.Fprintf(stdout, "applied %04d_%s\n", m.Version, m.Name)
	}
	if err != nil {
		fmt.Fprintln(stderr, "mediasvc migrate:", err)
		return 1
	}
	fmt.Fprintf(stdout, "keyspace %q at schema %d\n", prefix, st.Latest)
	return 0
}

// redisLog sends go-redis's own messages (one per failed dial while Redis
// is down, repeating what the monitor already said once) to debug.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...))
}
