package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"mediasvc/adapters/httpapi/httpapitest"
	"mediasvc/domain"
)

var _ Service = (*httpapitest.Service)(nil)

var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// testTURNSecret is the fake's TURN REST secret: the session's own
// credentials are minted from it, and it must never reach a client.
const testTURNSecret = "fake-turn-rest-secret"

const (
	testDevice  = domain.DeviceID("dev1")
	testSession = domain.SessionID("sess1")
	testToken   = "tok-secret"
)

func sessionOf(id domain.SessionID, owner string) domain.Session {
	s := domain.NewSession(id, testDevice, domain.RoleController, owner, time.Minute, testNow)
	s.Kind = "ws"
	return s
}

// calls records what the fake was asked, safely across goroutines.
type calls struct {
	mu    sync.Mutex
	names []string
	cands []domain.Candidate
	input []domain.InputEvent
	owner string
}

func (c *calls) add(name string) {
	c.mu.Lock()
	c.names = append(c.names, name)
	c.mu.Unlock()
}

func (c *calls) has(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.names {
		if n == name {
			return true
		}
	}
	return false
}

func (c *calls) count(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, x := range c.names {
		if x == name {
			n++
		}
	}
	return n
}

// newFake returns a fake with one device (dev1) and one session (sess1,
// token tok-secret) owned by sessOwner.
func newFake(rec *calls, sessOwner string) *httpapitest.Service {
	dev := domain.Device{ID: testDevice, Name: "Pixel", State: domain.DeviceOnline, Width: 720, Height: 1280, Backend: "demo", Breaker: domain.BreakerClosed, Viewers: 1}
	return &httpapitest.Service{
		DevicesFunc: func(context.Context) ([]domain.Device, error) { return []domain.Device{dev}, nil },
		DeviceFunc: func(_ context.Context, id domain.DeviceID) (domain.Device, error) {
			if id != testDevice {
				return domain.Device{}, domain.ErrDeviceNotFound
			}
			return dev, nil
		},
		CreateSessionFunc: func(_ context.Context, d domain.DeviceID, role domain.Role, owner string) (domain.Session, string, error) {
			rec.mu.Lock()
			rec.owner = owner
			rec.mu.Unlock()
			if d != testDevice {
				return domain.Session{}, "", domain.ErrDeviceNotFound
			}
			s := sessionOf(testSession, owner)
			s.Role = role
			return s, testToken, nil
		},
		SessionFunc: func(_ context.Context, id domain.SessionID) (domain.Session, error) {
			if id != testSession {
				return domain.Session{}, domain.ErrSessionNotFound
			}
			return sessionOf(id, sessOwner), nil
		},
		CloseSessionFunc: func(_ context.Context, id domain.SessionID, reason string) error {
			rec.add("close:" + reason)
			if id != testSession {
				return domain.ErrSessionNotFound
			}
			return nil
		},
		SessionStatsFunc: func(context.Context, domain.SessionID) (domain.QualityStats, error) {
			return domain.QualityStats{At: testNow, State: "connected", FrameRate: 30, BitrateBps: 2e6}, nil
		},
		ConnectFunc: func(_ context.Context, id domain.SessionID, token string, _ func(domain.SessionEvent)) (func(), error) {
			if id != testSession {
				return nil, domain.ErrSessionNotFound
			}
			if token != testToken {
				return nil, domain.ErrUnauthorized
			}
			rec.add("connect")
			return func() { rec.add("detach") }, nil
		},
		OfferFunc: func(_ context.Context, _ domain.SessionID, sdp string) (string, error) {
			if !strings.HasPrefix(sdp, "v=0") {
				return "", domain.ErrInvalidOffer
			}
			return "v=0\r\nanswer\r\n", nil
		},
		AddCandidateFunc: func(_ context.Context, _ domain.SessionID, c domain.Candidate) error {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.cands) >= 50 {
				return domain.ErrTooManyCandidates
			}
			rec.cands = append(rec.cands, c)
			return nil
		},
		InputFunc: func(_ context.Context, _ domain.SessionID, ev domain.InputEvent) error {
			if err := ev.Validate(720, 1280); err != nil {
				return err
			}
			rec.mu.Lock()
			rec.input = append(rec.input, ev)
			rec.mu.Unlock()
			return nil
		},
		RequestKeyframeFunc: func(context.Context, domain.SessionID) error { rec.add("keyframe"); return nil },
		WHEPFunc: func(_ context.Context, d domain.DeviceID, owner, offer string) (domain.Session, string, error) {
			rec.mu.Lock()
			rec.owner = owner
			rec.mu.Unlock()
			if d != testDevice {
				return domain.Session{}, "", domain.ErrDeviceNotFound
			}
			s := sessionOf(testSession, owner)
			s.Kind = "whep"
			return s, "v=0\r\nwhep-answer\r\n", nil
		},
		ICEServersForFunc: func(sess domain.Session) []domain.ICEServer {
			return domain.ICEServersFor([]domain.ICEServer{
				{URLs: []string{"stun:stun.example.net:3478"}},
				{URLs: []string{"turn:turn.example.net?transport=udp"}, Username: "user", Credential: `pa"ss`},
				{URLs: []string{"turn:rest.example.net:3478"}, Secret: testTURNSecret},
			}, sess.ID, sess.ExpiresAt)
		},
	}
}

// start serves a Server for svc and shuts it down when the test ends.
func start(t *testing.T, cfg Config, svc Service) (*Server, *httptest.Server) {
	t.Helper()
	srv := New(cfg, svc, nil)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx, "test over")
		ts.Close()
	})
	return srv, ts
}

type req struct {
	method, path string
	header       map[string]string
	body         string
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, ts *httptest.Server, r req) resp {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequest(r.method, ts.URL+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	res, err := ts.Client().Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// errCode returns the error code of a JSON error body, or "".
func errCode(t *testing.T, b []byte) string {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(b, &e); err != nil {
		return ""
	}
	return e.Error.Code
}

func jsonHeader() map[string]string { return map[string]string{"Content-Type": "application/json"} }

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func bufLogger(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
