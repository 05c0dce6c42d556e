//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"mediasvc/e2e/client"
)

// scrapeSeries returns the series (name and labels) at base/metrics.
func scrapeSeries(t *testing.T, base string) map[string]bool {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if i := strings.LastIndexByte(l, ' '); i > 0 {
			out[l[:i]] = true
		}
	}
	return out
}

// timingDependent reports series whose presence depends on timing rather
// than on how many sessions ran: a peer may pass through "disconnected"
// while closing, or not.
func timingDependent(series string) bool {
	return strings.Contains(series, `state="disconnected"`)
}

// TestMetricsCardinality: after 1,000 sessions come and go, /metrics holds
// the same series as after 10. Sessions are a mix of full WebRTC viewers
// (signaling, ICE, media, quality samples) and REST create/delete.
func TestMetricsCardinality(t *testing.T) {
	cfg := defaultConfig()
	cfg.set("metrics", "quality_interval", "200ms").
		// At the top of its range the bitrate policy never changes it, so
		// no "up" series appears only in the longer phase.
		set("stream", "bitrate_bps", 4000000)
	in := startInstance(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	api, err := client.NewAPI(true)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	sessions := func(full, rest int) {
		t.Helper()
		for i := range full {
			v, err := client.Dial(ctx, client.Config{BaseURL: in.Base, API: api})
			if err != nil {
				t.Fatalf("viewer %d: %v", i, err)
			}
			ids[v.Session().SessionID] = true
			if err := v.WaitFrames(ctx, 15, false); err != nil {
				t.Fatalf("viewer %d: %v", i, err)
			}
			time.Sleep(250 * time.Millisecond) // at least one quality sample
			_ = v.Close()
		}
		for i := range rest {
			si, err := client.CreateSession(ctx, http.DefaultClient, in.Base, "", "demo", "viewer")
			if err != nil {
				t.Fatalf("session %d: %v", i, err)
			}
			ids[si.SessionID] = true
			if err := client.Delete(ctx, http.DefaultClient, in.Base+"/api/v1/sessions/"+si.SessionID, ""); err != nil {
				t.Fatalf("delete %d: %v", i, err)
			}
		}
	}
	// settle waits until every session has closed, then scrapes twice (the
	// first scrape's own request is counted by the second).
	settle := func() map[string]bool {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			v, _ := scrapeValue(t, in.Base, `media_active_sessions{kind="ws",role="viewer"}`)
			if v == "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("active sessions still %q", v)
			}
			time.Sleep(200 * time.Millisecond)
		}
		scrapeSeries(t, in.Base)
		return scrapeSeries(t, in.Base)
	}

	sessions(4, 6)
	after10 := settle()
	sessions(16, 974)
	after1000 := settle()

	var added, removed []string
	for s := range after1000 {
		if !after10[s] && !timingDependent(s) {
			added = append(added, s)
		}
	}
	for s := range after10 {
		if !after1000[s] && !timingDependent(s) {
			removed = append(removed, s)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	t.Logf("series after 10 sessions: %d, after 1000: %d (%d sessions seen)", len(after10), len(after1000), len(ids))
	if len(added) > 0 || len(removed) > 0 {
		t.Errorf("series changed between 10 and 1000 sessions:\n added %q\n removed %q", added, removed)
	}
	for s := range after1000 {
		for id := range ids {
			if strings.Contains(s, id) {
				t.Fatalf("series %s carries session id %s", s, id)
			}
		}
	}
}

// scrapeValue returns the value of one exact series at base/metrics.
func scrapeValue(t *testing.T, base, series string) (string, bool) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return v, true
		}
	}
	return "", false
}
