package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHostPolicyAllows(t *testing.T) {
	def := NewHostPolicy(nil)
	custom := NewHostPolicy([]string{"Media.Example.com", "*.lab.example", "[fd00::1]", "10.0.0.5"})
	tests := []struct {
		p    HostPolicy
		host string
		want bool
	}{
		{def, "127.0.0.1:8080", true},
		{def, "localhost:8080", true},
		{def, "LOCALHOST", true},
		{def, "localhost.:8080", true},
		{def, "[::1]:8080", true},
		{def, "::1", true},
		{def, "evil.example:8080", false},
		{def, "127.0.0.2:8080", false},
		{def, "localhost.evil.test", false},
		{def, "", false},
		{custom, "media.example.com", true},
		{custom, "media.example.com:443", true},
		{custom, "a.lab.example", true},
		{custom, "x.y.lab.example:8080", true},
		{custom, "lab.example", false},
		{custom, "evillab.example", false},
		{custom, "[fd00::1]:8080", true},
		{custom, "10.0.0.5:8080", true},
		{custom, "127.0.0.1:8080", false}, // a custom list replaces the defaults
		{NewHostPolicy([]string{"*"}), "anything.at.all:1", true},
	}
	for _, tt := range tests {
		if got := tt.p.Allows(tt.host); got != tt.want {
			t.Errorf("%v.Allows(%q) = %v, want %v", tt.p.patterns, tt.host, got, tt.want)
		}
	}
}

// TestMisdirectedHostOnEveryRoute is the DNS-rebinding attack of issue 9:
// a request that names a host the service does not answer to gets 421 on
// every route and reaches nothing, with or without a matching Origin.
func TestMisdirectedHostOnEveryRoute(t *testing.T) {
	rec := &calls{}
	srv, ts := start(t, Config{}, newFake(rec, "ip:127.0.0.1"))
	_ = srv
	srv.Mount("/metrics", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("m 1\n")) }))
	routes := []struct {
		method, path, ctype, body string
		extra                     map[string]string
	}{
		{"GET", "/", "", "", nil},
		{"POST", "/healthz", "", "", nil},
		{"GET", "/healthz/x", "", "", nil},
		{"GET", "/metrics", "", "", nil},
		{"GET", "/api/v1/devices", "", "", nil},
		{"GET", "/api/v1/devices/dev1", "", "", nil},
		{"GET", "/api/v1/instances", "", "", nil},
		{"POST", "/api/v1/sessions", "application/json", `{"device_id":"dev1","role":"controller"}`, nil},
		{"GET", "/api/v1/sessions/sess1", "", "", nil},
		{"DELETE", "/api/v1/sessions/sess1", "", "", nil},
		{"GET", "/api/v1/sessions/sess1/stats", "", "", nil},
		{"GET", "/api/v1/sessions/sess1/ws?token=" + testToken, "", "", map[string]string{
			"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
		}},
		{"POST", "/whep/dev1", "application/sdp", "v=0\r\n", nil},
		{"OPTIONS", "/whep/dev1", "", "", nil},
		{"PATCH", "/whep/sessions/sess1", mimeSDPFrag, "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n", nil},
		{"DELETE", "/whep/sessions/sess1", "", "", nil},
		{"GET", "/no/such/route", "", "", nil},
	}
	for _, host := range []string{"evil.example:8080", "127.0.0.1.evil.test", "localhost.evil.test:80"} {
		for _, rt := range routes {
			var body io.Reader
			if rt.body != "" {
				body = strings.NewReader(rt.body)
			}
			hr, err := http.NewRequest(rt.method, ts.URL+rt.path, body)
			if err != nil {
				t.Fatal(err)
			}
			hr.Host = host
			hr.Header.Set("Origin", "http://"+host)
			if rt.ctype != "" {
				hr.Header.Set("Content-Type", rt.ctype)
			}
			for k, v := range rt.extra {
				hr.Header.Set(k, v)
			}
			res, err := ts.Client().Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusMisdirectedRequest || errCode(t, b) != codeMisdirectedHost {
				t.Errorf("%s %s Host %s = %d %s, want 421 misdirected_host", rt.method, rt.path, host, res.StatusCode, b)
			}
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.names) != 0 || rec.owner != "" {
		t.Fatalf("a misdirected request reached the service: %v owner %q", rec.names, rec.owner)
	}
}

// TestProbesAnswerAnyHost: an orchestrator's liveness and readiness
// probes (Host: the pod's IP) are answered whatever the Host; they carry
// only the status.
func TestProbesAnswerAnyHost(t *testing.T) {
	_, ts := start(t, Config{}, newFake(&calls{}, "ip:127.0.0.1"))
	for _, path := range []string{"/healthz", "/readyz"} {
		for _, method := range []string{"GET"} {
			hr, _ := http.NewRequest(method, ts.URL+path, nil)
			hr.Host = "10.244.3.17:8080"
			res, err := ts.Client().Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || (!strings.Contains(string(b), `"status"`)) {
				t.Errorf("%s %s Host 10.244.3.17:8080 = %d %s, want 200", method, path, res.StatusCode, b)
			}
		}
	}
}

// TestLoopbackNamesServed: with no configuration the local user reaches
// the service as 127.0.0.1, localhost and [::1], same-origin POSTs included.
func TestLoopbackNamesServed(t *testing.T) {
	_, ts := start(t, Config{}, newFake(&calls{}, "ip:127.0.0.1"))
	port := ts.URL[strings.LastIndex(ts.URL, ":")+1:]
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "[::1]:" + port} {
		hr, _ := http.NewRequest("POST", ts.URL+"/api/v1/sessions", strings.NewReader(`{"device_id":"dev1","role":"controller"}`))
		hr.Host = host
		hr.Header.Set("Origin", "http://"+host)
		hr.Header.Set("Content-Type", "application/json")
		res, err := ts.Client().Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Errorf("POST with Host %s = %d, want 201", host, res.StatusCode)
		}
	}
}

// TestRESTRefusesForeignOrigin: a page elsewhere that calls the API with
// the right Host (a plain cross-origin fetch to 127.0.0.1) is refused
// before the handler runs.
func TestRESTRefusesForeignOrigin(t *testing.T) {
	rec := &calls{}
	_, ts := start(t, Config{AllowedOrigins: []string{"https://app.example.com"}}, newFake(rec, "ip:127.0.0.1"))
	for origin, want := range map[string]int{
		"http://evil.test":        http.StatusForbidden,
		"null":                    http.StatusForbidden,
		"https://app.example.com": http.StatusCreated,
	} {
		r := do(t, ts, req{method: "POST", path: "/api/v1/sessions", header: map[string]string{
			"Content-Type": "application/json", "Origin": origin,
		}, body: `{"device_id":"dev1","role":"controller"}`})
		if r.status != want {
			t.Errorf("Origin %s: %d %s, want %d", origin, r.status, r.body, want)
		}
		if want == http.StatusForbidden && errCode(t, r.body) != "forbidden_origin" {
			t.Errorf("Origin %s: code %q", origin, errCode(t, r.body))
		}
	}
}

func TestHostGuardStandalone(t *testing.T) {
	h := NewHostPolicy([]string{"127.0.0.1"}).Guard(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/metrics", nil) // Host example.com
	h.ServeHTTP(w, r)
	if w.Code != http.StatusMisdirectedRequest || !strings.Contains(w.Body.String(), codeMisdirectedHost) {
		t.Fatalf("guard = %d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	r.Host = "127.0.0.1:9464"
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("allowed host = %d", w.Code)
	}
}
