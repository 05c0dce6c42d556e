package telemetry

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// The OpenTelemetry SDK exports a synchronous instrument only once it has
// a measurement, so a counter nobody has added to yet is absent from
// /metrics and a dashboard or alert over it sees "no data". The meters the
// Provider hands out therefore remember every synchronous instrument made
// on them, and the exporter reads, besides the SDK's data, one series at 0
// without labels for each instrument that has had no measurement yet (a
// histogram with every bucket at 0). Its first measurement — an
// Add(ctx, 0, attrs) at start-up for a known label set counts — replaces
// that series with the real ones.

// zeroScope is the instrumentation scope of the placeholder series (not
// exported: the exporter runs WithoutScopeInfo).
var zeroScope = instrumentation.Scope{Name: "mediasvc/telemetry/zero"}

// defaultBounds are the SDK's default histogram boundaries, for a
// histogram made without explicit ones.
var defaultBounds = []float64{0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000}

// zeroKind is the kind of a remembered instrument.
type zeroKind int

const (
	zeroCounter zeroKind = iota
	zeroUpDown
	zeroGauge
	zeroHistogram
)

// declared is one synchronous instrument and whether it was used.
type declared struct {
	name, unit, desc string
	kind             zeroKind
	bounds           []float64
	used             atomic.Bool
}

func (d *declared) use() {
	if !d.used.Load() {
		d.used.Store(true)
	}
}

// zeroes remembers instruments and produces the placeholders of the
// unused ones; it is the exporter's extra metric.Producer.
type zeroes struct {
	start time.Time
	mu    sync.Mutex
	all   []*declared
}

func (z *zeroes) declare(name, unit, desc string, kind zeroKind, bounds []float64) *declared {
	d := &declared{name: name, unit: unit, desc: desc, kind: kind, bounds: bounds}
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, o := range z.all {
		// The same instrument made twice (two meters, one family) is one
		// placeholder; either's use ends it.
		if o.name == name && o.kind == kind {
			return o
		}
	}
	z.all = append(z.all, d)
	return d
}

// Produce returns a zero series for every declared instrument not used yet.
func (z *zeroes) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	z.mu.Lock()
	pending := slices.Clone(z.all)
	z.mu.Unlock()
	now := time.Now()
	var ms []metricdata.Metrics
	for _, d := range pending {
		if d.used.Load() {
			continue
		}
		m := metricdata.Metrics{Name: d.name, Description: d.desc, Unit: d.unit}
		switch d.kind {
		case zeroCounter, zeroUpDown:
			m.Data = metricdata.Sum[int64]{
				Temporality: metricdata.CumulativeTemporality, IsMonotonic: d.kind == zeroCounter,
				DataPoints: []metricdata.DataPoint[int64]{{StartTime: z.start, Time: now}},
			}
		case zeroGauge:
			m.Data = metricdata.Gauge[int64]{DataPoints: []metricdata.DataPoint[int64]{{StartTime: z.start, Time: now}}}
		case zeroHistogram:
			m.Data = metricdata.Histogram[float64]{
				Temporality: metricdata.CumulativeTemporality,
				DataPoints: []metricdata.HistogramDataPoint[float64]{{
					StartTime: z.start, Time: now, Bounds: d.bounds, BucketCounts: make([]uint64, len(d.bounds)+1),
				}},
			}
		}
		ms = append(ms, m)
	}
	if len(ms) == 0 {
		return nil, nil
	}
	return []metricdata.ScopeMetrics{{Scope: zeroScope, Metrics: ms}}, nil
}

// zeroMeter is a Meter whose synchronous instruments are declared to z.
// Observable instruments pass through: their callbacks report from the
// first scrape.
type zeroMeter struct {
	metric.Meter
	z *zeroes
}

func (m zeroMeter) Int64Counter(name string, opts ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	c, err := m.Meter.Int64Counter(name, opts...)
	if err != nil {
		return c, err
	}
	cfg := metric.NewInt64CounterConfig(opts...)
	return zeroInt64Counter{c, m.z.declare(name, cfg.Unit(), cfg.Description(), zeroCounter, nil)}, nil
}

func (m zeroMeter) Int64UpDownCounter(name string, opts ...metric.Int64UpDownCounterOption) (metric.Int64UpDownCounter, error) {
	c, err := m.Meter.Int64UpDownCounter(name, opts...)
	if err != nil {
		return c, err
	}
	cfg := metric.NewInt64UpDownCounterConfig(opts...)
	return zeroInt64UpDown{c, m.z.declare(name, cfg.Unit(), cfg.Description(), zeroUpDown, nil)}, nil
}

func (m zeroMeter) Int64Gauge(name string, opts ...metric.Int64GaugeOption) (metric.Int64Gauge, error) {
	g, err := m.Meter.Int64Gauge(name, opts...)
	if err != nil {
		return g, err
	}
	cfg := metric.NewInt64GaugeConfig(opts...)
	return zeroInt64Gauge{g, m.z.declare(name, cfg.Unit(), cfg.Description(), zeroGauge, nil)}, nil
}

func (m zeroMeter) Float64Histogram(name string, opts ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	h, err := m.Meter.Float64Histogram(name, opts...)
	if err != nil {
		return h, err
	}
	cfg := metric.NewFloat64HistogramConfig(opts...)
	bounds := cfg.ExplicitBucketBoundaries()
	if bounds == nil {
		bounds = defaultBounds
	}
	return zeroFloat64Histogram{h, m.z.declare(name, cfg.Unit(), cfg.Description(), zeroHistogram, bounds)}, nil
}

type zeroInt64Counter struct {
	metric.Int64Counter
	d *declared
}

func (c zeroInt64Counter) Add(ctx context.Context, v int64, opts ...metric.AddOption) {
	c.d.use()
	c.Int64Counter.Add(ctx, v, opts...)
}

type zeroInt64UpDown struct {
	metric.Int64UpDownCounter
	d *declared
}

func (c zeroInt64UpDown) Add(ctx context.Context, v int64, opts ...metric.AddOption) {
	c.d.use()
	c.Int64UpDownCounter.Add(ctx, v, opts...)
}

type zeroInt64Gauge struct {
	metric.Int64Gauge
	d *declared
}

func (g zeroInt64Gauge) Record(ctx context.Context, v int64, opts ...metric.RecordOption) {
	g.d.use()
	g.Int64Gauge.Record(ctx, v, opts...)
}

type zeroFloat64Histogram struct {
	metric.Float64Histogram
	d *declared
}

func (h zeroFloat64Histogram) Record(ctx context.Context, v float64, opts ...metric.RecordOption) {
	h.d.use()
	h.Float64Histogram.Record(ctx, v, opts...)
}
