package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

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
// Every message is signed (HMAC-SHA256 with the shared bus secret, over
// the channel, a timestamp and the payload; see wire.go): a message that
// is unsigned, badly signed or outside BusOptions.Window is dropped before
// it is parsed, and counted in media_bus_rejected_total{reason}; so is a
// request whose id was already served within the window (a replay). A caller
// whose request is dropped times out as if the holder were silent.
//
// The wire format (envelopes, requests, replies, events, errors, the
// signed frame) is wire.go's.
type Bus struct {
	rdb     redis.UniversalClient
	sharded bool // SPUBLISH/SSUBSCRIBE: rdb is a cluster client
	prefix  string
	self    string
	log     *slog.Logger
	maxBusy int // request handlers at once
	maxWait int // requests queued for them
	sign    signer
	boot    string // self and a random nonce: request ids stay unique across restarts

	rejected  [rejectReasons]atomic.Uint64
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

// DefaultBusWindow is how far a bus message's timestamp may be from the
// receiver's clock by default.
const DefaultBusWindow = 30 * time.Second

// MinBusSecret is the shortest bus secret NewBus accepts, in bytes.
const MinBusSecret = 32

// BusOptions configure a Bus.
type BusOptions struct {
	// Prefix starts every channel; empty means "mediasvc:".
	Prefix string
	// Self is this instance's id.
	Self string
	// Secrets sign and verify messages: the first signs, every one is
	// accepted (to rotate, deploy [new, old] everywhere, then [new]).
	// At least one, each at least MinBusSecret bytes.
	Secrets [][]byte
	// Window is how far a message's timestamp may be from this instance's
	// clock, either way; 0 means DefaultBusWindow.
	Window time.Duration
	// Log receives the bus's warnings; nil means slog.Default().
	Log *slog.Logger
	// Meter records media_bus_rejected_total; nil records nothing.
	Meter metric.Meter

	now func() time.Time // tests
}

// NewBus returns the bus of instance opts.Self. Calls and subscriptions
// wait for Serve to start. It returns an error when a secret is missing or
// shorter than MinBusSecret, or the meter refuses the instrument.
func NewBus(rdb redis.UniversalClient, opts BusOptions) (*Bus, error) {
	if opts.Prefix == "" {
		opts.Prefix = "mediasvc:"
	}
	if len(opts.Secrets) == 0 {
		return nil, errors.New("new bus: no bus secret")
	}
	for i, s := range opts.Secrets {
		if len(s) < MinBusSecret {
			return nil, fmt.Errorf("new bus: secret %d is %d bytes, want at least %d", i, len(s), MinBusSecret)
		}
	}
	if opts.Window <= 0 {
		opts.Window = DefaultBusWindow
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	_, sharded := rdb.(*redis.ClusterClient)
	b := &Bus{rdb: rdb, sharded: sharded, prefix: opts.Prefix, self: opts.Self, log: opts.Log, maxBusy: 256, maxWait: 1024,
		sign:  signer{secrets: opts.Secrets, window: opts.Window, now: opts.now},
		boot:  opts.Self + ":" + strconv.FormatUint(rand.Uint64(), 36),
		ready: make(chan struct{}), pending: make(map[string]chan []byte), subs: make(map[string]*subscription),
		confirm: make(map[string][]chan struct{})}
	if opts.Meter != nil {
		c, err := opts.Meter.Int64ObservableCounter("media_bus_rejected",
			metric.WithDescription("Bus messages dropped on arrival by reason: unsigned, bad_signature (no accepted secret), stale (outside redis.bus_window), replay (a request id seen within the window)."))
		if err != nil {
			return nil, fmt.Errorf("new bus: %w", err)
		}
		attrs := [rejectReasons]metric.ObserveOption{}
		for i, name := range rejectNames {
			attrs[i] = metric.WithAttributes(attribute.String("reason", name))
		}
		if _, err := opts.Meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			for i := range b.rejected {
				o.ObserveInt64(c, int64(b.rejected[i].Load()), attrs[i])
			}
			return nil
		}, c); err != nil {
			return nil, fmt.Errorf("new bus: %w", err)
		}
	}
	return b, nil
}

// reject counts a dropped frame; the first of each reason is logged as a
// warning, later ones at debug level, so a flood does not flood the log.
func (b *Bus) reject(channel string, reason int) {
	lvl := slog.LevelDebug
	if b.rejected[reason].Add(1) == 1 {
		lvl = slog.LevelWarn
	}
	b.log.Log(context.Background(), lvl, "bus: message dropped", "channel", channel, "reason", rejectNames[reason])
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
	id := b.boot + ":" + strconv.FormatUint(b.seq.Add(1), 36)
	ch := make(chan []byte, 1)
	b.mu.Lock()
	b.pending[id] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
	}()
	to := b.reqChan(instance)
	msg := b.sign.seal(to, encodeEnvelope(envelope{ID: id, ReplyTo: b.repChan(b.self), Body: encodeRequest(req)}))
	n, err := b.publish(ctx, to, msg).Result()
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

	seen := replayCache{ids: make(map[string]int64), window: b.sign.window}
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
			b.route(ctx, m, req, rep, work, events, &seen)
		}
	}
}

// route hands one message on without waiting: a reply to its caller, a
// request to the handlers' queue, an event to the dispatcher.
func (b *Bus) route(ctx context.Context, m *redis.Message, req, rep string, work chan<- envelope, events chan<- event, seen *replayCache) {
	payload, reason := b.sign.open(m.Channel, []byte(m.Payload))
	if reason >= 0 {
		b.reject(m.Channel, reason)
		return
	}
	switch m.Channel {
	case rep, req:
		env, err := decodeEnvelope(payload)
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
		if !seen.first(env.ID, b.sign.now()) {
			b.reject(m.Channel, rejectReplay)
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
		case events <- event{sub: sub, payload: payload}:
		default:
			b.log.Warn("bus: event queue full; event dropped", "channel", m.Channel)
		}
	}
}

// replayCache remembers the ids of the requests served within the signing
// window, so a captured request replayed onto its channel while its
// timestamp is still fresh is not served twice. Owned by Serve's reader.
type replayCache struct {
	ids    map[string]int64 // id -> unix nanos it may be forgotten
	window time.Duration
	pruned int64
}

// first records id and reports whether it was new.
func (c *replayCache) first(id string, now time.Time) bool {
	n := now.UnixNano()
	if n-c.pruned > int64(c.window) {
		for k, until := range c.ids {
			if until < n {
				delete(c.ids, k)
			}
		}
		c.pruned = n
	}
	if until, ok := c.ids[id]; ok && until >= n {
		return false
	}
	// Twice the window: a frame is fresh up to window on either side.
	c.ids[id] = n + 2*int64(c.window)
	return true
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
	if err := b.publish(pctx, env.ReplyTo, b.sign.seal(env.ReplyTo, out)).Err(); err != nil {
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
	if err := b.publish(ctx, topic, b.sign.seal(topic, encodeEvent(ev))).Err(); err != nil {
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
