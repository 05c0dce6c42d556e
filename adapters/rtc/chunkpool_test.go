package rtc

import (
	"slices"
	"testing"
	"time"
)

// A ring's chunks go back to the process's pool as its GOPs leave and when
// it closes, and the next ring takes them from there: once they have been
// idle for the pool's idle window, it keeps at most poolWarm of them
// resident.
func TestChunkPoolReusesChunks(t *testing.T) {
	chunks.mu.Lock()
	chunks.idle = 20 * time.Millisecond
	chunks.mu.Unlock()
	defer func() {
		chunks.mu.Lock()
		chunks.idle = poolIdle
		chunks.mu.Unlock()
	}()
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
	waitFor(t, "the pool to give back its idle chunks", func() bool { return chunks.resident() <= poolWarm*chunkSize })
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

// The pool gives back only the chunks no ring needed for a whole idle
// window, the ones freed longest ago first: a GOP's chunks given back at a
// keyframe and taken again before the window ends are never released
// (each release cost a page fault per 4 KiB when the chunk was written
// again).
func TestChunkPoolReleasesOnlyIdleChunks(t *testing.T) {
	p := &chunkPool{idle: time.Hour} // the windows are ended by hand
	defer func() {
		p.mu.Lock()
		if p.timer != nil {
			p.timer.Stop()
		}
		p.mu.Unlock()
	}()
	take := func(n int) []*chunk {
		out := make([]*chunk, n)
		for i := range out {
			out[i] = p.get()
		}
		return out
	}
	give := func(cs []*chunk) {
		for _, c := range cs {
			p.put(c)
		}
	}
	counts := func() (warm, cold int) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.warm), len(p.cold)
	}
	cs := take(100)
	_, cold0 := counts() // what the slabs mapped beyond the 100
	give(cs)
	// The window began when the pool first held more than poolWarm: only
	// the one chunk beyond poolWarm that was free all along is idle.
	p.scavenge()
	if w, c := counts(); w != 99 || c != cold0+1 {
		t.Fatalf("after the first window: %d warm, %d cold; want 99, %d", w, c, cold0+1)
	}
	// A ring takes them all and gives them back within the next window.
	give(take(99))
	p.scavenge()
	if w, c := counts(); w != 99 || c != cold0+1 {
		t.Fatalf("after a window in which every chunk was reused: %d warm, %d cold; want 99, %d", w, c, cold0+1)
	}
	// A window with no use: all but poolWarm go, the oldest first.
	p.mu.Lock()
	newest := slices.Clone(p.warm[len(p.warm)-poolWarm:])
	p.mu.Unlock()
	p.scavenge()
	if w, c := counts(); w != poolWarm || c != cold0+1+99-poolWarm {
		t.Fatalf("after an idle window: %d warm, %d cold; want %d, %d", w, c, poolWarm, cold0+1+99-poolWarm)
	}
	p.mu.Lock()
	kept, timer := slices.Clone(p.warm), p.timer
	p.mu.Unlock()
	if !slices.Equal(kept, newest) {
		t.Fatal("the pool kept other chunks than the most recently freed")
	}
	if timer != nil {
		t.Fatal("a window is still running with nothing beyond poolWarm")
	}
}

// The idle window's timer releases the surplus by itself, with no further
// use of the pool (a device that stopped streaming).
func TestChunkPoolReleasesWithoutUse(t *testing.T) {
	p := &chunkPool{idle: 10 * time.Millisecond}
	give := func(n int) {
		cs := make([]*chunk, n)
		for i := range cs {
			cs[i] = p.get()
		}
		for _, c := range cs {
			p.put(c)
		}
	}
	give(64)
	waitFor(t, "the surplus to go back", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.warm) == poolWarm && p.timer == nil
	})
}
