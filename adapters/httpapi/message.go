package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"mediasvc/domain"
)

// Message types on the session WebSocket.
const (
	msgOffer     = "offer"     // client → server: {sdp}
	msgAnswer    = "answer"    // server → client: {sdp}
	msgCandidate = "candidate" // both ways: {candidate:{candidate,sdpMid,sdpMLineIndex,usernameFragment}}
	msgBye       = "bye"       // both ways: {reason}
	msgInput     = "input"     // client → server: {action,x,y,x2,y2,duration_ms,key,text,phase,pointer_id,pointer_type,pressure,buttons,scroll_x,scroll_y,repeat,shift,ctrl,alt,meta,paste}
	msgKeyframe  = "keyframe"  // client → server
	msgStats     = "stats"     // server → client: {stats}
	msgState     = "state"     // server → client: {state, reason}
	msgError     = "error"     // server → client: {code, message[, subject, until]}
	// msgClipboard: server → client {text[, truncated]}, the device's
	// clipboard as it changes, to controllers only.
	msgClipboard = "clipboard"
	// msgControl: client → server {action: request|release|take}; server →
	// client {control:{controllers,queue,…}, you: controller|queued|viewer,
	// position} on every change of the device's control (farm only).
	msgControl = "control"
)

// Message is one JSON message on the session WebSocket, in either
// direction. Which fields are set depends on Type; input fields are flat, so
// an input message reads {"type":"input","action":"tap","x":10,"y":20}.
type Message struct {
	Type string `json:"type"`

	SDP       string               `json:"sdp,omitempty"`
	Candidate *domain.Candidate    `json:"candidate,omitempty"`
	State     string               `json:"state,omitempty"`
	Reason    string               `json:"reason,omitempty"`
	Stats     *domain.QualityStats `json:"stats,omitempty"`
	Code      string               `json:"code,omitempty"`
	Message   string               `json:"message,omitempty"`
	// Subject and Until name who holds a reservation and until when, on a
	// "reserved" error.
	Subject string     `json:"subject,omitempty"`
	Until   *time.Time `json:"until,omitempty"`
	// Control, You and Position make a "control" message.
	Control  *controlJSON `json:"control,omitempty"`
	You      string       `json:"you,omitempty"`
	Position int          `json:"position,omitempty"`

	Action     domain.InputType `json:"action,omitempty"`
	X          int              `json:"x,omitempty"`
	Y          int              `json:"y,omitempty"`
	X2         int              `json:"x2,omitempty"`
	Y2         int              `json:"y2,omitempty"`
	DurationMs int              `json:"duration_ms,omitempty"`
	Key        string           `json:"key,omitempty"`
	Text       string           `json:"text,omitempty"`
	// Pointer, scroll, key and clipboard fields (see domain.InputEvent).
	Phase       string  `json:"phase,omitempty"`
	PointerID   int     `json:"pointer_id,omitempty"`
	PointerType string  `json:"pointer_type,omitempty"`
	Pressure    float64 `json:"pressure,omitempty"`
	Buttons     int     `json:"buttons,omitempty"`
	ScrollX     float64 `json:"scroll_x,omitempty"`
	ScrollY     float64 `json:"scroll_y,omitempty"`
	Repeat      int     `json:"repeat,omitempty"`
	Shift       bool    `json:"shift,omitempty"`
	Ctrl        bool    `json:"ctrl,omitempty"`
	Alt         bool    `json:"alt,omitempty"`
	Meta        bool    `json:"meta,omitempty"`
	Paste       bool    `json:"paste,omitempty"`
	// Truncated marks a "clipboard" message whose text was cut to the
	// clipboard limit.
	Truncated bool `json:"truncated,omitempty"`
}

// InputEvent returns the input carried by an "input" message.
func (m *Message) InputEvent() domain.InputEvent {
	return domain.InputEvent{
		Type: m.Action, X: m.X, Y: m.Y, X2: m.X2, Y2: m.Y2,
		DurationMs: m.DurationMs, Key: m.Key, Text: m.Text,
		Phase: m.Phase, PointerID: m.PointerID, PointerType: m.PointerType, Pressure: m.Pressure, Buttons: m.Buttons,
		ScrollX: m.ScrollX, ScrollY: m.ScrollY, Repeat: m.Repeat,
		Shift: m.Shift, Ctrl: m.Ctrl, Alt: m.Alt, Meta: m.Meta, Paste: m.Paste,
	}
}

// errUnknownType marks a well-formed message of a type the server does not
// accept from clients.
var errUnknownType = errors.New("unknown message type")

// decodeMessage parses one client message: exactly one JSON object, no
// unknown fields, a type clients may send, and the fields that type needs.
// Errors wrap domain.ErrInvalidRequest (malformed or incomplete) or
// errUnknownType.
func decodeMessage(data []byte) (Message, error) {
	var m Message
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Message{}, fmt.Errorf("decode message: %w", jsonError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Message{}, badRequest("message must be a single JSON object")
	}
	switch m.Type {
	case "":
		return Message{}, badRequest("message has no type")
	case msgOffer:
		if m.SDP == "" {
			return Message{}, badRequest("offer without sdp")
		}
	case msgCandidate:
		if m.Candidate == nil {
			return Message{}, badRequest("candidate message without candidate")
		}
	case msgInput:
		if m.Action == "" {
			return Message{}, badRequest("input message without action")
		}
	case msgControl:
		switch m.Action {
		case "request", "release", "take":
		default:
			return Message{}, badRequest("control action must be request, release or take")
		}
	case msgKeyframe, msgBye:
	default:
		return Message{}, fmt.Errorf("message type %.32q: %w", m.Type, errUnknownType)
	}
	return m, nil
}
