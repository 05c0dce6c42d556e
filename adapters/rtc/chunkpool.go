package rtc

import (
	"sync"
	"sync/atomic"
)

// The rings' payload chunks come from one process-wide pool whose memory,
// on Linux, is mapped outside the Go heap. A ring at 2 Mbit/s with a 10 s
// GOP swings between ~0.5 and ~3 MB as GOPs come and go; on the heap that
// churn is garbage and the collector's goal (GOGC=100: twice the live
// heap) doubles what the rings hold in RSS. Off the heap a chunk costs its
// 64 KiB while a ring holds it and nothing once it is given back beyond
// the few the pool keeps warm for the next ring that grows.
//
// A chunk leaves a ring only under the ring's write lock and viewers copy
// packets out under its read lock, so no reader can see a chunk after it
// went back; its memory is never unmapped (only given back to the OS with
// MADV_DONTNEED), so even a stray stale slice would read zeros, not fault.

// poolWarm is how many free chunks the pool keeps resident (2 MiB).
const poolWarm = 32

// chunkPool is a free list of chunks: warm ones still resident, cold ones
// whose pages went back to the OS.
type chunkPool struct {
	held atomic.Int64 // chunks the rings hold (their spares included)
	mu   sync.Mutex
	warm []*chunk
	cold []*chunk
	mem  chunkMemory
}

// chunks is the process's pool.
var chunks = &chunkPool{}

// get returns a chunk of chunkSize bytes, its content undefined.
func (p *chunkPool) get() *chunk {
	p.held.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.warm); n > 0 {
		c := p.warm[n-1]
		p.warm[n-1] = nil
		p.warm = p.warm[:n-1]
		return c
	}
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
	if len(p.warm) < poolWarm {
		p.warm = append(p.warm, c)
		return
	}
	if c.heap {
		return // the collector takes it
	}
	p.mem.release(c.buf)
	p.cold = append(p.cold, c)
}

// resident is the free chunks' resident memory.
func (p *chunkPool) resident() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.warm) * chunkSize
}

// inRings is the chunk memory the rings hold.
func (p *chunkPool) inRings() int { return int(p.held.Load()) * chunkSize }
