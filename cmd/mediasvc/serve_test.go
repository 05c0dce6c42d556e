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
