package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// APIError is a non-2xx answer from the service, with the error body the
// service documents: {"error":{"code":…,"message":…}}.
type APIError struct {
	Status  int
	Code    string
	Message string
	Header  http.Header
	Body    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// StatusOf returns the HTTP status of an *APIError in err's chain, or 0.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// ReadAPIError builds an *APIError from resp, reading (at most 64 KiB of)
// and closing its body.
func ReadAPIError(resp *http.Response) *APIError {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	ae := &APIError{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &eb) == nil {
		ae.Code, ae.Message = eb.Error.Code, eb.Error.Message
	}
	return ae
}

// SessionInfo is the service's answer to POST /api/v1/sessions.
type SessionInfo struct {
	SessionID  string            `json:"session_id"`
	Token      string            `json:"token"`
	WSURL      string            `json:"ws_url"`
	ICEServers []json.RawMessage `json:"ice_servers"`
	ExpiresAt  time.Time         `json:"expires_at"`
}

// CreateSession posts {"device_id":device,"role":role} to base and returns
// the created session, or an *APIError for a non-201 answer.
func CreateSession(ctx context.Context, hc *http.Client, base, apiKey, device, role string) (SessionInfo, error) {
	body, _ := json.Marshal(map[string]string{"device_id": device, "role": role})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/sessions", bytes.NewReader(body))
	if err != nil {
		return SessionInfo{}, fmt.Errorf("create session: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return SessionInfo{}, fmt.Errorf("create session: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return SessionInfo{}, fmt.Errorf("create session: %w", ReadAPIError(resp))
	}
	defer resp.Body.Close()
	var si SessionInfo
	if err := json.NewDecoder(resp.Body).Decode(&si); err != nil {
		return SessionInfo{}, fmt.Errorf("create session: decode answer: %w", err)
	}
	if si.SessionID == "" || si.Token == "" {
		return si, fmt.Errorf("create session: answer lacks session_id or token")
	}
	return si, nil
}

// WSURL returns the absolute WebSocket URL of a session: its ws_url resolved
// against base (http→ws), with the token added when ws_url lacks one. An
// empty token override keeps the session's own token; use token "-" to drop
// it altogether.
func WSURL(base string, si SessionInfo, token string) (string, error) {
	raw := si.WSURL
	if raw == "" {
		raw = "/api/v1/sessions/" + url.PathEscape(si.SessionID) + "/ws"
	}
	b, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("parse base url: %w", err)
	}
	u, err := b.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("parse ws_url %q: %w", raw, err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	}
	q := u.Query()
	switch token {
	case "":
		if q.Get("token") == "" {
			q.Set("token", si.Token)
		}
	case "-":
		q.Del("token")
	default:
		q.Set("token", token)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// DialWS opens the session's WebSocket. hdr may carry an Origin. On a
// refused handshake the *http.Response is returned with the error.
func DialWS(ctx context.Context, wsURL string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	c, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		return nil, resp, fmt.Errorf("dial %s: %w", redact(wsURL), err)
	}
	c.SetReadLimit(1 << 20)
	return c, resp, nil
}

func redact(u string) string {
	if i := strings.Index(u, "token="); i >= 0 {
		return u[:i] + "token=…"
	}
	return u
}

// Message is one JSON message on a session's WebSocket, in either direction.
type Message struct {
	Type      string          `json:"type"`
	SDP       string          `json:"sdp,omitempty"`
	Candidate *CandidateInit  `json:"candidate,omitempty"`
	Stats     json.RawMessage `json:"stats,omitempty"`
	State     string          `json:"state,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	Code      string          `json:"code,omitempty"`
	Message   string          `json:"message,omitempty"`
	// Subject and Until come with a "reserved" error; Control, You and
	// Position make a "control" message.
	Subject  string          `json:"subject,omitempty"`
	Until    string          `json:"until,omitempty"`
	Control  json.RawMessage `json:"control,omitempty"`
	You      string          `json:"you,omitempty"`
	Position int             `json:"position,omitempty"`
	// Received is when the client read it (not on the wire).
	Received time.Time `json:"-"`
}

// CandidateInit is an ICE candidate as browsers trickle it.
type CandidateInit struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// WHEPAnswer is the service's answer to a WHEP POST.
type WHEPAnswer struct {
	SDP string
	// Location is the session resource, resolved to an absolute URL.
	Location string
	ETag     string
	Header   http.Header
}

// WHEPOffer posts an SDP offer to base/whep/device. It returns an *APIError
// for a non-201 answer.
func WHEPOffer(ctx context.Context, hc *http.Client, base, apiKey, device, offer string) (WHEPAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/whep/"+url.PathEscape(device), strings.NewReader(offer))
	if err != nil {
		return WHEPAnswer{}, fmt.Errorf("whep offer: %w", err)
	}
	req.Header.Set("Content-Type", "application/sdp")
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return WHEPAnswer{}, fmt.Errorf("whep offer: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return WHEPAnswer{}, fmt.Errorf("whep offer: %w", ReadAPIError(resp))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return WHEPAnswer{}, fmt.Errorf("whep offer: read answer: %w", err)
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return WHEPAnswer{}, fmt.Errorf("whep offer: 201 without Location")
	}
	abs, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return WHEPAnswer{}, fmt.Errorf("whep offer: bad Location %q: %w", loc, err)
	}
	return WHEPAnswer{SDP: string(b), Location: abs.String(), ETag: resp.Header.Get("ETag"), Header: resp.Header}, nil
}

// WHEPPatch sends an application/trickle-ice-sdpfrag body to a WHEP
// session resource. Any status but 204 (or 200) is an *APIError.
func WHEPPatch(ctx context.Context, hc *http.Client, location, apiKey, etag, frag string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, location, strings.NewReader(frag))
	if err != nil {
		return fmt.Errorf("whep patch: %w", err)
	}
	req.Header.Set("Content-Type", "application/trickle-ice-sdpfrag")
	if etag != "" {
		req.Header.Set("If-Match", etag)
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("whep patch: %w", err)
	}
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("whep patch: %w", ReadAPIError(resp))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil
}

// Delete sends DELETE to a resource URL (a WHEP session or
// /api/v1/sessions/{id}). Any status but 200 or 204 is an *APIError.
func Delete(ctx context.Context, hc *http.Client, resource, apiKey string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, resource, nil)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("delete %s: %w", resource, ReadAPIError(resp))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil
}

// SDPFrag builds an application/trickle-ice-sdpfrag body (RFC 8840) carrying
// candidates for the media section mid, with the local ICE credentials.
func SDPFrag(ufrag, pwd, mid string, candidates []string, end bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", ufrag, pwd)
	fmt.Fprintf(&b, "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:%s\r\n", mid)
	for _, c := range candidates {
		if !strings.HasPrefix(c, "candidate:") {
			c = "candidate:" + c
		}
		fmt.Fprintf(&b, "a=%s\r\n", c)
	}
	if end {
		b.WriteString("a=end-of-candidates\r\n")
	}
	return b.String()
}

// ICECredentials returns the first a=ice-ufrag and a=ice-pwd of an SDP.
func ICECredentials(sdp string) (ufrag, pwd string) {
	for _, l := range strings.Split(sdp, "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "a=ice-ufrag:"); ok && ufrag == "" {
			ufrag = v
		}
		if v, ok := strings.CutPrefix(l, "a=ice-pwd:"); ok && pwd == "" {
			pwd = v
		}
	}
	return ufrag, pwd
}

// FirstMid returns the first a=mid of an SDP, or "0".
func FirstMid(sdp string) string {
	for _, l := range strings.Split(sdp, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "a=mid:"); ok {
			return v
		}
	}
	return "0"
}
