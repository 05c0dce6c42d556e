package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serve wires the real adapters: it answers, and a cancelled context (what
// SIGTERM does) drains it and leaves no goroutine behind.
func TestServeWiresAndDrains(t *testing.T) {
	defer goleak.VerifyNone(t)
	addr, maddr := freeAddr(t), freeAddr(t)
	cfg, _, err := loadConfig([]string{"--http.addr", addr, "--log.level", "warn"}, []string{"MEDIASVC_HTTP_SHUTDOWN_DELAY=50ms", "MEDIASVC_HTTP_DRAIN_TIMEOUT=5s", "MEDIASVC_METRICS_ADDR=" + maddr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, io.Discard, nil) }()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	get := func(path string) (int, string) {
		res, err := hc.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _ := get("/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("not ready: %v", <-done)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := get("/api/v1/devices"); code != http.StatusOK || !strings.Contains(body, `"id":"demo"`) {
		t.Fatalf("devices: %d %s", code, body)
	}
	if code, body := get("/"); code != http.StatusOK || !strings.Contains(body, "<html") {
		t.Fatalf("viewer page: %d", code)
	}
	// DNS rebinding: a name the service does not answer to gets 421 on the
	// API and on the separate metrics listener; the loopback names work.
	withHost := func(target, host string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+target, nil)
		req.Host = host
		res, err := hc.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	_, port, _ := net.SplitHostPort(addr)
	_, mport, _ := net.SplitHostPort(maddr)
	for _, tc := range []struct {
		target, host string
		want         int
	}{
		{addr + "/api/v1/devices", "evil.example:" + port, http.StatusMisdirectedRequest},
		{addr + "/", "evil.example:" + port, http.StatusMisdirectedRequest},
		{maddr + "/metrics", "evil.example:" + mport, http.StatusMisdirectedRequest},
		{addr + "/api/v1/devices", "localhost:" + port, http.StatusOK},
		{maddr + "/metrics", "localhost:" + mport, http.StatusOK},
		{maddr + "/metrics", maddr, http.StatusOK},
	} {
		code, body := withHost(tc.target, tc.host)
		if code != tc.want || (tc.want == http.StatusMisdirectedRequest && !strings.Contains(body, "misdirected_host")) {
			t.Errorf("GET http://%s with Host %s = %d %.200s, want %d", tc.target, tc.host, code, body, tc.want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after cancel")
	}
	tr.CloseIdleConnections()
}

// TestSlowClientsAreCut holds 200 half-sent requests (100 with headers
// that never end, 100 with a body that never ends) while the service keeps
// answering, and sees each of them cut by the server's timeouts.
func TestSlowClientsAreCut(t *testing.T) {
	defer goleak.VerifyNone(t)
	addr := freeAddr(t)
	cfg, _, err := loadConfig([]string{"--http.addr", addr, "--log.level", "error"}, []string{
		"MEDIASVC_HTTP_SHUTDOWN_DELAY=0s", "MEDIASVC_HTTP_DRAIN_TIMEOUT=5s", "MEDIASVC_ADB_ADDR=",
		"MEDIASVC_HTTP_READ_HEADER_TIMEOUT=1s", "MEDIASVC_HTTP_READ_TIMEOUT=2s",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, io.Discard, nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if res, err := hc.Get("http://" + addr + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("not ready")
		}
	}

	conns := make([]net.Conn, 0, 200)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 200 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
		req := "GET /api/v1/devices HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
		if i%2 == 1 {
			req = "POST /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{\"device_id\":"
		}
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	// The service keeps answering while they hang.
	for range 5 {
		res, err := hc.Get("http://" + addr + "/api/v1/devices")
		if err != nil {
			t.Fatalf("a normal request failed while 200 slow clients hang: %v", err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(b), `"demo"`) {
			t.Fatalf("devices = %d %s", res.StatusCode, b)
		}
	}
	// Each slow connection is cut: the server closes it (after a 4xx
	// reply for a half-sent body at most).
	var cut int
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Errorf("conn %d not closed by the server: %v", i, err)
			continue
		}
		if len(b) > 0 && !strings.HasPrefix(string(b), "HTTP/1.1 4") {
			t.Errorf("conn %d got %.100q", i, b)
			continue
		}
		cut++
	}
	if cut != 200 {
		t.Fatalf("%d of 200 slow connections cut", cut)
	}
	// Headers beyond max_header_bytes get 431.
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/devices", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 40000))
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("big headers = %d, want 431", res.StatusCode)
	}
}
