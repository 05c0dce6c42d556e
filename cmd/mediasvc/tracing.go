package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TracingConfig is the export of the service's spans (session setups,
// forwarded calls) over OTLP.
type TracingConfig struct {
	// OTLPEndpoint is the OTLP/HTTP receiver's URL (a path of "" or "/"
	// means the standard /v1/traces); empty turns tracing off.
	OTLPEndpoint string `koanf:"otlp_endpoint"`
	// SampleRatio is the share of new traces recorded (0–1); a call that
	// arrives with a sampled parent is always recorded.
	SampleRatio float64 `koanf:"sample_ratio"`
}

// otlpURL is the endpoint with the standard traces path when it names
// none.
func otlpURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an http:// or https:// URL", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// newTracer returns the tracer the app records on and the function that
// flushes and stops the export. With tracing off (no endpoint) it returns
// a nil tracer — the app's spans are no-ops — and nothing is started.
//
// The exporter is OTLP over HTTP (protobuf, otlptracehttp) rather than
// gRPC: one plain HTTP POST per batch, through any HTTP proxy or load
// balancer, no long-lived HTTP/2 connection to manage; every OTLP
// collector (and Jaeger, Tempo) takes both on :4318 and :4317. The
// exporter's OTEL_EXPORTER_OTLP_* environment (headers, timeout,
// certificate) applies too.
func newTracer(cfg TracingConfig, instance string, log *slog.Logger) (trace.Tracer, func(context.Context) error, error) {
	if cfg.OTLPEndpoint == "" {
		return nil, func(context.Context) error { return nil }, nil
	}
	endpoint, err := otlpURL(cfg.OTLPEndpoint)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing.otlp_endpoint: %w", err)
	}
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	// Export failures (a receiver down) are logged, not fatal.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing: export failed", "err", err) }))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(2*time.Second)),
		sdktrace.WithResource(resource.NewSchemaless(
			attribute.String("service.name", "mediasvc"),
			attribute.String("service.instance.id", instance),
		)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	log.Info("tracing on", "otlp_endpoint", strings.TrimSpace(endpoint), "sample_ratio", cfg.SampleRatio)
	return tp.Tracer("mediasvc/app"), tp.Shutdown, nil
}
