package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Wait makes a write wait for replicas: after it, the same connection
// sends WAIT Replicas Timeout, and the write succeeds only when that many
// replicas confirmed it. Redis replicates asynchronously, so without it a
// primary that dies (and a Sentinel failover to a replica) can lose the
// last writes it acknowledged. Replication is one ordered stream, so one
// WAIT after the last write of an operation covers its earlier writes too.
//
// It is for a single primary with replicas (Sentinel); a Redis Cluster
// client routes a key-less WAIT to an arbitrary node, so it must not be
// used there (the configuration refuses it).
type Wait struct {
	// Replicas is how many replicas must confirm; 0 waits for none.
	Replicas int
	// Timeout bounds the wait (500 ms if zero). It must stay below the
	// client's read timeout, or the client gives up on the WAIT first.
	Timeout time.Duration
}

// errNotReplicated is wrapped when the write reached the primary but too
// few replicas confirmed it in time.
var errNotReplicated = errors.New("write not confirmed by enough replicas")

func (w Wait) timeout() time.Duration {
	if w.Timeout <= 0 {
		return 500 * time.Millisecond
	}
	return w.Timeout
}

func (w Wait) check(n int64) error {
	if n < int64(w.Replicas) {
		return fmt.Errorf("%w: %d of %d within %s", errNotReplicated, n, w.Replicas, w.timeout())
	}
	return nil
}

// on waits on c's connection (a transaction's) for the writes it sent.
func (w Wait) on(ctx context.Context, c interface {
	Wait(ctx context.Context, numSlaves int, timeout time.Duration) *redis.IntCmd
}) error {
	if w.Replicas <= 0 {
		return nil
	}
	n, err := c.Wait(ctx, w.Replicas, w.timeout()).Result()
	if err != nil {
		return err
	}
	return w.check(n)
}

// runScript runs s, and with w.Replicas > 0 sends WAIT after it in one
// pipeline (one connection). The returned command carries the script's
// reply, or the WAIT's failure wrapping errNotReplicated.
func runScript(ctx context.Context, rdb redis.UniversalClient, w Wait, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	if w.Replicas <= 0 {
		return s.Run(ctx, rdb, keys, args...)
	}
	pipe := func(eval func(p redis.Pipeliner) *redis.Cmd) (*redis.Cmd, *redis.Cmd) {
		var cmd, wait *redis.Cmd
		_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			cmd = eval(p)
			wait = p.Do(ctx, "wait", w.Replicas, w.timeout().Milliseconds())
			return nil
		})
		return cmd, wait
	}
	cmd, wait := pipe(func(p redis.Pipeliner) *redis.Cmd { return s.EvalSha(ctx, p, keys, args...) })
	if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		cmd, wait = pipe(func(p redis.Pipeliner) *redis.Cmd { return s.Eval(ctx, p, keys, args...) })
	}
	if cmd.Err() != nil {
		return cmd
	}
	n, err := wait.Int64()
	if err != nil {
		cmd.SetErr(err)
		return cmd
	}
	if err := w.check(n); err != nil {
		cmd.SetErr(err)
	}
	return cmd
}
