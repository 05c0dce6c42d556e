package rtc

import (
	"testing"
	"time"
)

// A ring's chunks go back to the process's pool as its GOPs leave and when
// it closes, and the next ring takes them from there: the pool keeps at
// most poolWarm of them resident.
func TestChunkPoolReusesChunks(t *testing.T) {
	r := newRing(ringLimits{history: time.Second, maxBytes: 4 << 20})
	p := h264Packetizer{mtu: 1200}
	t0 := time.Unix(1000, 0)
	seen := map[*byte]bool{}
	for i := range 300 { // 10 s at 30 fps, 100 KB a frame, a keyframe every 2 s
		pushAt(r, &p, t0.Add(time.Duration(i)*time.Second/30), i%60 == 0, 100_000)
		r.mu.RLock()
		for _, c := range r.chunks {
			seen[&c.buf[0]] = true
		}
		r.mu.RUnlock()
	}
	r.close()
	if got := chunks.resident(); got > poolWarm*chunkSize {
		t.Errorf("the pool keeps %d bytes resident, at most %d", got, poolWarm*chunkSize)
	}
	// The ring held at most ~2 s of 3 MB/s at once (100 chunks) but went
	// through 30 MB: its chunks were reused, not made anew.
	if len(seen) > 200 {
		t.Errorf("%d distinct chunks for a ring that never held more than ~100", len(seen))
	}
	r2 := newRing(ringLimits{history: time.Second, maxBytes: 4 << 20})
	defer r2.close()
	pushAt(r2, &p, t0, true, 1000)
	r2.mu.RLock()
	reused := seen[&r2.chunks[0].buf[0]]
	r2.mu.RUnlock()
	if !reused {
		t.Error("a new ring did not take a chunk the closed one gave back")
	}
}
