package main

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
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

func (h *switchHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.current().Handle(ctx, r)
}

func (h *switchHandler) with(op func(slog.Handler) slog.Handler) slog.Handler {
	ops := make([]func(slog.Handler) slog.Handler, len(h.ops), len(h.ops)+1)
	copy(ops, h.ops)
	return &switchHandler{sw: h.sw, ops: append(ops, op)}
}

func (h *switchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	return h.with(func(b slog.Handler) slog.Handler { return b.WithAttrs(as) })
}

func (h *switchHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(func(b slog.Handler) slog.Handler { return b.WithGroup(name) })
}
