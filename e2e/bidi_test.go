//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A WebDriver BiDi client (W3C, https://w3c.github.io/webdriver-bidi/) for
// Debian's firefox-esr, over the WebSocket its remote agent serves: the
// handful of commands the tests need (session.new, session.subscribe,
// browsingContext.getTree/navigate/captureScreenshot, script.evaluate) and
// the log.entryAdded events (the page's console and uncaught errors).
// Nothing is downloaded: no driver, no browser build, no node package.

const firefoxPath = "/usr/bin/firefox-esr"

// firefoxPrefs go into the fresh profile's user.js: loopback ICE and
// real host candidates (no mDNS names) for WebRTC on 127.0.0.1, autoplay,
// and no network use of its own — in particular nothing may download or
// enable OpenH264, so WebRTC H.264 stays unavailable and the page's offer
// has VP8 (and VP9, AV1) only, as on an offline install.
var firefoxPrefs = map[string]any{
	"media.peerconnection.ice.loopback":                 true,
	"media.peerconnection.ice.obfuscate_host_addresses": false,
	"media.autoplay.default":                            0,
	"media.autoplay.blocking_policy":                    0,
	"media.gmp-gmpopenh264.enabled":                     false,
	"media.gmp-gmpopenh264.autoupdate":                  false,
	"media.gmp-manager.url":                             "http://127.0.0.1:1/",
	"media.gmp-provider.enabled":                        false,
	"app.update.enabled":                                false,
	"browser.shell.checkDefaultBrowser":                 false,
	"datareporting.policy.dataSubmissionEnabled":        false,
	"toolkit.telemetry.enabled":                         false,
	"network.captive-portal-service.enabled":            false,
	"network.connectivity-service.enabled":              false,
	"browser.safebrowsing.update.enabled":               false,
	"extensions.update.enabled":                         false,
	"browser.newtabpage.enabled":                        false,
	"browser.startup.homepage":                          "about:blank",
}

// firefox is a running headless firefox-esr and its BiDi session.
type firefox struct {
	conn    *websocket.Conn
	context string // the top-level browsing context

	mu      sync.Mutex
	next    int
	pending map[int]chan bidiMessage
	logs    []bidiLog
	readErr error
	done    chan struct{}
}

type bidiMessage struct {
	Type    string          `json:"type"` // success, error, event
	ID      *int            `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
}

// bidiLog is one log.entryAdded: a console call or an uncaught error.
type bidiLog struct {
	Level string `json:"level"`
	Text  string `json:"text"`
	Type  string `json:"type"` // console, javascript
}

func (l bidiLog) String() string { return l.Type + "/" + l.Level + ": " + l.Text }

var bidiListening = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

// startFirefox starts headless firefox-esr with a fresh profile and opens
// a BiDi session subscribed to the log; both end with the test.
func startFirefox(t *testing.T) *firefox {
	t.Helper()
	if _, err := os.Stat(firefoxPath); err != nil {
		t.Fatalf("%s is missing (%v): `go tool task deps` installs it (Debian package firefox-esr)", firefoxPath, err)
	}
	profile := t.TempDir()
	var js strings.Builder
	for k, v := range firefoxPrefs {
		b, _ := json.Marshal(v)
		fmt.Fprintf(&js, "user_pref(%q, %s);\n", k, b)
	}
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(js.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cmd := exec.Command(firefoxPath, "--headless", "--no-remote", "--profile", profile,
		"--remote-debugging-port", fmt.Sprint(port), "--width", "1280", "--height", "900", "about:blank")
	cmd.Env = append(os.Environ(), "MOZ_CRASHREPORTER_DISABLE=1", "MOZ_DISABLE_AUTO_SAFE_MODE=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start firefox: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	// Its stderr says where the agent listens; the rest is kept for a
	// failure report.
	urlc := make(chan string, 1)
	var errMu sync.Mutex
	var errTail []string
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if m := bidiListening.FindStringSubmatch(line); m != nil {
				select {
				case urlc <- m[1]:
				default:
				}
			}
			errMu.Lock()
			if len(errTail) < 200 {
				errTail = append(errTail, line)
			}
			errMu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			errMu.Lock()
			t.Logf("firefox stderr:\n%s", strings.Join(errTail, "\n"))
			errMu.Unlock()
		}
	})
	var wsURL string
	select {
	case wsURL = <-urlc:
	case <-exited:
		t.Fatal("firefox exited before its remote agent listened")
	case <-time.After(90 * time.Second): // a cold start on a loaded machine
		t.Fatal("firefox's remote agent did not listen within 90 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, strings.TrimSuffix(wsURL, "/")+"/session", nil)
	if err != nil {
		t.Fatalf("dial BiDi %s: %v", wsURL, err)
	}
	conn.SetReadLimit(64 << 20) // screenshots
	ff := &firefox{conn: conn, pending: map[int]chan bidiMessage{}, done: make(chan struct{})}
	go ff.read()
	t.Cleanup(func() {
		_ = conn.Close(websocket.StatusNormalClosure, "")
		<-ff.done
	})
	t.Cleanup(func() { // runs first: the page's console of a failed test
		if t.Failed() {
			t.Logf("page console:\n%s", joinLogs(ff.consoleLogs()))
		}
	})
	if _, err := ff.call(ctx, "session.new", map[string]any{"capabilities": map[string]any{}}); err != nil {
		t.Fatalf("session.new: %v", err)
	}
	if _, err := ff.call(ctx, "session.subscribe", map[string]any{"events": []string{"log.entryAdded"}}); err != nil {
		t.Fatalf("subscribe to the log: %v", err)
	}
	res, err := ff.call(ctx, "browsingContext.getTree", map[string]any{})
	if err != nil {
		t.Fatalf("getTree: %v", err)
	}
	var tree struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	if err := json.Unmarshal(res, &tree); err != nil || len(tree.Contexts) == 0 {
		t.Fatalf("getTree: %s (%v)", res, err)
	}
	ff.context = tree.Contexts[0].Context
	return ff
}

func (f *firefox) read() {
	defer close(f.done)
	for {
		_, b, err := f.conn.Read(context.Background())
		if err != nil {
			f.mu.Lock()
			f.readErr = err
			for id, c := range f.pending {
				close(c)
				delete(f.pending, id)
			}
			f.mu.Unlock()
			return
		}
		var m bidiMessage
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		f.mu.Lock()
		switch {
		case m.Type == "event" && m.Method == "log.entryAdded":
			var l bidiLog
			if json.Unmarshal(m.Params, &l) == nil && len(f.logs) < 500 {
				f.logs = append(f.logs, l)
			}
		case m.ID != nil:
			if c, ok := f.pending[*m.ID]; ok {
				c <- m
				delete(f.pending, *m.ID)
			}
		}
		f.mu.Unlock()
	}
}

// call sends one command and returns its result.
func (f *firefox) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	f.mu.Lock()
	if f.readErr != nil {
		f.mu.Unlock()
		return nil, f.readErr
	}
	f.next++
	id := f.next
	c := make(chan bidiMessage, 1)
	f.pending[id] = c
	f.mu.Unlock()
	b, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	if err := f.conn.Write(ctx, websocket.MessageText, b); err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m, ok := <-c:
		if !ok {
			return nil, fmt.Errorf("%s: connection lost", method)
		}
		if m.Type == "error" {
			return nil, fmt.Errorf("%s: %s: %s", method, m.Error, m.Message)
		}
		return m.Result, nil
	case <-ctx.Done():
		f.mu.Lock()
		delete(f.pending, id)
		f.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// navigate loads url and waits for the page's load event.
func (f *firefox) navigate(ctx context.Context, url string) error {
	_, err := f.call(ctx, "browsingContext.navigate", map[string]any{"context": f.context, "url": url, "wait": "complete"})
	return err
}

// eval evaluates a JavaScript expression in the page (a promise is
// awaited) and decodes its value, passed through JSON.stringify, into out.
func (f *firefox) eval(ctx context.Context, expr string, out any) error {
	res, err := f.call(ctx, "script.evaluate", map[string]any{
		"expression":   "(async () => JSON.stringify(await (" + expr + ")))()",
		"target":       map[string]any{"context": f.context},
		"awaitPromise": true,
	})
	if err != nil {
		return err
	}
	var r struct {
		Type             string `json:"type"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
		Result struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"result"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return fmt.Errorf("script.evaluate result %s: %w", res, err)
	}
	if r.Type == "exception" {
		msg := "exception"
		if r.ExceptionDetails != nil {
			msg = r.ExceptionDetails.Text
		}
		return errors.New("script.evaluate: " + msg)
	}
	if r.Result.Type != "string" {
		return fmt.Errorf("script.evaluate: a %s, not JSON", r.Result.Type)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal([]byte(r.Result.Value), out)
}

// screenshot saves the viewport as artifacts/name.png.
func (f *firefox) screenshot(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	res, err := f.call(ctx, "browsingContext.captureScreenshot", map[string]any{"context": f.context})
	if err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	var r struct {
		Data string `json:"data"`
	}
	png, err := base64.StdEncoding.DecodeString(func() string { _ = json.Unmarshal(res, &r); return r.Data }())
	if err != nil || len(png) == 0 {
		t.Errorf("screenshot: %v (%d bytes)", err, len(png))
		return
	}
	if err := os.MkdirAll("artifacts", 0o755); err != nil {
		t.Errorf("artifacts dir: %v", err)
		return
	}
	p := filepath.Join("artifacts", name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Errorf("write screenshot: %v", err)
		return
	}
	t.Logf("screenshot saved to e2e/%s (%d bytes)", p, len(png))
}

// logs returns the page's console and error entries so far.
func (f *firefox) consoleLogs() []bidiLog {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bidiLog(nil), f.logs...)
}
