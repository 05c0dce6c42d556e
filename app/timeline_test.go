package app

import (
	"testing"
	"time"
)

// After a reopen, the stream's timestamps resume at the wall time that
// passed, whatever the new capture's own timestamps start at; within a
// capture they follow its timestamps and never go back.
func TestTimelineFollowsWallTimeAcrossReopens(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var tl timeline
	steps := []struct {
		pts    time.Duration
		at     time.Duration // wall time since t0
		reopen bool
		want   time.Duration
	}{
		{pts: 5 * time.Second, at: 0, want: 5 * time.Second}, // the first capture's own timeline
		{pts: 5*time.Second + 33*time.Millisecond, at: 33 * time.Millisecond, want: 5*time.Second + 33*time.Millisecond},
		// A 3 s outage; the new capture starts at 0.
		{pts: 0, at: 3033 * time.Millisecond, reopen: true, want: 8*time.Second + 33*time.Millisecond},
		{pts: 100 * time.Millisecond, at: 3133 * time.Millisecond, want: 8*time.Second + 133*time.Millisecond},
		// An immediate reopen (a screenrecord time limit) still moves on.
		{pts: 50 * time.Second, at: 3133 * time.Millisecond, reopen: true, want: 8*time.Second + 166*time.Millisecond},
		// A capture whose clock steps back is held, never rewound.
		{pts: 49 * time.Second, at: 3200 * time.Millisecond, want: 8*time.Second + 166*time.Millisecond},
	}
	for i, s := range steps {
		if s.reopen {
			tl.rebase = true
		}
		if got := tl.next(s.pts, t0.Add(s.at)); got != s.want {
			t.Fatalf("step %d: PTS %v at %v = %v, want %v", i, s.pts, s.at, got, s.want)
		}
	}
}
