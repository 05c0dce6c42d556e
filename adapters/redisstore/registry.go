package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"mediasvc/domain"
	"mediasvc/ports"
)

var _ ports.InstanceRegistry = (*Registry)(nil)

// Registry records this instance in Redis with a heartbeat TTL and lists
// the live ones. Layout: P+"instance:"+id is a hash (id, url, started,
// heartbeat in Unix ms) that expires TTL after the last heartbeat, and
// P+"instances" a sorted set of ids by last heartbeat, so listing reads
// only live instances and never scans the keyspace.
type Registry struct {
	rdb  redis.UniversalClient
	keys keys
	self domain.Instance
	ttl  time.Duration
	log  *slog.Logger
}

// NewRegistry returns a registry for self (its ID and URL; StartedAt is
// set if zero) whose record expires ttl after its last heartbeat.
func NewRegistry(rdb redis.UniversalClient, prefix string, self domain.Instance, ttl time.Duration, log *slog.Logger) *Registry {
	if self.StartedAt.IsZero() {
		self.StartedAt = time.Now()
	}
	if ttl <= 0 {
		ttl = 15 * time.Second
	}
	return &Registry{rdb: rdb, keys: newKeys(prefix), self: self, ttl: ttl, log: log}
}

// Heartbeat writes this instance's record and refreshes its TTL. It also
// re-creates the record after Redis restarted empty.
func (r *Registry) Heartbeat(ctx context.Context) error {
	now := time.Now()
	key := r.keys.instance(r.self.ID)
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "id", r.self.ID, "url", r.self.URL,
			"started", r.self.StartedAt.UnixMilli(), "heartbeat", now.UnixMilli())
		p.PExpire(ctx, key, r.ttl)
		p.ZAdd(ctx, r.keys.instances(), redis.Z{Score: float64(now.UnixMilli()), Member: r.self.ID})
		return nil
	})
	if err != nil {
		return unavailable("instance heartbeat", err)
	}
	return nil
}

// Deregister removes this instance's record (on a graceful stop).
func (r *Registry) Deregister(ctx context.Context) error {
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, r.keys.instance(r.self.ID))
		p.ZRem(ctx, r.keys.instances(), r.self.ID)
		return nil
	})
	if err != nil {
		return unavailable("deregister instance", err)
	}
	return nil
}

// Run heartbeats every third of the TTL until ctx is done, then
// deregisters. A failed heartbeat is logged once per outage and retried
// at the next tick.
func (r *Registry) Run(ctx context.Context) error {
	t := time.NewTicker(r.ttl / 3)
	defer t.Stop()
	failing := false
	for {
		err := r.Heartbeat(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			r.log.Warn("instance heartbeat failed", "err", err)
			failing = true
		case err == nil && failing:
			r.log.Info("instance heartbeat restored")
			failing = false
		}
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			_ = r.Deregister(dctx)
			return nil
		case <-t.C:
		}
	}
}

// Instances lists the instances whose heartbeat is younger than the TTL,
// oldest first, dropping the expired ones from the index.
func (r *Registry) Instances(ctx context.Context) ([]domain.Instance, error) {
	idx := r.keys.instances()
	cutoff := time.Now().Add(-r.ttl).UnixMilli()
	if err := r.rdb.ZRemRangeByScore(ctx, idx, "-inf", "("+strconv.FormatInt(cutoff, 10)).Err(); err != nil {
		return nil, unavailable("list instances", err)
	}
	ids, err := r.rdb.ZRange(ctx, idx, 0, -1).Result()
	if err != nil {
		return nil, unavailable("list instances", err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, r.keys.instance(id))
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("list instances", err)
	}
	out := make([]domain.Instance, 0, len(ids))
	for _, c := range cmds {
		m := c.Val()
		if len(m) == 0 {
			continue // expired between the two reads
		}
		started, _ := strconv.ParseInt(m["started"], 10, 64)
		beat, _ := strconv.ParseInt(m["heartbeat"], 10, 64)
		out = append(out, domain.Instance{
			ID: m["id"], URL: m["url"],
			StartedAt: time.UnixMilli(started).UTC(), HeartbeatAt: time.UnixMilli(beat).UTC(),
		})
	}
	return out, nil
}

// Monitor watches Redis: it pings it, reports whether it is usable, and
// when Redis comes back (or is first reached) runs OnUp — check the schema,
// put back this instance's sessions — before reporting it usable. While
// Redis is down it retries with exponential backoff from the interval up
// to MaxBackoff, from its one goroutine.
type Monitor struct {
	rdb        redis.UniversalClient
	interval   time.Duration
	maxBackoff time.Duration
	onUp       func(context.Context) error
	log        *slog.Logger

	state atomic.Pointer[health]
}

// health is one observation of Redis: nil when usable.
type health struct{ err error }

// NewMonitor returns a monitor that pings every interval. onUp may be nil.
// Until its first successful round it reports Redis as unreachable.
func NewMonitor(rdb redis.UniversalClient, interval, maxBackoff time.Duration, onUp func(context.Context) error, log *slog.Logger) *Monitor {
	if interval <= 0 {
		interval = time.Second
	}
	maxBackoff = max(maxBackoff, interval)
	m := &Monitor{rdb: rdb, interval: interval, maxBackoff: maxBackoff, onUp: onUp, log: log}
	m.set(fmt.Errorf("redis not reached yet: %w", domain.ErrUnavailable))
	return m
}

// Healthy returns nil while Redis is usable, or why it is not (wrapping
// domain.ErrUnavailable, or ErrSchema).
func (m *Monitor) Healthy() error {
	return m.state.Load().err
}

func (m *Monitor) set(err error) { m.state.Store(&health{err}) }

// Run monitors until ctx is done.
func (m *Monitor) Run(ctx context.Context) error {
	wait := m.interval
	up := false
	for {
		err := m.check(ctx, up)
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			if !up {
				m.log.Info("redis is up")
			}
			up, wait = true, m.interval
		default:
			if up || wait == m.interval {
				m.log.Error("redis unusable: new sessions are refused until it is back", "err", err, "retry_in", wait)
			}
			up = false
		}
		m.set(err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		if !up {
			wait = min(2*wait, m.maxBackoff)
		}
	}
}

// ping pings Redis: every primary of a cluster (any one down leaves its
// slots unserved), the one server otherwise.
func ping(ctx context.Context, rdb redis.UniversalClient) error {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() })
	}
	return rdb.Ping(ctx).Err()
}

// check pings Redis and, when it was not up, runs onUp.
func (m *Monitor) check(ctx context.Context, up bool) error {
	pctx, cancel := context.WithTimeout(ctx, max(m.interval, time.Second))
	defer cancel()
	if err := ping(pctx, m.rdb); err != nil {
		return unavailable("ping redis", err)
	}
	if !up && m.onUp != nil {
		if err := m.onUp(pctx); err != nil {
			return err
		}
	}
	return nil
}
