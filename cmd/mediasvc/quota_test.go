package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"mediasvc/adapters/memstore"
	"mediasvc/domain"
)

// gauges collects rd's int64 gauges as name{k=v,...} -> value.
func gauges(t *testing.T, rd *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			g, ok := m.Data.(metricdata.Gauge[int64])
			if !ok {
				continue
			}
			for _, p := range g.DataPoints {
				key := m.Name + "{"
				for i, kv := range p.Attributes.ToSlice() {
					if i > 0 {
						key += ","
					}
					key += string(kv.Key) + "=" + kv.Value.String()
				}
				out[key+"}"] = p.Value
			}
		}
	}
	return out
}

func TestQuotaMetrics(t *testing.T) {
	ctx := context.Background()
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer func() { _ = mp.Shutdown(ctx) }()
	st := memstore.New(memstore.Options{})
	q := domain.Quota{Total: 100, PerDevice: 10, PerOwner: 5}
	listed := func(context.Context) ([]domain.Device, error) { return []domain.Device{{ID: "d3"}}, nil }
	if err := registerQuotaMetrics(mp.Meter("test"), st, func() domain.Quota { return q }, listed, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, s := range []struct{ id, dev, owner string }{{"a", "d1", "alice"}, {"b", "d1", "alice"}, {"c", "d2", "bob"}} {
		if err := st.Create(ctx, domain.NewSession(domain.SessionID(s.id), domain.DeviceID(s.dev), domain.RoleViewer, s.owner, time.Minute, now), q); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	want := map[string]int64{
		"media_session_quota_used{scope=total}":               3,
		"media_session_quota_used{device_id=d1,scope=device}": 2,
		"media_session_quota_used{device_id=d2,scope=device}": 1,
		"media_session_quota_used{device_id=d3,scope=device}": 0,
		"media_session_quota_owners{}":                        2,
		"media_session_quota_owner_max{}":                     2,
		"media_session_quota_limit{scope=total}":              100,
		"media_session_quota_limit{scope=device}":             10,
		"media_session_quota_limit{scope=owner}":              5,
	}
	check := func(stage string) {
		t.Helper()
		got := gauges(t, rd)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %d, want %d (all: %v)", stage, k, got[k], v, got)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d series, want %d: %v", stage, len(got), len(want), got)
		}
	}
	check("3 sessions")
	for _, id := range []domain.SessionID{"a", "b", "c"} {
		if _, err := st.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// Back to 0, and the devices seen stay as series at 0.
	for _, k := range []string{
		"media_session_quota_used{scope=total}", "media_session_quota_used{device_id=d1,scope=device}",
		"media_session_quota_used{device_id=d2,scope=device}", "media_session_quota_owners{}", "media_session_quota_owner_max{}",
	} {
		want[k] = 0
	}
	check("all deleted")
}

// failingUsage is a store whose counters cannot be read.
type failingUsage struct{}

func (failingUsage) QuotaUsage(context.Context) (domain.QuotaUsage, error) {
	return domain.QuotaUsage{}, errors.New("redis down")
}

// A failed read still exports the limits and no stale usage.
func TestQuotaMetricsReadFails(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	if err := registerQuotaMetrics(mp.Meter("test"), failingUsage{}, func() domain.Quota { return domain.Quota{Total: 7} }, nil, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	got := gauges(t, rd)
	if got["media_session_quota_limit{scope=total}"] != 7 || len(got) != 3 {
		t.Fatalf("gauges after a failed read: %v", got)
	}
}
