package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"mediasvc/domain"
)

// Device ownership. With Deps.Leases, a device is captured by the one
// instance holding its lease: an instance claims the devices of its
// sources marked Claim (those it can capture), renews their leases every
// third of the TTL, and new sessions for a device are created on the
// holder (forwarded over the bus when it is another instance). When the
// holder dies its leases expire and another instance that sees the device
// claims it at its next round.

// ownerOf returns the instance holding device's lease, claiming it first
// when no one does and this instance may. "" means no ownership applies:
// the session is held where it is created.
func (s *Service) ownerOf(ctx context.Context, device domain.DeviceID) (string, error) {
	if s.deps.Leases == nil {
		return "", nil
	}
	holder, err := s.deps.Leases.Holder(ctx, device)
	if err != nil || holder != "" {
		return holder, err
	}
	if !s.claims(ctx, device) {
		return "", nil
	}
	ls, err := s.deps.Leases.Acquire(ctx, device, s.cfg.Instance)
	switch {
	case errors.Is(err, domain.ErrConflict): // someone else was quicker
		return s.deps.Leases.Holder(ctx, device)
	case err != nil:
		return "", err
	}
	s.keepLease(ls)
	return s.cfg.Instance, nil
}

// claims reports whether a claiming source of this instance has device.
func (s *Service) claims(ctx context.Context, device domain.DeviceID) bool {
	for _, src := range s.src.list {
		if !src.Claim {
			continue
		}
		if _, err := src.Screen.Device(ctx, device); err == nil {
			return true
		}
	}
	return false
}

func (s *Service) keepLease(ls domain.Lease) {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if _, had := s.leases[ls.Device]; !had {
		s.log.Info("took device lease", "device_id", ls.Device, "token", ls.Token)
	}
	s.leases[ls.Device] = ls
}

// RunOwnership claims and renews the leases of this instance's devices
// every third of ttl until ctx is done, then releases them so another
// instance can take over at once. Without Deps.Leases it returns at once.
func (s *Service) RunOwnership(ctx context.Context, ttl time.Duration) error {
	if s.deps.Leases == nil {
		return nil
	}
	every := max(ttl/3, 10*time.Millisecond)
	wait := min(every, 200*time.Millisecond) // until the store is first usable
	for {
		if s.healthy() == nil && !s.draining.Load() {
			s.claimRound(ctx)
			wait = every
		}
		t := s.deps.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s.releaseLeases()
			return nil
		case <-t.C():
		}
	}
}

// claimRound renews the leases held, claims free devices of claiming
// sources, and releases the leases of devices no longer seen.
func (s *Service) claimRound(ctx context.Context) {
	seen := map[domain.DeviceID]bool{}
	for _, src := range s.src.list {
		if !src.Claim {
			continue
		}
		devs, err := src.Screen.Devices(ctx)
		if err != nil {
			continue
		}
		for _, d := range devs {
			seen[d.ID] = true
		}
	}
	s.leaseMu.Lock()
	held := make(map[domain.DeviceID]domain.Lease, len(s.leases))
	for d, ls := range s.leases {
		held[d] = ls
	}
	s.leaseMu.Unlock()
	for d, ls := range held {
		var err error
		if seen[d] {
			err = s.deps.Leases.Renew(ctx, ls)
		} else {
			err = s.deps.Leases.Release(ctx, ls)
		}
		if err == nil && seen[d] {
			continue
		}
		if errors.Is(err, domain.ErrUnavailable) {
			continue // try again next round
		}
		s.leaseMu.Lock()
		delete(s.leases, d)
		s.leaseMu.Unlock()
		if err == nil { // released: the device is gone
			continue
		}
		// Lost. If no one holds it (Redis restarted empty), take it
		// again and keep streaming; if another instance does, it owns
		// the device now: end the sessions captured here.
		if nls, aerr := s.deps.Leases.Acquire(ctx, d, s.cfg.Instance); aerr == nil {
			s.keepLease(nls)
			continue
		}
		s.log.Warn("lost device lease to another instance; ending its sessions here", "device_id", d, "token", ls.Token, "err", err)
		for _, l := range s.snapshot(func(l *live) bool { return l.device == d }) {
			_, _ = s.deps.Store.Delete(ctx, l.id)
			s.closeLocal(l.id, "owner_changed")
		}
	}
	for d := range seen {
		if _, ok := held[d]; ok {
			continue
		}
		ls, err := s.deps.Leases.Acquire(ctx, d, s.cfg.Instance)
		if err == nil {
			s.keepLease(ls)
		}
	}
}

func (s *Service) releaseLeases() {
	s.leaseMu.Lock()
	held := s.leases
	s.leases = map[domain.DeviceID]domain.Lease{}
	s.leaseMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, ls := range held {
		if err := s.deps.Leases.Release(ctx, ls); err != nil {
			s.log.Debug("release device lease", "device_id", ls.Device, "err", fmt.Sprint(err))
		}
	}
}
