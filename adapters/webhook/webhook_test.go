package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"mediasvc/domain"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// run starts n's senders and stops them when t ends.
func run(t *testing.T, n *Notifier) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{URLs: []string{"http://x"}}, "secret"},
		{Options{Secret: "s", URLs: []string{"ftp://x"}}, `"ftp://x"`},
		{Options{Secret: "s", URLs: []string{"http://"}}, `"http://"`},
		{Options{Secret: "s", URLs: []string{"::"}}, `"::"`},
	} {
		_, err := New(tc.opts)
		if !errors.Is(err, domain.ErrInvalidRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.opts, err, tc.want)
		}
	}
}

// TestDeliverSignedAndRetried: a receiver that fails twice with 503 gets
// the event a third time, signed, with the same delivery id.
func TestDeliverSignedAndRetried(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var got []domain.Notice
	var ids []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := Verify("s3cret", r.Header.Get("X-Mediasvc-Signature"), body, time.Now(), time.Minute); err != nil {
			t.Errorf("signature: %v", err)
		}
		if r.Header.Get("X-Mediasvc-Event") != string(domain.NoticeControlChanged) {
			t.Errorf("X-Mediasvc-Event = %q", r.Header.Get("X-Mediasvc-Event"))
		}
		mu.Lock()
		ids = append(ids, r.Header.Get("X-Mediasvc-Delivery"))
		mu.Unlock()
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var n domain.Notice
		if err := json.Unmarshal(body, &n); err != nil {
			t.Errorf("body: %v", err)
		}
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	}))
	defer srv.Close()
	n, err := New(Options{URLs: []string{srv.URL}, Secret: "s3cret", Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, n)
	n.Notify(domain.Notice{ID: "ev1", Type: domain.NoticeControlChanged, Device: "dev1",
		Control: &domain.Control{Device: "dev1", Controllers: []domain.ControlHolder{{Session: "a", Subject: "alice"}}}})
	waitFor(t, "delivery", func() bool { d, _, _ := n.Stats(); return d == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].ID != "ev1" || got[0].Control.Controllers[0].Subject != "alice" {
		t.Fatalf("received %+v", got)
	}
	if len(ids) != 3 || ids[0] != "ev1" || ids[2] != "ev1" {
		t.Fatalf("delivery ids = %v, want ev1 three times", ids)
	}
}

// TestPermanentRefusalNotRetried: a 400 is final, a 429 is retried.
func TestPermanentRefusalNotRetried(t *testing.T) {
	var bad, limited atomic.Int32
	badSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bad.Add(1)
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer badSrv.Close()
	limSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limited.Add(1)
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer limSrv.Close()
	n, _ := New(Options{URLs: []string{badSrv.URL, limSrv.URL}, Secret: "s", Attempts: 3, Backoff: time.Millisecond})
	run(t, n)
	n.Notify(domain.Notice{ID: "x", Type: domain.NoticeDeviceOnline})
	waitFor(t, "both failures", func() bool { _, f, _ := n.Stats(); return f == 2 })
	if bad.Load() != 1 || limited.Load() != 3 {
		t.Fatalf("400 tried %d times (want 1), 429 tried %d times (want 3)", bad.Load(), limited.Load())
	}
}

// TestNotifyNeverBlocks: with a receiver that hangs, Notify returns at
// once and drops past the queue; the healthy receiver still gets
// everything; Run ends when its context does, in-flight request and all.
func TestNotifyNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(release)
	var ok atomic.Int32
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ok.Add(1) }))
	defer healthy.Close()
	n, _ := New(Options{URLs: []string{hung.URL, healthy.URL}, Secret: "s", Queue: 4, Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	const events = 100
	start := time.Now()
	for i := range events {
		n.Notify(domain.Notice{ID: string(rune('a' + i%26)), Type: domain.NoticeDeviceOffline})
		// Let the healthy sender keep up so only the hung one drops.
		waitFor(t, "healthy delivery", func() bool { return ok.Load() == int32(i+1) })
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Logf("Notify loop took %s (machine busy)", d)
	}
	_, _, dropped := n.Stats()
	if dropped < events-4-1 {
		t.Fatalf("dropped %d, want at least %d for the hung receiver", dropped, events-5)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end with its context while a request hung")
	}
	_, _, after := n.Stats()
	if after <= dropped {
		t.Fatalf("events still queued at the end were not counted as dropped (%d → %d)", dropped, after)
	}
}

func TestVerifyRefuses(t *testing.T) {
	now := time.Unix(2_000_000_000, 0)
	body := []byte(`{"a":1}`)
	good := Sign("k", now, body)
	if err := Verify("k", good, body, now, time.Minute); err != nil {
		t.Fatalf("Verify(good) = %v", err)
	}
	for name, tc := range map[string]struct {
		secret, header string
		body           []byte
		at             time.Time
	}{
		"other secret": {"k2", good, body, now},
		"other body":   {"k", good, []byte(`{"a":2}`), now},
		"too old":      {"k", good, body, now.Add(2 * time.Minute)},
		"malformed":    {"k", "v1=abc", body, now},
		"empty":        {"k", "", body, now},
	} {
		if err := Verify(tc.secret, tc.header, tc.body, tc.at, time.Minute); err == nil {
			t.Errorf("Verify(%s) = nil, want an error", name)
		}
	}
}
