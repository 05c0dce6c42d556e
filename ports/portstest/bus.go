package portstest

import (
	"context"
	"fmt"
	"sync"

	"mediasvc/domain"
	"mediasvc/ports"
)

// BusNet is an in-memory network of buses, one per instance: a ports.Bus
// for tests that run several services in one process. Like a real bus it
// copies what it carries, serves each call on its own goroutine, and
// delivers a subscription's events in order from one goroutine.
type BusNet struct {
	mu       sync.Mutex
	handlers map[string]func(context.Context, domain.BusRequest) (domain.BusReply, error)
	subs     map[string]map[int]*busSub
	next     int
}

// NewBusNet returns an empty network.
func NewBusNet() *BusNet {
	return &BusNet{handlers: map[string]func(context.Context, domain.BusRequest) (domain.BusReply, error){}, subs: map[string]map[int]*busSub{}}
}

// On returns the bus as instance self sees it.
func (n *BusNet) On(self string) *Bus { return &Bus{n: n, self: self} }

// Bus is one instance's view of a BusNet.
type Bus struct {
	n    *BusNet
	self string

	mu      sync.Mutex
	serving bool           // Serve runs and has not begun to end
	wg      sync.WaitGroup // calls being served; Add only while serving
}

var _ ports.Bus = (*Bus)(nil)

// Call runs instance's handler on its own goroutine and waits for it or ctx.
func (b *Bus) Call(ctx context.Context, instance string, req domain.BusRequest) (domain.BusReply, error) {
	b.n.mu.Lock()
	h := b.n.handlers[instance]
	b.n.mu.Unlock()
	if h == nil {
		return domain.BusReply{}, fmt.Errorf("bus call: instance %s is not listening: %w", instance, domain.ErrUnavailable)
	}
	type result struct {
		rep domain.BusReply
		err error
	}
	res := make(chan result, 1)
	req = copyRequest(req)
	go func() {
		rep, err := h(ctx, req)
		res <- result{copyReply(rep), err}
	}()
	select {
	case r := <-res:
		return r.rep, r.err
	case <-ctx.Done():
		return domain.BusReply{}, fmt.Errorf("bus call to %s: no reply: %w", instance, ctx.Err())
	}
}

// Serve makes handle answer the calls to this instance until ctx is done,
// then waits for the calls in progress.
func (b *Bus) Serve(ctx context.Context, handle func(context.Context, domain.BusRequest) (domain.BusReply, error)) error {
	b.mu.Lock()
	b.serving = true
	b.mu.Unlock()
	b.n.mu.Lock()
	b.n.handlers[b.self] = func(cctx context.Context, req domain.BusRequest) (domain.BusReply, error) {
		b.mu.Lock()
		if !b.serving {
			b.mu.Unlock()
			return domain.BusReply{}, fmt.Errorf("bus call: instance %s stopped serving: %w", b.self, domain.ErrUnavailable)
		}
		b.wg.Add(1)
		b.mu.Unlock()
		defer b.wg.Done()
		return handle(ctx, req)
	}
	b.n.mu.Unlock()
	<-ctx.Done()
	b.n.mu.Lock()
	delete(b.n.handlers, b.self)
	b.n.mu.Unlock()
	b.mu.Lock()
	b.serving = false
	b.mu.Unlock()
	b.wg.Wait()
	return nil
}

// Publish queues ev for every current subscriber of topic.
func (b *Bus) Publish(_ context.Context, topic string, ev domain.SessionEvent) error {
	b.n.mu.Lock()
	subs := make([]*busSub, 0, len(b.n.subs[topic]))
	for _, s := range b.n.subs[topic] {
		subs = append(subs, s)
	}
	b.n.mu.Unlock()
	for _, s := range subs {
		s.push(copyEvent(ev))
	}
	return nil
}

// Subscribe opens a topic and delivers its events to fn from one goroutine
// until cancel.
func (b *Bus) Subscribe(ctx context.Context, fn func(domain.SessionEvent)) (string, func(), error) {
	if err := ctx.Err(); err != nil {
		return "", nil, fmt.Errorf("bus subscribe: %w", err)
	}
	s := &busSub{fn: fn, wake: make(chan struct{}, 1), done: make(chan struct{})}
	b.n.mu.Lock()
	b.n.next++
	id := b.n.next
	topic := fmt.Sprintf("%s:ev:%d", b.self, id)
	b.n.subs[topic] = map[int]*busSub{id: s}
	b.n.mu.Unlock()
	go s.run()
	var once sync.Once
	return topic, func() {
		once.Do(func() {
			b.n.mu.Lock()
			delete(b.n.subs[topic], id)
			b.n.mu.Unlock()
			s.stop()
			<-s.done
		})
	}, nil
}

type busSub struct {
	fn      func(domain.SessionEvent)
	mu      sync.Mutex
	queue   []domain.SessionEvent
	stopped bool
	wake    chan struct{}
	done    chan struct{}
}

func (s *busSub) push(ev domain.SessionEvent) {
	s.mu.Lock()
	if !s.stopped {
		s.queue = append(s.queue, ev)
	}
	s.mu.Unlock()
	s.signal()
}

func (s *busSub) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.signal()
}

func (s *busSub) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *busSub) run() {
	defer close(s.done)
	for range s.wake {
		s.mu.Lock()
		evs, stopped := s.queue, s.stopped
		s.queue = nil
		s.mu.Unlock()
		if stopped {
			return
		}
		for _, ev := range evs {
			s.fn(ev)
		}
	}
}

func copyRequest(r domain.BusRequest) domain.BusRequest {
	if r.Candidate != nil {
		c := *r.Candidate
		r.Candidate = &c
	}
	if r.Input != nil {
		in := *r.Input
		r.Input = &in
	}
	return r
}

func copyReply(r domain.BusReply) domain.BusReply {
	if r.Stats != nil {
		st := *r.Stats
		r.Stats = &st
	}
	if r.Session != nil {
		s := *r.Session
		r.Session = &s
	}
	return r
}

func copyEvent(ev domain.SessionEvent) domain.SessionEvent {
	if ev.Candidate != nil {
		c := *ev.Candidate
		ev.Candidate = &c
	}
	return ev
}

// Serving reports whether instance's bus serves calls now.
func (n *BusNet) Serving(instance string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.handlers[instance] != nil
}
