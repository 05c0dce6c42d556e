package rtc

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The rings' payload chunks come from one process-wide pool whose memory,
// on Linux, is mapped outside the Go heap. A ring at 2 Mbit/s with a 10 s
// GOP swings between ~0.5 and ~3 MB as GOPs come and go; on the heap that
// churn is garbage and the collector's goal (GOGC=100: twice the live
// heap) doubles what the rings hold in RSS. Off the heap a chunk costs its
// 64 KiB while a ring holds it and nothing once the pool has given it back
// to the OS: beyond the few kept warm for the next ring that grows, after
// it stayed unused for poolIdle.
//
// A chunk leaves a ring only under the ring's write lock and viewers copy
// packets out under its read lock, so no reader can see a chunk after it
// went back; its memory is never unmapped (only given back to the OS with
// MADV_DONTNEED), so even a stray stale slice would read zeros, not fault.

// poolWarm is how many free chunks the pool keeps resident however long
// they stay unused (2 MiB).
const poolWarm = 32

// poolIdle is how long free chunks beyond poolWarm stay resident unused
// before their pages go back to the OS. A ring at a 10 s GOP gives back a
// GOP's chunks at each keyframe and takes as many again over the next
// GOP; released at once (as this pool did), every one of those pages was
// faulted in anew as the ring refilled it — 1.1 s of a 60 s profile at 30
// devices × 2 Mbit/s, a quarter of the device path (BENCHMARKS.md). Kept
// for as long as a GOP, they are reused instead, and what no ring took in
// that long is surplus.
const poolIdle = 12 * time.Second

// chunkPool is a free list of chunks: warm ones still resident, cold ones
// whose pages went back to the OS. Free chunks beyond poolWarm that no
// ring needed for a whole idle window (the fewest warm chunks seen in it,
// less poolWarm) are released by a timer that runs only while there is
// such a surplus; the ones freed longest ago go first.
type chunkPool struct {
	held atomic.Int64 // chunks the rings hold (their spares included)
	mu   sync.Mutex
	warm []*chunk // the most recently freed last
	cold []*chunk
	mem  chunkMemory
	// low is the fewest warm chunks since the idle window began; timer
	// is the window's end (nil: no surplus, no window).
	low   int
	timer *time.Timer
	idle  time.Duration // poolIdle; shorter in tests
}

// chunks is the process's pool.
var chunks = &chunkPool{idle: poolIdle}

// get returns a chunk of chunkSize bytes, its content undefined.
func (p *chunkPool) get() *chunk {
	p.held.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.warm); n > 0 {
		c := p.warm[n-1]
		p.warm[n-1] = nil
		p.warm = p.warm[:n-1]
		p.low = min(p.low, n-1)
		return c
	}
	p.low = 0
	if len(p.cold) == 0 {
		p.cold = append(p.cold, p.mem.alloc()...)
	}
	n := len(p.cold)
	c := p.cold[n-1]
	p.cold[n-1] = nil
	p.cold = p.cold[:n-1]
	return c
}

// put gives c back; the caller no longer uses it.
func (p *chunkPool) put(c *chunk) {
	c.last = 0
	p.held.Add(-1)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.warm = append(p.warm, c)
	if len(p.warm) > poolWarm && p.timer == nil {
		p.low = len(p.warm)
		p.timer = time.AfterFunc(p.idle, p.scavenge)
	}
}

// scavenge ends an idle window: it gives back the chunks no ring needed
// during it, the oldest first, and starts another window while the pool
// still holds more than poolWarm. The pages go back outside the lock.
func (p *chunkPool) scavenge() {
	p.mu.Lock()
	surplus := min(p.low, len(p.warm)) - poolWarm
	var idle []*chunk
	if surplus > 0 {
		idle = slices.Clone(p.warm[:surplus])
		n := copy(p.warm, p.warm[surplus:])
		clear(p.warm[n:])
		p.warm = p.warm[:n]
	}
	p.low = len(p.warm)
	if len(p.warm) > poolWarm {
		p.timer.Reset(p.idle)
	} else {
		p.timer = nil
	}
	p.mu.Unlock()
	if len(idle) == 0 {
		return
	}
	cold := idle[:0]
	for _, c := range idle {
		if c.heap {
			continue // the collector takes it
		}
		p.mem.release(c.buf)
		cold = append(cold, c)
	}
	p.mu.Lock()
	p.cold = append(p.cold, cold...)
	p.mu.Unlock()
}

// resident is the free chunks' resident memory.
func (p *chunkPool) resident() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.warm) * chunkSize
}

// inRings is the chunk memory the rings hold.
func (p *chunkPool) inRings() int { return int(p.held.Load()) * chunkSize }
