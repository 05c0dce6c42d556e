package domain

// EventType names a server-to-client session event.
type EventType string

// Session event types, as the WebSocket "type" field carries them.
const (
	EventCandidate EventType = "candidate"
	EventState     EventType = "state"
	EventBye       EventType = "bye"
)

// SessionEvent is something the server tells a session's client: a local
// ICE candidate, a state change (connected, device_unavailable, …) or bye.
type SessionEvent struct {
	Type      EventType
	Candidate *Candidate
	// State is a session state or a stream condition such as
	// "device_unavailable" or "device_available".
	State  string
	Reason string
}
