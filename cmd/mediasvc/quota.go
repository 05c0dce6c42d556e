package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"mediasvc/domain"
)

// quotaReporter is a session store that reports its quota counters; both
// memstore and redisstore do.
type quotaReporter interface {
	QuotaUsage(ctx context.Context) (domain.QuotaUsage, error)
}

// registerQuotaMetrics exports the session quota's counters at every
// scrape, so an operator sees how close each device is to its limit and a
// leak shows as a counter that never returns to 0:
//
//	media_session_quota_used{scope="total"}                 sessions counted
//	media_session_quota_used{scope="device",device_id=...}  per device: every device listed or seen since start, 0 when empty
//	media_session_quota_owners                              owners holding a session
//	media_session_quota_owner_max                           most sessions one owner holds
//	media_session_quota_limit{scope="total|device|owner"}   the configured limits, 0 = unlimited
//
// Owners are never a label: they are API keys or client addresses, an
// unbounded set. With Redis the counters are those every instance shares.
// quota returns the limits in force (a reload changes them).
// A scrape whose read fails reports the limits only, and logs why.
// devices, if not nil, lists the devices to export even before their first
// session.
func registerQuotaMetrics(m metric.Meter, store quotaReporter, quota func() domain.Quota, devices func(context.Context) ([]domain.Device, error), log *slog.Logger) error {
	if m == nil {
		return nil
	}
	used, err := m.Int64ObservableGauge("media_session_quota_used",
		metric.WithDescription("Sessions the quota counts, in total (scope=total) and per device (scope=device); every known device is exported, at 0 when it has none."))
	if err != nil {
		return fmt.Errorf("quota metrics: %w", err)
	}
	owners, err := m.Int64ObservableGauge("media_session_quota_owners",
		metric.WithDescription("Owners (API keys or client addresses) holding at least one session."))
	if err != nil {
		return fmt.Errorf("quota metrics: %w", err)
	}
	ownerMax, err := m.Int64ObservableGauge("media_session_quota_owner_max",
		metric.WithDescription("Most sessions held by one owner, to compare with the per-owner limit."))
	if err != nil {
		return fmt.Errorf("quota metrics: %w", err)
	}
	limit, err := m.Int64ObservableGauge("media_session_quota_limit",
		metric.WithDescription("Configured session limits by scope (total, device, owner); 0 is unlimited."))
	if err != nil {
		return fmt.Errorf("quota metrics: %w", err)
	}
	var (
		mu   sync.Mutex
		seen = map[domain.DeviceID]bool{}
	)
	total, device := attribute.String("scope", "total"), attribute.String("scope", "device")
	_, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		q := quota()
		o.ObserveInt64(limit, int64(q.Total), metric.WithAttributes(total))
		o.ObserveInt64(limit, int64(q.PerDevice), metric.WithAttributes(device))
		o.ObserveInt64(limit, int64(q.PerOwner), metric.WithAttributes(attribute.String("scope", "owner")))
		u, err := store.QuotaUsage(ctx)
		if err != nil {
			log.Warn("quota metrics: read the counters", "err", err)
			return nil
		}
		o.ObserveInt64(used, int64(u.Total), metric.WithAttributes(total))
		var listed []domain.Device
		if devices != nil {
			listed, _ = devices(ctx) // a listing that fails leaves the devices seen so far
		}
		mu.Lock()
		for d := range u.ByDevice {
			seen[d] = true
		}
		for _, d := range listed {
			seen[d.ID] = true
		}
		devs := slices.Sorted(func(yield func(domain.DeviceID) bool) {
			for d := range seen {
				if !yield(d) {
					return
				}
			}
		})
		mu.Unlock()
		for _, d := range devs {
			o.ObserveInt64(used, int64(u.ByDevice[d]), metric.WithAttributes(device, attribute.String("device_id", string(d))))
		}
		most := 0
		for _, n := range u.ByOwner {
			most = max(most, n)
		}
		o.ObserveInt64(owners, int64(len(u.ByOwner)))
		o.ObserveInt64(ownerMax, int64(most))
		return nil
	}, used, owners, ownerMax, limit)
	if err != nil {
		return fmt.Errorf("quota metrics: %w", err)
	}
	return nil
}
