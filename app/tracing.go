package app

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"mediasvc/domain"
	"mediasvc/ports"
)

// Traces. The app records spans through the OpenTelemetry trace API, as it
// records metrics through the metric API: an API with a no-op
// implementation, like slog, not a technology, so there is no port for it.
// The SDK, the sampler and the OTLP exporter are wired in cmd; without
// them (Deps.Tracer nil) every span is a no-op.
//
// A session's setup is one span, session.setup, from its creation to the
// first video frame sent to the viewer (or its close, whichever comes
// first), with one child span per step:
//
//	session.create       the use case (routing, admission), parent of setup
//	└ session.setup      creation → first frame
//	  ├ session.offer        an offer → its answer (one per offer)
//	  ├ session.ice          the first answer → the peer connected
//	  └ session.first_frame  connected → the first video frame sent
//
// A call forwarded to another instance is a bus.call span (client) on the
// caller and a bus.serve span (server) on the instance that serves it,
// which is the parent of what it does there (a forwarded creation's
// session.setup included): the W3C trace context travels in the request
// (domain.BusRequest.TraceParent/TraceState).

// tracerName is the instrumentation scope of the app's spans.
const tracerName = "mediasvc/app"

// propagator carries the trace context across the bus, W3C Trace Context.
var propagator = propagation.TraceContext{}

// injectTrace puts ctx's span context into req.
func injectTrace(ctx context.Context, req *domain.BusRequest) {
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	req.TraceParent, req.TraceState = c["traceparent"], c["tracestate"]
}

// extractTrace returns ctx with the remote span context req carries.
func extractTrace(ctx context.Context, req domain.BusRequest) context.Context {
	if req.TraceParent == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier{"traceparent": req.TraceParent, "tracestate": req.TraceState})
}

// endSpan ends span with err's status.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// setupTrace is one session's setup spans; each is nil once ended (or
// before it starts).
type setupTrace struct {
	mu    sync.Mutex
	setup trace.Span // creation → first frame
	ice   trace.Span // first answer → connected
	frame trace.Span // connected → first frame
}

// startSetup starts the session's setup span under ctx's span; the
// session's log lines name its trace (trace_id) from then on. It runs
// before l is shared.
func (s *Service) startSetup(ctx context.Context, l *live) {
	_, span := s.tracer.Start(ctx, "session.setup", trace.WithAttributes(
		attribute.String("mediasvc.session.id", string(l.id)),
		attribute.String("mediasvc.device.id", string(l.device)),
		attribute.String("mediasvc.session.role", string(l.role)),
		attribute.String("mediasvc.session.kind", l.kind),
		attribute.String("mediasvc.instance", s.cfg.Instance),
	))
	l.trace.setup = span
	if sc := span.SpanContext(); sc.IsValid() {
		l.log = l.log.With("trace_id", sc.TraceID().String())
	}
}

// offerSpan starts the span of one offer, a child of the session's setup
// span (linked to the request's own span, when it has one); the setup
// span gets an event per offer.
func (s *Service) offerSpan(ctx context.Context, l *live) (context.Context, trace.Span) {
	l.trace.mu.Lock()
	setup := l.trace.setup
	l.trace.mu.Unlock()
	if setup == nil {
		return s.tracer.Start(ctx, "session.offer")
	}
	var opts []trace.SpanStartOption
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && sc.TraceID() != setup.SpanContext().TraceID() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	setup.AddEvent("offer")
	return s.tracer.Start(trace.ContextWithSpan(ctx, setup), "session.offer", opts...)
}

// answered marks the first answer sent: ICE starts.
func (s *Service) answered(l *live) {
	l.trace.mu.Lock()
	defer l.trace.mu.Unlock()
	if l.trace.setup == nil || l.trace.ice != nil || l.trace.frame != nil {
		return
	}
	l.trace.setup.AddEvent("answer")
	_, l.trace.ice = s.tracer.Start(trace.ContextWithSpan(context.Background(), l.trace.setup), "session.ice")
}

// traceState follows the peer's states: connected ends session.ice and
// starts session.first_frame; failed ends the setup as failed.
func (s *Service) traceState(l *live, st ports.PeerState) {
	l.trace.mu.Lock()
	defer l.trace.mu.Unlock()
	if l.trace.setup == nil {
		return
	}
	switch st {
	case ports.PeerConnected:
		if l.trace.ice == nil {
			return
		}
		l.trace.ice.End()
		l.trace.ice = nil
		l.trace.setup.AddEvent("ice connected")
		_, l.trace.frame = s.tracer.Start(trace.ContextWithSpan(context.Background(), l.trace.setup), "session.first_frame")
	case ports.PeerFailed:
		l.trace.endLocked("ice failed", true)
	}
}

// traceFirstFrame ends the setup: the viewer has its first frame.
func (s *Service) traceFirstFrame(l *live) {
	l.trace.mu.Lock()
	defer l.trace.mu.Unlock()
	if l.trace.setup == nil {
		return
	}
	if l.trace.frame != nil {
		l.trace.frame.End()
		l.trace.frame = nil
	}
	l.trace.setup.AddEvent("first frame")
	l.trace.setup.SetStatus(codes.Ok, "")
	l.trace.setup.End()
	l.trace.setup = nil
}

// traceClosed ends what is left of the setup when the session closes
// before its first frame.
func (s *Service) traceClosed(l *live, reason string) {
	l.trace.mu.Lock()
	defer l.trace.mu.Unlock()
	l.trace.endLocked(reason, reason == "ice_failed" || reason == "internal_error" || reason == "offer_failed")
}

// endLocked ends every open span of the setup, which did not reach its
// first frame because of why; l.trace.mu held.
func (t *setupTrace) endLocked(why string, failed bool) {
	for _, sp := range []*trace.Span{&t.ice, &t.frame, &t.setup} {
		if *sp == nil {
			continue
		}
		(*sp).SetAttributes(attribute.String("mediasvc.setup.ended_by", why))
		if failed {
			(*sp).SetStatus(codes.Error, why)
		}
		(*sp).End()
		*sp = nil
	}
}
