package httpapi

import (
	"context"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// instruments are the adapter's metrics. Labels come from small sets only:
// the chi route pattern (never the raw path), the method, the status class,
// the WebSocket message type and direction.
type instruments struct {
	requests   metric.Int64Counter
	duration   metric.Float64Histogram
	wsConns    metric.Int64UpDownCounter
	wsMessages metric.Int64Counter
	wsDrops    metric.Int64Counter
	panics     metric.Int64Counter
}

// PanicsMetric is the counter every recovery site of the service adds to,
// labelled by where: this package's sites are panicSites; the app layer
// counts its own under the same name and description.
const (
	PanicsMetric      = "media_panics"
	PanicsDescription = "Panics recovered, by where they happened. Any is a bug: the alert MediaPanic pages on it."
)

// Where the adapter recovers panics: a handler, the handling of a
// WebSocket message, a socket's writer and ticker goroutines.
const (
	panicHTTP      = "http_handler"
	panicWSMessage = "websocket_message"
	panicWSWriter  = "websocket_writer"
	panicWSTicker  = "websocket_ticker"
)

var panicSites = []string{panicHTTP, panicWSMessage, panicWSWriter, panicWSTicker}

func newInstruments(m metric.Meter) instruments {
	noopM := noop.NewMeterProvider().Meter("mediasvc/httpapi")
	if m == nil {
		m = noopM
	}
	var in instruments
	var err error
	if in.requests, err = m.Int64Counter("media_http_requests",
		metric.WithDescription("HTTP requests by route pattern, method and status class (WebSockets count when they end, as 1xx).")); err != nil {
		in.requests, _ = noopM.Int64Counter("media_http_requests")
	}
	if in.duration, err = m.Float64Histogram("media_http_duration", metric.WithUnit("s"),
		metric.WithDescription("HTTP request latency by route pattern and method (WebSocket upgrades excluded)."),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)); err != nil {
		in.duration, _ = noopM.Float64Histogram("media_http_duration")
	}
	if in.wsConns, err = m.Int64UpDownCounter("media_websocket_connections",
		metric.WithDescription("Open session WebSockets.")); err != nil {
		in.wsConns, _ = noopM.Int64UpDownCounter("media_websocket_connections")
	}
	if in.wsMessages, err = m.Int64Counter("media_websocket_messages",
		metric.WithDescription("Session WebSocket messages by direction (in, out) and type.")); err != nil {
		in.wsMessages, _ = noopM.Int64Counter("media_websocket_messages")
	}
	if in.wsDrops, err = m.Int64Counter("media_websocket_send_queue_drops",
		metric.WithDescription("Sockets closed because their send queue was full (a client too slow to read).")); err != nil {
		in.wsDrops, _ = noopM.Int64Counter("media_websocket_send_queue_drops")
	}
	if in.panics, err = m.Int64Counter(PanicsMetric, metric.WithDescription(PanicsDescription)); err != nil {
		in.panics, _ = noopM.Int64Counter(PanicsMetric)
	}
	// Every site is exported from the start, at 0, so an alert on an
	// increase sees the first panic.
	for _, where := range panicSites {
		in.panics.Add(context.Background(), 0, metric.WithAttributes(attribute.String("where", where)))
	}
	in.wsConns.Add(context.Background(), 0)
	in.wsDrops.Add(context.Background(), 0)
	return in
}

// recordPanic counts a recovered panic at where, one of panicSites.
func (s *Server) recordPanic(where string) {
	s.m.panics.Add(context.Background(), 1, metric.WithAttributes(attribute.String("where", where)))
}

// statusClass is "2xx", "4xx", … for a status code.
func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code/100) + "xx"
}

func (s *Server) recordRequest(ctx context.Context, route, method string, status int, dur time.Duration) {
	s.m.requests.Add(ctx, 1, metric.WithAttributes(
		attribute.String("route", route), attribute.String("method", methodLabel(method)),
		attribute.String("status_class", statusClass(status))))
	if status != 101 {
		s.m.duration.Record(ctx, dur.Seconds(), metric.WithAttributes(
			attribute.String("route", route), attribute.String("method", methodLabel(method))))
	}
}

// methodLabel keeps the method label to the standard methods.
func methodLabel(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return m
	}
	return "other"
}

// wsTypes are the message types kept as a label; anything else a client
// sends counts as "invalid". "dropped" counts a message read but refused
// because too many others wait for the handler.
var wsTypes = []string{
	msgOffer, msgAnswer, msgCandidate, msgBye, msgInput, msgKeyframe, msgStats, msgState, msgError,
	msgClipboard, msgControl, msgTiles, msgVisible, "invalid", "dropped",
}

var (
	dirIn  = attribute.String("direction", "in")
	dirOut = attribute.String("direction", "out")
)

// wsMessageOpts holds the counter's attribute set for each direction and
// type, made once: a set built per message was a fifth of the control
// path's allocations (an input answered by an error counts twice).
var wsMessageOpts = func() map[attribute.KeyValue]map[string]metric.AddOption {
	out := map[attribute.KeyValue]map[string]metric.AddOption{}
	for _, dir := range []attribute.KeyValue{dirIn, dirOut} {
		out[dir] = make(map[string]metric.AddOption, len(wsTypes))
		for _, t := range wsTypes {
			out[dir][t] = metric.WithAttributeSet(attribute.NewSet(dir, attribute.String("type", t)))
		}
	}
	return out
}()

func (s *Server) recordMessage(dir attribute.KeyValue, typ string) {
	opts := wsMessageOpts[dir]
	opt, ok := opts[typ]
	if !ok {
		opt = opts["invalid"]
	}
	s.m.wsMessages.Add(context.Background(), 1, opt)
}
