// Package httpapitest provides a function-field fake of httpapi.Service for
// tests of the HTTP adapter and of code that serves it.
package httpapitest

import (
	"context"
	"io"

	"mediasvc/domain"
)

// Service is a fake httpapi.Service. Each method calls the matching Func
// field; a nil field returns zero values and a nil error (Ready returns
// true, Connect a no-op detach).
type Service struct {
	CreateSessionFunc   func(ctx context.Context, device domain.DeviceID, role domain.Role, owner string) (domain.Session, string, error)
	SessionFunc         func(ctx context.Context, id domain.SessionID) (domain.Session, error)
	CloseSessionFunc    func(ctx context.Context, id domain.SessionID, reason string) error
	SessionStatsFunc    func(ctx context.Context, id domain.SessionID) (domain.QualityStats, error)
	ConnectFunc         func(ctx context.Context, id domain.SessionID, token string, notify func(domain.SessionEvent)) (func(), error)
	OfferFunc           func(ctx context.Context, id domain.SessionID, sdp string) (string, error)
	AddCandidateFunc    func(ctx context.Context, id domain.SessionID, c domain.Candidate) error
	InputFunc           func(ctx context.Context, id domain.SessionID, ev domain.InputEvent) error
	DeviceInputFunc     func(ctx context.Context, id domain.DeviceID, ev domain.InputEvent) error
	RequestKeyframeFunc func(ctx context.Context, id domain.SessionID) error
	WHEPFunc            func(ctx context.Context, device domain.DeviceID, owner string, offer string) (domain.Session, string, error)
	DevicesFunc         func(ctx context.Context) ([]domain.Device, error)
	DeviceFunc          func(ctx context.Context, id domain.DeviceID) (domain.Device, error)
	ICEServersForFunc   func(sess domain.Session) []domain.ICEServer
	ReadyFunc           func() bool
	InstancesFunc       func(ctx context.Context) ([]domain.Instance, error)
	PushFileFunc        func(ctx context.Context, id domain.DeviceID, name string, r io.Reader, size int64) (string, error)
	InstallAPKFunc      func(ctx context.Context, id domain.DeviceID, r io.Reader, size int64) error
	ScreenshotFunc      func(ctx context.Context, id domain.DeviceID) ([]byte, error)
}

// PushFile calls PushFileFunc.
func (f *Service) PushFile(ctx context.Context, id domain.DeviceID, name string, r io.Reader, size int64) (string, error) {
	if f.PushFileFunc == nil {
		return "", nil
	}
	return f.PushFileFunc(ctx, id, name, r, size)
}

// InstallAPK calls InstallAPKFunc.
func (f *Service) InstallAPK(ctx context.Context, id domain.DeviceID, r io.Reader, size int64) error {
	if f.InstallAPKFunc == nil {
		return nil
	}
	return f.InstallAPKFunc(ctx, id, r, size)
}

// Screenshot calls ScreenshotFunc.
func (f *Service) Screenshot(ctx context.Context, id domain.DeviceID) ([]byte, error) {
	if f.ScreenshotFunc == nil {
		return nil, nil
	}
	return f.ScreenshotFunc(ctx, id)
}

// CreateSession calls CreateSessionFunc.
func (f *Service) CreateSession(ctx context.Context, device domain.DeviceID, role domain.Role, owner string) (domain.Session, string, error) {
	if f.CreateSessionFunc == nil {
		return domain.Session{}, "", nil
	}
	return f.CreateSessionFunc(ctx, device, role, owner)
}

// Session calls SessionFunc.
func (f *Service) Session(ctx context.Context, id domain.SessionID) (domain.Session, error) {
	if f.SessionFunc == nil {
		return domain.Session{}, nil
	}
	return f.SessionFunc(ctx, id)
}

// CloseSession calls CloseSessionFunc.
func (f *Service) CloseSession(ctx context.Context, id domain.SessionID, reason string) error {
	if f.CloseSessionFunc == nil {
		return nil
	}
	return f.CloseSessionFunc(ctx, id, reason)
}

// SessionStats calls SessionStatsFunc.
func (f *Service) SessionStats(ctx context.Context, id domain.SessionID) (domain.QualityStats, error) {
	if f.SessionStatsFunc == nil {
		return domain.QualityStats{}, nil
	}
	return f.SessionStatsFunc(ctx, id)
}

// Connect calls ConnectFunc.
func (f *Service) Connect(ctx context.Context, id domain.SessionID, token string, notify func(domain.SessionEvent)) (func(), error) {
	if f.ConnectFunc == nil {
		return func() {}, nil
	}
	return f.ConnectFunc(ctx, id, token, notify)
}

// Offer calls OfferFunc.
func (f *Service) Offer(ctx context.Context, id domain.SessionID, sdp string) (string, error) {
	if f.OfferFunc == nil {
		return "", nil
	}
	return f.OfferFunc(ctx, id, sdp)
}

// AddCandidate calls AddCandidateFunc.
func (f *Service) AddCandidate(ctx context.Context, id domain.SessionID, c domain.Candidate) error {
	if f.AddCandidateFunc == nil {
		return nil
	}
	return f.AddCandidateFunc(ctx, id, c)
}

// DeviceInput calls DeviceInputFunc.
func (f *Service) DeviceInput(ctx context.Context, id domain.DeviceID, ev domain.InputEvent) error {
	if f.DeviceInputFunc == nil {
		return domain.ErrDeviceNotFound
	}
	return f.DeviceInputFunc(ctx, id, ev)
}

// Input calls InputFunc.
func (f *Service) Input(ctx context.Context, id domain.SessionID, ev domain.InputEvent) error {
	if f.InputFunc == nil {
		return nil
	}
	return f.InputFunc(ctx, id, ev)
}

// RequestKeyframe calls RequestKeyframeFunc.
func (f *Service) RequestKeyframe(ctx context.Context, id domain.SessionID) error {
	if f.RequestKeyframeFunc == nil {
		return nil
	}
	return f.RequestKeyframeFunc(ctx, id)
}

// WHEP calls WHEPFunc.
func (f *Service) WHEP(ctx context.Context, device domain.DeviceID, owner string, offer string) (domain.Session, string, error) {
	if f.WHEPFunc == nil {
		return domain.Session{}, "", nil
	}
	return f.WHEPFunc(ctx, device, owner, offer)
}

// Devices calls DevicesFunc.
func (f *Service) Devices(ctx context.Context) ([]domain.Device, error) {
	if f.DevicesFunc == nil {
		return nil, nil
	}
	return f.DevicesFunc(ctx)
}

// Device calls DeviceFunc.
func (f *Service) Device(ctx context.Context, id domain.DeviceID) (domain.Device, error) {
	if f.DeviceFunc == nil {
		return domain.Device{}, nil
	}
	return f.DeviceFunc(ctx, id)
}

// ICEServersFor calls ICEServersForFunc.
func (f *Service) ICEServersFor(sess domain.Session) []domain.ICEServer {
	if f.ICEServersForFunc == nil {
		return nil
	}
	return f.ICEServersForFunc(sess)
}

// Instances calls InstancesFunc.
func (f *Service) Instances(ctx context.Context) ([]domain.Instance, error) {
	if f.InstancesFunc == nil {
		return nil, nil
	}
	return f.InstancesFunc(ctx)
}

// Ready calls ReadyFunc; true when it is nil.
func (f *Service) Ready() bool {
	if f.ReadyFunc == nil {
		return true
	}
	return f.ReadyFunc()
}
