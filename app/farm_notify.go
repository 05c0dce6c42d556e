package app

import (
	"context"
	"time"

	"mediasvc/domain"
)

// Notices of devices coming and going (webhooks).

// DeviceOnline and DeviceOffline tell the notifier a device came or went.
func (f *Farm) DeviceOnline(d domain.DeviceID) {
	f.notify(domain.Notice{ID: randomID(12), Type: domain.NoticeDeviceOnline, Device: d})
}

// DeviceOffline: see DeviceOnline.
func (f *Farm) DeviceOffline(d domain.DeviceID) {
	f.notify(domain.Notice{ID: randomID(12), Type: domain.NoticeDeviceOffline, Device: d})
}

func (f *Farm) notify(n domain.Notice) {
	if f.notifier == nil {
		return
	}
	n.Time = f.clock.Now()
	f.notifier.Notify(n)
}

// WatchDevices lists the devices every interval until ctx is done and
// tells the notifier which came online and which went away (or offline).
// The first listing only sets the baseline.
func (f *Farm) WatchDevices(ctx context.Context, interval time.Duration, list func(context.Context) ([]domain.Device, error)) {
	t := f.clock.NewTimer(interval)
	defer t.Stop()
	var known map[domain.DeviceID]bool
	for {
		ds, err := list(ctx)
		if err == nil {
			now := make(map[domain.DeviceID]bool, len(ds))
			for _, d := range ds {
				now[d.ID] = d.State == domain.DeviceOnline
			}
			if known != nil {
				for id, on := range now {
					if on && !known[id] {
						f.DeviceOnline(id)
					}
					if !on && known[id] {
						f.DeviceOffline(id)
					}
				}
				for id, on := range known {
					if _, ok := now[id]; !ok && on {
						f.DeviceOffline(id)
					}
				}
			}
			known = now
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			t.Reset(interval)
		}
	}
}
