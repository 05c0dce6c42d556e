package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"mediasvc/adapters/httpapi/httpapitest"
	"mediasvc/domain"
)

func TestHealthAndReady(t *testing.T) {
	ready := true
	var mu sync.Mutex
	fake := &httpapitest.Service{ReadyFunc: func() bool { mu.Lock(); defer mu.Unlock(); return ready }}
	_, ts := start(t, Config{APIKeys: map[string]string{"k": "secret"}}, fake)

	if r := do(t, ts, req{method: "GET", path: "/healthz"}); r.status != 200 {
		t.Fatalf("healthz = %d", r.status)
	}
	if r := do(t, ts, req{method: "GET", path: "/readyz"}); r.status != 200 {
		t.Fatalf("readyz = %d", r.status)
	}
	mu.Lock()
	ready = false
	mu.Unlock()
	if r := do(t, ts, req{method: "GET", path: "/readyz"}); r.status != 503 {
		t.Fatalf("readyz when not ready = %d, want 503", r.status)
	}
	if r := do(t, ts, req{method: "GET", path: "/healthz"}); r.status != 200 {
		t.Fatalf("healthz when not ready = %d, want 200", r.status)
	}
}

func TestViewerPage(t *testing.T) {
	_, ts := start(t, Config{APIKeys: map[string]string{"k": "secret"}}, &httpapitest.Service{})
	r := do(t, ts, req{method: "GET", path: "/"})
	if r.status != 200 {
		t.Fatalf("GET / = %d", r.status)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("content type %q", ct)
	}
	body := string(r.body)
	for _, want := range []string{"<video", "window.mediasvc", "addTransceiver('video'", "sessionStorage", "playsinline", ".stage"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "/*SCRIPT*/") || strings.Contains(body, "/*STYLE*/") {
		t.Error("page placeholders not replaced")
	}
}

func TestRESTHappyPaths(t *testing.T) {
	rec := &calls{}
	_, ts := start(t, Config{}, newFake(rec, "ip:127.0.0.1"))

	t.Run("devices", func(t *testing.T) {
		r := do(t, ts, req{method: "GET", path: "/api/v1/devices"})
		var body struct{ Devices []domain.Device }
		if r.status != 200 || json.Unmarshal(r.body, &body) != nil || len(body.Devices) != 1 || body.Devices[0].ID != testDevice {
			t.Fatalf("devices = %d %s", r.status, r.body)
		}
	})
	t.Run("device", func(t *testing.T) {
		r := do(t, ts, req{method: "GET", path: "/api/v1/devices/dev1"})
		var d domain.Device
		if r.status != 200 || json.Unmarshal(r.body, &d) != nil || d.Width != 720 {
			t.Fatalf("device = %d %s", r.status, r.body)
		}
	})
	t.Run("create session", func(t *testing.T) {
		r := do(t, ts, req{method: "POST", path: "/api/v1/sessions", header: jsonHeader(), body: `{"device_id":"dev1"}`})
		if r.status != 201 {
			t.Fatalf("create = %d %s", r.status, r.body)
		}
		var got createSessionResponse
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		if got.SessionID != string(testSession) || got.Token != testToken || got.Role != domain.RoleViewer || got.DeviceID != "dev1" {
			t.Fatalf("create body %+v", got)
		}
		wantWS := "ws://" + strings.TrimPrefix(ts.URL, "http://") + "/api/v1/sessions/sess1/ws?token=" + testToken
		if got.WSURL != wantWS {
			t.Fatalf("ws_url %q, want %q", got.WSURL, wantWS)
		}
		if len(got.ICEServers) != 3 || got.ExpiresAt.IsZero() {
			t.Fatalf("ice/expiry %+v", got)
		}
		// The TURN REST server carries this session's own credentials,
		// valid until the session's expiry, and never the secret.
		wantUser, wantCred := domain.TURNCredentials(testTURNSecret, testSession, got.ExpiresAt)
		if rest := got.ICEServers[2]; rest.Username != wantUser || rest.Credential != wantCred ||
			rest.Username != fmt.Sprintf("%d:%s", testNow.Add(time.Minute).Unix(), testSession) {
			t.Fatalf("TURN REST server %+v, want username %q credential %q", rest, wantUser, wantCred)
		}
		if strings.Contains(string(r.body), testTURNSecret) {
			t.Fatalf("the TURN secret is in the response: %s", r.body)
		}
		rec.mu.Lock()
		owner := rec.owner
		rec.mu.Unlock()
		if owner != "ip:127.0.0.1" {
			t.Fatalf("owner %q", owner)
		}
	})
	t.Run("create controller", func(t *testing.T) {
		r := do(t, ts, req{method: "POST", path: "/api/v1/sessions", header: jsonHeader(), body: `{"device_id":"dev1","role":"controller"}`})
		if r.status != 201 || !strings.Contains(string(r.body), `"role":"controller"`) {
			t.Fatalf("create = %d %s", r.status, r.body)
		}
	})
	t.Run("get session", func(t *testing.T) {
		r := do(t, ts, req{method: "GET", path: "/api/v1/sessions/sess1"})
		if r.status != 200 || strings.Contains(string(r.body), "token") || !strings.Contains(string(r.body), `"state":"new"`) {
			t.Fatalf("get = %d %s", r.status, r.body)
		}
	})
	t.Run("stats", func(t *testing.T) {
		r := do(t, ts, req{method: "GET", path: "/api/v1/sessions/sess1/stats"})
		var st domain.QualityStats
		if r.status != 200 || json.Unmarshal(r.body, &st) != nil || st.FrameRate != 30 {
			t.Fatalf("stats = %d %s", r.status, r.body)
		}
	})
	t.Run("delete session", func(t *testing.T) {
		r := do(t, ts, req{method: "DELETE", path: "/api/v1/sessions/sess1"})
		if r.status != 204 || !rec.has("close:deleted") {
			t.Fatalf("delete = %d %s", r.status, r.body)
		}
	})
}

func TestPublicURLAndProxy(t *testing.T) {
	rec := &calls{}
	_, ts := start(t, Config{PublicURL: "https://media.example.com/base/", TrustProxy: true}, newFake(rec, ""))
	r := do(t, ts, req{method: "POST", path: "/api/v1/sessions", header: map[string]string{
		"Content-Type": "application/json", "X-Forwarded-For": "203.0.113.9, 198.51.100.7",
	}, body: `{"device_id":"dev1"}`})
	var got createSessionResponse
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if want := "wss://media.example.com/base/api/v1/sessions/sess1/ws?token=" + testToken; got.WSURL != want {
		t.Fatalf("ws_url %q, want %q", got.WSURL, want)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.owner != "ip:198.51.100.7" {
		t.Fatalf("owner %q, want the last forwarded address", rec.owner)
	}
}

func TestAPIKeys(t *testing.T) {
	rec := &calls{}
	_, ts := start(t, Config{APIKeys: map[string]string{"alice": "key-a", "bob": "key-b"}}, newFake(rec, "alice"))
	auth := func(k string) map[string]string {
		return map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + k}
	}
	r := do(t, ts, req{method: "POST", path: "/api/v1/sessions", header: auth("key-a"), body: `{"device_id":"dev1"}`})
	if r.status != 201 {
		t.Fatalf("with key = %d %s", r.status, r.body)
	}
	rec.mu.Lock()
	if rec.owner != "alice" {
		t.Errorf("owner %q, want alice", rec.owner)
	}
	rec.mu.Unlock()
	// Bob may not see Alice's session.
	if r := do(t, ts, req{method: "GET", path: "/api/v1/sessions/sess1", header: auth("key-b")}); r.status != 404 {
		t.Errorf("foreign session = %d, want 404", r.status)
	}
	if r := do(t, ts, req{method: "GET", path: "/api/v1/sessions/sess1", header: auth("key-a")}); r.status != 200 {
		t.Errorf("own session = %d, want 200", r.status)
	}
	// Public routes need no key.
	for _, p := range []string{"/", "/healthz", "/readyz"} {
		if r := do(t, ts, req{method: "GET", path: p}); r.status != 200 {
			t.Errorf("GET %s without key = %d", p, r.status)
		}
	}
}

// TestBadInput covers the REST and WHEP inputs a client can get wrong.
func TestBadInput(t *testing.T) {
	rec := &calls{}
	keys := map[string]string{"alice": "key-a"}
	_, ts := start(t, Config{APIKeys: keys}, newFake(rec, "alice"))
	bearer := "Bearer key-a"
	h := func(kv ...string) map[string]string {
		m := map[string]string{"Authorization": bearer}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	big := `{"device_id":"` + strings.Repeat("x", 70<<10) + `"}`
	tests := []struct {
		name       string
		r          req
		wantStatus int
		wantCode   string
	}{
		{"oversized JSON", req{"POST", "/api/v1/sessions", h("Content-Type", "application/json"), big}, 413, codeBodyTooLarge},
		{"malformed JSON", req{"POST", "/api/v1/sessions", h("Content-Type", "application/json"), `{"device_id":`}, 400, "invalid_request"},
		{"not JSON", req{"POST", "/api/v1/sessions", h("Content-Type", "application/json"), `device=dev1`}, 400, "invalid_request"},
		{"unknown field", req{"POST", "/api/v1/sessions", h("Content-Type", "application/json"), `{"device_id":"dev1","colour":"red"}`}, 400, "invalid_request"},
		{"trailing data", req{"POST", "/api/v1/sessions", h("Content-Type", "application/json"), `{"device_id":"dev1"}{}`}, 400, "invalid_request"},
		{"wrong type", req{"POST", "/api/v1/sessions", h("Content-Type", "application/json"), `{"device_id":5}`}, 400, "invalid_request"},
		{"empty body", req{"POST", "/api/v1/sessions", h("Content-Type", "application/json"), ``}, 400, "invalid_request"},
		{"missing device_id", req{"POST", "/api/v1/sessions", h("Content-Type", "application/json"), `{"role":"viewer"}`}, 400, "invalid_request"},
		{"bad role", req{"POST", "/api/v1/sessions", h("Content-Type", "application/json"), `{"device_id":"dev1","role":"admin"}`}, 400, "invalid_request"},
		{"form content type", req{"POST", "/api/v1/sessions", h("Content-Type", "application/x-www-form-urlencoded"), `{"device_id":"dev1"}`}, 415, codeUnsupportedMedia},
		{"unknown device", req{"POST", "/api/v1/sessions", h("Content-Type", "application/json"), `{"device_id":"nope"}`}, 404, "device_not_found"},
		{"unknown device GET", req{"GET", "/api/v1/devices/nope", h(), ""}, 404, "device_not_found"},
		{"unknown session", req{"GET", "/api/v1/sessions/nope", h(), ""}, 404, "session_not_found"},
		{"missing API key", req{"GET", "/api/v1/devices", nil, ""}, 401, "unauthorized"},
		{"wrong API key", req{"GET", "/api/v1/devices", map[string]string{"Authorization": "Bearer key-x"}, ""}, 401, "unauthorized"},
		{"basic auth", req{"GET", "/api/v1/devices", map[string]string{"Authorization": "Basic a2V5LWE6"}, ""}, 401, "unauthorized"},
		{"WHEP without key", req{"POST", "/whep/dev1", map[string]string{"Content-Type": "application/sdp"}, "v=0\r\n"}, 401, "unauthorized"},
		{"WHEP wrong content type", req{"POST", "/whep/dev1", h("Content-Type", "application/json"), "v=0\r\n"}, 415, codeUnsupportedMedia},
		{"WHEP empty SDP", req{"POST", "/whep/dev1", h("Content-Type", "application/sdp"), "  \r\n"}, 400, "invalid_request"},
		{"WHEP not SDP", req{"POST", "/whep/dev1", h("Content-Type", "application/sdp"), "hello"}, 400, "invalid_offer"},
		{"WHEP oversized SDP", req{"POST", "/whep/dev1", h("Content-Type", "application/sdp"), "v=0\r\n" + strings.Repeat("a=x\r\n", 14000)}, 413, codeBodyTooLarge},
		{"WHEP unknown device", req{"POST", "/whep/nope", h("Content-Type", "application/sdp"), "v=0\r\n"}, 404, "device_not_found"},
		{"PATCH wrong content type", req{"PATCH", "/whep/sessions/sess1", h("Content-Type", "application/sdp"), "a=end-of-candidates\r\n"}, 415, codeUnsupportedMedia},
		{"PATCH bad fragment", req{"PATCH", "/whep/sessions/sess1", h("Content-Type", mimeSDPFrag), "this is not sdp\r\n"}, 400, "invalid_request"},
		{"PATCH bad candidate", req{"PATCH", "/whep/sessions/sess1", h("Content-Type", mimeSDPFrag), "a=candidate:1 1 udp x 1.2.3.4 5 typ host\r\n"}, 400, "invalid_candidate"},
		{"PATCH no candidates", req{"PATCH", "/whep/sessions/sess1", h("Content-Type", mimeSDPFrag), "a=ice-ufrag:abcd\r\n"}, 400, "invalid_request"},
		{"PATCH ICE restart", req{"PATCH", "/whep/sessions/sess1", h("Content-Type", mimeSDPFrag, "If-Match", "*"), "a=ice-ufrag:new\r\na=ice-pwd:newpasswordnewpassword\r\na=end-of-candidates\r\n"}, 501, codeNotImplemented},
		{"PATCH stale etag", req{"PATCH", "/whep/sessions/sess1", h("Content-Type", mimeSDPFrag, "If-Match", `"nope"`), "a=end-of-candidates\r\n"}, 412, codePrecondition},
		{"PATCH unknown session", req{"PATCH", "/whep/sessions/nope", h("Content-Type", mimeSDPFrag), "a=end-of-candidates\r\n"}, 404, "session_not_found"},
		{"unknown route", req{"GET", "/api/v1/nothing", h(), ""}, 404, codeNotFound},
		{"wrong method", req{"PUT", "/api/v1/sessions", h(), ""}, 405, codeMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, ts, tt.r)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.wantStatus, r.body)
			}
			if got := errCode(t, r.body); got != tt.wantCode {
				t.Fatalf("code %q, want %q; body %s", got, tt.wantCode, r.body)
			}
			if tt.wantStatus == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

func TestErrorTable(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{domain.ErrSessionNotFound, 404, "session_not_found"},
		{domain.ErrDeviceNotFound, 404, "device_not_found"},
		{domain.ErrInvalidRequest, 400, "invalid_request"},
		{domain.ErrInvalidOffer, 400, "invalid_offer"},
		{&domain.NoCommonCodecError{Offered: []string{"VP8"}, Sends: "H264 High 4 (640028)"}, 406, "no_common_codec"},
		{domain.ErrInvalidCandidate, 400, "invalid_candidate"},
		{domain.ErrInvalidInput, 400, "invalid_input"},
		{domain.ErrTooManyCandidates, 400, "too_many_candidates"},
		{domain.ErrUnauthorized, 401, "unauthorized"},
		{domain.ErrForbidden, 403, "forbidden"},
		{domain.ErrConflict, 409, "conflict"},
		{domain.ErrSessionExists, 409, "session_exists"},
		{domain.ErrInvalidTransition, 409, "invalid_transition"},
		{domain.ErrSessionClosed, 409, "session_closed"},
		{domain.ErrRateLimited, 429, "rate_limited"},
		{&domain.RateLimitError{Limit: "ip", RetryAfter: 1500 * time.Millisecond}, 429, "rate_limited"},
		{domain.ErrLimitExceeded, 429, "limit_exceeded"},
		{domain.ErrDraining, 503, "draining"},
		{domain.ErrUnavailable, 503, "unavailable"},
		{domain.ErrDeviceUnavailable, 503, "device_unavailable"},
		{context.DeadlineExceeded, 503, codeTimeout},
		{fmt.Errorf("%w: %w", domain.ErrDeviceNotFound, context.DeadlineExceeded), 404, "device_not_found"},
		{domain.ErrInputBusy, 429, "input_busy"},
		{fmt.Errorf("input shell: %w: %w", domain.ErrInputBusy, domain.ErrDeviceUnavailable), 429, "input_busy"},
		{&http.MaxBytesError{Limit: 10}, 413, codeBodyTooLarge},
		{errors.New("redis: connection refused at 10.0.0.5"), 500, codeInternal},
	}
	srv := New(Config{}, &httpapitest.Service{}, nil)
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			wrapped := fmt.Errorf("do thing: %w", tt.err)
			w := httptest.NewRecorder()
			srv.writeError(w, httptest.NewRequest("GET", "/x", nil), wrapped)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			var body errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if body.Error.Code != tt.code || body.Error.Message == "" {
				t.Fatalf("body %+v, want code %q", body, tt.code)
			}
			if tt.status >= 500 && strings.Contains(body.Error.Message, "do thing") {
				t.Fatalf("5xx message leaks detail: %q", body.Error.Message)
			}
			if tt.status == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
			wantRA := tt.code == codeTimeout || errors.As(tt.err, new(*domain.RateLimitError))
			if ra := w.Header().Get("Retry-After"); (ra != "") != wantRA {
				t.Fatalf("Retry-After %q on %d %s", ra, w.Code, tt.code)
			}
		})
	}
	for _, m := range errorTable {
		if m.status < 400 || m.code == "" {
			t.Errorf("bad table row %v", m)
		}
	}
}

func TestRateLimitedRetryAfter(t *testing.T) {
	fake := newFake(&calls{}, "")
	fake.CreateSessionFunc = func(context.Context, domain.DeviceID, domain.Role, string) (domain.Session, string, error) {
		return domain.Session{}, "", fmt.Errorf("create session: %w", &domain.RateLimitError{Limit: "owner", RetryAfter: 2100 * time.Millisecond})
	}
	_, ts := start(t, Config{}, fake)
	r := do(t, ts, req{method: "POST", path: "/api/v1/sessions", header: jsonHeader(), body: `{"device_id":"dev1"}`})
	if r.status != 429 || r.header.Get("Retry-After") != "3" || errCode(t, r.body) != "rate_limited" {
		t.Fatalf("got %d Retry-After=%q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
}

func TestPanicRecovery(t *testing.T) {
	var logs syncBuffer
	fake := newFake(&calls{}, "")
	fake.DevicesFunc = func(context.Context) ([]domain.Device, error) { panic("boom") }
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	srv := New(Config{Meter: mp.Meter("test")}, fake, bufLogger(&logs))
	// Every site is exported at 0 before any panic.
	if n, sets := readMetric(t, rd, PanicsMetric); n != 0 || len(sets) != len(panicSites) {
		t.Fatalf("before any panic: %v panics over %d series, want 0 over %d", n, len(sets), len(panicSites))
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	r := do(t, ts, req{method: "GET", path: "/api/v1/devices", header: map[string]string{"X-Request-Id": "rid-42"}})
	if r.status != 500 || errCode(t, r.body) != codeInternal {
		t.Fatalf("panic → %d %s", r.status, r.body)
	}
	out := logs.String()
	for _, want := range []string{"panic in handler", "boom", "rid-42", "/api/v1/devices", "GET", "goroutine"} {
		if !strings.Contains(out, want) {
			t.Errorf("panic log lacks %q:\n%s", want, out)
		}
	}
	// The server still serves.
	if r := do(t, ts, req{method: "GET", path: "/api/v1/devices/dev1"}); r.status != 200 {
		t.Fatalf("after panic = %d", r.status)
	}
	if n, _ := readMetric(t, rd, PanicsMetric, attribute.String("where", panicHTTP)); n != 1 {
		t.Fatalf("%s{where=%s} = %v, want 1", PanicsMetric, panicHTTP, n)
	}
	if n, _ := readMetric(t, rd, PanicsMetric); n != 1 {
		t.Fatalf("%s = %v in all, want 1", PanicsMetric, n)
	}
}

func TestObserveAndMount(t *testing.T) {
	type obs struct {
		route, method string
		status        int
	}
	var mu sync.Mutex
	var seen []obs
	cfg := Config{
		APIKeys: map[string]string{"k": "secret"},
		Observe: func(route, method string, status int, _ time.Duration) {
			mu.Lock()
			seen = append(seen, obs{route, method, status})
			mu.Unlock()
		},
	}
	srv := New(cfg, newFake(&calls{}, "k"), nil)
	srv.Mount("/metrics", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("m 1\n")) }))
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	if r := do(t, ts, req{method: "GET", path: "/metrics"}); r.status != 200 || string(r.body) != "m 1\n" {
		t.Fatalf("metrics = %d %q", r.status, r.body)
	}
	do(t, ts, req{method: "GET", path: "/api/v1/devices/dev1", header: map[string]string{"Authorization": "Bearer secret"}})
	do(t, ts, req{method: "GET", path: "/nowhere"})
	mu.Lock()
	defer mu.Unlock()
	want := []obs{{"/metrics", "GET", 200}, {"/api/v1/devices/{id}", "GET", 200}, {"unmatched", "GET", 404}}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("observed %v, want %v", seen, want)
	}
}

func TestRequestIDEchoed(t *testing.T) {
	_, ts := start(t, Config{}, &httpapitest.Service{})
	r := do(t, ts, req{method: "GET", path: "/healthz", header: map[string]string{"X-Request-Id": "abc"}})
	if r.header.Get("X-Request-Id") != "abc" {
		t.Fatalf("request id %q", r.header.Get("X-Request-Id"))
	}
	r = do(t, ts, req{method: "GET", path: "/healthz", header: map[string]string{"X-Request-Id": strings.Repeat("x", 100)}})
	if id := r.header.Get("X-Request-Id"); len(id) != 16 {
		t.Fatalf("long request id not replaced: %q", id)
	}
}

func TestInstances(t *testing.T) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	fake := &httpapitest.Service{InstancesFunc: func(context.Context) ([]domain.Instance, error) {
		return []domain.Instance{{ID: "a", URL: "http://a:8080", StartedAt: at, HeartbeatAt: at}}, nil
	}}
	_, ts := start(t, Config{}, fake)
	r := do(t, ts, req{method: "GET", path: "/api/v1/instances"})
	var body struct{ Instances []domain.Instance }
	if r.status != 200 || json.Unmarshal(r.body, &body) != nil || len(body.Instances) != 1 || body.Instances[0].URL != "http://a:8080" {
		t.Fatalf("instances = %d %s", r.status, r.body)
	}
	fake.InstancesFunc = func(context.Context) ([]domain.Instance, error) {
		return nil, fmt.Errorf("list instances: %w", domain.ErrUnavailable)
	}
	if r := do(t, ts, req{method: "GET", path: "/api/v1/instances"}); r.status != 503 {
		t.Fatalf("instances with the registry down = %d %s, want 503", r.status, r.body)
	}
}
