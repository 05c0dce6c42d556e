package app

import (
	"context"
	"time"

	"mediasvc/domain"
)

// The device's clipboard, pushed to the clients of its controllers.

// clipboardQueue bounds the clipboard changes waiting for delivery, as the
// scrcpy server's own device message queue (16) does; past it a change is
// dropped with a warning.
const clipboardQueue = 16

type clipChange struct {
	device domain.DeviceID
	text   string
}

// runClipboards watches the clipboard of every source that tells of one
// and delivers each change, one at a time, until ctx is done. Run starts
// it and waits for it.
func (s *Service) runClipboards(ctx context.Context) {
	ch := make(chan clipChange, clipboardQueue)
	var cancels []func()
	for _, src := range s.src.list {
		if src.Clipboard == nil {
			continue
		}
		cancels = append(cancels, src.Clipboard.WatchClipboard(func(id domain.DeviceID, text string) {
			select {
			case ch <- clipChange{device: id, text: text}:
			default:
				s.log.Warn("device clipboard dropped: delivery queue full", "device_id", id)
			}
		}))
	}
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	if len(cancels) == 0 {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-ch:
			s.deliverClipboard(ctx, c.device, c.text)
		}
	}
}

// deliverClipboard sends device's clipboard text to the client of every
// session held here that controls it: a controller session (a viewer
// never gets it) and, with the device farm, one of the device's current
// controllers. Each delivery is audited (length only unless the farm
// records text). Text past domain.MaxClipboardText is cut at a UTF-8
// boundary and marked truncated.
func (s *Service) deliverClipboard(ctx context.Context, device domain.DeviceID, text string) {
	ls := s.snapshot(func(l *live) bool { return l.device == device && l.role == domain.RoleController })
	if len(ls) == 0 {
		return
	}
	var ctl domain.Control
	if s.farm != nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var err error
		ctl, err = s.farm.Control(cctx, device)
		cancel()
		if err != nil {
			s.log.Warn("device clipboard not delivered: control unknown", "device_id", device, "err", err)
			return
		}
	}
	clipped, cut := domain.ClipText(text, domain.MaxClipboardText)
	ev := domain.SessionEvent{Type: domain.EventClipboard, Text: clipped, Truncated: cut}
	for _, l := range ls {
		if s.farm != nil && !ctl.Controls(l.id) {
			continue
		}
		l.mu.Lock()
		attached, owner := l.notify != nil, l.sess.Owner
		l.mu.Unlock()
		if !attached {
			continue
		}
		s.emit(l, ev)
		if s.farm != nil {
			s.farm.ClipboardSent(ctx, Actor{Subject: owner, Session: l.id}, device, clipped)
		}
	}
}
