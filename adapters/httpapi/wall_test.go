package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"mediasvc/domain"
)

// fakeWall records what the page sent to an open wall.
type fakeWall struct {
	mu      sync.Mutex
	answers []string
	cands   []domain.Candidate
	visible map[domain.DeviceID]bool
	closed  bool
	saw     []bool // visible() of testDevice and "hidden" when opened
	notify  func(domain.WallEvent)
}

func (f *fakeWall) OpenWall(ctx context.Context, id string, visible func(context.Context, domain.Device) bool, notify func(domain.WallEvent)) (WallConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.saw = []bool{visible(ctx, domain.Device{ID: testDevice}), visible(ctx, domain.Device{ID: "hidden"})}
	f.notify = notify
	return f, nil
}

func (f *fakeWall) Answer(_ context.Context, sdp string) error {
	if !strings.HasPrefix(sdp, "v=0") {
		return domain.ErrInvalidOffer
	}
	f.mu.Lock()
	f.answers = append(f.answers, sdp)
	f.mu.Unlock()
	return nil
}

func (f *fakeWall) AddCandidate(c domain.Candidate) error {
	f.mu.Lock()
	f.cands = append(f.cands, c)
	f.mu.Unlock()
	return nil
}

func (f *fakeWall) SetVisible(id domain.DeviceID, v bool) error {
	if id != testDevice {
		return domain.ErrInvalidRequest
	}
	f.mu.Lock()
	f.visible[id] = v
	f.mu.Unlock()
	return nil
}

func (f *fakeWall) Tiles() []domain.WallTile {
	return []domain.WallTile{{Device: testDevice, State: domain.TilePlaying, Mid: "0", PacketsSent: 7}}
}

func (f *fakeWall) Close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
}

// The wall's REST and WebSocket: a token is made for the caller's key and
// works once; the wall sees the devices the key's grants cover; the
// page's answer, candidates and visibility reach the wall; every bad
// message gets an error, and the socket's end closes the wall.
func TestWallSocket(t *testing.T) {
	rec := &calls{}
	fw := &fakeWall{visible: map[domain.DeviceID]bool{}}
	srv := New(Config{
		Keys:          []Key{{Name: "alice", Secret: "alice-key", Grants: []domain.Grant{{Devices: []string{string(testDevice)}, Roles: []domain.GrantRole{domain.GrantViewer}}}}},
		StatsInterval: 50 * time.Millisecond,
		Walls:         fw,
	}, newFake(rec, "alice"), nil)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	if r := do(t, ts, req{method: "GET", path: "/wall"}); r.status != http.StatusOK || !strings.Contains(string(r.body), "mediasvcWall") {
		t.Fatalf("GET /wall = %d", r.status)
	}
	if r := do(t, ts, req{method: "POST", path: "/api/v1/walls"}); r.status != http.StatusUnauthorized {
		t.Fatalf("POST /api/v1/walls without a key = %d, want 401", r.status)
	}
	r := do(t, ts, req{method: "POST", path: "/api/v1/walls", header: map[string]string{"Authorization": "Bearer alice-key"}})
	var created struct {
		ID    string `json:"wall_id"`
		Token string `json:"token"`
		WSURL string `json:"ws_url"`
	}
	if r.status != http.StatusCreated || json.Unmarshal(r.body, &created) != nil || !strings.Contains(created.WSURL, "/api/v1/walls/"+created.ID+"/ws?token=") {
		t.Fatalf("POST /api/v1/walls = %d %s", r.status, r.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	base := "ws" + strings.TrimPrefix(ts.URL, "http") + "/api/v1/walls/" + created.ID + "/ws?token="
	for _, bad := range []string{"", "wrong"} {
		if _, res, err := websocket.Dial(ctx, base+bad, nil); err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wall socket with token %q: %v", bad, err)
		}
	}
	c, _, err := websocket.Dial(ctx, base+created.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if _, res, err := websocket.Dial(ctx, base+created.Token, nil); err == nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wall token works twice: %v", err)
	}
	fw.mu.Lock()
	saw := fw.saw
	fw.mu.Unlock()
	if len(saw) != 2 || !saw[0] || saw[1] {
		t.Fatalf("visible(dev1, hidden) = %v, want [true false]", saw)
	}

	read := func(want string) map[string]any {
		t.Helper()
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("read waiting for %s: %v", want, err)
			}
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			if m["type"] == want {
				return m
			}
		}
	}
	send := func(s string) {
		t.Helper()
		if err := c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	// The tiles are pushed every StatsInterval with their counters.
	if m := read("tiles"); !strings.Contains(mustJSON(m), `"packets_sent":7`) {
		t.Fatalf("tiles %v", m)
	}
	fw.notify(domain.WallEvent{Type: "offer", SDP: "v=0 offer", Tiles: fw.Tiles()})
	if m := read("offer"); m["sdp"] != "v=0 offer" {
		t.Fatalf("offer %v", m)
	}
	send(`{"type":"answer","sdp":"v=0 answer"}`)
	send(`{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0"}}`)
	send(`{"type":"visible","device_id":"dev1","visible":false}`)
	waitFor(t, "answer, candidate and visibility at the wall", func() bool {
		fw.mu.Lock()
		defer fw.mu.Unlock()
		v, ok := fw.visible[testDevice]
		return len(fw.answers) == 1 && len(fw.cands) == 1 && ok && !v
	})
	for _, tt := range []struct{ msg, code string }{
		{`{"type":"answer"}`, "invalid_request"},
		{`{"type":"answer","sdp":"nonsense"}`, "invalid_offer"},
		{`{"type":"candidate"}`, "invalid_request"},
		{`{"type":"visible","device_id":"dev1"}`, "invalid_request"},
		{`{"type":"visible","device_id":"other","visible":true}`, "invalid_request"},
		{`{"type":"dance"}`, "invalid_request"},
		{`{"sdp":"x"}`, "invalid_request"},
		{`{"type":"answer","extra":1}`, "invalid_request"},
		{`not json`, "invalid_request"},
	} {
		send(tt.msg)
		if m := read("error"); m["code"] != tt.code {
			t.Errorf("%s: error %v, want code %s", tt.msg, m, tt.code)
		}
	}
	send(`{"type":"bye"}`)
	if st := readUntilClose(t, c); st != websocket.StatusNormalClosure {
		t.Fatalf("bye closed with %v", st)
	}
	waitFor(t, "the wall closed", func() bool {
		fw.mu.Lock()
		defer fw.mu.Unlock()
		return fw.closed
	})
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
