package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"mediasvc/domain"
)

// The device wall: GET /wall is the page; POST /api/v1/walls (with the
// caller's key) returns a one-time token for the wall's WebSocket,
// GET /api/v1/walls/{id}/ws?token=…, which carries the server's offers,
// the page's answers, candidates both ways, the tiles and the page's
// "visible" reports. The wall shows the devices the key may see.

// Walls is what the HTTP adapter needs to open device walls (app's
// Service.OpenWall); with Config.Walls nil the wall routes are absent.
type Walls interface {
	// OpenWall opens wall id for an owner who sees the devices visible
	// says; notify receives its events and must not block. The caller
	// must Close the wall. domain.ErrDraining, domain.ErrUnavailable.
	OpenWall(ctx context.Context, id string, visible func(context.Context, domain.Device) bool, notify func(domain.WallEvent)) (WallConn, error)
}

// WallConn is one open wall (app.Wall).
type WallConn interface {
	// Answer applies the page's answer to the wall's last offer.
	Answer(ctx context.Context, sdp string) error
	// AddCandidate adds the page's ICE candidate.
	AddCandidate(c domain.Candidate) error
	// SetVisible pauses or resumes a tile; domain.ErrInvalidRequest for
	// a device without one.
	SetVisible(id domain.DeviceID, visible bool) error
	// Tiles returns the tiles with what each has sent.
	Tiles() []domain.WallTile
	// Close ends the wall.
	Close()
}

// Wall limits.
const (
	// wallTokenTTL is how long a wall token waits for its WebSocket.
	wallTokenTTL = time.Minute
	// maxPendingWalls bounds the tokens waiting for their WebSocket.
	maxPendingWalls = 256
	// wallSendQueue bounds the messages waiting for a slow wall page.
	wallSendQueue = 256
)

// Wall WebSocket message types beside the session ones.
const (
	msgTiles   = "tiles"   // server → page: {tiles:[…]} on every change and every StatsInterval
	msgVisible = "visible" // page → server: {device_id, visible}
)

// pendingWall is a wall token waiting for its WebSocket.
type pendingWall struct {
	token   [32]byte // sha256 of the token
	p       domain.Principal
	expires time.Time
}

// wallMessage is one JSON message on a wall's WebSocket.
type wallMessage struct {
	Type      string            `json:"type"`
	SDP       string            `json:"sdp,omitempty"`
	Candidate *domain.Candidate `json:"candidate,omitempty"`
	Tiles     []domain.WallTile `json:"tiles,omitempty"`
	State     string            `json:"state,omitempty"`
	Device    domain.DeviceID   `json:"device_id,omitempty"`
	Visible   *bool             `json:"visible,omitempty"`
	Code      string            `json:"code,omitempty"`
	Message   string            `json:"message,omitempty"`
	Reason    string            `json:"reason,omitempty"`
}

func (s *Server) handleWallPage(w http.ResponseWriter, _ *http.Request) {
	servePage(w, wallPage)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// handleCreateWall is POST /api/v1/walls: 201 {wall_id, token, ws_url,
// ice_servers, expires_at}; the token opens the wall's WebSocket once,
// within a minute. 503 while draining or with too many tokens waiting.
func (s *Server) handleCreateWall(w http.ResponseWriter, r *http.Request) {
	id, token := "w"+randomHex(8), randomHex(16)
	now := time.Now()
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		s.writeError(w, r, domain.ErrDraining)
		return
	}
	for k, pw := range s.pendingWalls {
		if now.After(pw.expires) {
			delete(s.pendingWalls, k)
		}
	}
	if len(s.pendingWalls) >= maxPendingWalls {
		s.mu.Unlock()
		s.writeError(w, r, errorf(http.StatusServiceUnavailable, "unavailable", "%d walls are waiting for their WebSocket", maxPendingWalls))
		return
	}
	expires := now.Add(wallTokenTTL)
	s.pendingWalls[id] = pendingWall{token: sha256.Sum256([]byte(token)), p: principal(r), expires: expires}
	s.mu.Unlock()
	ws := s.wsURL(r, domain.SessionID(id), token)
	ws = strings.Replace(ws, "/api/v1/sessions/", "/api/v1/walls/", 1)
	ice := s.svc.ICEServersFor(domain.Session{ID: domain.SessionID(id), ExpiresAt: now.Add(time.Hour)})
	if ice == nil {
		ice = []domain.ICEServer{}
	}
	writeJSON(w, http.StatusCreated, map[string]any{"wall_id": id, "token": token, "ws_url": ws, "ice_servers": ice, "expires_at": expires.UTC()})
}

// takeWall redeems a wall token: the principal it was made for.
func (s *Server) takeWall(id, token string) (domain.Principal, error) {
	sum := sha256.Sum256([]byte(token))
	s.mu.Lock()
	defer s.mu.Unlock()
	pw, ok := s.pendingWalls[id]
	if !ok || time.Now().After(pw.expires) || subtle.ConstantTimeCompare(sum[:], pw.token[:]) != 1 {
		return domain.Principal{}, errorf(http.StatusUnauthorized, "unauthorized", "unknown, used or expired wall token")
	}
	delete(s.pendingWalls, id)
	return pw.p, nil
}

// wallSocket is one wall's WebSocket: the handler reads, writeLoop writes.
type wallSocket struct {
	srv  *Server
	log  *slog.Logger
	send chan []byte
	quit chan struct{}
	once sync.Once
	code websocket.StatusCode
	why  string
}

func (c *wallSocket) closeWith(code websocket.StatusCode, why string) {
	c.once.Do(func() {
		c.code, c.why = code, why
		close(c.quit)
	})
}

// enqueue queues m without blocking; a page that cannot keep up is
// closed with 1008.
func (c *wallSocket) enqueue(m wallMessage) {
	select {
	case <-c.quit:
		return
	default:
	}
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	select {
	case c.send <- b:
		c.srv.recordMessage(dirOut, m.Type)
	default:
		c.srv.m.wsDrops.Add(context.Background(), 1)
		c.closeWith(websocket.StatusPolicyViolation, reasonQueueFull)
	}
}

func (c *wallSocket) notify(ev domain.WallEvent) {
	switch ev.Type {
	case "candidate":
		if ev.Candidate != nil {
			c.enqueue(wallMessage{Type: msgCandidate, Candidate: ev.Candidate})
		}
	case "state":
		c.enqueue(wallMessage{Type: msgState, State: ev.State})
	case "offer":
		c.enqueue(wallMessage{Type: msgOffer, SDP: ev.SDP, Tiles: ev.Tiles})
	case "tiles":
		c.enqueue(wallMessage{Type: msgTiles, Tiles: ev.Tiles})
	}
}

// handleWallSocket is GET /api/v1/walls/{id}/ws?token=….
func (s *Server) handleWallSocket(w http.ResponseWriter, r *http.Request) {
	id, token, ok := s.socketRequest(w, r, "wall")
	if !ok {
		return
	}
	p, err := s.takeWall(id, token)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	done, err := s.enterSocket()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer done()

	sock := &wallSocket{srv: s, log: s.log.With("wall", id), send: make(chan []byte, wallSendQueue), quit: make(chan struct{})}
	visible := func(ctx context.Context, d domain.Device) bool {
		if !p.CanSee(d.ID) || p.Expired(time.Now()) {
			return false
		}
		if s.cfg.Farm == nil {
			return true
		}
		return s.cfg.Farm.Visible(ctx, s.actorOf(p, d.ID), d.ID)
	}
	cctx, ccancel := s.serviceContext(r)
	wall, err := s.cfg.Walls.OpenWall(cctx, id, visible, sock.notify)
	ccancel()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer wall.Close()

	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true}) // origin checked above
	if err != nil {
		return
	}
	conn.SetReadLimit(s.cfg.WebSocket.MaxMessageBytes)
	s.m.wsConns.Add(r.Context(), 1)
	defer s.m.wsConns.Add(context.WithoutCancel(r.Context()), -1)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	s.mu.Lock()
	s.wallSockets[sock] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.wallSockets, sock)
		s.mu.Unlock()
	}()

	var wg sync.WaitGroup
	wg.Go(func() { sock.writeLoop(ctx, cancel, conn, wall) })
	sock.readLoop(ctx, conn, wall)
	sock.closeWith(websocket.StatusNormalClosure, reasonClientGone)
	wg.Wait()
}

// writeLoop sends queued messages and the tiles every StatsInterval,
// then the close frame, and ends the socket.
func (c *wallSocket) writeLoop(ctx context.Context, cancel context.CancelFunc, conn *websocket.Conn, wall WallConn) {
	defer cancel()
	wt := c.srv.cfg.WebSocket.WriteTimeout
	write := func(b []byte) bool {
		wctx, wcancel := context.WithTimeout(ctx, wt)
		defer wcancel()
		return conn.Write(wctx, websocket.MessageText, b) == nil
	}
	var tick <-chan time.Time
	if iv := c.srv.cfg.StatsInterval; iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.quit:
			for {
				select {
				case b := <-c.send:
					if !write(b) {
						return
					}
					continue
				default:
				}
				break
			}
			_ = conn.Close(c.code, c.why)
			return
		case b := <-c.send:
			if !write(b) {
				return
			}
		case <-tick:
			c.enqueue(wallMessage{Type: msgTiles, Tiles: wall.Tiles()})
		}
	}
}

// readLoop handles the page's messages until the socket ends; every bad
// one gets an error message, and too many close the socket.
func (c *wallSocket) readLoop(ctx context.Context, conn *websocket.Conn, wall WallConn) {
	bad := 0
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return
		}
		var m wallMessage
		err = decodeWallMessage(data, &m)
		if err == nil {
			c.srv.recordMessage(dirIn, m.Type)
			err = c.handle(ctx, wall, m)
		}
		if errors.Is(err, errWallBye) {
			c.closeWith(websocket.StatusNormalClosure, reasonBye)
			return
		}
		if err != nil {
			_, code, msg := classify(err)
			c.enqueue(wallMessage{Type: msgError, Code: code, Message: msg})
			if bad++; bad >= c.srv.cfg.WebSocket.MaxBadMessages {
				c.closeWith(websocket.StatusPolicyViolation, reasonBadClient)
				return
			}
		}
	}
}

var errWallBye = errors.New("bye")

func decodeWallMessage(data []byte, m *wallMessage) error {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		return badRequest("wall message: %v", err)
	}
	if dec.More() {
		return badRequest("wall message: one JSON object per message")
	}
	return nil
}

func (c *wallSocket) handle(ctx context.Context, wall WallConn, m wallMessage) error {
	switch m.Type {
	case msgAnswer:
		if m.SDP == "" {
			return badRequest("answer without sdp")
		}
		actx, cancel := context.WithTimeout(ctx, c.srv.cfg.RequestTimeout)
		defer cancel()
		return wall.Answer(actx, m.SDP)
	case msgCandidate:
		if m.Candidate == nil {
			return badRequest("candidate message without candidate")
		}
		return wall.AddCandidate(*m.Candidate)
	case msgVisible:
		if m.Device == "" || m.Visible == nil {
			return badRequest("visible message needs device_id and visible")
		}
		return wall.SetVisible(m.Device, *m.Visible)
	case msgBye:
		return errWallBye
	case "":
		return badRequest("message without type")
	}
	return badRequest("unknown wall message type %.40q", m.Type)
}
