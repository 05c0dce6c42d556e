//go:build e2e

package e2e

import (
	"context"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"mediasvc/e2e/client"
)

func TestSIGTERMDrainsViewers(t *testing.T) {
	// Goroutines of earlier tests (chromedp, pion) are not this test's.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	cfg := defaultConfig()
	cfg.set("http", "drain_timeout", "5s")
	cfg.set("http", "shutdown_delay", "500ms")
	in := startInstance(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	tr := &http.Transport{}
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	defer tr.CloseIdleConnections()

	var vs []*client.Viewer
	closeAll := func() {
		for _, v := range vs {
			_ = v.Close()
		}
	}
	defer closeAll()
	for i := range 3 {
		mode := client.ModeWS
		v, err := client.Dial(ctx, client.Config{BaseURL: in.Base, Mode: mode, HTTP: hc})
		if err != nil {
			t.Fatalf("viewer %d: %v", i, err)
		}
		vs = append(vs, v)
	}
	for i, v := range vs {
		if err := v.WaitFrames(ctx, 15, true); err != nil {
			t.Fatalf("viewer %d: %v", i, err)
		}
	}

	// Poll /readyz from just before the signal until the process is gone.
	var (
		mu       sync.Mutex
		saw503   time.Time
		statuses = map[int]int{}
	)
	pollDone := make(chan struct{})
	stopPoll := make(chan struct{})
	go func() {
		defer close(pollDone)
		for {
			select {
			case <-stopPoll:
				return
			case <-in.Done():
				return
			default:
			}
			req, _ := http.NewRequest(http.MethodGet, in.Base+"/readyz", nil)
			resp, err := hc.Do(req)
			if err == nil {
				resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				if resp.StatusCode == http.StatusServiceUnavailable && saw503.IsZero() {
					saw503 = time.Now()
				}
				mu.Unlock()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(50 * time.Millisecond)

	sigAt := time.Now()
	if err := in.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	for i, v := range vs {
		bctx, bcancel := context.WithTimeout(ctx, in.Drain+2*time.Second)
		m, err := v.WaitMessage(bctx, func(m client.Message) bool { return m.Type == "bye" })
		bcancel()
		if err != nil {
			t.Errorf("viewer %d: no bye: %v (messages %v)", i, err, msgTypes(v.Messages()))
			continue
		}
		if m.Reason == "" {
			t.Errorf("viewer %d: bye without a reason", i)
		}
		t.Logf("viewer %d: bye %q %s after SIGTERM", i, m.Reason, m.Received.Sub(sigAt).Round(time.Millisecond))
		done, _ := v.WSClosed()
		select {
		case <-done:
		case <-time.After(in.Drain + 2*time.Second):
			t.Errorf("viewer %d: WebSocket still open after bye", i)
		}
	}
	margin := 3 * time.Second
	select {
	case <-in.Done():
	case <-time.After(in.Drain + margin):
		t.Fatalf("mediasvc still running %s after SIGTERM (drain_timeout %s)", in.Drain+margin, in.Drain)
	}
	exitAfter := time.Since(sigAt)
	close(stopPoll)
	<-pollDone
	if code := in.ExitCode(); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	mu.Lock()
	t.Logf("exited %s after SIGTERM; /readyz answers during the drain: %v", exitAfter.Round(time.Millisecond), statuses)
	if saw503.IsZero() {
		t.Errorf("/readyz never answered 503 between SIGTERM and exit (answers: %v)", statuses)
	} else {
		t.Logf("/readyz 503 %s after SIGTERM", saw503.Sub(sigAt).Round(time.Millisecond))
	}
	mu.Unlock()

	closeAll()
	vs = nil
	tr.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
}
