package app_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"mediasvc/adapters/memstore"
	"mediasvc/app"
	"mediasvc/domain"
)

// tracing returns an in-memory span exporter and the Deps option that
// traces into it (every span sampled, exported as it ends).
func tracing(t *testing.T) (*tracetest.InMemoryExporter, func(*app.Deps)) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return exp, func(d *app.Deps) { d.Tracer = tp.Tracer("test") }
}

// spansByName indexes the ended spans by name (the last one of a name).
func spansByName(exp *tracetest.InMemoryExporter) map[string]tracetest.SpanStub {
	out := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		out[s.Name] = s
	}
	return out
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.AsString()
		}
	}
	return ""
}

func eventNames(s tracetest.SpanStub) []string {
	var out []string
	for _, e := range s.Events {
		out = append(out, e.Name)
	}
	return out
}

// TestSetupSpans: a session's setup is one trace — create, then setup with
// offer, ice and first_frame under it — ending at the first frame with
// status OK and an event per step.
func TestSetupSpans(t *testing.T) {
	exp, withTracing := tracing(t)
	r := newRigOn(t, app.Config{Instance: "a"}, memstore.New(memstore.Options{}), nil, withTracing)
	sess, _ := r.connect(t)
	r.mu.Lock()
	opts := r.opts[len(r.opts)-1]
	r.mu.Unlock()
	opts.OnFirstFrame()
	eventually(t, "the setup span ended", func() bool { _, ok := spansByName(exp)["session.setup"]; return ok })

	spans := spansByName(exp)
	create, setup := spans["session.create"], spans["session.setup"]
	for _, name := range []string{"session.create", "session.setup", "session.offer", "session.ice", "session.first_frame"} {
		s, ok := spans[name]
		if !ok {
			t.Fatalf("no %s span; got %v", name, exp.GetSpans().Snapshots())
		}
		if s.SpanContext.TraceID() != create.SpanContext.TraceID() {
			t.Errorf("%s is in trace %s, create in %s", name, s.SpanContext.TraceID(), create.SpanContext.TraceID())
		}
	}
	if setup.Parent.SpanID() != create.SpanContext.SpanID() {
		t.Errorf("session.setup's parent is %s, want session.create %s", setup.Parent.SpanID(), create.SpanContext.SpanID())
	}
	for _, name := range []string{"session.offer", "session.ice", "session.first_frame"} {
		if p := spans[name].Parent.SpanID(); p != setup.SpanContext.SpanID() {
			t.Errorf("%s's parent is %s, want session.setup", name, p)
		}
	}
	if got := attr(setup, "mediasvc.session.id"); got != string(sess.ID) {
		t.Errorf("setup's session id = %q, want %s", got, sess.ID)
	}
	if setup.Status.Code != codes.Ok {
		t.Errorf("setup status = %v, want Ok", setup.Status)
	}
	want := []string{"offer", "answer", "ice connected", "first frame"}
	if got := eventNames(setup); len(got) != len(want) || got[0] != want[0] || got[3] != want[3] {
		t.Errorf("setup events = %v, want %v", got, want)
	}
	// The steps follow each other: offer ends before ICE connects, which
	// is before the first frame.
	if spans["session.ice"].EndTime.After(spans["session.first_frame"].EndTime) || spans["session.offer"].StartTime.After(spans["session.ice"].StartTime) {
		t.Errorf("steps out of order: offer %v–%v, ice %v–%v, first frame %v–%v",
			spans["session.offer"].StartTime, spans["session.offer"].EndTime, spans["session.ice"].StartTime,
			spans["session.ice"].EndTime, spans["session.first_frame"].StartTime, spans["session.first_frame"].EndTime)
	}
}

// TestSetupSpanEndsOnEarlyClose: a session closed before its first frame
// ends its setup span saying why; a failed creation's span is an error.
func TestSetupSpanEndsOnEarlyClose(t *testing.T) {
	exp, withTracing := tracing(t)
	r := newRigOn(t, app.Config{Instance: "a"}, memstore.New(memstore.Options{}), nil, withTracing)
	ctx := context.Background()
	sess, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.svc.CloseSession(ctx, sess.ID, "deleted"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the setup span ended", func() bool { _, ok := spansByName(exp)["session.setup"]; return ok })
	if got := attr(spansByName(exp)["session.setup"], "mediasvc.setup.ended_by"); got != "deleted" {
		t.Errorf("setup ended_by = %q, want deleted", got)
	}
	exp.Reset()
	if _, _, err := r.svc.CreateSession(ctx, "nope", domain.RoleViewer, "o"); err == nil {
		t.Fatal("created a session for an unknown device")
	}
	if c := spansByName(exp)["session.create"]; c.Status.Code != codes.Error {
		t.Errorf("failed create span status = %v, want Error", c.Status)
	}
}

// TestForwardedCallContinuesTrace: a creation forwarded from b to the
// device's owner a is one trace across both (each with its own tracer, as
// two processes): b's bus.call is the remote parent of a's bus.serve,
// which is the parent of the session's setup on a.
func TestForwardedCallContinuesTrace(t *testing.T) {
	store := memstore.New(memstore.Options{})
	bus := newMemBus()
	withLeases := func(d *app.Deps) { d.Leases = fixedLeases{holder: "a"} }
	expA, traceA := tracing(t)
	expB, traceB := tracing(t)
	newRigOn(t, app.Config{Instance: "a"}, store, bus.on("a"), withLeases, traceA)
	b := newRigOn(t, app.Config{Instance: "b"}, store, bus.on("b"), withLeases, traceB)
	eventually(t, "both serving", func() bool { return bus.Serving("a") && bus.Serving("b") })

	sess, _, err := b.svc.CreateSession(context.Background(), "dev", domain.RoleViewer, "o")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "a served the call", func() bool { _, ok := spansByName(expA)["bus.serve create"]; return ok })
	onB, onA := spansByName(expB), spansByName(expA)
	call, serve := onB["bus.call create"], onA["bus.serve create"]
	if call.Name == "" {
		t.Fatalf("no bus.call span on b: %v", onB)
	}
	if serve.SpanContext.TraceID() != call.SpanContext.TraceID() || serve.Parent.SpanID() != call.SpanContext.SpanID() || !serve.Parent.IsRemote() {
		t.Fatalf("a's bus.serve (trace %s, parent %s remote %v) does not continue b's bus.call (trace %s, span %s)",
			serve.SpanContext.TraceID(), serve.Parent.SpanID(), serve.Parent.IsRemote(), call.SpanContext.TraceID(), call.SpanContext.SpanID())
	}
	if call.Parent.SpanID() != onB["session.create"].SpanContext.SpanID() {
		t.Error("b's bus.call is not under its session.create")
	}
	// The session's setup on a belongs to the same trace, under bus.serve.
	if _, ok := onA["session.setup"]; ok {
		t.Fatal("the setup span ended before the session did")
	}
	if err := b.svc.CloseSession(context.Background(), sess.ID, "deleted"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the setup span ended on a", func() bool { _, ok := spansByName(expA)["session.setup"]; return ok })
	setup := spansByName(expA)["session.setup"]
	if setup.SpanContext.TraceID() != call.SpanContext.TraceID() || setup.Parent.SpanID() != serve.SpanContext.SpanID() {
		t.Errorf("a's session.setup (trace %s, parent %s) is not under its bus.serve create", setup.SpanContext.TraceID(), setup.Parent.SpanID())
	}
	if got := attr(serve, "mediasvc.instance"); got != "a" {
		t.Errorf("bus.serve's instance = %q", got)
	}
}
