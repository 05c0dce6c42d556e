package domain

// EventType names a server-to-client session event.
type EventType string

// Session event types, as the WebSocket "type" field carries them.
const (
	EventCandidate EventType = "candidate"
	EventState     EventType = "state"
	EventBye       EventType = "bye"
	// EventClipboard carries the device's clipboard text (Text) to a
	// controller's client; viewers never get it.
	EventClipboard EventType = "clipboard"
)

// SessionEvent is something the server tells a session's client: a local
// ICE candidate, a state change (connected, device_unavailable, …), the
// device's clipboard or bye.
type SessionEvent struct {
	Type      EventType
	Candidate *Candidate
	// State is a session state or a stream condition such as
	// "device_unavailable" or "device_available".
	State  string
	Reason string
	// Text is the device's clipboard (EventClipboard), at most
	// MaxClipboardText bytes; Truncated says it was cut to fit.
	Text      string
	Truncated bool
}
