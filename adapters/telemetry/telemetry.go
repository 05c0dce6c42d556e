// Package telemetry is mediasvc's metrics adapter: an OpenTelemetry
// MeterProvider whose readings are exported in the Prometheus text format
// at /metrics, Go runtime metrics from the OTel contrib runtime
// instrumentation, and the Grafana dashboard and Prometheus alert rules
// that ship with the service (Dashboard, AlertRules).
//
// Everything else records through the OTel metric API with a Meter taken
// from the Provider; no instrument carries a per-session label.
package telemetry

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"runtime"
	rtmetrics "runtime/metrics"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelruntime "go.opentelemetry.io/contrib/instrumentation/runtime"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Dashboard is the Grafana dashboard (JSON model, Prometheus data source
// chosen at import through the DS_PROMETHEUS input).
//
//go:embed grafana/mediasvc-dashboard.json
var Dashboard []byte

// AlertRules are the Prometheus alerting rules (a rule file).
//
//go:embed prometheus/mediasvc-alerts.yml
var AlertRules []byte

// Provider owns the MeterProvider and the Prometheus registry it is read
// through. Build it with New and Shutdown it when the process ends.
type Provider struct {
	z   *zeroes
	mp  *sdkmetric.MeterProvider
	reg *prometheus.Registry
	h   http.Handler
}

// New builds the provider: a Prometheus exporter on a private registry (so
// no client_golang default collectors mix in), the Go runtime
// instrumentation and the seed's media_memory_usage_bytes and
// media_goroutine_count gauges. It returns an error when the exporter or the
// runtime instrumentation cannot be registered; nothing is held then.
func New() (*Provider, error) {
	reg := prometheus.NewRegistry()
	z := &zeroes{start: time.Now()}
	exp, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		otelprom.WithProducer(z),
		otelprom.WithoutScopeInfo(),
		otelprom.WithoutTargetInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	p := &Provider{
		z:   z,
		mp:  mp,
		reg: reg,
		h:   promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}),
	}
	if err := otelruntime.Start(otelruntime.WithMeterProvider(mp), otelruntime.WithMinimumReadMemStatsInterval(5*time.Second)); err != nil {
		_ = mp.Shutdown(context.Background())
		return nil, fmt.Errorf("telemetry: runtime instrumentation: %w", err)
	}
	if err := registerProcessGauges(mp.Meter("mediasvc/telemetry")); err != nil {
		_ = mp.Shutdown(context.Background())
		return nil, fmt.Errorf("telemetry: process gauges: %w", err)
	}
	return p, nil
}

// registerProcessGauges keeps the seed's two process metrics, read from
// runtime/metrics at scrape time (no poller).
func registerProcessGauges(m metric.Meter) error {
	mem, err := m.Int64ObservableGauge("media_memory_usage",
		metric.WithUnit("By"),
		metric.WithDescription("Memory mapped by the Go runtime (runtime/metrics /memory/classes/total:bytes)."))
	if err != nil {
		return err
	}
	gor, err := m.Int64ObservableGauge("media_goroutine_count",
		metric.WithDescription("Live goroutines."))
	if err != nil {
		return err
	}
	sample := []rtmetrics.Sample{{Name: "/memory/classes/total:bytes"}}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := []rtmetrics.Sample{sample[0]}
		rtmetrics.Read(s)
		if s[0].Value.Kind() == rtmetrics.KindUint64 {
			o.ObserveInt64(mem, int64(s[0].Value.Uint64()))
		}
		o.ObserveInt64(gor, int64(runtime.NumGoroutine()))
		return nil
	}, mem, gor)
	return err
}

// Meter returns a meter named for the instrumenting package
// (mediasvc/app, mediasvc/rtc, …). Every synchronous instrument made on
// it is exported from the start: until its first measurement as one
// series at 0 without labels (zero.go). An instrument with labels from a
// known set should add 0 for each at start-up instead, so each label
// value is there from the start.
func (p *Provider) Meter(name string) metric.Meter { return zeroMeter{Meter: p.mp.Meter(name), z: p.z} }

// MeterProvider returns the underlying provider.
func (p *Provider) MeterProvider() metric.MeterProvider { return p.mp }

// Handler serves the Prometheus text exposition of every instrument.
func (p *Provider) Handler() http.Handler { return p.h }

// Shutdown stops the provider; instruments record nothing afterwards.
func (p *Provider) Shutdown(ctx context.Context) error {
	if err := p.mp.Shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: shutdown: %w", err)
	}
	return nil
}
