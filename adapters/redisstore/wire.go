package redisstore

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"mediasvc/domain"
)

// The bus's wire format, in one place: the envelope every request and reply
// travels in, the JSON of forwarded calls and session events, and how
// domain errors keep their identity across instances, and the signed frame
// every message travels in.

// envelope is one request or reply on the wire.
type envelope struct {
	ID      string          `json:"id"`
	ReplyTo string          `json:"reply_to,omitempty"`
	Body    json.RawMessage `json:"body"`
}

// wireRequest is a domain.BusRequest on the wire.
type wireRequest struct {
	Method    domain.BusMethod   `json:"method"`
	Session   domain.SessionID   `json:"session,omitempty"`
	SDP       string             `json:"sdp,omitempty"`
	Candidate *domain.Candidate  `json:"candidate,omitempty"`
	Input     *domain.InputEvent `json:"input,omitempty"`
	Topic     string             `json:"topic,omitempty"`
	Reason    string             `json:"reason,omitempty"`
	Device    domain.DeviceID    `json:"device,omitempty"`
	Role      domain.Role        `json:"role,omitempty"`
	User      string             `json:"user,omitempty"`
	Kind      string             `json:"kind,omitempty"`
	// The caller's W3C Trace Context, carried as is.
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
}

// wireReply is a domain.BusReply and its error on the wire.
type wireReply struct {
	SDP     string               `json:"sdp,omitempty"`
	Stats   *domain.QualityStats `json:"stats,omitempty"`
	Session *domain.Session      `json:"session,omitempty"`
	Token   string               `json:"token,omitempty"`
	Err     *wireError           `json:"err,omitempty"`
}

// wireEvent is a domain.SessionEvent on the wire.
type wireEvent struct {
	Type      domain.EventType  `json:"type"`
	Candidate *domain.Candidate `json:"candidate,omitempty"`
	State     string            `json:"state,omitempty"`
	Reason    string            `json:"reason,omitempty"`
	Text      string            `json:"text,omitempty"`
	Truncated bool              `json:"truncated,omitempty"`
}

// wireError carries a domain error across instances.
type wireError struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	Limit      string `json:"limit,omitempty"`
	RetryAfter int64  `json:"retry_after_ms,omitempty"`
}

// wireErrors are the domain errors that keep their identity across
// instances; any other arrives as domain.ErrUnavailable.
var wireErrors = map[string]error{
	"session_not_found": domain.ErrSessionNotFound, "limit_exceeded": domain.ErrLimitExceeded,
	"session_exists": domain.ErrSessionExists, "session_closed": domain.ErrSessionClosed,
	"device_not_found": domain.ErrDeviceNotFound, "device_unavailable": domain.ErrDeviceUnavailable,
	"too_many_candidates": domain.ErrTooManyCandidates, "invalid_candidate": domain.ErrInvalidCandidate,
	"invalid_offer": domain.ErrInvalidOffer, "invalid_input": domain.ErrInvalidInput,
	"no_common_codec": domain.ErrNoCommonCodec, "input_busy": domain.ErrInputBusy,
	"invalid_request": domain.ErrInvalidRequest, "forbidden": domain.ErrForbidden,
	"conflict": domain.ErrConflict, "draining": domain.ErrDraining, "unavailable": domain.ErrUnavailable,
	"unauthorized": domain.ErrUnauthorized, "invalid_transition": domain.ErrInvalidTransition,
}

// wireCodes is wireErrors in a fixed order, so an error matching several
// sentinels always gets the same code.
var wireCodes = []string{
	"session_not_found", "limit_exceeded", "session_exists", "session_closed",
	"device_not_found", "input_busy", "device_unavailable", "too_many_candidates", "invalid_candidate",
	"invalid_offer", "no_common_codec", "invalid_input", "invalid_request", "forbidden", "conflict", "draining",
	"unauthorized", "invalid_transition", "unavailable",
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	var rl *domain.RateLimitError
	if errors.As(err, &rl) {
		return &wireError{Code: "rate_limited", Message: err.Error(), Limit: rl.Limit, RetryAfter: rl.RetryAfter.Milliseconds()}
	}
	for _, code := range wireCodes {
		if errors.Is(err, wireErrors[code]) {
			return &wireError{Code: code, Message: err.Error()}
		}
	}
	return &wireError{Code: "unavailable", Message: err.Error()}
}

func (w *wireError) err(instance string) error {
	if w.Code == "rate_limited" {
		return &domain.RateLimitError{Limit: w.Limit, RetryAfter: time.Duration(w.RetryAfter) * time.Millisecond}
	}
	sentinel, ok := wireErrors[w.Code]
	if !ok {
		sentinel = domain.ErrUnavailable
	}
	return fmt.Errorf("instance %s: %s: %w", instance, w.Message, sentinel)
}

func encodeRequest(r domain.BusRequest) []byte {
	b, _ := json.Marshal(wireRequest{
		Method: r.Method, Session: r.Session, SDP: r.SDP, Candidate: r.Candidate, Input: r.Input,
		Topic: r.Topic, Reason: r.Reason, Device: r.Device, Role: r.Role, User: r.Owner, Kind: r.Kind,
		TraceParent: r.TraceParent, TraceState: r.TraceState,
	})
	return b
}

func decodeRequest(b []byte) (domain.BusRequest, error) {
	var w wireRequest
	if err := json.Unmarshal(b, &w); err != nil {
		return domain.BusRequest{}, fmt.Errorf("malformed bus request: %w", domain.ErrInvalidRequest)
	}
	return domain.BusRequest{
		Method: w.Method, Session: w.Session, SDP: w.SDP, Candidate: w.Candidate, Input: w.Input,
		Topic: w.Topic, Reason: w.Reason, Device: w.Device, Role: w.Role, Owner: w.User, Kind: w.Kind,
		TraceParent: w.TraceParent, TraceState: w.TraceState,
	}, nil
}

func encodeReply(r domain.BusReply, err error) []byte {
	b, _ := json.Marshal(wireReply{SDP: r.SDP, Stats: r.Stats, Session: r.Session, Token: r.Token, Err: toWire(err)})
	return b
}

// decodeReply returns the reply and the remote's error, or a malformed
// reply's error wrapping domain.ErrUnavailable.
func decodeReply(instance string, b []byte) (domain.BusReply, error) {
	var w wireReply
	if err := json.Unmarshal(b, &w); err != nil {
		return domain.BusReply{}, fmt.Errorf("malformed reply from %s: %w", instance, domain.ErrUnavailable)
	}
	rep := domain.BusReply{SDP: w.SDP, Stats: w.Stats, Session: w.Session, Token: w.Token}
	if w.Err != nil {
		return rep, w.Err.err(instance)
	}
	return rep, nil
}

func encodeEvent(ev domain.SessionEvent) []byte {
	b, _ := json.Marshal(wireEvent{Type: ev.Type, Candidate: ev.Candidate, State: ev.State, Reason: ev.Reason,
		Text: ev.Text, Truncated: ev.Truncated})
	return b
}

func decodeEvent(b []byte) (domain.SessionEvent, error) {
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil || w.Type == "" {
		return domain.SessionEvent{}, fmt.Errorf("malformed session event: %w", domain.ErrInvalidRequest)
	}
	return domain.SessionEvent{Type: w.Type, Candidate: w.Candidate, State: w.State, Reason: w.Reason,
		Text: w.Text, Truncated: w.Truncated}, nil
}

func encodeEnvelope(e envelope) []byte {
	b, _ := json.Marshal(e)
	return b
}

func decodeEnvelope(b []byte) (envelope, error) {
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return envelope{}, fmt.Errorf("malformed bus envelope: %w", domain.ErrInvalidRequest)
	}
	return e, nil
}

// Signed frames. Every message on the bus — request, reply, session event —
// travels as
//
//	v1.<unix ms>.<base64url HMAC-SHA256>.<payload>
//
// where the MAC covers "v1." + channel + "." + <unix ms> + "." + payload
// under the shared bus secret. Binding the channel means a message
// captured on one instance's channel cannot be replayed onto another's;
// the timestamp bounds how long a captured message can be replayed onto
// its own (BusOptions.Window). A receiver drops, and counts, a frame that
// is unsigned (not this shape), badly signed (no accepted secret gives its
// MAC) or stale (its time further than the window from the receiver's
// clock, either way).

// frameVersion starts every signed frame.
const frameVersion = "v1"

// Reasons a received frame is dropped; the label values of
// media_bus_rejected_total.
const (
	rejectUnsigned = iota
	rejectBadSignature
	rejectStale
	rejectReplay // a request whose id was already served within the window
	rejectReasons
)

var rejectNames = [rejectReasons]string{"unsigned", "bad_signature", "stale", "replay"}

// signer seals and opens frames with a list of secrets: the first signs,
// every one verifies (so a secret can be rotated in without a flag day).
type signer struct {
	secrets [][]byte
	window  time.Duration
	now     func() time.Time
}

func (s *signer) mac(key []byte, channel, ts string, payload []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(frameVersion + "." + channel + "." + ts + "."))
	h.Write(payload)
	return h.Sum(nil)
}

// seal signs payload for channel with the first secret.
func (s *signer) seal(channel string, payload []byte) []byte {
	ts := strconv.FormatInt(s.now().UnixMilli(), 10)
	sig := base64.RawURLEncoding.EncodeToString(s.mac(s.secrets[0], channel, ts, payload))
	out := make([]byte, 0, len(frameVersion)+len(ts)+len(sig)+3+len(payload))
	out = append(out, frameVersion+"."+ts+"."+sig+"."...)
	return append(out, payload...)
}

// open checks a frame received on channel and returns its payload, or the
// reason (rejectUnsigned, rejectBadSignature, rejectStale) it is refused.
func (s *signer) open(channel string, frame []byte) ([]byte, int) {
	rest, ok := bytes.CutPrefix(frame, []byte(frameVersion+"."))
	if !ok {
		return nil, rejectUnsigned
	}
	ts, rest, ok := bytes.Cut(rest, []byte("."))
	if !ok || len(ts) == 0 || len(ts) > 19 {
		return nil, rejectUnsigned
	}
	sig64, payload, ok := bytes.Cut(rest, []byte("."))
	if !ok {
		return nil, rejectUnsigned
	}
	ms, err := strconv.ParseInt(string(ts), 10, 64)
	if err != nil {
		return nil, rejectUnsigned
	}
	sig, err := base64.RawURLEncoding.DecodeString(string(sig64))
	if err != nil || len(sig) != sha256.Size {
		return nil, rejectBadSignature
	}
	good := false
	for _, key := range s.secrets {
		if hmac.Equal(sig, s.mac(key, channel, string(ts), payload)) {
			good = true
			break
		}
	}
	if !good {
		return nil, rejectBadSignature
	}
	// The MAC is checked first, so a forged timestamp is a bad signature
	// and stale counts only what a holder of the secret once sent.
	if d := s.now().Sub(time.UnixMilli(ms)); d > s.window || d < -s.window {
		return nil, rejectStale
	}
	return payload, -1
}
