package rtc

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Who sends a viewer's packets. A viewer in steady state is drained by its
// Fanout's send lanes: the goroutine that writes the frame drains the first
// chunk of viewers itself and wakes one send worker per further chunk (at
// most GOMAXPROCS lanes in all, a chunk at least minChunk viewers), not a
// goroutine per viewer. So a frame costs no wake-up at all for a device
// with a few viewers and one per extra core for hundreds, and each lane
// goes through its viewers back to back while the batched sockets queue
// their packets (a lane holds the batch for its chunk; see batch.go). What a worker must
// not do — sleep for a joiner's paced catch-up, notice the ring closing —
// goes back to the viewer's own sender goroutine, which also sends the
// sender reports.
//
// Peer.sched says who may touch the viewer's cursor (and its send state):
//
//	schedOwn    the viewer's own goroutine (also before it starts)
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

// minChunk is the fewest viewers worth a worker wake-up of their own;
// a worker yields its P after every yieldEvery viewers it has drained
// (~0.5 ms of work at 8 packets a frame).
const (
	minChunk   = 32
	yieldEvery = 16
)

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
	g       *batchGroup // nil: unbatched sockets, no holds
	inline  sendWorker  // drained by dispatch's caller
	workers []*sendWorker
	quit    chan struct{}
	wg      sync.WaitGroup
	started atomic.Bool
}

func newSendPool(g *batchGroup) *sendPool {
	n := min(runtime.GOMAXPROCS(0), 4) - 1
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
// holding the batch once per lane, nudges viewers drained by their own
// goroutine, and drains the first lane's viewers before it returns. It is
// called by one goroutine at a time (the Fanout's writer) and does not
// allocate once the lists have grown.
func (sp *sendPool) dispatch(viewers []*Peer) {
	n := len(viewers)
	if n == 0 {
		return
	}
	nw := min(len(sp.workers)+1, (n+minChunk-1)/minChunk)
	for i := nw - 1; i >= 0; i-- { // the workers first, so they start early
		w := &sp.inline
		if i > 0 {
			w = sp.workers[i-1]
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
		if added && i > 0 {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
	sp.serveAll(&sp.inline)
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
		if i%yieldEvery == yieldEvery-1 {
			// Let what waits for this P run (a controller's input, signaling):
			// a chunk of 100 viewers is milliseconds of work.
			runtime.Gosched()
		}
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

// handBack gives a worker's viewer to its own goroutine and wakes it.
func (p *Peer) handBack() {
	if p.closed.Load() {
		p.sched.Store(schedOff)
		return
	}
	p.sched.Store(schedOwn)
	select {
	case p.wake <- struct{}{}:
	default:
	}
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
