package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/coder/websocket"

	"mediasvc/adapters/httpapi/httpapitest"
	"mediasvc/domain"
)

// wsFake is newFake whose Connect hands each socket's notify to notifies.
func wsFake(rec *calls) (*httpapitest.Service, chan func(domain.SessionEvent)) {
	fake := newFake(rec, "ip:127.0.0.1")
	notifies := make(chan func(domain.SessionEvent), 16)
	connect := fake.ConnectFunc
	fake.ConnectFunc = func(ctx context.Context, id domain.SessionID, token string, notify func(domain.SessionEvent)) (func(), error) {
		detach, err := connect(ctx, id, token, notify)
		if err == nil {
			notifies <- notify
		}
		return detach, err
	}
	return fake, notifies
}

func wsURL(ts *httptest.Server, token string) string {
	return "ws" + strings.TrimPrefix(ts.URL, "http") + "/api/v1/sessions/sess1/ws?token=" + token
}

func dial(t *testing.T, ts *httptest.Server, token string, header http.Header) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, res, err := websocket.Dial(ctx, wsURL(ts, token), &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func sendMsg(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	var b []byte
	switch v := v.(type) {
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// readMsg returns the next message whose type is not in skip.
func readMsg(t *testing.T, c *websocket.Conn, skip ...string) Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var m Message
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("bad server message %s: %v", b, err)
		}
		skipped := false
		for _, s := range skip {
			skipped = skipped || m.Type == s
		}
		if !skipped {
			return m
		}
	}
}

// readUntilClose reads until the socket closes and returns the close status.
func readUntilClose(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
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

func TestWebSocketSignaling(t *testing.T) {
	rec := &calls{}
	fake, notifies := wsFake(rec)
	_, ts := start(t, Config{StatsInterval: 50 * time.Millisecond}, fake)
	c := dial(t, ts, testToken, nil)
	notify := <-notifies

	sendMsg(t, c, Message{Type: msgOffer, SDP: "v=0\r\noffer"})
	if m := readMsg(t, c, msgStats); m.Type != msgAnswer || m.SDP != "v=0\r\nanswer\r\n" {
		t.Fatalf("want answer, got %+v", m)
	}

	mid := "0"
	notify(domain.SessionEvent{Type: domain.EventCandidate, Candidate: &domain.Candidate{Candidate: "candidate:1 1 udp 1 10.0.0.1 5000 typ host", SDPMid: &mid}})
	if m := readMsg(t, c, msgStats); m.Type != msgCandidate || m.Candidate == nil || *m.Candidate.SDPMid != "0" {
		t.Fatalf("want candidate, got %+v", m)
	}
	notify(domain.SessionEvent{Type: domain.EventState, State: "connected"})
	if m := readMsg(t, c, msgStats); m.Type != msgState || m.State != "connected" {
		t.Fatalf("want state, got %+v", m)
	}
	if m := readMsg(t, c); m.Type != msgStats || m.Stats == nil || m.Stats.FrameRate != 30 {
		t.Fatalf("want stats, got %+v", m)
	}

	sendMsg(t, c, `{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 10.0.0.2 5000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}}`)
	sendMsg(t, c, `{"type":"input","action":"tap","x":10,"y":20}`)
	sendMsg(t, c, `{"type":"input","action":"key","key":"Enter"}`)
	sendMsg(t, c, `{"type":"keyframe"}`)
	waitFor(t, "messages handled", func() bool { return rec.has("keyframe") })
	rec.mu.Lock()
	if len(rec.cands) != 1 || *rec.cands[0].UsernameFragment != "abcd" {
		t.Errorf("candidates %+v", rec.cands)
	}
	if len(rec.input) != 2 || rec.input[0] != (domain.InputEvent{Type: domain.InputTap, X: 10, Y: 20}) || rec.input[1].Key != "Enter" {
		t.Errorf("input %+v", rec.input)
	}
	rec.mu.Unlock()

	sendMsg(t, c, `{"type":"bye"}`)
	if st := readUntilClose(t, c); st != websocket.StatusNormalClosure {
		t.Fatalf("close status %v, want 1000", st)
	}
	waitFor(t, "detach", func() bool { return rec.has("detach") })
	if !rec.has("close:bye") || rec.count("close:bye")+rec.count("close:client closed") != 1 {
		t.Fatalf("session closed %v", rec.names)
	}
}

func TestWebSocketRejectedBeforeUpgrade(t *testing.T) {
	rec := &calls{}
	fake, _ := wsFake(rec)
	_, ts := start(t, Config{AllowedOrigins: []string{"app.example.com"}}, fake)
	tests := []struct {
		name   string
		token  string
		origin string
		path   string
		want   int
	}{
		{"wrong token", "nope", "", "", 401},
		{"missing token", "", "", "", 401},
		{"bad origin", testToken, "https://evil.example.org", "", 403},
		{"unknown session", testToken, "", "/api/v1/sessions/other/ws?token=" + testToken, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := wsURL(ts, tt.token)
			if tt.path != "" {
				u = "ws" + strings.TrimPrefix(ts.URL, "http") + tt.path
			}
			h := http.Header{}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, res, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
			if err == nil {
				_ = c.CloseNow()
				t.Fatal("dial succeeded")
			}
			if res == nil || res.StatusCode != tt.want {
				t.Fatalf("status %v, want %d (%v)", res, tt.want, err)
			}
		})
	}
	if rec.has("connect") {
		t.Fatal("a rejected socket was connected")
	}
	// An allowed cross origin is accepted.
	c := dial(t, ts, testToken, http.Header{"Origin": {"https://app.example.com"}})
	_ = c.Close(websocket.StatusNormalClosure, "")
}

func TestWebSocketBadMessages(t *testing.T) {
	rec := &calls{}
	fake, _ := wsFake(rec)
	fake.InputFunc = func(_ context.Context, _ domain.SessionID, ev domain.InputEvent) error {
		if ev.Type == domain.InputText {
			return fmt.Errorf("input: %w", domain.ErrForbidden)
		}
		return &domain.RateLimitError{Limit: "input", RetryAfter: time.Second}
	}
	_, ts := start(t, Config{StatsInterval: -1}, fake)
	c := dial(t, ts, testToken, nil)

	tests := []struct {
		msg, code string
	}{
		{`{"type":"dance"}`, "invalid_request"},
		{`{"type":`, "invalid_request"},
		{`[1,2]`, "invalid_request"},
		{`{"type":"offer"}`, "invalid_request"},
		{`{"type":"offer","sdp":"nonsense"}`, "invalid_offer"},
		{`{"type":"candidate"}`, "invalid_request"},
		{`{"type":"input"}`, "invalid_request"},
		{`{"type":"keyframe","extra":1}`, "invalid_request"},
		{`{"type":"keyframe"} {}`, "invalid_request"},
		{`{"type":"input","action":"text","text":"hi"}`, "forbidden"},
		{`{"type":"input","action":"tap","x":1,"y":1}`, "rate_limited"},
	}
	for _, tt := range tests {
		sendMsg(t, c, tt.msg)
		m := readMsg(t, c)
		if m.Type != msgError || m.Code != tt.code || m.Message == "" {
			t.Fatalf("%s → %+v, want error %s", tt.msg, m, tt.code)
		}
	}
	// Still open: a good message works.
	sendMsg(t, c, `{"type":"keyframe"}`)
	waitFor(t, "keyframe", func() bool { return rec.has("keyframe") })
}

func TestWebSocketFloodOfBadMessagesCloses(t *testing.T) {
	rec := &calls{}
	fake, _ := wsFake(rec)
	_, ts := start(t, Config{StatsInterval: -1}, fake)
	c := dial(t, ts, testToken, nil)
	for i := 0; i <= DefaultMaxBadMessages; i++ {
		sendMsg(t, c, `{"type":"nope"}`)
	}
	if st := readUntilClose(t, c); st != websocket.StatusPolicyViolation {
		t.Fatalf("close status %v, want 1008", st)
	}
	waitFor(t, "detach", func() bool { return rec.has("detach") })
	if rec.has("close:client closed") || rec.has("close:bye") {
		t.Fatal("session closed after a server-initiated close")
	}
}

func TestWebSocketMessageTooBig(t *testing.T) {
	rec := &calls{}
	fake, _ := wsFake(rec)
	_, ts := start(t, Config{StatsInterval: -1}, fake)
	c := dial(t, ts, testToken, nil)
	big := `{"type":"offer","sdp":"` + strings.Repeat("a", 65<<10) + `"}`
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Write(ctx, websocket.MessageText, []byte(big)) // may fail once the server closes
	if st := readUntilClose(t, c); st != websocket.StatusMessageTooBig {
		t.Fatalf("close status %v, want 1009", st)
	}
	waitFor(t, "detach", func() bool { return rec.has("detach") })
}

func TestWebSocketClientCloseEndsSession(t *testing.T) {
	tests := []struct {
		name        string
		close       func(c *websocket.Conn)
		wantSession bool
	}{
		{"normal close", func(c *websocket.Conn) { _ = c.Close(websocket.StatusNormalClosure, "") }, true},
		{"going away", func(c *websocket.Conn) { _ = c.Close(websocket.StatusGoingAway, "") }, true},
		{"dropped", func(c *websocket.Conn) { _ = c.CloseNow() }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &calls{}
			fake, _ := wsFake(rec)
			_, ts := start(t, Config{StatsInterval: -1}, fake)
			c := dial(t, ts, testToken, nil)
			tt.close(c)
			waitFor(t, "detach", func() bool { return rec.has("detach") })
			time.Sleep(20 * time.Millisecond)
			if got := rec.has("close:client closed"); got != tt.wantSession {
				t.Fatalf("session closed = %v, want %v (%v)", got, tt.wantSession, rec.names)
			}
		})
	}
}

func TestWebSocketServerBye(t *testing.T) {
	rec := &calls{}
	fake, notifies := wsFake(rec)
	_, ts := start(t, Config{StatsInterval: -1}, fake)
	c := dial(t, ts, testToken, nil)
	notify := <-notifies
	notify(domain.SessionEvent{Type: domain.EventBye, Reason: "expired"})
	if m := readMsg(t, c); m.Type != msgBye || m.Reason != "expired" {
		t.Fatalf("want bye, got %+v", m)
	}
	if st := readUntilClose(t, c); st != websocket.StatusNormalClosure {
		t.Fatalf("close %v", st)
	}
	waitFor(t, "detach", func() bool { return rec.has("detach") })
	if rec.has("close:client closed") {
		t.Fatal("session closed again after the server's bye")
	}
}

func TestWebSocketSlowClientDisconnected(t *testing.T) {
	rec := &calls{}
	fake, notifies := wsFake(rec)
	_, ts := start(t, Config{StatsInterval: -1, WebSocket: WebSocketConfig{SendQueue: 8, WriteTimeout: 500 * time.Millisecond}}, fake)
	slow := dial(t, ts, testToken, nil) // never reads
	notify := <-notifies

	// notify must never block, however slow the client.
	done := make(chan int)
	go func() {
		cand := &domain.Candidate{Candidate: "candidate:1 1 udp 1 10.0.0.1 5000 typ host " + strings.Repeat("x", 200)}
		n := 0
		for ; n < 1_000_000 && !rec.has("detach"); n++ {
			notify(domain.SessionEvent{Type: domain.EventCandidate, Candidate: cand})
		}
		done <- n
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("notify blocked")
	}
	waitFor(t, "slow client detached", func() bool { return rec.has("detach") })

	// The server keeps serving others.
	fast := dial(t, ts, testToken, nil)
	notify2 := <-notifies
	notify2(domain.SessionEvent{Type: domain.EventState, State: "connected"})
	if m := readMsg(t, fast); m.Type != msgState {
		t.Fatalf("other client got %+v", m)
	}
	_ = fast.Close(websocket.StatusNormalClosure, "")
	// The slow client, reading at last, finds the socket closed (with 1008
	// if the close frame made it through its full buffers).
	if st := readUntilClose(t, slow); st != websocket.StatusPolicyViolation && st != -1 {
		t.Fatalf("slow client close %v", st)
	}
}

func TestShutdownSaysBye(t *testing.T) {
	rec := &calls{}
	fake, _ := wsFake(rec)
	srv := New(Config{StatsInterval: -1}, fake, nil)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	c1 := dial(t, ts, testToken, nil)
	c2 := dial(t, ts, testToken, nil)

	var finished atomic.Bool
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx, "draining")
		finished.Store(true)
	}()
	for _, c := range []*websocket.Conn{c1, c2} {
		if m := readMsg(t, c); m.Type != msgBye || m.Reason != "draining" {
			t.Fatalf("want bye, got %+v", m)
		}
		if st := readUntilClose(t, c); st != websocket.StatusNormalClosure {
			t.Fatalf("close %v", st)
		}
	}
	waitFor(t, "shutdown", finished.Load)
	if n := rec.count("detach"); n != 2 {
		t.Fatalf("%d detaches, want 2", n)
	}
	// New sockets are refused while draining.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, res, err := websocket.Dial(ctx, wsURL(ts, testToken), nil)
	if err == nil || res == nil || res.StatusCode != 503 {
		t.Fatalf("dial while draining: %v %v", res, err)
	}
}

func TestWebSocketPingTimeoutDropsDeadClient(t *testing.T) {
	rec := &calls{}
	fake, _ := wsFake(rec)
	_, ts := start(t, Config{StatsInterval: -1, WebSocket: WebSocketConfig{PingInterval: 50 * time.Millisecond}}, fake)
	c := dial(t, ts, testToken, nil) // never reads, so never answers pings
	waitFor(t, "dead client dropped", func() bool { return rec.has("detach") })
	_ = c.CloseNow()
}

func TestWebSocketPanicsAreContained(t *testing.T) {
	rec := &calls{}
	fake, _ := wsFake(rec)
	fake.OfferFunc = func(context.Context, domain.SessionID, string) (string, error) { panic("offer boom") }
	var statsCalls atomic.Int32
	fake.SessionStatsFunc = func(context.Context, domain.SessionID) (domain.QualityStats, error) {
		if statsCalls.Add(1) > 3 {
			panic("stats boom")
		}
		return domain.QualityStats{}, nil
	}
	var logs syncBuffer
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	srv := New(Config{StatsInterval: 20 * time.Millisecond, Meter: mp.Meter("test")}, fake, bufLogger(&logs))
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	defer srv.Shutdown(context.Background(), "test over")

	c := dial(t, ts, testToken, nil)
	sendMsg(t, c, Message{Type: msgOffer, SDP: "v=0"})
	if m := readMsg(t, c, msgStats); m.Type != msgError || m.Code != codeInternal {
		t.Fatalf("want internal error, got %+v", m)
	}
	// The ticker's panic drops this socket, not the server.
	readUntilClose(t, c)
	waitFor(t, "detach", func() bool { return rec.has("detach") })
	if !strings.Contains(logs.String(), "offer boom") || !strings.Contains(logs.String(), "stats boom") {
		t.Fatalf("panics not logged:\n%s", logs.String())
	}
	if r := do(t, ts, req{method: "GET", path: "/healthz"}); r.status != 200 {
		t.Fatalf("server down after panics: %d", r.status)
	}
	for _, where := range []string{panicWSMessage, panicWSTicker} {
		if n, _ := readMetric(t, rd, PanicsMetric, attribute.String("where", where)); n != 1 {
			t.Errorf("%s{where=%s} = %v, want 1", PanicsMetric, where, n)
		}
	}
}

// The peer may produce local candidates before Offer returns; the client
// must still see the answer first, or its addIceCandidate fails.
func TestWebSocketAnswerPrecedesCandidates(t *testing.T) {
	rec := &calls{}
	fake, notifies := wsFake(rec)
	var notify func(domain.SessionEvent)
	fake.OfferFunc = func(context.Context, domain.SessionID, string) (string, error) {
		mid := "0"
		for i := range 3 {
			notify(domain.SessionEvent{Type: domain.EventCandidate, Candidate: &domain.Candidate{
				Candidate: fmt.Sprintf("candidate:%d 1 udp 1 10.0.0.1 5000 typ host", i+1), SDPMid: &mid}})
		}
		return "v=0\r\nanswer\r\n", nil
	}
	_, ts := start(t, Config{StatsInterval: -1}, fake)
	c := dial(t, ts, testToken, nil)
	notify = <-notifies
	sendMsg(t, c, Message{Type: msgOffer, SDP: "v=0\r\noffer"})
	if m := readMsg(t, c, msgStats); m.Type != msgAnswer {
		t.Fatalf("first message is %s, want answer", m.Type)
	}
	for i := range 3 {
		if m := readMsg(t, c, msgStats); m.Type != msgCandidate {
			t.Fatalf("message %d after answer is %s, want candidate", i, m.Type)
		}
	}
}

// A slow service call (an input whose store write takes seconds, several
// ping intervals) does not stall the socket's reads: pongs are still read, so
// the server's pings are answered and the socket stays up; the reply
// comes when the call returns, and messages sent meanwhile are answered
// in order after it (here: the device's input queue is full, input_busy).
func TestWebSocketSlowCallKeepsPinging(t *testing.T) {
	rec := &calls{}
	fake, _ := wsFake(rec)
	release := make(chan struct{})
	stickFirstInput(fake, release)
	// A ping interval a loaded host answers in time (a ping unanswered
	// within one interval drops the socket), the call held for five of them.
	const ping = 500 * time.Millisecond
	_, ts := start(t, Config{StatsInterval: -1, WebSocket: WebSocketConfig{PingInterval: ping}}, fake)
	c := dial(t, ts, testToken, nil)
	// The client answers pings only while it reads: read in the background.
	msgs, readErr := readInBackground(c, 16)
	sendMsg(t, c, `{"type":"input","action":"tap","x":1,"y":1}`) // slow
	sendMsg(t, c, `{"type":"input","action":"tap","x":2,"y":2}`) // queued behind it
	// Five ping intervals with the first call stuck: still connected.
	select {
	case err := <-readErr:
		t.Fatalf("socket dropped during a slow call: %v", err)
	case <-time.After(5 * ping):
	}
	if rec.has("detach") {
		t.Fatal("session detached during a slow call")
	}
	close(release)
	select {
	case m := <-msgs:
		if m.Type != "error" || m.Code != "input_busy" {
			t.Fatalf("after the slow call: %+v, want the queued message's input_busy", m)
		}
	case err := <-readErr:
		t.Fatalf("socket dropped: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the queued message was never answered")
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
}

// TestWebSocketHandlerQueueFullIsBusy: with a service call stuck, the
// reader queues wsInQueue messages for the handler and answers each one
// beyond that with "busy" at once; the socket stays up, and once the call
// returns every queued message is handled, in order.
func TestWebSocketHandlerQueueFullIsBusy(t *testing.T) {
	rec := &calls{}
	fake, _ := wsFake(rec)
	release := make(chan struct{})
	inputs := stickFirstInput(fake, release)
	_, ts := start(t, Config{StatsInterval: -1, WebSocket: WebSocketConfig{SendQueue: 256}}, fake)
	c := dial(t, ts, testToken, nil)
	msgs, readErr := readInBackground(c, 256)
	const extra = 10
	sendMsg(t, c, `{"type":"input","action":"tap","x":1,"y":1}`) // stuck
	// Only once the handler is inside the stuck call is the queue empty;
	// before that the stuck message itself may still hold a slot.
	for deadline := time.Now().Add(10 * time.Second); inputs.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first input never reached the service")
		}
	}
	for i := 0; i < wsInQueue+extra; i++ {
		sendMsg(t, c, `{"type":"input","action":"tap","x":2,"y":2}`)
	}
	wait := func(code string, n int) {
		t.Helper()
		for got := 0; got < n; {
			select {
			case m := <-msgs:
				if m.Type != "error" || m.Code != code {
					t.Fatalf("message %d of %d: %+v, want error %s", got+1, n, m, code)
				}
				got++
			case err := <-readErr:
				t.Fatalf("socket dropped after %d of %d %s: %v", got, n, code, err)
			case <-time.After(10 * time.Second):
				t.Fatalf("%d of %d %s errors", got, n, code)
			}
		}
	}
	wait(codeBusy, extra) // while the call is stuck: only the overflow is answered
	close(release)
	wait("input_busy", wsInQueue) // then every queued message, none lost
	select {
	case m := <-msgs:
		t.Fatalf("unexpected message %+v", m)
	case err := <-readErr:
		t.Fatalf("socket dropped: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if got := inputs.Load(); got != wsInQueue+1 {
		t.Fatalf("service saw %d inputs, want %d", got, wsInQueue+1)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
}

// stickFirstInput makes fake's first input call wait for release (a slow
// service call) and every later one fail with ErrInputBusy; it returns the
// count of calls.
func stickFirstInput(fake *httpapitest.Service, release <-chan struct{}) *atomic.Int64 {
	var inputs atomic.Int64
	fake.InputFunc = func(ctx context.Context, id domain.SessionID, ev domain.InputEvent) error {
		if inputs.Add(1) == 1 {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		}
		return fmt.Errorf("device d1: queue full: %w", domain.ErrInputBusy)
	}
	return &inputs
}

// readInBackground reads c until it fails (so the client answers pings),
// handing each message, decoded, to msgs and the final error to readErr.
func readInBackground(c *websocket.Conn, buf int) (msgs <-chan Message, readErr <-chan error) {
	m := make(chan Message, buf)
	e := make(chan error, 1)
	go func() {
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				e <- err
				return
			}
			var msg Message
			_ = json.Unmarshal(b, &msg)
			m <- msg
		}
	}()
	return m, e
}

// TestWebSocketDeviceClipboard: the device's clipboard the app hands a
// socket reaches its client as {"type":"clipboard","text":…}, a text
// the app cut to the clipboard limit marked "truncated", whole.
func TestWebSocketDeviceClipboard(t *testing.T) {
	rec := &calls{}
	fake, notifies := wsFake(rec)
	_, ts := start(t, Config{StatsInterval: -1}, fake)
	c := dial(t, ts, testToken, nil)
	c.SetReadLimit(1 << 20)
	notify := <-notifies
	notify(domain.SessionEvent{Type: domain.EventClipboard, Text: "copié"})
	if m := readMsg(t, c); m.Type != msgClipboard || m.Text != "copié" || m.Truncated {
		t.Fatalf("want clipboard, got %+v", m)
	}
	big := strings.Repeat("x", domain.MaxClipboardText)
	notify(domain.SessionEvent{Type: domain.EventClipboard, Text: big, Truncated: true})
	if m := readMsg(t, c); m.Type != msgClipboard || m.Text != big || !m.Truncated {
		t.Fatalf("want the whole big clipboard, got %d bytes truncated=%v", len(m.Text), m.Truncated)
	}
}
