package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// TestLogsCarryTraceID: a line logged with a context that carries a span
// names its trace and span; without one it names none; a logger that
// already names a trace_id (a session's) does not get a second one.
func TestLogsCarryTraceID(t *testing.T) {
	var buf bytes.Buffer
	log := newLogSwitch(LogConfig{Level: "info", Format: "text"}, &buf).logger()
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))

	log.InfoContext(ctx, "with span")
	log.InfoContext(context.Background(), "without")
	log.With("trace_id", "session-trace").With("k", 1).InfoContext(ctx, "session")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "trace_id=0af7651916cd43dd8448eb211c80319c") || !strings.Contains(lines[0], "span_id=b7ad6b7169203331") {
		t.Errorf("line with a span = %s", lines[0])
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Errorf("line without a span = %s", lines[1])
	}
	if strings.Count(lines[2], "trace_id=") != 1 || !strings.Contains(lines[2], "trace_id=session-trace") {
		t.Errorf("session line = %s", lines[2])
	}
}

// TestNewTracer: no endpoint, no tracer (spans are no-ops) and nothing to
// stop; an endpoint without a path gets OTLP's /v1/traces; a bad one is
// refused.
func TestNewTracer(t *testing.T) {
	tr, stop, err := newTracer(TracingConfig{SampleRatio: 1}, "i", slog.New(slog.DiscardHandler))
	if err != nil || tr != nil || stop(context.Background()) != nil {
		t.Fatalf("off: tracer %v, err %v", tr, err)
	}
	for in, want := range map[string]string{
		"http://127.0.0.1:4318":             "http://127.0.0.1:4318/v1/traces",
		"https://otel.example.com/":         "https://otel.example.com/v1/traces",
		"http://collector:4318/custom/path": "http://collector:4318/custom/path",
	} {
		if got, err := otlpURL(in); err != nil || got != want {
			t.Errorf("otlpURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"127.0.0.1:4318", "grpc://x:4317", "http://"} {
		if _, err := otlpURL(bad); err == nil {
			t.Errorf("otlpURL(%q) accepted", bad)
		}
	}
	tr, stop, err = newTracer(TracingConfig{OTLPEndpoint: "http://127.0.0.1:1", SampleRatio: 0.5}, "i", slog.New(slog.DiscardHandler))
	if err != nil || tr == nil {
		t.Fatalf("on: tracer %v, err %v", tr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = stop(ctx) // nothing was recorded: nothing to send to the closed port
}
