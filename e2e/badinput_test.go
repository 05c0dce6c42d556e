//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"mediasvc/e2e/client"
)

// expectStatus asserts an HTTP status and, when code is not empty, the
// error code of the JSON error body.
func expectStatus(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d; body %.300s", resp.StatusCode, status, body)
		return
	}
	if code != "" && errorCode(body) != code {
		t.Errorf("error code %q, want %q; body %.300s", errorCode(body), code, body)
	}
	if status >= 400 {
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("error Content-Type %q, want application/json", ct)
		}
	}
}

// expectDialStatus asserts that a WebSocket handshake was refused with status.
func expectDialStatus(t *testing.T, resp *http.Response, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("handshake succeeded, want HTTP %d", status)
	}
	if resp == nil {
		t.Fatalf("handshake failed without an HTTP answer (%v), want HTTP %d", err, status)
	}
	if resp.StatusCode != status {
		t.Errorf("handshake status %d, want %d (%v)", resp.StatusCode, status, err)
	}
	_ = code // coder/websocket does not hand back the refused body
}

// waitError waits for an error message on v and asserts its code.
func waitError(t *testing.T, v *client.Viewer, code string) client.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := v.WaitMessage(ctx, func(m client.Message) bool { return m.Type == "error" })
	if err != nil {
		t.Fatalf("no error message (want code %q): %v; got %v", code, err, msgTypes(v.Messages()))
	}
	if m.Code != code {
		t.Errorf("error code %q (%s), want %q", m.Code, m.Message, code)
	}
	return m
}

// rawWS creates a session and opens its WebSocket without a peer.
func rawWS(t *testing.T, in *Instance) (*websocket.Conn, client.SessionInfo) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	si, err := client.CreateSession(ctx, http.DefaultClient, in.Base, "", "demo", "viewer")
	if err != nil {
		t.Fatalf("create session: %v", err)
	}
	u, err := client.WSURL(in.Base, si, "")
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := client.DialWS(ctx, u, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c, si
}

// readUntilError reads c until a read fails (draining queued messages) and
// returns the error messages seen and that error.
func readUntilError(ctx context.Context, c *websocket.Conn) ([]string, error) {
	var codes []string
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return codes, err
		}
		if strings.Contains(string(b), `"type":"error"`) {
			codes = append(codes, string(b))
		}
	}
}

func TestBadInput(t *testing.T) {
	cfg := defaultConfig()
	cfg.set("ws", "send_queue", 16) // the smallest allowed: a slow reader overflows it soon
	cfg.set("ws", "ping_interval", "2s")
	cfg.set("ws", "stats_interval", "100ms")
	in := startInstance(t, cfg)
	base := in.Base
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// A healthy viewer plays through all of it.
	healthy, err := client.Dial(ctx, client.Config{BaseURL: base, Mode: client.ModeWS, Analyze: true})
	if err != nil {
		t.Fatalf("healthy viewer: %v", err)
	}
	t.Cleanup(func() { _ = healthy.Close() })
	if err := healthy.WaitFrames(ctx, 30, true); err != nil {
		t.Fatalf("healthy viewer: %v", err)
	}

	post := func(t *testing.T, body string) (*http.Response, []byte) {
		return do(t, http.MethodPost, base+"/api/v1/sessions", "application/json", []byte(body), nil)
	}
	kinds := 0
	run := func(name string, f func(t *testing.T)) {
		kinds++
		t.Run(name, f)
	}

	run("oversized_body_413", func(t *testing.T) {
		body := `{"device_id":"demo","role":"viewer","x":"` + strings.Repeat("a", 100<<10) + `"}`
		resp, b := post(t, body)
		expectStatus(t, resp, b, http.StatusRequestEntityTooLarge, "body_too_large")
	})
	run("malformed_json_400", func(t *testing.T) {
		resp, b := post(t, `{"device_id":"demo",`)
		expectStatus(t, resp, b, http.StatusBadRequest, "invalid_request")
	})
	run("unknown_field_400", func(t *testing.T) {
		resp, b := post(t, `{"device_id":"demo","role":"viewer","colour":"blue"}`)
		expectStatus(t, resp, b, http.StatusBadRequest, "invalid_request")
	})
	run("unknown_device_404", func(t *testing.T) {
		resp, b := post(t, `{"device_id":"no-such-device","role":"viewer"}`)
		expectStatus(t, resp, b, http.StatusNotFound, "device_not_found")
	})
	run("bad_role_400", func(t *testing.T) {
		resp, b := post(t, `{"device_id":"demo","role":"admin"}`)
		expectStatus(t, resp, b, http.StatusBadRequest, "invalid_request")
	})
	run("ws_missing_token_401", func(t *testing.T) {
		si, err := client.CreateSession(ctx, http.DefaultClient, base, "", "demo", "viewer")
		if err != nil {
			t.Fatal(err)
		}
		u, _ := client.WSURL(base, si, "-")
		c, resp, err := client.DialWS(ctx, u, nil)
		if c != nil {
			c.CloseNow()
		}
		expectDialStatus(t, resp, err, http.StatusUnauthorized, "unauthorized")
	})
	run("ws_wrong_token_401", func(t *testing.T) {
		si, err := client.CreateSession(ctx, http.DefaultClient, base, "", "demo", "viewer")
		if err != nil {
			t.Fatal(err)
		}
		u, _ := client.WSURL(base, si, "not-the-token-"+si.Token[:4])
		c, resp, err := client.DialWS(ctx, u, nil)
		if c != nil {
			c.CloseNow()
		}
		expectDialStatus(t, resp, err, http.StatusUnauthorized, "unauthorized")
	})
	run("ws_bad_origin_403", func(t *testing.T) {
		si, err := client.CreateSession(ctx, http.DefaultClient, base, "", "demo", "viewer")
		if err != nil {
			t.Fatal(err)
		}
		u, _ := client.WSURL(base, si, "")
		c, resp, err := client.DialWS(ctx, u, http.Header{"Origin": {"https://evil.example"}})
		if c != nil {
			c.CloseNow()
		}
		expectDialStatus(t, resp, err, http.StatusForbidden, "forbidden_origin")
	})
	run("ws_65KiB_message_1009", func(t *testing.T) {
		c, _ := rawWS(t, in)
		big := `{"type":"offer","sdp":"` + strings.Repeat("v", 65<<10) + `"}`
		// The write may fail once the server has closed; the close code is
		// what matters.
		_ = c.Write(ctx, websocket.MessageText, []byte(big))
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		defer rcancel()
		_, err := readUntilError(rctx, c)
		if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
			t.Errorf("close status %d (%v), want 1009", got, err)
		}
	})
	run("ws_malformed_offer", func(t *testing.T) {
		c, _ := rawWS(t, in)
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"offer","sdp":"this is not SDP"}`)); err != nil {
			t.Fatal(err)
		}
		expectWSError(t, c, "invalid_offer")
	})
	run("ws_unknown_message_type", func(t *testing.T) {
		c, _ := rawWS(t, in)
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"launch_missiles"}`)); err != nil {
			t.Fatal(err)
		}
		expectWSError(t, c, "invalid_request")
	})
	run("whep_malformed_offer_400", func(t *testing.T) {
		resp, b := do(t, http.MethodPost, base+"/whep/demo", "application/sdp", []byte("v=0\r\nthis is not an offer\r\n"), nil)
		expectStatus(t, resp, b, http.StatusBadRequest, "invalid_offer")
	})
	run("whep_wrong_content_type_415", func(t *testing.T) {
		resp, b := do(t, http.MethodPost, base+"/whep/demo", "application/json", []byte(`{"sdp":"v=0"}`), nil)
		expectStatus(t, resp, b, http.StatusUnsupportedMediaType, "unsupported_media_type")
	})
	run("whep_oversized_offer_413", func(t *testing.T) {
		resp, b := do(t, http.MethodPost, base+"/whep/demo", "application/sdp", []byte("v=0\r\n"+strings.Repeat("a=x-pad:0123456789\r\n", 6000)), nil)
		expectStatus(t, resp, b, http.StatusRequestEntityTooLarge, "body_too_large")
	})
	run("ws_51st_candidate", func(t *testing.T) {
		v := dialNegotiated(ctx, t, base, client.ModeWS)
		own := v.LocalCandidatesSent()
		limit := 50
		for i := own; i < limit; i++ {
			if err := v.SendJSON(ctx, client.Message{Type: "candidate", Candidate: fakeCandidate(i)}); err != nil {
				t.Fatal(err)
			}
		}
		// The 50th is accepted: no error yet.
		time.Sleep(500 * time.Millisecond)
		for _, m := range v.Messages() {
			if m.Type == "error" {
				t.Fatalf("error before the 51st candidate (own %d): %s %s", own, m.Code, m.Message)
			}
		}
		if err := v.SendJSON(ctx, client.Message{Type: "candidate", Candidate: fakeCandidate(limit)}); err != nil {
			t.Fatal(err)
		}
		m := waitError(t, v, "too_many_candidates")
		t.Logf("51st candidate (%d own + %d sent): %s: %s", own, limit+1-own, m.Code, m.Message)
	})
	run("whep_51st_candidate_400", func(t *testing.T) {
		v := dialNegotiated(ctx, t, base, client.ModeWHEP)
		w := v.WHEP()
		// Candidates inside the offer do not count against the limit; only
		// trickled ones do, and this viewer trickled none.
		own := 0
		var lines []string
		for i := own; i < 50; i++ {
			lines = append(lines, fakeCandidate(i).Candidate)
		}
		ufrag, pwd := client.ICECredentials(v.PeerConnection().LocalDescription().SDP)
		mid := client.FirstMid(v.PeerConnection().LocalDescription().SDP)
		if err := client.WHEPPatch(ctx, http.DefaultClient, w.Location, "", w.ETag, client.SDPFrag(ufrag, pwd, mid, lines, false)); err != nil {
			t.Fatalf("PATCH up to 50 candidates (%d own): %v", own, err)
		}
		err := client.WHEPPatch(ctx, http.DefaultClient, w.Location, "", w.ETag, client.SDPFrag(ufrag, pwd, mid, []string{fakeCandidate(50).Candidate}, false))
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != "too_many_candidates" {
			t.Errorf("51st candidate by PATCH: %v, want 400 too_many_candidates", err)
		}
	})
	run("ws_garbage_candidate", func(t *testing.T) {
		v := dialNegotiated(ctx, t, base, client.ModeWS)
		if err := v.SendJSON(ctx, client.Message{Type: "candidate", Candidate: &client.CandidateInit{Candidate: "candidate:!!! garbage"}}); err != nil {
			t.Fatal(err)
		}
		waitError(t, v, "invalid_candidate")
	})
	run("whep_garbage_candidate_400", func(t *testing.T) {
		v := dialNegotiated(ctx, t, base, client.ModeWHEP)
		w := v.WHEP()
		ufrag, pwd := client.ICECredentials(v.PeerConnection().LocalDescription().SDP)
		err := client.WHEPPatch(ctx, http.DefaultClient, w.Location, "", w.ETag, client.SDPFrag(ufrag, pwd, "0", []string{"candidate:1 1 udp notanumber 1.2.3.4 x typ host"}, false))
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != "invalid_candidate" {
			t.Errorf("garbage candidate by PATCH: %v, want 400 invalid_candidate", err)
		}
	})
	// Candidates pointing where the service must not send checks: the
	// cloud metadata address (link-local), a multicast group, the
	// unspecified address. (This instance listens on loopback, so
	// loopback candidates are its viewers' own and pass.)
	run("ws_link_local_candidate", func(t *testing.T) {
		before := rejectedCandidates(t, base, "link_local")
		v := dialNegotiated(ctx, t, base, client.ModeWS)
		mid, idx := "0", uint16(0)
		if err := v.SendJSON(ctx, client.Message{Type: "candidate", Candidate: &client.CandidateInit{
			Candidate: "candidate:7 1 udp 2130706431 169.254.169.254 80 typ host", SDPMid: &mid, SDPMLineIndex: &idx}}); err != nil {
			t.Fatal(err)
		}
		waitError(t, v, "invalid_candidate")
		if after := rejectedCandidates(t, base, "link_local"); after != before+1 {
			t.Errorf("media_ice_candidates_rejected_total{reason=link_local} %v → %v, want +1", before, after)
		}
		// The viewer's session goes on: a good candidate is still taken.
		if err := v.SendJSON(ctx, client.Message{Type: "candidate", Candidate: fakeCandidate(0)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		errs := 0
		for _, m := range v.Messages() {
			if m.Type == "error" {
				errs++
			}
		}
		if errs != 1 {
			t.Errorf("%d error messages after a good candidate, want the one refusal", errs)
		}
	})
	run("whep_multicast_candidate_400", func(t *testing.T) {
		before := rejectedCandidates(t, base, "multicast")
		v := dialNegotiated(ctx, t, base, client.ModeWHEP)
		w := v.WHEP()
		ufrag, pwd := client.ICECredentials(v.PeerConnection().LocalDescription().SDP)
		err := client.WHEPPatch(ctx, http.DefaultClient, w.Location, "", w.ETag, client.SDPFrag(ufrag, pwd, "0", []string{"candidate:8 1 udp 2130706431 224.0.0.251 5353 typ host"}, false))
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != "invalid_candidate" {
			t.Errorf("multicast candidate by PATCH: %v, want 400 invalid_candidate", err)
		}
		if after := rejectedCandidates(t, base, "multicast"); after != before+1 {
			t.Errorf("media_ice_candidates_rejected_total{reason=multicast} %v → %v, want +1", before, after)
		}
	})
	run("whep_offer_unspecified_candidate_400", func(t *testing.T) {
		before := rejectedCandidates(t, base, "unspecified")
		offer := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n" +
			"a=candidate:9 1 udp 2130706431 0.0.0.0 9 typ host\r\n"
		resp, b := do(t, http.MethodPost, base+"/whep/demo", "application/sdp", []byte(offer), nil)
		expectStatus(t, resp, b, http.StatusBadRequest, "invalid_candidate")
		if after := rejectedCandidates(t, base, "unspecified"); after != before+1 {
			t.Errorf("media_ice_candidates_rejected_total{reason=unspecified} %v → %v, want +1", before, after)
		}
	})
	run("whep_patch_wrong_if_match_412", func(t *testing.T) {
		v := dialNegotiated(ctx, t, base, client.ModeWHEP)
		w := v.WHEP()
		ufrag, pwd := client.ICECredentials(v.PeerConnection().LocalDescription().SDP)
		err := client.WHEPPatch(ctx, http.DefaultClient, w.Location, "", `"not-the-etag"`, client.SDPFrag(ufrag, pwd, "0", nil, true))
		if got := client.StatusOf(err); got != http.StatusPreconditionFailed {
			t.Errorf("PATCH with a wrong If-Match: %v, want 412", err)
		}
	})
	run("unknown_session_404", func(t *testing.T) {
		resp, b := do(t, http.MethodGet, base+"/api/v1/sessions/no-such-session", "", nil, nil)
		expectStatus(t, resp, b, http.StatusNotFound, "session_not_found")
		resp, b = do(t, http.MethodDelete, base+"/whep/sessions/no-such-session", "", nil, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("DELETE unknown WHEP resource: %d %.200s, want 404", resp.StatusCode, b)
		}
	})
	run("delete_twice_404", func(t *testing.T) {
		si, err := client.CreateSession(ctx, http.DefaultClient, base, "", "demo", "viewer")
		if err != nil {
			t.Fatal(err)
		}
		u := base + "/api/v1/sessions/" + si.SessionID
		if err := client.Delete(ctx, http.DefaultClient, u, ""); err != nil {
			t.Fatalf("first DELETE: %v", err)
		}
		resp, b := do(t, http.MethodDelete, u, "", nil, nil)
		expectStatus(t, resp, b, http.StatusNotFound, "session_not_found")
	})
	run("ws_client_never_reads", func(t *testing.T) {
		// A client that sends an offer, then never reads: stats (every
		// 100 ms here), candidates and pings pile up. The server must drop it
		// (ping timeout or full send queue) while the healthy viewer plays on.
		c, _ := rawWS(t, in)
		pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
		offer, err := pc.CreateOffer(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"type":"offer","sdp":%q}`, offer.SDP))); err != nil {
			t.Fatal(err)
		}
		before := healthy.Stats().Frames
		start := time.Now()
		time.Sleep(8 * time.Second) // 4 ping intervals
		if got := healthy.Stats().Frames - before; got < 60 {
			t.Errorf("healthy viewer got only %d frames in 8 s while a client did not read", got)
		}
		if code, _ := httpStatus(ctx, base+"/readyz"); code != http.StatusOK {
			t.Errorf("/readyz %d while a client did not read", code)
		}
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		_, err = readUntilError(rctx, c)
		if errors.Is(err, context.DeadlineExceeded) || rctx.Err() != nil {
			t.Errorf("server still holds the non-reading client %s later", time.Since(start).Round(time.Second))
		} else {
			t.Logf("non-reading client dropped: %v (close status %d)", err, websocket.CloseStatus(err))
		}
	})

	run("misdirected_host_421", func(t *testing.T) {
		for _, path := range []string{"/api/v1/devices", "/", "/metrics", "/whep/demo"} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
			req.Host = "evil.example:8080"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			expectStatus(t, resp, b, http.StatusMisdirectedRequest, "misdirected_host")
		}
	})
	run("ws_upgrade_misdirected_host_421", func(t *testing.T) {
		si, err := client.CreateSession(ctx, http.DefaultClient, base, "", "demo", "viewer")
		if err != nil {
			t.Fatal(err)
		}
		u, _ := client.WSURL(base, si, "")
		c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{Host: "evil.example:8080"})
		if c != nil {
			c.CloseNow()
		}
		expectDialStatus(t, resp, err, http.StatusMisdirectedRequest, "misdirected_host")
	})
	run("rest_foreign_origin_403", func(t *testing.T) {
		resp, b := do(t, http.MethodPost, base+"/api/v1/sessions", "application/json", []byte(`{"device_id":"demo"}`), http.Header{"Origin": {"http://evil.example"}})
		expectStatus(t, resp, b, http.StatusForbidden, "forbidden_origin")
	})
	run("wrong_content_type_415", func(t *testing.T) {
		resp, b := do(t, http.MethodPost, base+"/api/v1/sessions", "text/plain", []byte(`{"device_id":"demo"}`), nil)
		expectStatus(t, resp, b, http.StatusUnsupportedMediaType, "unsupported_media_type")
	})
	run("empty_body_400", func(t *testing.T) {
		resp, b := post(t, ``)
		expectStatus(t, resp, b, http.StatusBadRequest, "invalid_request")
	})
	run("device_id_too_long_400", func(t *testing.T) {
		resp, b := post(t, `{"device_id":"`+strings.Repeat("d", 200)+`"}`)
		expectStatus(t, resp, b, http.StatusBadRequest, "invalid_request")
	})
	run("wrong_json_type_400", func(t *testing.T) {
		resp, b := post(t, `{"device_id":42}`)
		expectStatus(t, resp, b, http.StatusBadRequest, "invalid_request")
	})
	run("headers_too_large_431", func(t *testing.T) {
		resp, _ := do(t, http.MethodGet, base+"/api/v1/devices", "", nil, http.Header{"X-Pad": {strings.Repeat("p", 40<<10)}})
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("status %d, want 431", resp.StatusCode)
		}
	})
	ctl, err := client.Dial(ctx, client.Config{BaseURL: base, Mode: client.ModeWS, Role: "controller"})
	if err != nil {
		t.Fatalf("controller: %v", err)
	}
	t.Cleanup(func() { _ = ctl.Close() })
	if err := ctl.WaitFrames(ctx, 5, false); err != nil {
		t.Fatalf("controller: %v", err)
	}
	inputKind := func(name, msg, code string) {
		run(name, func(t *testing.T) {
			n := len(ctl.Messages())
			if err := ctl.SendRaw(ctx, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
			defer wcancel()
			i := 0 // the matcher runs under the viewer's lock: count, do not call it
			m, err := ctl.WaitMessage(wctx, func(m client.Message) bool { i++; return i > n && m.Type == "error" })
			if err != nil {
				t.Fatalf("no error for %s: %v", msg, err)
			}
			if m.Code != code {
				t.Errorf("%s: code %q (%s), want %q", msg, m.Code, m.Message, code)
			}
		})
	}
	inputKind("ws_input_duration_overflow", `{"type":"input","action":"swipe","x":1,"y":1,"x2":2,"y2":2,"duration_ms":18446744073709}`, "invalid_input")
	inputKind("ws_input_negative_coordinate", `{"type":"input","action":"tap","x":-1,"y":5}`, "invalid_input")
	inputKind("ws_input_outside_video", `{"type":"input","action":"tap","x":5000,"y":5}`, "invalid_input")
	inputKind("ws_input_coordinate_not_int", `{"type":"input","action":"tap","x":1e30,"y":5}`, "invalid_request")
	inputKind("ws_input_unknown_action", `{"type":"input","action":"format_disk"}`, "invalid_input")
	inputKind("ws_input_text_too_long", `{"type":"input","action":"text","text":"`+strings.Repeat("t", 301)+`"}`, "invalid_input")
	inputKind("ws_malformed_json", `{"type":`, "invalid_request")
	run("ws_input_from_viewer_forbidden", func(t *testing.T) {
		v := dialNegotiated(ctx, t, base, client.ModeWS)
		if err := v.SendRaw(ctx, []byte(`{"type":"input","action":"tap","x":1,"y":1}`)); err != nil {
			t.Fatal(err)
		}
		waitError(t, v, "forbidden")
	})

	if kinds < 35 {
		t.Errorf("only %d kinds of bad input", kinds)
	}
	t.Logf("%d kinds of bad input", kinds)

	// After all of it: the healthy viewer is still playing, and a new one plays.
	if err := healthy.WaitFrames(ctx, healthy.Stats().Frames+30, true); err != nil {
		t.Errorf("healthy viewer stopped: %v", err)
	}
	if st := healthy.Stats(); st.BadFrames > 0 {
		t.Errorf("healthy viewer: %d bad frames: %q", st.BadFrames, st.Problems)
	}
	fresh, err := client.Dial(ctx, client.Config{BaseURL: base, Mode: client.ModeWHEP, Analyze: true})
	if err != nil {
		t.Fatalf("fresh viewer after bad input: %v", err)
	}
	defer fresh.Close()
	fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
	defer fcancel()
	if err := fresh.WaitFrames(fctx, 60, true); err != nil {
		t.Errorf("fresh viewer after bad input: %v", err)
	}
	checkPlayed(t, "fresh viewer", fresh.Stats())
}

// expectWSError reads c until an error message arrives and checks its code.
func expectWSError(t *testing.T, c *websocket.Conn, code string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("no error message (want %q): %v", code, err)
		}
		var m client.Message
		if err := json.Unmarshal(b, &m); err != nil || m.Type != "error" {
			continue
		}
		if m.Code != code {
			t.Errorf("error code %q (%s), want %q", m.Code, m.Message, code)
		}
		return
	}
}

// dialNegotiated returns a negotiated viewer (closed at cleanup) whose own
// candidates have all been gathered and trickled.
func dialNegotiated(ctx context.Context, t *testing.T, base string, mode client.Mode) *client.Viewer {
	t.Helper()
	v, err := client.Dial(ctx, client.Config{BaseURL: base, Mode: mode, TrickleWHEP: false})
	if err != nil {
		t.Fatalf("dial %s: %v", mode, err)
	}
	t.Cleanup(func() { _ = v.Close() })
	deadline := time.Now().Add(5 * time.Second)
	for v.PeerConnection().ICEGatheringState() != webrtc.ICEGatheringStateComplete && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let trickled candidates reach the server
	return v
}

// rejectedCandidates reads media_ice_candidates_rejected_total{reason} at
// base/metrics; a reason missing from the export fails the test (every
// reason is exported from the start).
func rejectedCandidates(t *testing.T, base, reason string) float64 {
	t.Helper()
	for series := range scrapeSeries(t, base) {
		if strings.HasPrefix(series, "media_ice_candidates_rejected_total{") && strings.Contains(series, `reason="`+reason+`"`) {
			v, _ := scrapeValue(t, base, series)
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("series %s: value %q", series, v)
			}
			return f
		}
	}
	t.Fatalf("media_ice_candidates_rejected_total{reason=%q} is not exported", reason)
	return 0
}

// fakeCandidate returns a syntactically valid host candidate on loopback.
func fakeCandidate(i int) *client.CandidateInit {
	mid, idx := "0", uint16(0)
	return &client.CandidateInit{
		Candidate:     fmt.Sprintf("candidate:%d 1 udp %d 127.0.0.1 %d typ host", 900000+i, 2130706431-i, 40000+i),
		SDPMid:        &mid,
		SDPMLineIndex: &idx,
	}
}

func TestCreationFloodIsRateLimited(t *testing.T) {
	cfg := defaultConfig()
	cfg.set("limits", "create_rate", 1)
	cfg.set("limits", "create_burst", 3)
	in := startInstance(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		retry    []string
		codes    []string
		wg       sync.WaitGroup
	)
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := client.CreateSession(ctx, http.DefaultClient, in.Base, "", "demo", "viewer")
			mu.Lock()
			defer mu.Unlock()
			var ae *client.APIError
			switch {
			case err == nil:
				statuses[http.StatusCreated]++
			case errors.As(err, &ae):
				statuses[ae.Status]++
				if ae.Status == http.StatusTooManyRequests {
					retry = append(retry, ae.Header.Get("Retry-After"))
					codes = append(codes, ae.Code)
				}
			default:
				statuses[-1]++
				t.Errorf("create: %v", err)
			}
		}()
	}
	wg.Wait()
	t.Logf("30 concurrent creations: statuses %v", statuses)
	if statuses[http.StatusTooManyRequests] == 0 {
		t.Fatalf("no 429 in a flood of 30 creations with create_rate 1, burst 3")
	}
	if statuses[http.StatusCreated] < 1 || statuses[http.StatusCreated] > 5 {
		t.Errorf("%d creations succeeded, want about the burst (3)", statuses[http.StatusCreated])
	}
	for i, ra := range retry {
		if ra == "" {
			t.Errorf("429 #%d without Retry-After", i)
		} else if n, err := strconv.Atoi(ra); err != nil || n < 1 {
			t.Errorf("Retry-After %q is not a positive number of seconds", ra)
		}
		if codes[i] != "rate_limited" {
			t.Errorf("429 #%d code %q, want rate_limited", i, codes[i])
		}
	}
	// The service still answers, and after the bucket refills, creates again.
	if code, _ := httpStatus(ctx, in.Base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz %d after the flood", code)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := client.CreateSession(ctx, http.DefaultClient, in.Base, "", "demo", "viewer"); err != nil {
		t.Errorf("creation after the bucket refilled: %v", err)
	}
}
