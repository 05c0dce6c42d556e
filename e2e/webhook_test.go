//go:build e2e

package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mediasvc/e2e/adbdevice"
)

// hookReceiver is an outside system's webhook endpoint. It checks every
// request's signature itself (HMAC-SHA256 over "<t>.<body>", as the README
// tells receivers to, without the service's code), and with flaky set it
// answers each delivery's first attempt 503.
type hookReceiver struct {
	secret string
	flaky  bool

	mu       sync.Mutex
	events   []hookEvent       // accepted, in arrival order
	attempts map[string]int    // delivery id → requests seen
	bad      []string          // what failed the receiver's checks
	ids      map[string]string // delivery id → event id (must agree)
}

type hookEvent struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	Device      string `json:"device_id"`
	Reason      string `json:"reason"`
	Reservation *struct {
		Subject string `json:"subject"`
	} `json:"reservation"`
	Control *struct {
		Controllers []struct {
			Subject string `json:"subject"`
		} `json:"controllers"`
	} `json:"control"`
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	h.mu.Lock()
	defer h.mu.Unlock()
	fail := func(format string, a ...any) {
		h.bad = append(h.bad, fmt.Sprintf(format, a...))
		http.Error(w, "bad", http.StatusBadRequest)
	}
	if err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		fail("%s %s content-type %q: %v", r.Method, r.URL, r.Header.Get("Content-Type"), err)
		return
	}
	var ts, sig string
	for part := range strings.SplitSeq(r.Header.Get("X-Mediasvc-Signature"), ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	m := hmac.New(sha256.New, []byte(h.secret))
	m.Write([]byte(ts + "." + string(body)))
	if want := hex.EncodeToString(m.Sum(nil)); !hmac.Equal([]byte(sig), []byte(want)) {
		fail("signature %q over %s", r.Header.Get("X-Mediasvc-Signature"), body)
		return
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
		fail("timestamp %q far from now", ts)
		return
	}
	var ev hookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		fail("body %s: %v", body, err)
		return
	}
	delivery := r.Header.Get("X-Mediasvc-Delivery")
	if r.Header.Get("X-Mediasvc-Event") != ev.Type || delivery == "" {
		fail("headers event %q delivery %q for %s", r.Header.Get("X-Mediasvc-Event"), delivery, body)
		return
	}
	if prev, ok := h.ids[delivery]; ok && prev != ev.ID {
		fail("delivery %s carried event %s, then %s", delivery, prev, ev.ID)
	}
	h.ids[delivery] = ev.ID
	h.attempts[delivery]++
	if h.flaky && h.attempts[delivery] == 1 {
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	h.events = append(h.events, ev)
	w.WriteHeader(http.StatusNoContent)
}

// seen returns the accepted events' types, in arrival order.
func (h *hookReceiver) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		out = append(out, e.Type)
	}
	return out
}

func newHookReceiver(t *testing.T, secret string, flaky bool) (*hookReceiver, string) {
	h := &hookReceiver{secret: secret, flaky: flaky, attempts: map[string]int{}, ids: map[string]string{}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv.URL + "/hooks/mediasvc"
}

// TestWebhooks: a device coming online, taken into control, booked, freed
// and unplugged is announced to every webhook URL, in order, each request
// signed so an independent check accepts it; a receiver that answers 503
// gets the same delivery again; a URL where nothing listens delays
// neither of the others.
func TestWebhooks(t *testing.T) {
	const secret = "webhook-secret-0123456789"
	good, goodURL := newHookReceiver(t, secret, false)
	flaky, flakyURL := newHookReceiver(t, secret, true)
	dead := fmt.Sprintf("http://127.0.0.1:%d/nobody", freePort(t))

	srv := adbdevice.StartTestServer(t)
	cfg := adbConfig(srv).
		set("auth", "api_keys", farmKeys).
		set("farm", "admins", []string{"root"}).
		set("webhooks", "urls", []string{dead, goodURL, flakyURL}).
		set("webhooks", "secret", secret).
		set("webhooks", "attempts", 3)
	in := startInstance(t, cfg)
	// The device arrives after the instance's first listing (its
	// baseline); device.online comes from the listing every 2 s.
	time.Sleep(2500 * time.Millisecond)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	serial := d.Serial()
	waitOnline(t, in, serial)
	waitHook := func(h *hookReceiver, typ string) {
		deadline := time.Now().Add(10 * time.Second)
		for !slices.Contains(h.seen(), typ) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 10s: %v", typ, h.seen())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitHook(good, "device.online")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alice := dialAs(ctx, t, in, serial, "controller", "alice")
	waitYou(ctx, t, alice, "controller")
	res := in.Base + "/api/v1/devices/" + url.PathEscape(serial) + "/reservations"
	code, body := api(t, "POST", res, "alice", map[string]any{"until": time.Now().Add(time.Hour).UTC()})
	if code != http.StatusCreated {
		t.Fatalf("reserve: %d %s", code, body)
	}
	var booking struct{ ID string }
	_ = json.Unmarshal(body, &booking)
	if code, body := api(t, "DELETE", res+"/"+booking.ID, "alice", nil); code != http.StatusNoContent {
		t.Fatalf("cancel: %d %s", code, body)
	}
	_ = alice.Close()
	// The operator takes the device out of the farm (a dropped TCP device
	// stays listed by the adb server for its ~30 s reconnect window).
	if err := srv.Disconnect(ctx, serial); err != nil {
		t.Fatal(err)
	}

	want := []string{"device.online", "control.changed", "reservation.started", "reservation.ended", "device.offline"}
	// wantIn reports whether got holds want's types in want's order (the
	// control changes may repeat: the release on close is one more).
	wantIn := func(got []string) bool {
		i := 0
		for _, g := range got {
			if i < len(want) && g == want[i] {
				i++
			}
		}
		return i == len(want)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !(wantIn(good.seen()) && wantIn(flaky.seen())) {
		if time.Now().After(deadline) {
			t.Fatalf("events within 30s:\n good  %v\n flaky %v\nwant in order %v", good.seen(), flaky.seen(), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for name, h := range map[string]*hookReceiver{"good": good, "flaky": flaky} {
		h.mu.Lock()
		if len(h.bad) > 0 {
			t.Errorf("%s receiver refused: %q", name, h.bad)
		}
		for id, n := range h.attempts {
			if name == "good" && n != 1 || name == "flaky" && n != 2 {
				t.Errorf("%s receiver saw delivery %s %d times", name, id, n)
			}
		}
		for _, e := range h.events {
			if e.Device != serial {
				t.Errorf("%s: event %s for device %q, want %q", name, e.Type, e.Device, serial)
			}
			switch e.Type {
			case "reservation.started", "reservation.ended":
				if e.Reservation == nil || e.Reservation.Subject != "alice" || e.ID != booking.ID+":"+strings.TrimPrefix(e.Type, "reservation.") {
					t.Errorf("%s: %s = %+v, want alice's booking %s", name, e.Type, e, booking.ID)
				}
			case "control.changed":
				if e.Control == nil {
					t.Errorf("%s: control.changed without the control state", name)
				}
			}
		}
		h.mu.Unlock()
	}
	good.mu.Lock()
	defer good.mu.Unlock()
	for _, e := range good.events {
		if e.Type == "control.changed" {
			if e.Control == nil || len(e.Control.Controllers) != 1 || e.Control.Controllers[0].Subject != "alice" {
				t.Errorf("first control change = %+v, want alice in control", e)
			}
			break
		}
	}
}
