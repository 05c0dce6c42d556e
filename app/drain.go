package app

import (
	"context"
	"fmt"
	"sync"
)

// StopAccepting makes Ready false and refuses new sessions, leaving the
// live ones playing: the first step of a drain, so load balancers see the
// instance leave before its viewers are told bye.
func (s *Service) StopAccepting() { s.draining.Store(true) }

// Drain refuses new sessions, tells every socket bye with reason, closes
// every peer and stops every capture. It returns when done or when ctx
// ends. Closing a session never waits for its owner (which may be inside
// a slow store call); the captures' ends are waited for, then the
// sessions are deleted from the store within ctx.
func (s *Service) Drain(ctx context.Context, reason string) error {
	s.draining.Store(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		held := s.snapshot(nil)
		var wg sync.WaitGroup
		for _, l := range held {
			wg.Go(func() { s.closeLocal(l.id, reason) })
		}
		wg.Wait()
		s.recMu.Lock()
		rec := s.recorder
		s.recMu.Unlock()
		if rec != nil {
			rec.Close() // its files end before their captures do
		}
		s.hub.Close()
		s.m.unregister()
		// Last, so a slow store delays no bye: other instances would
		// otherwise see these sessions until their TTL.
		for _, l := range held {
			wg.Go(func() { _, _ = s.deps.Store.Delete(ctx, l.id) })
		}
		wg.Wait()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drain: %w", ctx.Err())
	}
}
