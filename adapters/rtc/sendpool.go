package rtc

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Who sends a viewer's packets. A viewer in steady state is drained by its
// Fanout's send lanes, not by a goroutine of its own: a frame for fewer
// than minChunk viewers is drained by the goroutine that writes it (no
// wake-up at all: a device of a farm with a few viewers), a larger one by
// one send worker per chunk of at least minChunk viewers (at most
// GOMAXPROCS workers). Each lane goes through its viewers back to back
// while the batched sockets queue their packets (a lane holds the batch for
// its chunk; see batch.go). Draining a chunk of hundreds in the writer
// too, and yielding the P every 16 viewers, measured worse (BENCHMARKS.md,
// "Issue 14, second pass"). What a worker must
// not do — sleep for a joiner's paced catch-up, notice the ring closing —
// goes back to a sender goroutine of the viewer's own, which runs only
// until it can hand the viewer over again (Peer.run). The sender reports
// of all the Fanout's viewers go out from one ticker goroutine.
//
// Peer.sched says who may touch the viewer's cursor (and its send state):
//
//	schedOwn    the viewer's own sender goroutine (also before it starts)
//	schedIdle   nobody: the next frame queues it for a worker
//	schedQueued a worker (queued or draining)
//	schedRerun  a worker, and a frame came meanwhile: drain again
//	schedOff    closed: nobody ever again
//
// Only the owner leaves its state (a worker: to Idle, Own or Off; the own
// goroutine: to Idle), except for the transitions that give ownership away:
// Idle→Queued (a frame), Queued→Rerun (a frame), Idle/Own→Off (Close).
// Atomics order the hand-overs, so each owner sees its predecessor's writes.
const (
	schedOwn int32 = iota
	schedIdle
	schedQueued
	schedRerun
	schedOff
)

// minChunk is the fewest viewers worth a worker wake-up of their own.
const minChunk = 32

// sendWorker drains the viewers queued to it.
type sendWorker struct {
	mu      sync.Mutex
	list    []*Peer // queued, each in state schedQueued
	spare   []*Peer // the other list, reused
	holds   int     // batch holds taken for list
	stopped bool
	wake    chan struct{}
}

// sendPool is a Fanout's send lanes: the writer's own (inline) and the
// send workers, which start with the first viewer and end with the Fanout.
type sendPool struct {
	g       *batchGroup         // nil: unbatched sockets, no holds
	tick    func(now time.Time) // the ticker's call, once a second
	inline  sendWorker          // drained by dispatch's caller
	workers []*sendWorker
	quit    chan struct{}
	wg      sync.WaitGroup
	started atomic.Bool
}

func newSendPool(g *batchGroup) *sendPool {
	n := min(runtime.GOMAXPROCS(0), 4)
	sp := &sendPool{g: g, quit: make(chan struct{})}
	for range n {
		sp.workers = append(sp.workers, &sendWorker{wake: make(chan struct{}, 1)})
	}
	return sp
}

// start runs the workers; the caller serializes it with stop.
func (sp *sendPool) start() {
	if sp.started.Swap(true) {
		return
	}
	for _, w := range sp.workers {
		sp.wg.Add(1)
		go sp.loop(w)
	}
	if sp.tick != nil {
		sp.wg.Add(1)
		go sp.ticker()
	}
}

// ticker calls tick once a second until the pool stops: the sender
// reports of every viewer of the Fanout, from one goroutine instead of a
// timer and a goroutine per viewer.
func (sp *sendPool) ticker() {
	defer sp.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-sp.quit:
			return
		case now := <-t.C:
			sp.tick(now)
		}
	}
}

// stop ends the workers once they have served what is queued (from then on
// dispatch queues nothing) and waits for them; the caller serializes it
// with start.
func (sp *sendPool) stop() {
	for _, w := range sp.workers {
		w.mu.Lock()
		w.stopped = true
		w.mu.Unlock()
	}
	if sp.started.Load() {
		close(sp.quit)
		sp.wg.Wait()
	}
}

// dispatch queues every viewer that is not being drained to a lane,
// holding the batch once per lane, and nudges viewers drained by their own
// goroutine; with fewer than minChunk viewers it drains them itself before
// it returns. It is called by one goroutine at a time (the Fanout's
// writer) and does not allocate once the lists have grown.
func (sp *sendPool) dispatch(viewers []*Peer) {
	n := len(viewers)
	if n == 0 {
		return
	}
	inline := n < minChunk || len(sp.workers) == 0
	nw := 1
	if !inline {
		nw = min(len(sp.workers), (n+minChunk-1)/minChunk)
	}
	for i := range nw {
		w := &sp.inline
		if !inline {
			w = sp.workers[i]
		}
		part := viewers[i*n/nw : (i+1)*n/nw]
		w.mu.Lock()
		if w.stopped {
			w.mu.Unlock()
			return
		}
		added := false
		for _, p := range part {
			if p.schedule() {
				w.list = append(w.list, p)
				added = true
			}
		}
		if added {
			w.holds++
			if sp.g != nil {
				sp.g.hold()
			}
		}
		w.mu.Unlock()
		if added && !inline {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
	if inline {
		sp.serveAll(&sp.inline)
	}
}

func (sp *sendPool) loop(w *sendWorker) {
	defer sp.wg.Done()
	for {
		select {
		case <-w.wake:
		case <-sp.quit:
			sp.serveAll(w)
			return
		}
		sp.serveAll(w)
	}
}

// serveAll drains every viewer queued to w, then releases the holds taken
// for them, which flushes the frame's batch once every worker is done.
func (sp *sendPool) serveAll(w *sendWorker) {
	w.mu.Lock()
	list, holds := w.list, w.holds
	w.list, w.holds = w.spare[:0], 0
	w.spare = nil
	w.mu.Unlock()
	for i, p := range list {
		p.serve()
		list[i] = nil
	}
	w.mu.Lock()
	w.spare = list[:0]
	w.mu.Unlock()
	if sp.g != nil {
		for range holds {
			sp.g.release()
		}
	}
}

// schedule is a new frame's call: it reports whether the viewer is to be
// queued for a worker (it is then in state schedQueued), asks a running
// worker to drain it again, or wakes the viewer's own goroutine.
func (p *Peer) schedule() bool {
	for {
		switch s := p.sched.Load(); s {
		case schedIdle:
			if p.sched.CompareAndSwap(schedIdle, schedQueued) {
				return true
			}
		case schedQueued:
			if p.sched.CompareAndSwap(schedQueued, schedRerun) {
				return false
			}
		case schedOwn:
			select {
			case p.wake <- struct{}{}:
			default:
			}
			return false
		default: // schedRerun, schedOff
			return false
		}
	}
}

// serve is a worker's turn at one viewer: it drains the viewer, again if a
// frame came meanwhile, and gives it up: to nobody, to its own goroutine
// (catch-up pacing, the ring closed) or, closed, to no one ever.
func (p *Peer) serve() {
	for {
		switch p.drainAs(false) {
		case drainEmpty:
			if p.sched.CompareAndSwap(schedQueued, schedIdle) {
				return
			}
			p.sched.CompareAndSwap(schedRerun, schedQueued)
		case drainStop:
			p.sched.Store(schedOff)
			return
		default: // drainPace, drainRingClosed
			p.handBack()
			return
		}
	}
}

// handBack gives a worker's viewer to a new sender goroutine of its own.
func (p *Peer) handBack() {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if p.closed.Load() {
		p.sched.Store(schedOff)
		return
	}
	p.sched.Store(schedOwn)
	p.wg.Add(1)
	go p.run()
}

// unschedule ends the viewer's scheduling for Close: once it returns no
// worker touches the viewer. p.closed is set; a worker draining it stops
// within a packet.
func (p *Peer) unschedule() {
	for {
		switch s := p.sched.Load(); s {
		case schedOff:
			return
		case schedIdle, schedOwn:
			if p.sched.CompareAndSwap(s, schedOff) {
				return
			}
		default:
			time.Sleep(20 * time.Microsecond)
		}
	}
}
