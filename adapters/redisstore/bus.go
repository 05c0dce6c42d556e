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

// Bus is a ports.Bus over Redis pub/sub, on one subscriber connection per
// instance. The instance's channels all share its hash tag: requests to it
// go to P+"{bus:"+id+"}req", replies to its calls to P+"{bus:"+id+"}rep",
// and the event topics it subscribes to are P+"{bus:"+id+"}ev:"+n. Serve
// owns that connection (go-redis reconnects it and subscribes again after
// an outage) and one reader that never waits: a reply is handed to its
// caller at once, a request is queued for a bounded pool of handlers (and
// dropped, the caller timing out, when that queue is full), an event is
// queued for the one goroutine that runs the subscribers' callbacks. So
// replies never wait behind requests, and a relayed socket costs a channel
// on the shared connection, no connection or goroutine of its own.
//
// Pub/sub delivers at most once and only to live subscribers: a call to an
// instance that does not listen fails at once (PUBLISH reaches no one), and
// a lost reply ends the call at its context's deadline.
//
// On a Redis Cluster the bus uses sharded pub/sub (SPUBLISH/SSUBSCRIBE,
// Redis 7): a channel lives on the primary of its slot, where both the
// publisher and the subscriber connect, so PUBLISH's count of receivers
// is right (classic PUBLISH on a cluster counts only the subscribers of
// the node it reached, which would make a listening instance look gone)
// and a message crosses one node instead of being broadcast over the
// cluster bus to every node. Sharing the hash tag keeps every channel of an
// instance in one slot, so its one connection carries them all. Elsewhere
// (single Redis, Sentinel) it uses classic pub/sub, which Redis 6 has too.
//
// The wire format (envelopes, requests, replies, events, errors) is
// wire.go's.
type Bus struct {
	rdb     redis.UniversalClient
	sharded bool // SPUBLISH/SSUBSCRIBE: rdb is a cluster client
	prefix  string
	self    string
	log     *slog.Logger
	maxBusy int // request handlers at once
	maxWait int // requests queued for them

	seq       atomic.Uint64
	ready     chan struct{} // closed once Serve listens
	readyOnce sync.Once

	mu      sync.Mutex
	ps      *redis.PubSub // the subscriber connection, while Serve runs
	pending map[string]chan []byte
	subs    map[string]*subscription
	confirm map[string][]chan struct{} // subscriptions waiting for Redis to confirm
	events  chan event                 // for the dispatcher; nil until Serve runs
}

// subscription is one Subscribe's callback. dead is set by its cancel,
// under mu, which the dispatcher holds while it calls fn: once cancel
// returns, fn is not called again.
type subscription struct {
	fn   func(domain.SessionEvent)
	mu   sync.Mutex
	dead bool
}

type event struct {
	sub     *subscription
	payload []byte
}

// NewBus returns the bus of instance self. Calls and subscriptions wait
// for Serve to start.
func NewBus(rdb redis.UniversalClient, prefix, self string, log *slog.Logger) *Bus {
	if prefix == "" {
		prefix = "mediasvc:"
	}
	_, sharded := rdb.(*redis.ClusterClient)
	return &Bus{rdb: rdb, sharded: sharded, prefix: prefix, self: self, log: log, maxBusy: 256, maxWait: 1024,
		ready: make(chan struct{}), pending: make(map[string]chan []byte), subs: make(map[string]*subscription),
		confirm: make(map[string][]chan struct{})}
}

func (b *Bus) reqChan(instance string) string { return b.prefix + "{bus:" + instance + "}req" }
func (b *Bus) repChan(instance string) string { return b.prefix + "{bus:" + instance + "}rep" }
func (b *Bus) evChan(n uint64) string {
	return b.prefix + "{bus:" + b.self + "}ev:" + strconv.FormatUint(n, 36)
}

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

func (b *Bus) waitReady(ctx context.Context, what string) error {
	select {
	case <-b.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: bus not serving yet: %w", what, ctx.Err())
	}
}

// Call sends req to instance and waits for the reply until ctx ends.
func (b *Bus) Call(ctx context.Context, instance string, req domain.BusRequest) (domain.BusReply, error) {
	if err := b.waitReady(ctx, "bus call to "+instance); err != nil {
		return domain.BusReply{}, err
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

// Serve listens on the instance's connection until ctx is done: it answers
// requests with handle and delivers replies and events. It waits for Redis
// while Redis is away.
func (b *Bus) Serve(ctx context.Context, handle func(context.Context, domain.BusRequest) (domain.BusReply, error)) error {
	req, rep := b.reqChan(b.self), b.repChan(b.self)
	confirmed := b.awaitConfirm(req, rep)
	ps := b.subscribe(ctx, req, rep) // go-redis retries the connection until it succeeds
	defer ps.Close()
	events := make(chan event, 4096)
	b.mu.Lock()
	b.ps, b.events = ps, events
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.ps, b.events = nil, nil
		b.mu.Unlock()
	}()

	var wg sync.WaitGroup
	defer wg.Wait()
	work := make(chan envelope, b.maxWait)
	for range b.maxBusy {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case env := <-work:
					b.serveOne(ctx, handle, env)
				}
			}
		})
	}
	wg.Go(func() { b.dispatch(ctx, events) })

	msgs := ps.ChannelWithSubscriptions(redis.WithChannelSize(1024))
	wg.Go(func() {
		for _, c := range confirmed {
			select {
			case <-c:
			case <-ctx.Done():
				return
			}
		}
		b.readyOnce.Do(func() { close(b.ready) })
	})
	for {
		var m any
		select {
		case <-ctx.Done():
			return nil
		case m = <-msgs:
		}
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" || m.Kind == "ssubscribe" {
				b.confirmed(m.Channel)
			}
		case *redis.Message:
			b.route(ctx, m, req, rep, work, events)
		}
	}
}

// route hands one message on without waiting: a reply to its caller, a
// request to the handlers' queue, an event to the dispatcher.
func (b *Bus) route(ctx context.Context, m *redis.Message, req, rep string, work chan<- envelope, events chan<- event) {
	switch m.Channel {
	case rep, req:
		env, err := decodeEnvelope([]byte(m.Payload))
		if err != nil {
			b.log.Warn("bus: malformed message", "channel", m.Channel, "err", err)
			return
		}
		if m.Channel == rep {
			b.mu.Lock()
			c := b.pending[env.ID]
			b.mu.Unlock()
			if c != nil {
				select {
				case c <- env.Body:
				default: // a duplicate
				}
			}
			return
		}
		select {
		case work <- env:
		default:
			b.log.Warn("bus: request queue full; request dropped", "reply_to", env.ReplyTo)
		}
	default:
		b.mu.Lock()
		sub := b.subs[m.Channel]
		b.mu.Unlock()
		if sub == nil {
			return
		}
		select {
		case events <- event{sub: sub, payload: []byte(m.Payload)}:
		default:
			b.log.Warn("bus: event queue full; event dropped", "channel", m.Channel)
		}
	}
}

// serveOne answers one request and publishes the reply.
func (b *Bus) serveOne(ctx context.Context, handle func(context.Context, domain.BusRequest) (domain.BusReply, error), env envelope) {
	var out []byte
	if req, err := decodeRequest(env.Body); err != nil {
		out = encodeEnvelope(envelope{ID: env.ID, Body: encodeReply(domain.BusReply{}, err)})
	} else {
		out = encodeEnvelope(envelope{ID: env.ID, Body: encodeReply(handle(ctx, req))})
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := b.publish(pctx, env.ReplyTo, out).Err(); err != nil {
		b.log.Warn("bus: reply lost", "to", env.ReplyTo, "err", err)
	}
}

// dispatch runs the subscribers' callbacks, in the order events arrived,
// until ctx is done.
func (b *Bus) dispatch(ctx context.Context, events <-chan event) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-events:
			ev, err := decodeEvent(e.payload)
			if err != nil {
				b.log.Warn("bus: malformed event", "err", err)
				continue
			}
			e.sub.mu.Lock()
			if !e.sub.dead {
				e.sub.fn(ev)
			}
			e.sub.mu.Unlock()
		}
	}
}

// awaitConfirm registers for Redis's confirmation of each channel's
// subscription.
func (b *Bus) awaitConfirm(channels ...string) []chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]chan struct{}, len(channels))
	for i, ch := range channels {
		out[i] = make(chan struct{})
		b.confirm[ch] = append(b.confirm[ch], out[i])
	}
	return out
}

func (b *Bus) confirmed(channel string) {
	b.mu.Lock()
	waiting := b.confirm[channel]
	delete(b.confirm, channel)
	b.mu.Unlock()
	for _, c := range waiting {
		close(c)
	}
}

func (b *Bus) dropConfirm(channel string) {
	b.mu.Lock()
	delete(b.confirm, channel)
	b.mu.Unlock()
}

// Publish sends ev to topic's subscribers.
func (b *Bus) Publish(ctx context.Context, topic string, ev domain.SessionEvent) error {
	if err := b.publish(ctx, topic, encodeEvent(ev)).Err(); err != nil {
		return unavailable("bus publish", err)
	}
	return nil
}

// Subscribe opens a topic of this instance's own on its connection and
// delivers its events to fn until cancel. It returns once Redis confirmed
// the subscription, so what is published to the topic afterwards arrives.
// fn must not block (it runs on the dispatcher every subscription shares)
// and must not call cancel.
func (b *Bus) Subscribe(ctx context.Context, fn func(domain.SessionEvent)) (string, func(), error) {
	if err := b.waitReady(ctx, "bus subscribe"); err != nil {
		return "", nil, err
	}
	topic := b.evChan(b.seq.Add(1))
	sub := &subscription{fn: fn}
	confirmed := b.awaitConfirm(topic)[0]
	b.mu.Lock()
	ps := b.ps
	if ps != nil {
		b.subs[topic] = sub
	}
	b.mu.Unlock()
	if ps == nil {
		b.dropConfirm(topic)
		return "", nil, fmt.Errorf("bus subscribe: not serving: %w", domain.ErrUnavailable)
	}
	var err error
	if b.sharded {
		err = ps.SSubscribe(ctx, topic)
	} else {
		err = ps.Subscribe(ctx, topic)
	}
	if err == nil {
		select {
		case <-confirmed:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	var once sync.Once
	cancel := func() {
		once.Do(func() {
			sub.mu.Lock()
			sub.dead = true
			sub.mu.Unlock()
			b.mu.Lock()
			delete(b.subs, topic)
			b.mu.Unlock()
			b.dropConfirm(topic)
			uctx, stop := context.WithTimeout(context.Background(), 2*time.Second)
			defer stop()
			// Forgotten by go-redis even if Redis is away, so a reconnect
			// does not subscribe it again.
			if b.sharded {
				_ = ps.SUnsubscribe(uctx, topic)
			} else {
				_ = ps.Unsubscribe(uctx, topic)
			}
		})
	}
	if err != nil {
		cancel()
		return "", nil, unavailable("bus subscribe", err)
	}
	return topic, cancel, nil
}
