package httpapi

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"mediasvc/domain"
)

const fragOK = "a=ice-ufrag:EsAw\r\n" +
	"a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n" +
	"m=audio 9 RTP/AVP 0\r\n" +
	"a=mid:0\r\n" +
	"a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n" +
	"a=candidate:473322822 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active generation 0\r\n" +
	"a=end-of-candidates\r\n"

func TestWHEP(t *testing.T) {
	rec := &calls{}
	_, ts := start(t, Config{AllowedOrigins: []string{"player.example.com"}}, newFake(rec, "ip:127.0.0.1"))

	r := do(t, ts, req{method: "POST", path: "/whep/dev1", header: map[string]string{"Content-Type": "application/sdp"}, body: "v=0\r\noffer\r\n"})
	if r.status != 201 {
		t.Fatalf("POST = %d %s", r.status, r.body)
	}
	if string(r.body) != "v=0\r\nwhep-answer\r\n" || r.header.Get("Content-Type") != "application/sdp" {
		t.Fatalf("answer %q (%s)", r.body, r.header.Get("Content-Type"))
	}
	loc := r.header.Get("Location")
	if loc != "/whep/sessions/sess1" {
		t.Fatalf("Location %q", loc)
	}
	tag := r.header.Get("ETag")
	if tag != etag(testSession) || !strings.HasPrefix(tag, `"`) {
		t.Fatalf("ETag %q", tag)
	}
	links := r.header.Values("Link")
	user, cred := domain.TURNCredentials(testTURNSecret, testSession, testNow.Add(time.Minute))
	want := []string{
		`<stun:stun.example.net:3478>; rel="ice-server"`,
		`<turn:turn.example.net?transport=udp>; rel="ice-server"; username="user"; credential="pa\"ss"; credential-type="password"`,
		`<turn:rest.example.net:3478>; rel="ice-server"; username="` + user + `"; credential="` + cred + `"; credential-type="password"`,
	}
	if fmt.Sprint(links) != fmt.Sprint(want) {
		t.Fatalf("Link\n got %q\nwant %q", links, want)
	}

	patch := func(body string, hdr ...string) resp {
		h := map[string]string{"Content-Type": mimeSDPFrag}
		for i := 0; i+1 < len(hdr); i += 2 {
			h[hdr[i]] = hdr[i+1]
		}
		return do(t, ts, req{method: "PATCH", path: loc, header: h, body: body})
	}
	if r := patch(fragOK, "If-Match", tag); r.status != 204 {
		t.Fatalf("PATCH = %d %s", r.status, r.body)
	}
	rec.mu.Lock()
	cands := append([]domain.Candidate(nil), rec.cands...)
	rec.mu.Unlock()
	if len(cands) != 3 {
		t.Fatalf("got %d candidates, want 2 + end marker", len(cands))
	}
	c := cands[0]
	if !strings.HasPrefix(c.Candidate, "candidate:1387637174 ") || c.SDPMid == nil || *c.SDPMid != "0" ||
		c.SDPMLineIndex == nil || *c.SDPMLineIndex != 0 || c.UsernameFragment == nil || *c.UsernameFragment != "EsAw" {
		t.Fatalf("candidate %+v", c)
	}
	if cands[2].Candidate != "" {
		t.Fatalf("end-of-candidates marker %+v", cands[2])
	}

	// Fill up to the fake's limit of 50, then the 51st is refused.
	var b strings.Builder
	b.WriteString("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n")
	for i := len(cands); i < 50; i++ {
		fmt.Fprintf(&b, "a=candidate:%d 1 udp 2122260223 192.0.2.1 %d typ host\r\n", i, 10000+i)
	}
	if r := patch(b.String()); r.status != 204 {
		t.Fatalf("PATCH to 50 = %d %s", r.status, r.body)
	}
	r51 := patch("a=candidate:51 1 udp 2122260223 192.0.2.1 9999 typ host\r\n")
	if r51.status != 400 || errCode(t, r51.body) != "too_many_candidates" {
		t.Fatalf("51st candidate = %d %s", r51.status, r51.body)
	}

	// Too many lines in one fragment.
	var many strings.Builder
	for i := 0; i <= DefaultMaxFragLines; i++ {
		many.WriteString("a=ice-options:trickle\r\n")
	}
	if r := patch(many.String()); r.status != 400 {
		t.Fatalf("long fragment = %d", r.status)
	}

	if r := do(t, ts, req{method: "DELETE", path: loc}); r.status != 200 || !rec.has("close:whep delete") {
		t.Fatalf("DELETE = %d %s", r.status, r.body)
	}
}

func TestWHEPOptionsAndCORS(t *testing.T) {
	_, ts := start(t, Config{AllowedOrigins: []string{"player.example.com"}}, newFake(&calls{}, ""))

	r := do(t, ts, req{method: "OPTIONS", path: "/whep/dev1"})
	if r.status != 204 || r.header.Get("Accept-Post") != "application/sdp" {
		t.Fatalf("OPTIONS = %d Accept-Post=%q", r.status, r.header.Get("Accept-Post"))
	}
	r = do(t, ts, req{method: "OPTIONS", path: "/whep/sessions/sess1", header: map[string]string{
		"Origin": "https://player.example.com", "Access-Control-Request-Method": "PATCH",
	}})
	if r.status != 204 || r.header.Get("Accept-Patch") != mimeSDPFrag ||
		r.header.Get("Access-Control-Allow-Origin") != "https://player.example.com" ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "PATCH") {
		t.Fatalf("preflight = %d %v", r.status, r.header)
	}
	r = do(t, ts, req{method: "POST", path: "/whep/dev1", header: map[string]string{
		"Origin": "https://player.example.com", "Content-Type": "application/sdp",
	}, body: "v=0\r\n"})
	if r.status != 201 || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "Location") {
		t.Fatalf("CORS POST = %d %v", r.status, r.header)
	}
	r = do(t, ts, req{method: "POST", path: "/whep/dev1", header: map[string]string{
		"Origin": "https://evil.example.org", "Content-Type": "application/sdp",
	}, body: "v=0\r\n"})
	if r.status != 403 {
		t.Fatalf("foreign origin POST = %d", r.status)
	}
}

func TestOriginAllowed(t *testing.T) {
	loop := NewHostPolicy(nil)
	tests := []struct {
		origin, reqHost string
		hosts           HostPolicy
		patterns        []string
		want            bool
	}{
		{"http://127.0.0.1:8080", "127.0.0.1:8080", loop, nil, true},
		{"http://localhost:8080", "localhost:8080", loop, nil, true},
		{"http://[::1]:8080", "[::1]:8080", loop, nil, true},
		{"http://localhost:3000", "127.0.0.1:8080", loop, nil, true}, // another local page: an allowed host
		// A rebound page is same-origin with its request; that never counts.
		{"http://evil.test:8080", "evil.test:8080", loop, nil, false},
		{"http://svc:8080", "svc:8080", NewHostPolicy([]string{"svc"}), nil, true},
		{"http://other:8080", "svc:8080", NewHostPolicy([]string{"svc"}), nil, false},
		{"https://app.example.com", "svc", loop, []string{"app.example.com"}, true},
		{"https://a.example.com", "svc", loop, []string{"*.example.com"}, true},
		{"https://example.com", "svc", loop, []string{"*.example.com"}, false},
		{"http://app.example.com", "svc", loop, []string{"https://app.example.com"}, false},
		{"https://app.example.com", "svc", loop, []string{"https://app.example.com"}, true},
		{"https://anything.org", "svc", loop, []string{"*"}, true},
		{"null", "svc", loop, []string{"app.example.com"}, false},
		{"::bad", "svc", loop, nil, false},
		{"file://localhost", "localhost", loop, nil, false},
		// Under the "*" host opt-out the old same-host rule applies.
		{"http://media.lan:8080", "media.lan:8080", NewHostPolicy([]string{"*"}), nil, true},
		{"http://evil.test", "media.lan:8080", NewHostPolicy([]string{"*"}), nil, false},
	}
	for _, tt := range tests {
		if got := originAllowed(tt.origin, tt.reqHost, tt.hosts, tt.patterns); got != tt.want {
			t.Errorf("originAllowed(%q, host %q, %v) = %v, want %v", tt.origin, tt.reqHost, tt.patterns, got, tt.want)
		}
	}
}

func TestParseSDPFrag(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		n       int
		wantErr error
	}{
		{"rfc example", fragOK, 3, nil},
		{"bare end", "a=end-of-candidates", 1, nil},
		{"session-level candidate", "a=candidate:1 1 UDP 1 10.0.0.1 5000 typ host\n", 1, nil},
		{"lf only and blank lines", "\n\na=mid:0\na=candidate:1 1 udp 1 10.0.0.1 5000 typ srflx raddr 0.0.0.0 rport 0\n\n", 1, nil},
		{"garbage", "hello world", 0, domain.ErrInvalidRequest},
		{"uppercase type", "A=candidate:1", 0, domain.ErrInvalidRequest},
		{"bad candidate", "a=candidate:1 1 udp 1 10.0.0.1 0 typ host", 0, domain.ErrInvalidCandidate},
		{"no candidates", "a=ice-ufrag:x\na=ice-pwd:y\n", 0, domain.ErrInvalidRequest},
		{"empty", "", 0, domain.ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseSDPFrag(tt.body, 10)
			if tt.wantErr != nil {
				if !errorsIs(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(f.candidates()); got != tt.n {
				t.Fatalf("%d candidates, want %d", got, tt.n)
			}
		})
	}
}

// A WHEP offer that runs out of the service's time (its answer timeout
// under load) is 503 "timeout" with Retry-After, never 500.
func TestWHEPTimeoutIs503(t *testing.T) {
	fake := newFake(&calls{}, "")
	fake.WHEPFunc = func(context.Context, domain.DeviceID, string, string) (domain.Session, string, error) {
		return domain.Session{}, "", fmt.Errorf("offer on session s1: answer for session s1: answer: wait for candidates: %w", context.DeadlineExceeded)
	}
	_, ts := start(t, Config{}, fake)
	r := do(t, ts, req{method: "POST", path: "/whep/dev1", header: map[string]string{"Content-Type": "application/sdp"}, body: "v=0\r\noffer\r\n"})
	if r.status != 503 || r.header.Get("Retry-After") != "2" || errCode(t, r.body) != codeTimeout {
		t.Fatalf("got %d Retry-After=%q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if strings.Contains(string(r.body), "candidates") {
		t.Fatalf("503 body leaks detail: %s", r.body)
	}
}
