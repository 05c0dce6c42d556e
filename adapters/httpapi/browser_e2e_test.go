//go:build e2e

package httpapi

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"mediasvc/domain"
)

// TestViewerPageInChromium loads the viewer page in headless Chromium
// against the fake service and checks that its script lists devices and,
// with ?device=, creates a session and opens the session WebSocket. Run with
// -tags e2e; it needs Debian's chromium (or $CHROMIUM).
func TestViewerPageInChromium(t *testing.T) {
	bin := os.Getenv("CHROMIUM")
	if bin == "" {
		bin = "chromium"
	}
	if _, err := exec.LookPath(bin); err != nil {
		t.Fatalf("e2e needs chromium: %v", err)
	}
	rec := &calls{}
	fake, _ := wsFake(rec)
	create := fake.CreateSessionFunc
	fake.CreateSessionFunc = func(ctx context.Context, d domain.DeviceID, role domain.Role, owner string) (domain.Session, string, error) {
		rec.add("create:" + string(role))
		return create(ctx, d, role, owner)
	}
	fake.OfferFunc = func(_ context.Context, _ domain.SessionID, sdp string) (string, error) {
		if strings.Contains(sdp, "m=video") && strings.Contains(sdp, "a=recvonly") {
			rec.add("offer")
		}
		return "", domain.ErrInvalidOffer
	}
	_, ts := start(t, Config{StatsInterval: -1}, fake)

	dump := func(path string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
			"--disable-background-networking", "--allow-loopback-in-peer-connection",
			"--user-data-dir="+t.TempDir(), "--virtual-time-budget=3000", "--dump-dom", ts.URL+path)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium: %v", err)
		}
		return string(out)
	}

	dom := dump("/")
	if !strings.Contains(dom, "Pixel") || !strings.Contains(dom, "720×1280") || !strings.Contains(dom, ">Play<") {
		t.Fatalf("device list not rendered:\n%s", dom)
	}
	dump("/?device=dev1")
	if !rec.has("create:controller") || !rec.has("connect") || !rec.has("offer") {
		t.Fatalf("the page did not open the session socket; calls %v", rec.names)
	}
}
