package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"mediasvc/domain"
	"mediasvc/ports"
)

var _ ports.Bus = (*Bus)(nil)

// Bus is a ports.Bus over Redis pub/sub. Each instance subscribes to its
// request channel P+"{bus:"+id+"}req" and its reply channel
// P+"{bus:"+id+"}rep"; a call publishes {id, reply_to, body} to the
// target's request channel and waits for the reply with that id on its
// own. Pub/sub delivers at most once and only to live subscribers: a call
// to an instance that does not listen fails at once (PUBLISH reaches no
// one), and a lost reply ends the call at its context's deadline. Events
// go to P+"{bus:ev:"+topic+"}".
//
// On a Redis Cluster the bus uses sharded pub/sub (SPUBLISH/SSUBSCRIBE,
// Redis 7): a channel lives on the primary of its slot, where both the
// publisher and the subscriber connect, so PUBLISH's count of receivers
// is right (classic PUBLISH on a cluster counts only the subscribers of
// the node it reached, which would make a listening instance look gone)
// and a message crosses one node instead of being broadcast over the
// cluster bus to every node. The two channels of an instance share a hash
// tag, so one subscription (one connection) carries both. Elsewhere
// (single Redis, Sentinel) it uses classic pub/sub, which Redis 6 has too.
type Bus struct {
	rdb     redis.UniversalClient
	sharded bool // SPUBLISH/SSUBSCRIBE: rdb is a cluster client
	prefix  string
	self    string
	log     *slog.Logger
	maxBusy int

	seq     atomic.Uint64
	mu      sync.Mutex
	pending map[string]chan []byte
	ready   chan struct{} // closed once Serve listens for replies
}

// NewBus returns the bus of instance self. Calls wait for Serve to start.
func NewBus(rdb redis.UniversalClient, prefix, self string, log *slog.Logger) *Bus {
	if prefix == "" {
		prefix = "mediasvc:"
	}
	_, sharded := rdb.(*redis.ClusterClient)
	return &Bus{rdb: rdb, sharded: sharded, prefix: prefix, self: self, log: log, maxBusy: 256,
		pending: make(map[string]chan []byte), ready: make(chan struct{})}
}

func (b *Bus) reqChan(instance string) string { return b.prefix + "{bus:" + instance + "}req" }
func (b *Bus) repChan(instance string) string { return b.prefix + "{bus:" + instance + "}rep" }
func (b *Bus) evChan(topic string) string     { return b.prefix + "{bus:ev:" + topic + "}" }

func (b *Bus) publish(ctx context.Context, channel string, msg any) *redis.IntCmd {
	if b.sharded {
		return b.rdb.SPublish(ctx, channel, msg)
	}
	return b.rdb.Publish(ctx, channel, msg)
}

func (b *Bus) subscribe(ctx context.Context, channels ...string) *redis.PubSub {
	if b.sharded {
		return b.rdb.SSubscribe(ctx, channels...)
	}
	return b.rdb.Subscribe(ctx, channels...)
}

// Listening reports whether Serve has subscribed, so requests addressed to
// this instance reach it.
func (b *Bus) Listening() bool {
	select {
	case <-b.ready:
		return true
	default:
		return false
	}
}

// Call sends req to instance and waits for the reply until ctx ends.
func (b *Bus) Call(ctx context.Context, instance string, req domain.BusRequest) (domain.BusReply, error) {
	select {
	case <-b.ready:
	case <-ctx.Done():
		return domain.BusReply{}, fmt.Errorf("bus call to %s: not serving yet: %w", instance, ctx.Err())
	}
	id := b.self + ":" + strconv.FormatUint(b.seq.Add(1), 36)
	ch := make(chan []byte, 1)
	b.mu.Lock()
	b.pending[id] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
	}()
	msg := encodeEnvelope(envelope{ID: id, ReplyTo: b.repChan(b.self), Body: encodeRequest(req)})
	n, err := b.publish(ctx, b.reqChan(instance), msg).Result()
	if err != nil {
		return domain.BusReply{}, unavailable("bus call to "+instance, err)
	}
	if n == 0 {
		return domain.BusReply{}, fmt.Errorf("bus call: instance %s is not listening: %w", instance, domain.ErrUnavailable)
	}
	select {
	case rep := <-ch:
		return decodeReply(instance, rep)
	case <-ctx.Done():
		return domain.BusReply{}, fmt.Errorf("bus call to %s: no reply: %w", instance, ctx.Err())
	}
}

// Serve listens for requests and replies until ctx is done.
func (b *Bus) Serve(ctx context.Context, handle func(context.Context, domain.BusRequest) (domain.BusReply, error)) error {
	ps := b.subscribe(ctx, b.reqChan(b.self), b.repChan(b.self))
	defer ps.Close()
	// Wait for the subscription; retry while Redis is down.
	for {
		if _, err := ps.Receive(ctx); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
	close(b.ready)
	sem := make(chan struct{}, b.maxBusy)
	var wg sync.WaitGroup
	defer wg.Wait()
	ch := ps.Channel()
	for {
		var m *redis.Message
		select {
		case <-ctx.Done():
			return nil
		case m = <-ch:
		}
		env, err := decodeEnvelope([]byte(m.Payload))
		if err != nil {
			b.log.Warn("bus: malformed message", "channel", m.Channel, "err", err)
			continue
		}
		if m.Channel == b.repChan(b.self) {
			b.mu.Lock()
			c := b.pending[env.ID]
			b.mu.Unlock()
			if c != nil {
				c <- env.Body
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		wg.Go(func() {
			defer func() { <-sem }()
			var out []byte
			if req, err := decodeRequest(env.Body); err != nil {
				out = encodeEnvelope(envelope{ID: env.ID, Body: encodeReply(domain.BusReply{}, err)})
			} else {
				out = encodeEnvelope(envelope{ID: env.ID, Body: encodeReply(handle(ctx, req))})
			}
			if err := b.publish(context.WithoutCancel(ctx), env.ReplyTo, out).Err(); err != nil {
				b.log.Warn("bus: reply lost", "to", env.ReplyTo, "err", err)
			}
		})
	}
}

// Publish sends payload to topic's subscribers.
func (b *Bus) Publish(ctx context.Context, topic string, ev domain.SessionEvent) error {
	if err := b.publish(ctx, b.evChan(topic), encodeEvent(ev)).Err(); err != nil {
		return unavailable("bus publish", err)
	}
	return nil
}

// Subscribe delivers topic's messages to fn until cancel.
func (b *Bus) Subscribe(ctx context.Context, topic string, fn func(domain.SessionEvent)) (func(), error) {
	ps := b.subscribe(context.WithoutCancel(ctx), b.evChan(topic))
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, unavailable("bus subscribe", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ps.Channel() {
			ev, err := decodeEvent([]byte(m.Payload))
			if err != nil {
				b.log.Warn("bus: malformed event", "topic", topic, "err", err)
				continue
			}
			fn(ev)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = ps.Close()
			<-done
		})
	}, nil
}
