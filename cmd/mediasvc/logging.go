package main

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"
)

// logSwitch is the service's logging, reloadable: the level is a shared
// slog.LevelVar, and the format (text or JSON) a handler swapped under
// every logger already derived with With, so a reload reaches the loggers
// the adapters hold.
type logSwitch struct {
	w     io.Writer
	level slog.LevelVar
	base  atomic.Pointer[baseHandler]
}

// baseHandler is one format's handler; gen tells derived handlers that
// their cached chain is stale.
type baseHandler struct {
	h   slog.Handler
	gen uint64
}

func newLogSwitch(cfg LogConfig, w io.Writer) *logSwitch {
	s := &logSwitch{w: w}
	s.set(cfg)
	return s
}

// set applies cfg's level and format.
func (s *logSwitch) set(cfg LogConfig) {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	s.level.Set(level)
	opts := &slog.HandlerOptions{Level: &s.level}
	var h slog.Handler = slog.NewTextHandler(s.w, opts)
	if cfg.Format == "json" {
		h = slog.NewJSONHandler(s.w, opts)
	}
	var gen uint64
	if old := s.base.Load(); old != nil {
		gen = old.gen + 1
	}
	s.base.Store(&baseHandler{h: h, gen: gen})
}

// logger returns the root logger.
func (s *logSwitch) logger() *slog.Logger { return slog.New(&switchHandler{sw: s}) }

// switchHandler applies its With chain to the current base handler,
// caching the result per base generation.
type switchHandler struct {
	sw    *logSwitch
	ops   []func(slog.Handler) slog.Handler
	cache atomic.Pointer[baseHandler]
	// traced: the chain already names a trace_id (a session's logger),
	// so the span in a record's context is not added again.
	traced bool
}

func (h *switchHandler) current() slog.Handler {
	base := h.sw.base.Load()
	if c := h.cache.Load(); c != nil && c.gen == base.gen {
		return c.h
	}
	out := base.h
	for _, op := range h.ops {
		out = op(out)
	}
	h.cache.Store(&baseHandler{h: out, gen: base.gen})
	return out
}

func (h *switchHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.sw.level.Level() }

// Handle adds trace_id and span_id when ctx carries a span (one a tracer
// recorded or one that came from another instance), then logs.
func (h *switchHandler) Handle(ctx context.Context, r slog.Record) error {
	if !h.traced && ctx != nil {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			r = r.Clone()
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		}
	}
	return h.current().Handle(ctx, r)
}

func (h *switchHandler) with(op func(slog.Handler) slog.Handler) slog.Handler {
	ops := make([]func(slog.Handler) slog.Handler, len(h.ops), len(h.ops)+1)
	copy(ops, h.ops)
	return &switchHandler{sw: h.sw, ops: append(ops, op), traced: h.traced}
}

func (h *switchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	n := h.with(func(b slog.Handler) slog.Handler { return b.WithAttrs(as) }).(*switchHandler)
	for _, a := range as {
		n.traced = n.traced || a.Key == "trace_id"
	}
	return n
}

func (h *switchHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(func(b slog.Handler) slog.Handler { return b.WithGroup(name) })
}
