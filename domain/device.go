package domain

// DeviceState is whether a device can stream.
type DeviceState string

// Device states.
const (
	DeviceOnline       DeviceState = "online"
	DeviceOffline      DeviceState = "offline"
	DeviceUnauthorized DeviceState = "unauthorized"
	DeviceUnavailable  DeviceState = "unavailable"
)

// BreakerState is the state of a device's circuit breaker.
type BreakerState string

// Breaker states.
const (
	BreakerClosed   BreakerState = "closed"
	BreakerHalfOpen BreakerState = "half-open"
	BreakerOpen     BreakerState = "open"
)

// Device is a screen mediasvc can stream.
type Device struct {
	ID      DeviceID     `json:"id"`
	Name    string       `json:"name"`
	Model   string       `json:"model,omitempty"`
	State   DeviceState  `json:"state"`
	Width   int          `json:"width"`
	Height  int          `json:"height"`
	Backend string       `json:"backend"`
	Breaker BreakerState `json:"breaker"`
	Viewers int          `json:"viewers"`
	Audio   bool         `json:"audio"`
	// CaptureRestarts counts how often the source restarted its capture
	// process on its own (screenrecord's time limit, a bitrate change)
	// without the viewers noticing.
	CaptureRestarts uint64 `json:"capture_restarts,omitempty"`
}
