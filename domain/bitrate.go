package domain

import "time"

// BitratePolicy decides a capture's target bitrate from its viewers' quality.
// It is a pure value: Next has no side effects.
type BitratePolicy struct {
	MinBps int
	MaxBps int
	// Interval is the least time between two changes (hysteresis).
	Interval time.Duration
	// DecreaseLoss: loss above it lowers the bitrate (default 0.05).
	DecreaseLoss float64
	// IncreaseLoss and IncreaseRTT: loss below the first and RTT below the
	// second raise it (defaults 0.01 and 100 ms).
	IncreaseLoss float64
	IncreaseRTT  time.Duration
}

// DefaultBitratePolicy is 300 kbps to 4 Mbps, changed at most every 5 s.
var DefaultBitratePolicy = BitratePolicy{
	MinBps: 300_000, MaxBps: 4_000_000, Interval: 5 * time.Second,
	DecreaseLoss: 0.05, IncreaseLoss: 0.01, IncreaseRTT: 100 * time.Millisecond,
}

// Next returns the bitrate to use given the current one, the aggregated
// quality, when the bitrate last changed and the time now. changed is false
// when the result equals current. Loss above DecreaseLoss multiplies by 0.85;
// loss below IncreaseLoss with RTT below IncreaseRTT multiplies by 1.10; the
// result is clamped to [MinBps, MaxBps]; no change happens sooner than
// Interval after lastChange (a clamp of an out-of-range current value is
// applied at once).
func (p BitratePolicy) Next(current int, q QualityStats, lastChange, now time.Time) (next int, changed bool) {
	next = current
	if now.Sub(lastChange) >= p.Interval {
		rtt := time.Duration(q.RTTMs * float64(time.Millisecond))
		switch {
		case q.LossFraction > p.DecreaseLoss:
			next = int(float64(current) * 0.85)
		case q.LossFraction < p.IncreaseLoss && rtt < p.IncreaseRTT:
			next = int(float64(current) * 1.10)
		}
	}
	if p.MinBps > 0 && next < p.MinBps {
		next = p.MinBps
	}
	if p.MaxBps > 0 && next > p.MaxBps {
		next = p.MaxBps
	}
	return next, next != current
}
