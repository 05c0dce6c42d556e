package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"mediasvc/domain"
)

// Close reasons the server sends (each well under the 123-byte limit).
const (
	reasonQueueFull  = "send queue full"
	reasonBadClient  = "too many bad messages"
	reasonBye        = "bye"
	reasonClientGone = "client closed"
)

// graceForced bounds how long a forced close (policy violation) waits for
// the client's close frame before the connection is dropped.
const graceForced = time.Second

// socket is one session WebSocket. Its goroutines are the HTTP handler
// (the reader), writeLoop and tickLoop; all three end when the socket ends,
// and the handler returns only after the other two have.
//
// Lifetime: closeWith records the first close code and closes quit; the
// writer then (for graceful closes) flushes what is queued and sends the
// close frame. abort cancels the socket's context, which drops the
// connection at once.
type socket struct {
	srv  *Server
	id   domain.SessionID
	log  *slog.Logger
	conn *websocket.Conn // set before the writer starts

	send chan []byte   // encoded messages for the writer; never closed
	quit chan struct{} // closed by closeWith

	once     sync.Once
	code     websocket.StatusCode
	reason   string
	graceful bool // flush the queue before the close frame

	mu           sync.Mutex
	cancel       context.CancelFunc // cancels the socket context; nil until started
	aborted      bool
	sessionEnded bool // the session is over: no CloseSession on socket end
	// While an offer is being answered, local candidates are held back so
	// the client never gets a candidate before the answer it belongs to.
	offering bool
	held     []*domain.Candidate

	// sess is the session as the farm sees it (id, device, owner, role);
	// set before the reader starts when Config.Farm is set.
	sess domain.Session
}

// maxHeldCandidates bounds the candidates held back during an offer.
const maxHeldCandidates = 64

func newSocket(srv *Server, id domain.SessionID) *socket {
	return &socket{
		srv:  srv,
		id:   id,
		log:  srv.log.With(slog.String("session_id", string(id))),
		send: make(chan []byte, srv.cfg.WebSocket.SendQueue),
		quit: make(chan struct{}),
	}
}

// notify is the callback given to Service.Connect. It never blocks: a
// message that does not fit the send queue closes the socket with 1008.
func (c *socket) notify(ev domain.SessionEvent) {
	switch ev.Type {
	case domain.EventCandidate:
		if ev.Candidate == nil {
			return
		}
		c.mu.Lock()
		if c.offering {
			if len(c.held) < maxHeldCandidates {
				c.held = append(c.held, ev.Candidate)
			}
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.enqueue(Message{Type: msgCandidate, Candidate: ev.Candidate})
	case domain.EventState:
		c.enqueue(Message{Type: msgState, State: ev.State, Reason: ev.Reason})
	case domain.EventClipboard:
		// The app sends it to the device's controllers only.
		c.enqueue(Message{Type: msgClipboard, Text: ev.Text, Truncated: ev.Truncated})
	case domain.EventBye:
		c.mu.Lock()
		c.sessionEnded = true
		c.mu.Unlock()
		c.enqueue(Message{Type: msgBye, Reason: ev.Reason})
		c.closeWith(websocket.StatusNormalClosure, closeReason(ev.Reason), true)
	}
}

// closeReason keeps a close reason within the WebSocket limit.
func closeReason(r string) string {
	if r == "" {
		return reasonBye
	}
	if len(r) > 120 {
		return r[:120]
	}
	return r
}

// enqueue queues m for the writer without blocking.
func (c *socket) enqueue(m Message) {
	select {
	case <-c.quit:
		return
	default:
	}
	b, err := json.Marshal(m)
	if err != nil {
		c.log.Error("encode websocket message", slog.Any("err", err))
		return
	}
	select {
	case c.send <- b:
		c.srv.recordMessage(dirOut, m.Type)
	default:
		c.srv.m.wsDrops.Add(context.Background(), 1)
		c.log.Warn("websocket send queue full, closing")
		c.closeWith(websocket.StatusPolicyViolation, reasonQueueFull, false)
	}
}

// closeWith asks the writer to close the socket with code and reason. Only
// the first call counts. It never blocks.
func (c *socket) closeWith(code websocket.StatusCode, reason string, graceful bool) {
	c.once.Do(func() {
		c.code, c.reason, c.graceful = code, reason, graceful
		close(c.quit)
	})
}

// bye sends {"type":"bye","reason":reason} and a normal close (Shutdown).
func (c *socket) bye(reason string) {
	c.enqueue(Message{Type: msgBye, Reason: reason})
	c.closeWith(websocket.StatusNormalClosure, closeReason(reason), true)
}

// abort drops the connection without a close handshake.
func (c *socket) abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.aborted = true
	if c.cancel != nil {
		c.cancel()
	}
}

// socketRequest reads a WebSocket upgrade's path id and ?token=, refusing
// a bad id (400), a foreign Origin (403) and a missing token (401, naming
// the kind of token); ok is false when it has answered.
func (s *Server) socketRequest(w http.ResponseWriter, r *http.Request, kind string) (id, token string, ok bool) {
	id, err := pathID(r, "id")
	if err != nil {
		s.writeError(w, r, err)
		return "", "", false
	}
	if !s.originAllowed(r) {
		s.writeError(w, r, errorf(http.StatusForbidden, "forbidden_origin", "origin %.100q is not allowed", r.Header.Get("Origin")))
		return "", "", false
	}
	token = r.URL.Query().Get("token")
	if token == "" {
		s.writeError(w, r, errorf(http.StatusUnauthorized, "unauthorized", "missing %s token", kind))
		return "", "", false
	}
	return id, token, true
}

// enterSocket counts a socket handler in, for the drain to wait on, and
// returns its done; while draining it returns domain.ErrDraining.
func (s *Server) enterSocket() (done func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return nil, domain.ErrDraining
	}
	s.wg.Add(1)
	return s.wg.Done, nil
}

func (s *Server) handleWebSocket(w http.ResponseWriter, r *http.Request) {
	id, token, ok := s.socketRequest(w, r, "session")
	if !ok {
		return
	}
	done, err := s.enterSocket()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer done()

	sock := newSocket(s, domain.SessionID(id))
	cctx, ccancel := s.serviceContext(r)
	detach, err := s.svc.Connect(cctx, sock.id, token, sock.notify)
	ccancel()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer detach()
	if s.cfg.Farm != nil {
		cctx, ccancel := s.serviceContext(r)
		sess, err := s.svc.Session(cctx, sock.id)
		ccancel()
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		sock.sess = sess
	}

	// The origin was checked above, with the same rules Accept would use.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		sock.log.Debug("websocket accept", slog.Any("err", err))
		return // Accept has replied
	}
	conn.SetReadLimit(s.cfg.WebSocket.MaxMessageBytes)
	sock.conn = conn
	s.m.wsConns.Add(r.Context(), 1)
	defer s.m.wsConns.Add(context.WithoutCancel(r.Context()), -1)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sock.mu.Lock()
	sock.cancel = cancel
	sock.mu.Unlock()

	s.mu.Lock()
	s.sockets[sock] = struct{}{}
	draining, reason := s.draining, s.reason
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sockets, sock)
		s.mu.Unlock()
	}()
	if draining {
		sock.bye(reason)
	}

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); defer sock.recoverPanic("writer", panicWSWriter); sock.writeLoop(ctx) }()
	go func() { defer wg.Done(); defer sock.recoverPanic("ticker", panicWSTicker); sock.tickLoop(ctx) }()
	stop := func() {
		sock.closeWith(websocket.StatusNormalClosure, reasonClientGone, false)
		wg.Wait()
		cancel()
		_ = conn.CloseNow()
	}
	defer stop() // also on a panic; a second call is harmless

	if s.cfg.Farm != nil {
		unwatch := sock.watchControl(ctx)
		defer unwatch()
	}
	clientClosed := sock.readLoop(ctx)
	stop()

	// WS sessions die with their socket when the client says bye or closes
	// normally; after an abnormal end (network loss, ping timeout, slow
	// client, server shutdown) the session lives on until its TTL so the
	// client may reconnect with its token.
	sock.mu.Lock()
	ended := sock.sessionEnded
	sock.mu.Unlock()
	ectx, ecancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.RequestTimeout)
	defer ecancel()
	if clientClosed && !ended {
		if err := s.svc.CloseSession(ectx, sock.id, reasonClientGone); err != nil && !errors.Is(err, domain.ErrSessionNotFound) {
			sock.log.Warn("close session after socket end", slog.Any("err", err))
		}
	}
	if s.cfg.Farm != nil {
		who := sock.actor()
		if clientClosed || ended {
			s.cfg.Farm.Closed(ectx, who, sock.sess.DeviceID)
		} else {
			s.cfg.Farm.Disconnected(ectx, who, sock.sess.DeviceID)
		}
	}
}

// actor is who acts through the socket's session.
func (c *socket) actor() domain.Actor {
	return domain.Actor{Subject: c.sess.Owner, Session: c.sess.ID, Admin: c.srv.isAdmin(c.sess.Owner, c.sess.DeviceID)}
}

// watchControl pushes the device's control state to the client on every
// change, and starts with the current one: a controller session asks for
// control (again, after a reconnect within its grace) and is told where
// it stands. It returns the function that stops the pushes.
func (c *socket) watchControl(ctx context.Context) (cancel func()) {
	farm := c.srv.cfg.Farm
	cancel = farm.Watch(c.sess.DeviceID, c.pushControl)
	ctx, done := context.WithTimeout(ctx, c.srv.cfg.RequestTimeout)
	defer done()
	var st domain.Control
	var err error
	if c.sess.Role == domain.RoleController {
		st, _, err = farm.RequestControl(ctx, c.actor(), c.sess.DeviceID)
	} else {
		st, err = farm.Control(ctx, c.sess.DeviceID)
	}
	if err != nil {
		c.enqueueError(err)
		if st, err = farm.Control(ctx, c.sess.DeviceID); err != nil {
			return cancel
		}
	}
	c.pushControl(st)
	return cancel
}

// pushControl queues a "control" message for st. It never blocks.
func (c *socket) pushControl(st domain.Control) {
	y, pos := you(st, c.id)
	c.enqueue(Message{Type: msgControl, Control: toControlJSON(st), You: y, Position: pos})
}

// enqueueError queues an "error" message for err.
func (c *socket) enqueueError(err error) {
	_, code, msg := classify(err)
	var d errorDetail
	fillReserved(&d, err)
	c.enqueue(Message{Type: msgError, Code: code, Message: msg, Subject: d.Subject, Until: d.Until})
}

// wsInQueue and wsInBytes bound the client messages that may wait for the
// socket's handler while it runs a slow call (a browser trickles its
// candidates right behind its offer: up to limits.max_candidates); one
// more gets an error and is dropped.
const (
	wsInQueue = 64
	wsInBytes = 1 << 20
)

// wsIn is one client message read, waiting for the handler.
type wsIn struct {
	typ  websocket.MessageType
	data []byte
}

// readLoop reads client messages until the socket ends and hands them, in
// order, to a handler goroutine of its own, so reading — and with it the
// pongs that answer the server's pings — never waits for a service call
// (a store write can take seconds). A message that finds wsInQueue others
// (or wsInBytes) waiting gets {"type":"error","code":"busy"} and is
// dropped. It waits for
// the handler before it returns, and reports whether the client closed the
// socket normally (1000 or 1001) without the server having asked to close
// first.
func (c *socket) readLoop(ctx context.Context) (clientClosed bool) {
	in := make(chan wsIn, wsInQueue)
	var queued atomic.Int64 // bytes in in
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer c.recoverPanic("handler", panicWSMessage)
		c.handleLoop(ctx, in, &queued)
	}()
	defer func() {
		close(in)
		<-done
	}()
	for {
		typ, data, err := c.conn.Read(ctx)
		if err != nil {
			select {
			case <-c.quit:
				return false
			default:
			}
			st := websocket.CloseStatus(err)
			if st != websocket.StatusNormalClosure && st != websocket.StatusGoingAway {
				c.log.Debug("websocket read", slog.Any("err", err))
				return false
			}
			return true
		}
		select {
		case <-c.quit:
			continue // closing: drain until the close frame
		default:
		}
		if queued.Add(int64(len(data))) <= wsInBytes {
			select {
			case in <- wsIn{typ: typ, data: data}:
				continue
			default:
			}
		}
		queued.Add(-int64(len(data)))
		c.srv.recordMessage(dirIn, "dropped")
		c.enqueue(Message{Type: msgError, Code: codeBusy,
			Message: fmt.Sprintf("%d messages (at most %d bytes) may wait for a slow call; this one was dropped", wsInQueue, wsInBytes)})
	}
}

// handleLoop handles the messages readLoop hands over, one at a time, until
// in is closed.
func (c *socket) handleLoop(ctx context.Context, in <-chan wsIn, queued *atomic.Int64) {
	bad := 0
	for m := range in {
		queued.Add(-int64(len(m.data)))
		select {
		case <-c.quit:
			continue // closing
		default:
		}
		var herr error
		if m.typ != websocket.MessageText {
			c.srv.recordMessage(dirIn, "invalid")
			herr = badRequest("binary messages are not supported")
		} else {
			herr = c.safeHandle(ctx, m.data)
		}
		if herr == nil {
			continue
		}
		status, code, msg := classify(herr)
		if status >= 500 && !errors.Is(herr, errPanic) {
			c.log.Error("websocket message failed", slog.Any("err", herr))
		}
		var d errorDetail
		fillReserved(&d, herr)
		c.enqueue(Message{Type: msgError, Code: code, Message: msg, Subject: d.Subject, Until: d.Until})
		if status < 500 && status != http.StatusTooManyRequests {
			bad++
			if bad > c.srv.cfg.WebSocket.MaxBadMessages {
				c.closeWith(websocket.StatusPolicyViolation, reasonBadClient, true)
			}
		}
	}
}

// errPanic reports a message whose handling panicked.
var errPanic = errors.New("internal error")

// safeHandle is handle with a panic turned into a logged internal error, so
// one bad message never kills the server or the socket.
func (c *socket) safeHandle(ctx context.Context, data []byte) (err error) {
	defer func() {
		if v := recover(); v != nil {
			c.srv.recordPanic(panicWSMessage)
			c.log.Error("panic handling websocket message", slog.Any("panic", v),
				slog.String("stack", string(debug.Stack())))
			err = errPanic
		}
	}()
	return c.handle(ctx, data)
}

// recoverPanic logs a panic in one of the socket's goroutines, counts it at
// site and drops the connection instead of crashing the process.
func (c *socket) recoverPanic(where, site string) {
	if v := recover(); v != nil {
		c.srv.recordPanic(site)
		c.log.Error("panic in websocket "+where, slog.Any("panic", v),
			slog.String("stack", string(debug.Stack())))
		c.abort()
	}
}

// handle acts on one client message and returns the error to report to
// the client, if any.
func (c *socket) handle(ctx context.Context, data []byte) error {
	m, err := decodeMessage(data)
	if err != nil {
		c.srv.recordMessage(dirIn, "invalid")
	} else {
		c.srv.recordMessage(dirIn, m.Type)
	}
	if errors.Is(err, errUnknownType) {
		return badRequest("%v", err)
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.srv.cfg.RequestTimeout)
	defer cancel()
	svc := c.srv.svc
	switch m.Type {
	case msgOffer:
		c.mu.Lock()
		c.offering = true
		c.mu.Unlock()
		answer, err := svc.Offer(ctx, c.id, m.SDP)
		if err == nil {
			c.enqueue(Message{Type: msgAnswer, SDP: answer})
		}
		c.mu.Lock()
		held := c.held
		c.offering, c.held = false, nil
		c.mu.Unlock()
		if err != nil {
			return err
		}
		for _, cand := range held {
			c.enqueue(Message{Type: msgCandidate, Candidate: cand})
		}
	case msgCandidate:
		return svc.AddCandidate(ctx, c.id, *m.Candidate)
	case msgInput:
		ev := m.InputEvent()
		if farm := c.srv.cfg.Farm; farm != nil {
			action, detail := farm.InputDetail(ev)
			return farm.Guard(ctx, c.actor(), c.sess.DeviceID, action, detail, func() error { return svc.Input(ctx, c.id, ev) })
		}
		return svc.Input(ctx, c.id, ev)
	case msgControl:
		if c.srv.cfg.Farm == nil {
			return badRequest("control handoff is not enabled")
		}
		st, err := c.srv.controlAction(ctx, c.sess, string(m.Action))
		if err != nil {
			return err
		}
		c.pushControl(st)
	case msgKeyframe:
		return svc.RequestKeyframe(ctx, c.id)
	case msgBye:
		c.mu.Lock()
		c.sessionEnded = true
		c.mu.Unlock()
		err := svc.CloseSession(ctx, c.id, reasonBye)
		c.closeWith(websocket.StatusNormalClosure, reasonBye, true)
		if err != nil && !errors.Is(err, domain.ErrSessionNotFound) {
			c.log.Warn("close session on bye", slog.Any("err", err))
		}
	}
	return nil
}

// writeLoop writes queued messages until quit or ctx ends, then closes the
// connection.
func (c *socket) writeLoop(ctx context.Context) {
	for {
		select {
		case b := <-c.send:
			if err := c.write(ctx, b); err != nil {
				c.log.Debug("websocket write", slog.Any("err", err))
				c.abort()
				return
			}
		case <-c.quit:
			if c.graceful {
				c.flush(ctx)
			}
			grace := c.srv.cfg.WebSocket.WriteTimeout
			if !c.graceful {
				grace = graceForced
			}
			// Close waits for the client's close frame; abort bounds it.
			t := time.AfterFunc(grace, c.abort)
			_ = c.conn.Close(c.code, c.reason)
			t.Stop()
			return
		case <-ctx.Done():
			return
		}
	}
}

// flush writes what is queued now, without waiting for more.
func (c *socket) flush(ctx context.Context) {
	for {
		select {
		case b := <-c.send:
			if err := c.write(ctx, b); err != nil {
				return
			}
		default:
			return
		}
	}
}

func (c *socket) write(ctx context.Context, b []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.srv.cfg.WebSocket.WriteTimeout)
	defer cancel()
	return c.conn.Write(ctx, websocket.MessageText, b)
}

// tickLoop pings the client and pushes stats until the socket ends. A ping
// not answered within PingInterval drops the connection.
func (c *socket) tickLoop(ctx context.Context) {
	cfg := c.srv.cfg
	ping := time.NewTicker(cfg.WebSocket.PingInterval)
	defer ping.Stop()
	var statsC <-chan time.Time
	if cfg.StatsInterval > 0 {
		t := time.NewTicker(cfg.StatsInterval)
		defer t.Stop()
		statsC = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.quit:
			return
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, cfg.WebSocket.PingInterval)
			err := c.conn.Ping(pctx)
			cancel()
			if err != nil {
				c.log.Debug("websocket ping", slog.Any("err", err))
				c.abort()
				return
			}
		case <-statsC:
			sctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
			st, err := c.srv.svc.SessionStats(sctx, c.id)
			cancel()
			if err != nil {
				if !errors.Is(err, domain.ErrSessionNotFound) {
					c.log.Debug("session stats", slog.Any("err", err))
				}
				continue
			}
			c.enqueue(Message{Type: msgStats, Stats: &st})
		}
	}
}
