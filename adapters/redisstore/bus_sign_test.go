package redisstore

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"mediasvc/domain"
)

// serveCounting runs Serve on b with a handler that counts the requests it
// is handed, until the test ends, and waits until b listens.
func serveCounting(t *testing.T, b *Bus) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Serve(ctx, func(context.Context, domain.BusRequest) (domain.BusReply, error) {
			n.Add(1)
			return domain.BusReply{SDP: b.self}, nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-b.ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("bus %s never listened", b.self)
	}
	return &n
}

func busWith(t *testing.T, rdb redis.UniversalClient, prefix, id string, now func() time.Time, secrets ...string) *Bus {
	t.Helper()
	var keys [][]byte
	for _, s := range secrets {
		keys = append(keys, []byte(s))
	}
	b, err := NewBus(rdb, BusOptions{Prefix: prefix, Self: id, Secrets: keys, Log: quiet, now: now})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitRejected waits until b has dropped want messages for reason.
func waitRejected(t *testing.T, b *Bus, reason int, want uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.rejected[reason].Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s rejections = %d, want %d", rejectNames[reason], b.rejected[reason].Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := b.rejected[reason].Load(); got != want {
		t.Fatalf("%s rejections = %d, want %d", rejectNames[reason], got, want)
	}
}

var (
	secretOld = strings.Repeat("o", 32)
	secretNew = strings.Repeat("n", 40)
)

// Against a real redis-server: an instance drops what is unsigned, signed
// with a secret it does not accept, signed for another channel, signed too
// long ago or ahead, or a signed request replayed; none reaches its
// handler, each is counted by reason, and signed calls keep working.
func TestBusDropsUnsignedForgedStaleAndReplayed(t *testing.T) {
	rdb, _ := newClient(t)
	const prefix = "sig:"
	b := busWith(t, rdb, prefix, "b", nil, secretOld)
	served := serveCounting(t, b)
	a := busWith(t, rdb, prefix, "a", nil, secretOld)
	serveCounting(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 300*time.Millisecond) }

	// A signed call is served.
	rep, err := a.Call(ctx, "b", domain.BusRequest{Method: domain.BusPing})
	if err != nil || rep.SDP != "b" {
		t.Fatalf("signed call: %+v %v", rep, err)
	}
	if served.Load() != 1 {
		t.Fatalf("served %d", served.Load())
	}
	env := encodeEnvelope(envelope{ID: "x:1", ReplyTo: a.repChan("a"), Body: encodeRequest(domain.BusRequest{Method: domain.BusPing})})

	// Unsigned: the old wire format, and garbage.
	for _, raw := range []string{string(env), "v1.", "v1.123", "v1.notanumber.sig." + string(env), ""} {
		if err := rdb.Publish(ctx, b.reqChan("b"), raw).Err(); err != nil {
			t.Fatal(err)
		}
	}
	waitRejected(t, b, rejectUnsigned, 5)

	// Signed with a secret b does not accept: the caller times out.
	x := busWith(t, rdb, prefix, "x", nil, secretNew)
	serveCounting(t, x)
	cctx, ccancel := short()
	_, err = x.Call(cctx, "b", domain.BusRequest{Method: domain.BusPing})
	ccancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call with a foreign secret: %v, want a timeout", err)
	}
	waitRejected(t, b, rejectBadSignature, 1)

	// A good frame with its timestamp changed, one signed for a's channel
	// published on b's, and a truncated signature.
	good := string(a.sign.seal(b.reqChan("b"), env))
	parts := strings.SplitN(good, ".", 4)
	forged := parts[0] + "." + parts[1] + "1." + parts[2] + "." + parts[3]
	other := string(a.sign.seal(a.reqChan("a"), env))
	short64 := parts[0] + "." + parts[1] + "." + parts[2][:10] + "." + parts[3]
	for _, raw := range []string{forged, other, short64} {
		if err := rdb.Publish(ctx, b.reqChan("b"), raw).Err(); err != nil {
			t.Fatal(err)
		}
	}
	waitRejected(t, b, rejectBadSignature, 4)

	// Stale: signed by an instance whose clock is a minute behind, or ahead.
	for _, skew := range []time.Duration{-time.Minute, time.Minute} {
		old := busWith(t, rdb, prefix, "old"+skew.String(), func() time.Time { return time.Now().Add(skew) }, secretOld)
		serveCounting(t, old)
		cctx, ccancel := short()
		_, err = old.Call(cctx, "b", domain.BusRequest{Method: domain.BusPing})
		ccancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("stale call (%s): %v, want a timeout", skew, err)
		}
	}
	waitRejected(t, b, rejectStale, 2)

	// Replay: the same signed request twice is served once.
	before := served.Load()
	for range 2 {
		if err := rdb.Publish(ctx, b.reqChan("b"), good).Err(); err != nil {
			t.Fatal(err)
		}
	}
	waitRejected(t, b, rejectReplay, 1)
	if got := served.Load() - before; got != 1 {
		t.Fatalf("a replayed request was served %d times, want 1", got)
	}

	// Events: an unsigned one is dropped, a signed one delivered.
	got := make(chan domain.SessionEvent, 4)
	topic, stop, err := b.Subscribe(ctx, func(ev domain.SessionEvent) { got <- ev })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := rdb.Publish(ctx, topic, string(encodeEvent(domain.SessionEvent{Type: domain.EventBye, Reason: "forged"}))).Err(); err != nil {
		t.Fatal(err)
	}
	waitRejected(t, b, rejectUnsigned, 6)
	if err := a.Publish(ctx, topic, domain.SessionEvent{Type: domain.EventState, State: "signed"}); err != nil {
		t.Fatal(err)
	}
	if ev := <-got; ev.State != "signed" {
		t.Fatalf("first event delivered: %+v, want the signed one", ev)
	}

	// Nothing dropped reached the handler, and signed calls still work.
	if _, err := a.Call(ctx, "b", domain.BusRequest{Method: domain.BusPing}); err != nil {
		t.Fatal(err)
	}
	if got := served.Load(); got != before+2 {
		t.Fatalf("served %d, want %d", got, before+2)
	}
}

// Rotation: instances on [old, new] (step 1: everyone accepts new) and
// [new, old] (step 2: everyone signs with it) talk both ways, so a rolling
// restart between the steps loses nothing; one left on [old] alone cannot
// hear one that signs with new.
func TestBusSecretRotation(t *testing.T) {
	rdb, _ := newClient(t)
	const prefix = "rot:"
	a := busWith(t, rdb, prefix, "a", nil, secretNew, secretOld)
	b := busWith(t, rdb, prefix, "b", nil, secretOld, secretNew)
	c := busWith(t, rdb, prefix, "c", nil, secretOld)
	for _, x := range []*Bus{a, b, c} {
		serveCounting(t, x)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range [][2]*Bus{{a, b}, {b, a}, {b, c}} {
		if rep, err := p[0].Call(ctx, p[1].self, domain.BusRequest{Method: domain.BusPing}); err != nil || rep.SDP != p[1].self {
			t.Fatalf("%s → %s: %+v %v", p[0].self, p[1].self, rep, err)
		}
	}
	cctx, ccancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer ccancel()
	if _, err := a.Call(cctx, "c", domain.BusRequest{Method: domain.BusPing}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a (signs with new) → c (accepts old only): %v, want a timeout", err)
	}
	waitRejected(t, c, rejectBadSignature, 1)
}

func TestNewBusRefusesMissingOrShortSecrets(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	for _, secrets := range [][][]byte{nil, {}, {[]byte("short")}, {testSecret, []byte(strings.Repeat("s", MinBusSecret-1))}} {
		if _, err := NewBus(rdb, BusOptions{Self: "a", Secrets: secrets}); err == nil {
			t.Errorf("NewBus with secrets %q: no error", secrets)
		}
	}
}

// media_bus_rejected_total has every reason from the start, at 0.
func TestBusRejectedMetricStartsAtZero(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	b, err := NewBus(rdb, BusOptions{Self: "a", Secrets: [][]byte{testSecret}, Meter: mp.Meter("t")})
	if err != nil {
		t.Fatal(err)
	}
	b.rejected[rejectStale].Add(3)
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "media_bus_rejected" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				r, _ := dp.Attributes.Value(attribute.Key("reason"))
				seen[r.AsString()] = dp.Value
			}
		}
	}
	want := map[string]int64{"unsigned": 0, "bad_signature": 0, "stale": 3, "replay": 0}
	if len(seen) != len(want) {
		t.Fatalf("series %v, want %v", seen, want)
	}
	for k, v := range want {
		if seen[k] != v {
			t.Fatalf("series %v, want %v", seen, want)
		}
	}
}
