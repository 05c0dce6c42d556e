package httpapi

import (
	"context"
	"testing"

	"github.com/coder/websocket"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// readMetric sums the points of instrument name whose attributes include
// want (histograms: the count), and returns every attribute set seen.
func readMetric(t *testing.T, rd *sdkmetric.ManualReader, name string, want ...attribute.KeyValue) (float64, []attribute.Set) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var sum float64
	var sets []attribute.Set
	match := func(s attribute.Set) bool {
		sets = append(sets, s)
		for _, kv := range want {
			if v, ok := s.Value(kv.Key); !ok || v != kv.Value {
				return false
			}
		}
		return true
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						sum += float64(p.Value)
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						sum += float64(p.Count)
					}
				}
			}
		}
	}
	return sum, sets
}

func TestMetricsHTTPByRoutePattern(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	rec := &calls{}
	_, ts := start(t, Config{Meter: mp.Meter("mediasvc/httpapi")}, newFake(rec, "ip:127.0.0.1"))

	do(t, ts, req{method: "GET", path: "/api/v1/devices/dev1"})
	do(t, ts, req{method: "GET", path: "/api/v1/devices/nope"})
	do(t, ts, req{method: "GET", path: "/no/such/path"})

	kv := attribute.String
	if n, _ := readMetric(t, rd, "media_http_requests", kv("route", "/api/v1/devices/{id}"), kv("status_class", "2xx"), kv("method", "GET")); n != 1 {
		t.Fatalf("2xx requests = %v", n)
	}
	if n, _ := readMetric(t, rd, "media_http_requests", kv("route", "/api/v1/devices/{id}"), kv("status_class", "4xx")); n != 1 {
		t.Fatalf("4xx requests = %v", n)
	}
	if n, _ := readMetric(t, rd, "media_http_requests", kv("route", "unmatched")); n != 1 {
		t.Fatalf("unmatched requests = %v", n)
	}
	n, sets := readMetric(t, rd, "media_http_duration", kv("route", "/api/v1/devices/{id}"))
	if n != 2 {
		t.Fatalf("duration samples = %v", n)
	}
	for _, s := range sets {
		if r, _ := s.Value("route"); r.AsString() == "/api/v1/devices/dev1" || r.AsString() == "/no/such/path" {
			t.Fatalf("raw path as a label: %v", s)
		}
	}
}

func TestMetricsWebSocket(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	rec := &calls{}
	fake, _ := wsFake(rec)
	srv, ts := start(t, Config{StatsInterval: -1, Meter: mp.Meter("mediasvc/httpapi")}, fake)
	c := dial(t, ts, testToken, nil)
	kv := attribute.String

	waitFor(t, "connection counted", func() bool {
		n, _ := readMetric(t, rd, "media_websocket_connections")
		return n == 1
	})
	sendMsg(t, c, Message{Type: msgOffer, SDP: "v=0\r\noffer"})
	if m := readMsg(t, c); m.Type != msgAnswer {
		t.Fatalf("want answer, got %+v", m)
	}
	sendMsg(t, c, `{"type":"nonsense"}`)
	_ = readMsg(t, c) // the error
	if n, _ := readMetric(t, rd, "media_websocket_messages", kv("direction", "in"), kv("type", "offer")); n != 1 {
		t.Fatalf("offers in = %v", n)
	}
	if n, _ := readMetric(t, rd, "media_websocket_messages", kv("direction", "in"), kv("type", "invalid")); n != 1 {
		t.Fatalf("invalid in = %v", n)
	}
	if n, _ := readMetric(t, rd, "media_websocket_messages", kv("direction", "out"), kv("type", "answer")); n != 1 {
		t.Fatalf("answers out = %v", n)
	}
	// Every type the socket carries keeps its own label; control and
	// clipboard messages once counted as invalid.
	srv.recordMessage(dirOut, msgControl)
	srv.recordMessage(dirOut, msgClipboard)
	srv.recordMessage(dirIn, "dropped")
	for _, w := range []struct{ dir, typ string }{{"out", "control"}, {"out", "clipboard"}, {"in", "dropped"}} {
		if n, _ := readMetric(t, rd, "media_websocket_messages", kv("direction", w.dir), kv("type", w.typ)); n != 1 {
			t.Fatalf("%s %s = %v, want 1", w.dir, w.typ, n)
		}
	}
	if n, _ := readMetric(t, rd, "media_websocket_messages", kv("direction", "in"), kv("type", "invalid")); n != 1 {
		t.Fatalf("invalid in = %v after the direct calls", n)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "connection uncounted", func() bool {
		n, _ := readMetric(t, rd, "media_websocket_connections")
		return n == 0
	})
	// The middleware counts the request once the handler has returned,
	// after the handler's deferred uncount of the connection.
	waitFor(t, "websocket request counted as 1xx", func() bool {
		n, _ := readMetric(t, rd, "media_http_requests", kv("route", "/api/v1/sessions/{id}/ws"), kv("status_class", "1xx"))
		return n == 1
	})
	if n, _ := readMetric(t, rd, "media_http_requests", kv("route", "/api/v1/sessions/{id}/ws")); n != 1 {
		t.Fatalf("websocket requests = %v, want the one", n)
	}
}

func TestMetricsSendQueueDrop(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	srv := New(Config{WebSocket: WebSocketConfig{SendQueue: 1}, Meter: mp.Meter("mediasvc/httpapi")}, newFake(&calls{}, ""), nil)
	sock := newSocket(srv, testSession) // no writer: the queue fills at once
	sock.enqueue(Message{Type: msgState, State: "connected"})
	sock.enqueue(Message{Type: msgState, State: "connected"})
	if n, _ := readMetric(t, rd, "media_websocket_send_queue_drops"); n != 1 {
		t.Fatalf("drops = %v", n)
	}
}
