//go:build e2e

package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"mediasvc/e2e/client"
)

// No OpenTelemetry Collector or Jaeger is packaged for Debian here, so the
// receiver is this minimal OTLP/HTTP endpoint: it decodes each export with
// the official OTLP protobuf definitions (go.opentelemetry.io/proto/otlp),
// as a collector's otlp receiver does, and keeps the spans.

// gotSpan is one span the receiver got.
type gotSpan struct {
	name, trace, span, parent, instance string
	kind                                int32
	attrs                               map[string]string
}

type otlpReceiver struct {
	URL string // base URL; the service posts to /v1/traces
	mu  sync.Mutex
	got []gotSpan
	bad []string
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{URL: "http://" + ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(io.LimitReader(req.Body, 16<<20))
		var ex coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &ex)
		}
		if err != nil || req.Header.Get("Content-Type") != "application/x-protobuf" {
			r.mu.Lock()
			r.bad = append(r.bad, fmt.Sprintf("%s %v", req.Header.Get("Content-Type"), err))
			r.mu.Unlock()
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range ex.GetResourceSpans() {
			instance, service := "", ""
			for _, kv := range rs.GetResource().GetAttributes() {
				switch kv.GetKey() {
				case "service.instance.id":
					instance = kv.GetValue().GetStringValue()
				case "service.name":
					service = kv.GetValue().GetStringValue()
				}
			}
			if service != "mediasvc" {
				r.bad = append(r.bad, "service.name "+service)
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					g := gotSpan{name: s.GetName(), trace: hex.EncodeToString(s.GetTraceId()), span: hex.EncodeToString(s.GetSpanId()),
						parent: hex.EncodeToString(s.GetParentSpanId()), instance: instance, kind: int32(s.GetKind()), attrs: map[string]string{}}
					for _, kv := range s.GetAttributes() {
						g.attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
					}
					r.got = append(r.got, g)
				}
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return r
}

func (r *otlpReceiver) spans() []gotSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		panic(fmt.Sprintf("bad exports: %v", r.bad))
	}
	return append([]gotSpan(nil), r.got...)
}

// find returns the spans matching ok.
func (r *otlpReceiver) find(ok func(gotSpan) bool) []gotSpan {
	var out []gotSpan
	for _, s := range r.spans() {
		if ok(s) {
			out = append(out, s)
		}
	}
	return out
}

// waitSpan waits for one span matching ok and returns it.
func (r *otlpReceiver) waitSpan(t *testing.T, what string, ok func(gotSpan) bool) gotSpan {
	t.Helper()
	var got []gotSpan
	within(t, 10*time.Second, what, func() bool { got = r.find(ok); return len(got) > 0 })
	return got[0]
}

func tracingConfig(c Config, endpoint string, ratio float64) Config {
	return c.set("tracing", "otlp_endpoint", endpoint).set("tracing", "sample_ratio", ratio)
}

// TestTracesReachOTLPReceiver: two instances over a real Redis export to
// an OTLP/HTTP receiver. A WebSocket session and a WHEP session asked of
// a, for the device b holds, are each one trace across both processes:
// a's session.create and bus.call, b's bus.serve under that call (the
// trace context crossed the Redis bus), b's session.setup under it with
// its offer, ice and first_frame steps; b's log lines for the session
// carry the trace_id.
func TestTracesReachOTLPReceiver(t *testing.T) {
	env := singleRedis(t)
	recv := startOTLPReceiver(t)
	cfg := func(id string) Config {
		return tracingConfig(redisConfig(env, id).set("demo", "owner", "b"), recv.URL, 1)
	}
	b := startInstance(t, cfg("b"))
	a := startInstance(t, cfg("a"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// b takes the device's lease on its own after it starts; until then a,
	// which does not claim the demo, would serve it itself.
	if h := leaseHolder(t, env.rdb, "demo"); h != "b" {
		t.Fatalf("demo lease held by %q, want b", h)
	}

	for _, mode := range []client.Mode{client.ModeWS, client.ModeWHEP} {
		v, err := client.Dial(ctx, client.Config{BaseURL: a.Base, Mode: mode})
		if err != nil {
			t.Fatalf("%s on a: %v", mode, err)
		}
		t.Cleanup(func() { _ = v.Close() })
		if err := v.WaitFrames(ctx, 30, false); err != nil {
			t.Fatal(err)
		}
		sid := v.Session().SessionID
		if mode == client.ModeWHEP {
			loc := v.WHEP().Location
			sid = loc[strings.LastIndexByte(loc, '/')+1:]
		}
		setup := recv.waitSpan(t, string(mode)+" session.setup on b", func(s gotSpan) bool {
			return s.name == "session.setup" && s.attrs["mediasvc.session.id"] == sid
		})
		if setup.instance != "b" {
			t.Errorf("%s: session.setup exported by %q, want b (the device's holder)", mode, setup.instance)
		}
		inTrace := func(name string) gotSpan {
			return recv.waitSpan(t, fmt.Sprintf("%s %s in trace %s", mode, name, setup.trace), func(s gotSpan) bool {
				return s.name == name && s.trace == setup.trace
			})
		}
		for _, step := range []string{"session.offer", "session.ice", "session.first_frame"} {
			if s := inTrace(step); s.parent != setup.span || s.instance != "b" {
				t.Errorf("%s: %s on %s under %s, want on b under session.setup %s", mode, step, s.instance, s.parent, setup.span)
			}
		}
		serve := inTrace("bus.serve " + map[client.Mode]string{client.ModeWS: "create", client.ModeWHEP: "whep"}[mode])
		call := inTrace("bus.call " + strings.TrimPrefix(serve.name, "bus.serve "))
		create := inTrace("session.create")
		if serve.instance != "b" || call.instance != "a" || create.instance != "a" {
			t.Errorf("%s: bus.serve on %s, bus.call on %s, session.create on %s; want b, a, a", mode, serve.instance, call.instance, create.instance)
		}
		if setup.parent != serve.span || serve.parent != call.span || call.parent != create.span {
			t.Errorf("%s: the chain create → bus.call → bus.serve → setup is broken: %+v %+v %+v %+v", mode, create, call, serve, setup)
		}
		if serve.kind != 2 || call.kind != 3 { // SPAN_KIND_SERVER, SPAN_KIND_CLIENT
			t.Errorf("%s: kinds serve %d call %d, want server and client", mode, serve.kind, call.kind)
		}
		line := ""
		for _, l := range strings.Split(b.Log(), "\n") {
			if strings.Contains(l, `msg="session created"`) && strings.Contains(l, "session_id="+sid) {
				line = l
			}
		}
		if !strings.Contains(line, "trace_id="+setup.trace) {
			t.Errorf("%s: b's log line for the session does not carry trace_id=%s: %q", mode, setup.trace, line)
		}
		t.Logf("%s: one trace %s across a and b, %d spans", mode, setup.trace, len(recv.find(func(s gotSpan) bool { return s.trace == setup.trace })))
	}
}

// TestTracesSampledAndOff: sample_ratio 0 records no new trace, and with
// no endpoint (the default) nothing is exported: a session comes and goes
// and the receiver gets nothing.
func TestTracesSampledAndOff(t *testing.T) {
	recv := startOTLPReceiver(t)
	in := startInstance(t, tracingConfig(defaultConfig(), recv.URL, 0))
	off := startInstance(t, defaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, inst := range []*Instance{in, off} {
		v, err := client.Dial(ctx, client.Config{BaseURL: inst.Base, Mode: client.ModeWS})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.WaitFrames(ctx, 30, false); err != nil {
			t.Fatal(err)
		}
		_ = v.Close()
	}
	if err := in.Stop(); err != nil { // flushes the exporter
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if got := recv.spans(); len(got) != 0 {
		t.Fatalf("sample_ratio 0 exported %d spans: %+v", len(got), got[0])
	}
	if strings.Contains(off.Log(), "tracing on") || strings.Contains(off.Log(), "trace_id=") {
		t.Fatal("tracing is on by default")
	}
}
