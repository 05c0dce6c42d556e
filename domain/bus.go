package domain

// BusMethod names a call one instance forwards to another over the bus.
type BusMethod string

// Forwarded calls. Session calls go to the instance holding the session's
// peer; create and whep go to the instance holding the device.
const (
	BusOffer     BusMethod = "offer"
	BusCandidate BusMethod = "candidate"
	BusInput     BusMethod = "input"
	BusKeyframe  BusMethod = "keyframe"
	BusStats     BusMethod = "stats"
	BusAttach    BusMethod = "attach"
	BusDetach    BusMethod = "detach"
	BusPing      BusMethod = "ping"
	BusClose     BusMethod = "close"
	BusCreate    BusMethod = "create"
	BusWHEP      BusMethod = "whep"
)

// BusRequest is a forwarded call: the method and what it needs. Fields a
// method does not use are zero.
type BusRequest struct {
	Method    BusMethod
	Session   SessionID
	SDP       string
	Candidate *Candidate
	Input     *InputEvent
	// Topic is where a relayed socket listens for the session's events
	// (attach, detach).
	Topic  string
	Reason string
	Device DeviceID
	Role   Role
	Owner  string
	Kind   string
	// TraceParent and TraceState are the caller's W3C Trace Context
	// (traceparent, tracestate), so the span serving the call continues
	// the caller's trace; empty when the caller traces nothing.
	TraceParent string
	TraceState  string
}

// BusReply is what a forwarded call returns besides its error.
type BusReply struct {
	SDP     string
	Stats   *QualityStats
	Session *Session
	Token   string
}
