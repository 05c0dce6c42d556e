package domain

import (
	"testing"
	"time"
)

func TestBitratePolicy(t *testing.T) {
	p := DefaultBitratePolicy
	p.MinBps, p.MaxBps, p.Interval = 1_000_000, 3_000_000, 5*time.Second
	t0 := time.Unix(1000, 0)
	later := t0.Add(10 * time.Second)
	for _, tc := range []struct {
		name       string
		current    int
		q          QualityStats
		lastChange time.Time
		now        time.Time
		want       int
		changed    bool
	}{
		{"loss above 5% lowers by 15%", 2_000_000, QualityStats{LossFraction: 0.06, RTTMs: 20}, t0, later, 1_700_000, true},
		{"loss exactly 5% holds", 2_000_000, QualityStats{LossFraction: 0.05, RTTMs: 20}, t0, later, 2_000_000, false},
		{"low loss, low RTT raises by 10%", 2_000_000, QualityStats{LossFraction: 0.005, RTTMs: 50}, t0, later, 2_200_000, true},
		{"low loss, high RTT holds", 2_000_000, QualityStats{LossFraction: 0.005, RTTMs: 150}, t0, later, 2_000_000, false},
		{"RTT exactly 100 ms holds", 2_000_000, QualityStats{LossFraction: 0, RTTMs: 100}, t0, later, 2_000_000, false},
		{"loss between 1% and 5% holds", 2_000_000, QualityStats{LossFraction: 0.03, RTTMs: 10}, t0, later, 2_000_000, false},
		{"clamped to max", 2_900_000, QualityStats{}, t0, later, 3_000_000, true},
		{"clamped to min", 1_100_000, QualityStats{LossFraction: 0.5}, t0, later, 1_000_000, true},
		{"at max stays", 3_000_000, QualityStats{}, t0, later, 3_000_000, false},
		{"hysteresis: too soon", 2_000_000, QualityStats{LossFraction: 0.5}, t0, t0.Add(4 * time.Second), 2_000_000, false},
		{"hysteresis: exactly the interval", 2_000_000, QualityStats{LossFraction: 0.5}, t0, t0.Add(5 * time.Second), 1_700_000, true},
		{"out of range current is clamped at once", 5_000_000, QualityStats{LossFraction: 0.03}, t0, t0, 3_000_000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := p.Next(tc.current, tc.q, tc.lastChange, tc.now)
			if got != tc.want || changed != tc.changed {
				t.Fatalf("Next = %d, %v; want %d, %v", got, changed, tc.want, tc.changed)
			}
		})
	}
}
