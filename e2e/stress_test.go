//go:build e2e

package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"mediasvc/e2e/adbdevice"
	"mediasvc/e2e/client"
)

// stressTarget is the number of sessions issue 10 asks the stress test
// for; stressDefault is what it runs unless -stress.sessions says
// otherwise. On the two-core machine shared with other work where it was
// written (load average 15–20), 250 sessions pass in about two minutes
// (both rounds); with 500, even the warm-up round without faults left 100
// peer connections unconnected after 20 s (setup p50 31 s), so 500 is
// `-args -stress.sessions=500`, for a machine of its own.
const (
	stressTarget  = 500
	stressDefault = 250
)

var stressSessions = flag.Int("stress.sessions", stressDefault, fmt.Sprintf("sessions TestStressSessionsUnderFaults runs (issue 10's target: %d)", stressTarget))

// Each round starts its sessions spread over stressSpread, and each holds
// its session for stressHold, sending input and reading stats every
// second: the rounds span the faults, and most sessions overlap.
const (
	stressSpread = 10 * time.Second
	stressHold   = 6 * time.Second
)

// stressDeadline bounds the whole run: past it the service is taken for
// deadlocked and its goroutines are dumped.
const stressDeadline = 4 * time.Minute

// TestStressSessionsUnderFaults: -stress.sessions sessions (stressDefault;
// the target is 500),
// each a real pion peer connection signalled over the session WebSocket,
// all at once do offer, trickle candidates, input, stats and close, while
// the device's capture fails and is reopened every 2 s (the emulated
// device drops its connection) and Redis, the session store, restarts
// once. Every session ends with the server's bye on its socket (none is
// lost), nothing deadlocks (past stressDeadline the service's goroutines
// are dumped and the test fails), and afterwards the service's goroutines
// and RSS are back to their baseline ± 5 %.
func TestStressSessionsUnderFaults(t *testing.T) {
	n := *stressSessions
	env := singleRedis(t)
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	cfg := churnConfig(t, redisConfig(env, "stress"))
	cfg.set("adb", "addr", srv.Addr())
	cfg.set("adb", "retry_min", "100ms")
	cfg.set("adb", "retry_max", "500ms")
	cfg.set("adb", "breaker", map[string]any{"failures": 1_000_000})
	cfg.set("demo", "enabled", false)
	cfg.set("control", "max_controllers", 100)
	cfg.set("control", "grace", "0s")
	pprofAddr := cfg["debug"]["pprof_addr"].(string)
	in := startInstance(t, cfg)
	serial := d.Serial()
	waitDevices(t, in, 10*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[serial].Width > 0 })

	api, err := client.NewAPI(true)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	var st stressStats
	st.status = map[string]int{}
	round := func(ctx context.Context, sessions int) {
		var wg sync.WaitGroup
		for i := range sessions {
			wg.Go(func() {
				select {
				case <-ctx.Done():
					return
				case <-time.After(stressSpread * time.Duration(i) / time.Duration(sessions)):
				}
				st.session(ctx, in.Base, serial, hc, api, i)
			})
		}
		wg.Wait()
	}

	// Warm-up: one round of the same size without faults, so that the
	// baseline holds what a busy service keeps (pools, a heap grown to its
	// working size); then the captures stop after their grace.
	wctx, wcancel := context.WithTimeout(context.Background(), stressDeadline)
	warmStart := time.Now()
	round(wctx, n)
	wcancel()
	t.Logf("warm-up: %d sessions in %v: %s", n, time.Since(warmStart).Round(time.Millisecond), st.summary())
	if st.byes.Load() != int64(n) {
		t.Fatalf("warm-up without faults: %s", st.summary())
	}
	settle := func() footprint {
		tr.CloseIdleConnections()
		var f footprint
		for range 20 {
			time.Sleep(500 * time.Millisecond)
			f = measureFootprint(t, in, pprofAddr)
			if s := scrapeAll(t, in.Base); sumSeries(s, "media_active_sessions") == 0 && sumSeries(s, "media_captures_active") == 0 {
				break
			}
		}
		return f
	}
	base := settle()
	t.Logf("baseline after the warm-up: %s", base)
	st.reset()

	// The faults: the capture fails every 2 s; Redis restarts once, 3 s in.
	faults, stopFaults := context.WithCancel(context.Background())
	var fwg sync.WaitGroup
	var drops atomic.Int64
	restarted := make(chan time.Time, 1)
	fwg.Go(func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-faults.Done():
				return
			case <-tick.C:
				d.Drop()
				drops.Add(1)
			}
		}
	})
	fwg.Go(func() {
		select {
		case <-faults.Done():
			return
		case <-time.After(3 * time.Second):
		}
		env.srv.Kill()
		time.Sleep(time.Second)
		env.srv.Restart()
		restarted <- time.Now()
	})

	ctx, cancel := context.WithTimeout(context.Background(), stressDeadline)
	defer cancel()
	start := time.Now()
	done := make(chan struct{})
	go func() { defer close(done); round(ctx, n) }()
	select {
	case <-done:
	case <-ctx.Done():
		dumpGoroutines(t, pprofAddr)
		<-done
		t.Fatalf("%d sessions not done within %v: %s", n, stressDeadline, st.summary())
	}
	took := time.Since(start)
	ended := time.Now()
	stopFaults()
	fwg.Wait()
	select {
	case at := <-restarted:
		if at.After(ended) {
			t.Errorf("Redis restarted after the round ended")
		}
	default:
		t.Error("Redis never restarted during the round")
	}
	if drops.Load() < 2 {
		t.Errorf("the capture failed %d times during the round, want several", drops.Load())
	}
	t.Logf("under faults (%d capture drops, one Redis restart): %d sessions in %v: %s", drops.Load(), n, took.Round(time.Millisecond), st.summary())
	if got := st.byes.Load(); got != int64(n) {
		t.Errorf("%d of %d sessions were told bye after their DELETE: %d lost", got, n, int64(n)-got)
	}
	if st.connected.Load() == 0 {
		t.Error("no session's peer connection connected: the run exercised nothing")
	}

	// Back to the baseline: poll, since peers and captures close
	// asynchronously and the runtime returns memory in the background.
	deadline := time.Now().Add(60 * time.Second)
	var after footprint
	var series map[string]float64
	for {
		after = settle()
		series = scrapeAll(t, in.Base)
		ok := sumSeries(series, "media_active_sessions") == 0 &&
			near(float64(after.goroutines), float64(base.goroutines), churnSlackCount) && rssOK(after.rssKiB, base.rssKiB)
		if ok || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("after the run: %s (baseline %s)", after, base)
	if v := sumSeries(series, "media_active_sessions"); v != 0 {
		t.Errorf("media_active_sessions = %v after every session was deleted", v)
	}
	if !near(float64(after.goroutines), float64(base.goroutines), churnSlackCount) {
		t.Errorf("goroutines %d after the run, baseline %d (± 5 %%)", after.goroutines, base.goroutines)
	}
	if !rssOK(after.rssKiB, base.rssKiB) {
		t.Errorf("RSS %d KiB after the run, baseline %d KiB (+ 5 %%)", after.rssKiB, base.rssKiB)
	}
}

// stressStats counts what the sessions of a round saw.
type stressStats struct {
	created, connected, frames, inputs, stats, byes atomic.Int64
	mu                                              sync.Mutex
	status                                          map[string]int // step + outcome → count
	setup                                           []time.Duration
}

func (s *stressStats) reset() {
	for _, c := range []*atomic.Int64{&s.created, &s.connected, &s.frames, &s.inputs, &s.stats, &s.byes} {
		c.Store(0)
	}
	s.mu.Lock()
	s.status = map[string]int{}
	s.setup = nil
	s.mu.Unlock()
}

func (s *stressStats) note(what string) {
	s.mu.Lock()
	s.status[what]++
	s.mu.Unlock()
}

func (s *stressStats) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.status))
	for k := range s.status {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, s.status[k])
	}
	setup := slices.Clone(s.setup)
	slices.Sort(setup)
	p50, p95 := time.Duration(0), time.Duration(0)
	if len(setup) > 0 {
		p50, p95 = setup[len(setup)/2], setup[len(setup)*95/100]
	}
	return fmt.Sprintf("created %d, connected %d, with frames %d, inputs %d, stats %d, byes %d; setup p50 %v p95 %v;%s",
		s.created.Load(), s.connected.Load(), s.frames.Load(), s.inputs.Load(), s.stats.Load(), s.byes.Load(),
		p50.Round(time.Millisecond), p95.Round(time.Millisecond), b.String())
}

// session runs one session: create and offer (retried while creation is
// refused, as during the Redis restart), trickle candidates, wait for the
// connection, send input, read stats, DELETE it and wait for its bye.
func (s *stressStats) session(ctx context.Context, base, device string, hc *http.Client, api *webrtc.API, i int) {
	role := "viewer"
	if i%5 == 0 {
		role = "controller"
	}
	var v *client.Viewer
	t0 := time.Now()
	for {
		var err error
		v, err = client.Dial(ctx, client.Config{BaseURL: base, Device: device, Role: role, Mode: client.ModeWS, HTTP: hc, API: api})
		if err == nil {
			break
		}
		var ae *client.APIError
		if errors.As(err, &ae) {
			s.note(fmt.Sprintf("dial_%d_%s", ae.Status, ae.Code))
		} else {
			s.note("dial_error")
		}
		if ctx.Err() != nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer v.Close()
	s.created.Add(1)
	id := v.Session().SessionID

	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	if waitConnected(cctx, v) {
		s.connected.Add(1)
		s.mu.Lock()
		s.setup = append(s.setup, time.Since(t0))
		s.mu.Unlock()
		if v.WaitFrames(cctx, 1, false) == nil {
			s.frames.Add(1)
		}
	} else {
		s.note("not_connected")
	}
	cancel()
	for held := time.Now(); ; {
		if err := v.SendJSON(ctx, map[string]any{"type": "input", "action": "tap", "x": 10 + i%100, "y": 10}); err == nil {
			s.inputs.Add(1)
		} else {
			s.note("input_failed")
		}
		code, _, _, err := call(hc, "GET", base+"/api/v1/sessions/"+id+"/stats", "", nil)
		if err == nil && code == http.StatusOK {
			s.stats.Add(1)
		} else {
			s.note(fmt.Sprintf("stats_%d", code))
		}
		if time.Since(held) >= stressHold || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	// Close: DELETE (retried on 5xx, as during the Redis restart), then the
	// server's bye on the socket.
	for {
		code, _, _, err := call(hc, "DELETE", base+"/api/v1/sessions/"+id, "", nil)
		if err == nil && (code == http.StatusNoContent || code == http.StatusNotFound) {
			if code == http.StatusNotFound {
				s.note("delete_404")
			}
			break
		}
		s.note(fmt.Sprintf("delete_%d", code))
		if ctx.Err() != nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	bctx, bcancel := context.WithTimeout(ctx, 10*time.Second)
	defer bcancel()
	if _, err := v.WaitMessage(bctx, func(m client.Message) bool { return m.Type == "bye" }); err == nil {
		s.byes.Add(1)
	} else {
		s.note("no_bye")
	}
}

// waitConnected waits until v's peer connection is connected.
func waitConnected(ctx context.Context, v *client.Viewer) bool {
	for {
		if v.State() == webrtc.PeerConnectionStateConnected {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dumpGoroutines writes the service's goroutine stacks (pprof, debug=2) to
// a file and logs its path and head.
func dumpGoroutines(t *testing.T, pprofAddr string) {
	t.Helper()
	hc := &http.Client{Timeout: 30 * time.Second}
	resp, err := hc.Get("http://" + pprofAddr + "/debug/pprof/goroutine?debug=2")
	if err != nil {
		t.Errorf("dump goroutines: %v", err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	path := filepath.Join(os.TempDir(), fmt.Sprintf("mediasvc-stress-goroutines-%d.txt", time.Now().Unix()))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Errorf("write goroutine dump: %v", err)
	}
	head := string(b)
	if len(head) > 20000 {
		head = head[:20000]
	}
	t.Errorf("the service's goroutines (all in %s):\n%s", path, head)
}
