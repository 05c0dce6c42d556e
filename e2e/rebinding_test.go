//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// attackPage is the hostile page. It tries everything a rebound page would
// want against each target origin: read the device list, create a
// controller session, offer WHEP, open a session WebSocket and load the
// viewer page. Each attempt records whether it got anywhere.
const attackPage = `<!doctype html><html><head><title>evil</title></head><body>
<script>
window.done = false;
window.results = [];
async function attempt(name, fn) {
  try { const r = await fn(); window.results.push(Object.assign({name}, r)); }
  catch (e) { window.results.push({name, ok: false, error: String(e)}); }
}
async function attack(base) {
  await attempt(base + " GET devices", async () => {
    const r = await fetch(base + "/api/v1/devices");
    return {ok: r.ok, status: r.status, body: (await r.text()).slice(0, 200)};
  });
  await attempt(base + " POST session", async () => {
    const r = await fetch(base + "/api/v1/sessions", {method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({device_id: "demo", role: "controller"})});
    return {ok: r.ok, status: r.status, body: (await r.text()).slice(0, 200)};
  });
  await attempt(base + " POST session no-cors", async () => {
    const r = await fetch(base + "/api/v1/sessions", {method: "POST", mode: "no-cors",
      body: JSON.stringify({device_id: "demo", role: "controller"})});
    return {ok: r.ok, status: r.status};
  });
  await attempt(base + " WHEP", async () => {
    const pc = new RTCPeerConnection();
    pc.addTransceiver("video", {direction: "recvonly"});
    await pc.setLocalDescription(await pc.createOffer());
    const r = await fetch(base + "/whep/demo", {method: "POST",
      headers: {"Content-Type": "application/sdp"}, body: pc.localDescription.sdp});
    pc.close();
    return {ok: r.ok, status: r.status, body: (await r.text()).slice(0, 200)};
  });
  await attempt(base + " viewer page", async () => {
    const r = await fetch(base + "/");
    return {ok: r.ok, status: r.status};
  });
  await attempt(base + " WebSocket", () => new Promise(resolve => {
    const ws = new WebSocket(base.replace("http", "ws") + "/api/v1/sessions/x/ws?token=y");
    ws.onopen = () => { ws.close(); resolve({ok: true}); };
    ws.onerror = () => resolve({ok: false, error: "error"});
    setTimeout(() => resolve({ok: false, error: "timeout"}), 5000);
  }));
}
(async () => {
  const q = new URLSearchParams(location.search);
  await attack(location.origin);                     // same origin, rebound to mediasvc
  await attack("http://evil.test:" + q.get("svc"));  // mediasvc's own port under the evil name
  window.done = true;
})();
</script></body></html>`

// rebindingServer is the attacker's HTTP server for evil.test. It serves
// the attack page once and then "rebinds": every later connection is
// relayed byte for byte to target, which is what a DNS answer changed to
// 127.0.0.1 does to the page's same-origin requests (the Host header still
// says evil.test). It returns the port it listens on.
func rebindingServer(t *testing.T, target string) (port int, relayed *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relayed = &atomic.Int64{}
	var (
		served atomic.Bool
		wg     sync.WaitGroup
	)
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if served.CompareAndSwap(false, true) {
					req, err := http.ReadRequest(bufio.NewReader(c))
					if err != nil {
						served.Store(false)
						return
					}
					_ = req.Body.Close()
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(attackPage), attackPage)
					return
				}
				relayed.Add(1)
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, relayed
}

type attackResult struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Status int    `json:"status"`
	Body   string `json:"body"`
	Error  string `json:"error"`
}

// TestDNSRebindingPageGetsNothing: headless Chromium resolves evil.test to
// 127.0.0.1 and loads a hostile page from it; the page's fetches, WHEP
// offer and WebSocket against mediasvc under that name all fail, and no
// session exists afterwards.
func TestDNSRebindingPageGetsNothing(t *testing.T) {
	in := startInstance(t, nil)
	_, svcPort, _ := net.SplitHostPort(in.Addr)
	evilPort, relayed := rebindingServer(t, in.Addr)

	bctx := startChromium(t, chromedp.Flag("host-resolver-rules", "MAP evil.test 127.0.0.1"))
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("http://evil.test:%d/?svc=%s", evilPort, svcPort))); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	for {
		done, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.done === true`))
		if err == nil && done {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the attack page did not finish: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	results, err := chromedp.Run(ctx, chromedp.Evaluate[[]attackResult](`window.results`))
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 12 {
		t.Fatalf("%d attempts recorded, want 12: %+v", len(results), results)
	}
	sameOrigin := fmt.Sprintf("http://evil.test:%d ", evilPort)
	for _, r := range results {
		t.Logf("%s: ok=%v status=%d %s%s", r.Name, r.OK, r.Status, r.Error, r.Body)
		if r.OK {
			t.Errorf("%s succeeded: %+v", r.Name, r)
		}
		// Same-origin requests reach mediasvc (through the rebinding) and
		// their answers are readable by the page: each must be 421
		// misdirected_host.
		if strings.HasPrefix(r.Name, sameOrigin) && !strings.Contains(r.Name, "no-cors") && !strings.Contains(r.Name, "WebSocket") {
			if r.Status != http.StatusMisdirectedRequest || (r.Body != "" && !strings.Contains(r.Body, "misdirected_host")) {
				t.Errorf("%s: status %d %q, want 421 misdirected_host", r.Name, r.Status, r.Body)
			}
		}
	}
	if relayed.Load() == 0 {
		t.Fatal("no request of the page reached mediasvc through the rebound name: the test proved nothing")
	}
	// Nothing was created: no session now, none ever.
	if n := metricSum(t, in.Base, "media_sessions_created_total", `outcome="ok"`); n != 0 {
		t.Errorf("media_sessions_created_total{outcome=ok} = %v, want 0", n)
	}
	if n := metricSum(t, in.Base, "media_active_sessions", ""); n != 0 {
		t.Errorf("media_active_sessions = %v, want 0", n)
	}
	if n := metricSum(t, in.Base, "media_http_requests_total", `status_class="4xx"`); n < 8 {
		t.Errorf("media_http_requests_total{4xx} = %v: the attack's requests did not reach the service", n)
	}
}

// metricSum adds the values of every series of name at base/metrics whose
// labels contain match.
func metricSum(t *testing.T, base, name, match string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 || !strings.Contains(l[:i], match) {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}
