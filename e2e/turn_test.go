//go:build e2e

package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"

	"mediasvc/e2e/client"
)

const turnserverPath = "/usr/bin/turnserver"

// coturn is a running Debian coturn with the TURN REST secret.
type coturn struct {
	Addr   string // 127.0.0.1:port, UDP and TCP
	Secret string
	Log    string
	// RelayMin and RelayMax bound the relay ports it allocates.
	RelayMin, RelayMax int
}

// startCoturn starts turnserver on a free loopback port with TURN REST
// auth (use-auth-secret), relaying on loopback (coturn refuses loopback
// peers unless told), no TLS/DTLS, no CLI and no config file; it is
// stopped when the test ends, and its log shown if the test failed.
func startCoturn(t *testing.T, secret string) *coturn {
	t.Helper()
	if _, err := os.Stat(turnserverPath); err != nil {
		t.Fatalf("%s is missing (%v): `go tool task deps` installs it (Debian package coturn)", turnserverPath, err)
	}
	port := freeUDPAndTCPPort(t)
	relayMin := freeUDPAndTCPPort(t)
	logPath := filepath.Join("artifacts", "logs", strings.ReplaceAll(t.Name(), "/", "_")+"-coturn.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	args := []string{
		"-n", "--log-file=stdout", "--pidfile=" + filepath.Join(dir, "turnserver.pid"), "--db=" + filepath.Join(dir, "turndb"), "--simple-log", "--no-cli", "--no-tls", "--no-dtls",
		"--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--listening-port=" + strconv.Itoa(port),
		// One port for the relays: each test's allocations stay off the
		// ports other tests pick. Enough for a browser and a server.
		"--min-port=" + strconv.Itoa(relayMin), "--max-port=" + strconv.Itoa(relayMin+20),
		"--use-auth-secret", "--static-auth-secret=" + secret, "--realm=mediasvc.test",
		"--allow-loopback-peers", "--fingerprint", "--no-rfc5780", "--no-stun-backward-compatibility",
	}
	cmd := exec.Command(turnserverPath, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start turnserver: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	c := &coturn{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Secret: secret, Log: logPath, RelayMin: relayMin, RelayMax: relayMin + 20}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("coturn log (%s), last lines:\n%s", logPath, tail(logPath, 60))
		}
	})
	// Ready when an Allocate with fresh credentials succeeds.
	deadline := time.Now().Add(15 * time.Second)
	for {
		u, p := turnREST(secret, "ready", time.Now().Add(time.Minute))
		err := allocate(c.Addr, u, p)
		if err == nil {
			return c
		}
		select {
		case <-done:
			t.Fatalf("turnserver exited: %s", tail(logPath, 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("turnserver not allocating within 15 s (%v): %s", err, tail(logPath, 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// freeUDPAndTCPPort returns a loopback port free a moment ago for both.
func freeUDPAndTCPPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		p := freePort(t)
		if u, err := net.ListenPacket("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
			u.Close()
			return p
		}
	}
	t.Fatal("no port free for UDP and TCP")
	return 0
}

// turnREST computes TURN REST credentials as coturn checks them, on its
// own (not with mediasvc's code): "<expiry>:<name>" and
// base64(HMAC-SHA1(secret, username)).
func turnREST(secret, name string, expiry time.Time) (string, string) {
	user := strconv.FormatInt(expiry.Unix(), 10) + ":" + name
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(user))
	return user, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// allocate makes one UDP TURN allocation at addr with the credentials and
// releases it; a refusal is a *stun.TurnError.
func allocate(addr, user, pass string) error {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer conn.Close()
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr, TURNServerAddr: addr, Username: user, Password: pass, Conn: conn, RTO: 300 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	relay, err := c.AllocateWithContext(ctx)
	if err != nil {
		return err
	}
	return relay.Close()
}

// turnCode returns the TURN error code of err (401, 437, …), 0 if none.
func turnCode(err error) int {
	var te stun.TurnError
	if errors.As(err, &te) {
		return int(te.ErrorCodeAttr.Code)
	}
	var tp *stun.TurnError
	if errors.As(err, &tp) {
		return int(tp.ErrorCodeAttr.Code)
	}
	return 0
}

// iceServerJSON is an entry of a session's ice_servers.
type iceServerJSON struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username"`
	Credential string   `json:"credential"`
}

// createSessionICE creates a viewer session of the demo and returns its
// id, expiry and TURN server (the entry with turn: URLs).
func createSessionICE(t *testing.T, in *Instance) (string, time.Time, iceServerJSON) {
	t.Helper()
	resp, body := do(t, "POST", in.Base+"/api/v1/sessions", "application/json", []byte(`{"device_id":"demo","role":"viewer"}`), nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create session = %d %s", resp.StatusCode, body)
	}
	var s struct {
		SessionID  string          `json:"session_id"`
		ExpiresAt  time.Time       `json:"expires_at"`
		ICEServers []iceServerJSON `json:"ice_servers"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("create body %s: %v", body, err)
	}
	for _, srv := range s.ICEServers {
		if len(srv.URLs) > 0 && strings.HasPrefix(srv.URLs[0], "turn:") {
			return s.SessionID, s.ExpiresAt, srv
		}
	}
	t.Fatalf("no TURN server in %s", body)
	return "", time.Time{}, iceServerJSON{}
}

// TestTURNRESTCredentials: with webrtc.turn's secret, every session gets
// its own TURN username "<expiry>:<session id>" and HMAC credential, valid
// until the session's expiry, which a real coturn with that
// static-auth-secret accepts; a credential whose time has passed, and one
// made with another secret, coturn refuses with 401. A reload that
// changes the secret applies to the sessions created after it.
func TestTURNRESTCredentials(t *testing.T) {
	const secret = "e2e-coturn-static-auth-secret"
	ts := startCoturn(t, secret)
	turnCfg := func(s string) Config {
		cfg := defaultConfig()
		cfg.set("webrtc", "turn", map[string]any{"urls": []string{"turn:" + ts.Addr + "?transport=udp"}, "secret": s})
		return cfg
	}
	in := startInstance(t, turnCfg("a-secret-coturn-does-not-know"))

	// Before the reload: mediasvc mints with a secret coturn does not have.
	_, _, srv := createSessionICE(t, in)
	if err := allocate(ts.Addr, srv.Username, srv.Credential); turnCode(err) != 401 {
		t.Fatalf("Allocate with a credential of another secret: %v, want 401", err)
	}

	in.Rewrite(turnCfg(secret))
	var (
		id  string
		exp time.Time
	)
	deadline := time.Now().Add(15 * time.Second)
	for {
		id, exp, srv = createSessionICE(t, in)
		if _, want := turnREST(secret, id, exp); srv.Credential == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("15 s after rewriting the file new sessions still get %+v", srv)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if want := fmt.Sprintf("%d:%s", exp.Unix(), id); srv.Username != want {
		t.Fatalf("TURN username %q, want %q (the session's expiry and id)", srv.Username, want)
	}
	if err := allocate(ts.Addr, srv.Username, srv.Credential); err != nil {
		t.Fatalf("coturn refused the session's own credential: %v", err)
	}
	// The same secret, an expiry a minute ago: refused.
	u, p := turnREST(secret, id, time.Now().Add(-time.Minute))
	if err := allocate(ts.Addr, u, p); turnCode(err) != 401 {
		t.Fatalf("Allocate with an expired credential: %v, want 401", err)
	}
	// A tampered expiry (the credential of the real one): refused.
	tampered := strconv.FormatInt(exp.Add(24*time.Hour).Unix(), 10) + ":" + id
	if err := allocate(ts.Addr, tampered, srv.Credential); turnCode(err) != 401 {
		t.Fatalf("Allocate with a pushed-out expiry: %v, want 401", err)
	}

	// A WHEP player finds its session's own credentials in the answer's
	// Link header (RFC 9725), and coturn takes them.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, err := client.Dial(ctx, client.Config{BaseURL: in.Base, Mode: client.ModeWHEP})
	if err != nil {
		t.Fatalf("WHEP viewer: %v", err)
	}
	defer v.Close()
	w := v.WHEP()
	whepID := w.Location[strings.LastIndexByte(w.Location, '/')+1:]
	var link string
	for _, l := range w.Header.Values("Link") {
		if strings.HasPrefix(l, "<turn:"+ts.Addr) {
			link = l
		}
	}
	m := linkAttrs.FindAllStringSubmatch(link, -1)
	attrs := map[string]string{}
	for _, kv := range m {
		attrs[kv[1]] = kv[2]
	}
	if attrs["rel"] != "ice-server" || attrs["credential-type"] != "password" || !strings.HasSuffix(attrs["username"], ":"+whepID) {
		t.Fatalf("WHEP Link %q (session %s), want rel=ice-server with the session's username and a password credential", link, whepID)
	}
	if err := allocate(ts.Addr, attrs["username"], attrs["credential"]); err != nil {
		t.Fatalf("coturn refused the WHEP session's Link credential: %v", err)
	}
}

// linkAttrs matches the quoted attributes of a Link header value.
var linkAttrs = regexp.MustCompile(`;\s*([a-z-]+)="([^"]*)"`)

// pairStatsJS reports the viewer page's decoded frames and the types of
// the selected candidate pair's local and remote candidates.
const pairStatsJS = `(async () => {
  const m = window.mediasvc;
  if (!m || !m.pc) return {ready: false};
  const r = await m.pc.getStats();
  const out = {ready: true, state: m.pc.connectionState, policy: m.pc.getConfiguration().iceTransportPolicy, framesDecoded: 0, local: '', remote: '', localAddress: ''};
  const byId = {};
  r.forEach(s => { byId[s.id] = s; });
  r.forEach(s => {
    if (s.type === 'inbound-rtp' && (s.kind || s.mediaType) === 'video') out.framesDecoded = s.framesDecoded || 0;
    if (s.type === 'transport' && s.selectedCandidatePairId) {
      const p = byId[s.selectedCandidatePairId];
      if (p) {
        const l = byId[p.localCandidateId], rc = byId[p.remoteCandidateId];
        out.local = l ? l.candidateType : '';
        out.localAddress = l ? (l.address || l.ip || '') + ':' + l.port : '';
        out.remote = rc ? rc.candidateType : '';
      }
    }
  });
  return out;
})()`

type relayStats struct {
	Ready         bool   `json:"ready"`
	State         string `json:"state"`
	Policy        string `json:"policy"`
	FramesDecoded int    `json:"framesDecoded"`
	Local         string `json:"local"`
	Remote        string `json:"remote"`
	LocalAddress  string `json:"localAddress"`
}

// TestChromiumPlaysThroughTURN: headless Chromium forced to
// iceTransportPolicy "relay" (the viewer page's ?relay=1) plays the demo
// through a real coturn, with the session's own TURN REST credentials;
// the selected candidate pair's local end is a relay candidate.
func TestChromiumPlaysThroughTURN(t *testing.T) {
	const secret = "e2e-coturn-static-auth-secret"
	ts := startCoturn(t, secret)
	cfg := defaultConfig()
	cfg.set("webrtc", "turn", map[string]any{"urls": []string{"turn:" + ts.Addr + "?transport=udp"}, "secret": secret})
	in := startInstance(t, cfg)

	bctx := startChromium(t)
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(in.Base+"/?device=demo&role=viewer&relay=1")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var last relayStats
	for {
		st, err := chromedp.Run(ctx, chromedp.Evaluate[relayStats](pairStatsJS, chromedp.EvalAwaitPromise))
		if err == nil {
			last = st
			if st.FramesDecoded > 30 && st.Local != "" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("within 30 s the relay-only page reached only %+v; want framesDecoded > 30 over a selected pair", last)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("chromium over TURN: %+v", last)
	if last.Policy != "relay" {
		t.Errorf("the page's iceTransportPolicy is %q, want relay", last.Policy)
	}
	if last.Local != "relay" {
		t.Errorf("selected pair's local candidate is %q (%s), want relay", last.Local, last.LocalAddress)
	}
	// The relay candidate is one of this coturn's relay addresses.
	host, port, _ := net.SplitHostPort(last.LocalAddress)
	if p, _ := strconv.Atoi(port); host != "127.0.0.1" || p < ts.RelayMin || p > ts.RelayMax {
		t.Errorf("the relay candidate %s is not on coturn's relay ports 127.0.0.1:%d-%d", last.LocalAddress, ts.RelayMin, ts.RelayMax)
	}
}
