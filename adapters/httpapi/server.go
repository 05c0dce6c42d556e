// Package httpapi is mediasvc's inbound HTTP adapter: the REST API, the
// per-session signaling WebSocket, WHEP (RFC 9725) for standard players,
// API-key authentication and the embedded viewer page. It calls the
// application through the Service interface it declares and maps domain
// errors to HTTP statuses in one table (see errorTable).
package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/metric"

	"mediasvc/domain"
)

// Service is what the HTTP adapter needs from the application.
type Service interface {
	// CreateSession creates a session of device for owner and returns it
	// with the plain WebSocket token (shown once).
	CreateSession(ctx context.Context, device domain.DeviceID, role domain.Role, owner string) (s domain.Session, token string, err error)
	// Session returns a session or domain.ErrSessionNotFound.
	Session(ctx context.Context, id domain.SessionID) (domain.Session, error)
	// CloseSession ends a session; domain.ErrSessionNotFound if absent.
	CloseSession(ctx context.Context, id domain.SessionID, reason string) error
	// SessionStats returns the session's current quality.
	SessionStats(ctx context.Context, id domain.SessionID) (domain.QualityStats, error)
	// Connect authenticates token for the session's WebSocket and registers notify for server events
	// (local candidates, state changes, bye). domain.ErrUnauthorized for a wrong token, ErrConflict if a
	// socket is already attached. detach must be called when the socket ends; it does not close the session.
	Connect(ctx context.Context, id domain.SessionID, token string, notify func(domain.SessionEvent)) (detach func(), err error)
	// Offer applies the client's offer and returns the answer; local
	// candidates trickle to the notify function given to Connect.
	Offer(ctx context.Context, id domain.SessionID, sdp string) (answer string, err error)
	// AddCandidate adds a remote ICE candidate. domain.ErrTooManyCandidates
	// past the limit, domain.ErrInvalidCandidate when malformed.
	AddCandidate(ctx context.Context, id domain.SessionID, c domain.Candidate) error
	// Input delivers a controller's input: domain.ErrForbidden for viewers,
	// ErrRateLimited, ErrInvalidInput.
	Input(ctx context.Context, id domain.SessionID, ev domain.InputEvent) error
	// DeviceInput delivers an event in the device's screen pixels to the
	// device outside any session (group input; the farm checked control).
	DeviceInput(ctx context.Context, id domain.DeviceID, ev domain.InputEvent) error
	// RequestKeyframe asks the session's source for a keyframe.
	RequestKeyframe(ctx context.Context, id domain.SessionID) error
	// WHEP creates a viewer session for device and answers offer with all candidates gathered.
	WHEP(ctx context.Context, device domain.DeviceID, owner string, offer string) (s domain.Session, answer string, err error)
	// Devices lists the known devices.
	Devices(ctx context.Context) ([]domain.Device, error)
	// Device returns one device or domain.ErrDeviceNotFound.
	Device(ctx context.Context, id domain.DeviceID) (domain.Device, error)
	// ICEServersFor returns the STUN/TURN servers the client of sess
	// should use, with its own TURN credentials where they are minted.
	ICEServersFor(sess domain.Session) []domain.ICEServer
	// Ready reports false while draining or when a dependency is down.
	Ready() bool
	// Instances lists the live instances sharing the session store;
	// domain.ErrUnavailable when the registry cannot be read.
	Instances(ctx context.Context) ([]domain.Instance, error)
	// PushFile streams size bytes of r to the device's Download folder and
	// returns the path written; InstallAPK streams an APK to its package
	// manager; Screenshot returns a PNG of its screen. domain.ErrForbidden
	// for a device that takes no files, ErrInvalidRequest for a bad name,
	// a body that is not size bytes or a refused package.
	PushFile(ctx context.Context, id domain.DeviceID, name string, r io.Reader, size int64) (string, error)
	InstallAPK(ctx context.Context, id domain.DeviceID, r io.Reader, size int64) error
	Screenshot(ctx context.Context, id domain.DeviceID) ([]byte, error)
}

// Defaults for zero Config fields.
const (
	DefaultMaxBodyBytes    = 64 << 10
	DefaultMaxUploadBytes  = 256 << 20
	DefaultMaxMessageBytes = 64 << 10
	DefaultSendQueue       = 64
	DefaultPingInterval    = 15 * time.Second
	DefaultWriteTimeout    = 10 * time.Second
	DefaultStatsInterval   = 2 * time.Second
	DefaultMaxBadMessages  = 20
	DefaultMaxFragLines    = 100
	DefaultRequestTimeout  = 30 * time.Second
)

// Config configures the HTTP adapter. The zero value of each field means its
// default.
type Config struct {
	// APIKeys maps a key's name to the key. When it is not empty, REST
	// (except /, /healthz and /readyz) and WHEP require
	// "Authorization: Bearer <key>" and the session owner is the key's name;
	// when empty, no key is required and the owner is "ip:<client ip>".
	APIKeys map[string]string
	// Keys are API keys with grants (devices × roles, optional expiry),
	// beside APIKeys; a plain APIKeys key may use every device and role.
	Keys []Key
	// Tokens, when set, verifies signed access tokens (JWT) presented as
	// "Authorization: Bearer <jwt>" or "?access_token=<jwt>"; it also
	// turns authentication on.
	Tokens TokenVerifier
	// AllowedHosts are the Host names the server answers to (see
	// NewHostPolicy); any other Host gets 421 misdirected_host on every
	// route. Empty means DefaultAllowedHosts (the loopback names).
	AllowedHosts []string
	// AllowedOrigins lists the origins, besides those whose host is one of
	// AllowedHosts, allowed to use the API from a browser (WebSockets, WHEP
	// CORS, REST). Entries are host patterns ("app.example.com",
	// "*.example.com") or scheme://host patterns; "*" allows any origin.
	// The request's own Host is never trusted as an origin.
	AllowedOrigins []string
	// MaxBodyBytes bounds JSON and SDP request bodies (default 64 KiB).
	MaxBodyBytes int64
	// MaxUploadBytes bounds a file or APK upload (default 256 MiB).
	MaxUploadBytes int64
	// WebSocket configures session sockets.
	WebSocket WebSocketConfig
	// StatsInterval is how often a session socket is pushed a "stats"
	// message (default 2 s; negative disables).
	StatsInterval time.Duration
	// PublicURL is the externally visible base URL ("https://media.example.com")
	// used to build ws_url; when empty it is derived from the request.
	PublicURL string
	// TrustProxy makes the client IP come from the last X-Forwarded-For
	// entry (the one added by the proxy in front of us) and the scheme from
	// X-Forwarded-Proto. Set it only behind exactly one trusted proxy.
	TrustProxy bool
	// MaxFragmentLines bounds the lines of a WHEP trickle PATCH body
	// (default 100).
	MaxFragmentLines int
	// RequestTimeout bounds each service call made for a request
	// (default 30 s).
	RequestTimeout time.Duration
	// Observe, when set, is called once per request with the chi route
	// pattern ("/api/v1/sessions/{id}", "unmatched" when no route matched),
	// the method, the status written and the duration. For WebSocket
	// requests it is called when the socket ends, with status 101.
	Observe func(route, method string, status int, dur time.Duration)
	// Meter records the adapter's metrics (HTTP requests and latency by
	// route pattern, WebSocket connections, messages and send-queue
	// drops); nil records nothing.
	Meter metric.Meter
	// Farm enables control handoff, reservations, the audit trail and
	// group input (see farm.go); nil leaves them out.
	Farm Farm
	// Admins lists the API key names that are admins (take control, book
	// for others, read the audit trail). Without API keys every caller is.
	Admins []string
	// Recordings enables MP4 recordings of device streams (see
	// recordings.go); nil leaves their routes out.
	Recordings Recordings
	// Walls enables the device wall (GET /wall, see wall.go); nil leaves
	// its routes out.
	Walls Walls
}

// WebSocketConfig configures session WebSockets.
type WebSocketConfig struct {
	// MaxMessageBytes bounds one client message (default 64 KiB); a bigger
	// one closes the socket with status 1009.
	MaxMessageBytes int64
	// SendQueue is how many server messages may wait for a slow client
	// (default 64); when the queue is full the socket is closed with 1008.
	SendQueue int
	// PingInterval is how often the server pings (default 15 s); a ping
	// unanswered within PingInterval ends the socket.
	PingInterval time.Duration
	// WriteTimeout bounds each write (default 10 s).
	WriteTimeout time.Duration
	// MaxBadMessages is how many invalid client messages a socket tolerates
	// before it is closed with 1008 (default 20).
	MaxBadMessages int
}

func (c Config) withDefaults() Config {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxUploadBytes <= 0 {
		c.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if c.WebSocket.MaxMessageBytes <= 0 {
		c.WebSocket.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.WebSocket.SendQueue <= 0 {
		c.WebSocket.SendQueue = DefaultSendQueue
	}
	if c.WebSocket.PingInterval <= 0 {
		c.WebSocket.PingInterval = DefaultPingInterval
	}
	if c.WebSocket.WriteTimeout <= 0 {
		c.WebSocket.WriteTimeout = DefaultWriteTimeout
	}
	if c.WebSocket.MaxBadMessages <= 0 {
		c.WebSocket.MaxBadMessages = DefaultMaxBadMessages
	}
	if c.StatsInterval == 0 {
		c.StatsInterval = DefaultStatsInterval
	}
	if c.MaxFragmentLines <= 0 {
		c.MaxFragmentLines = DefaultMaxFragLines
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	return c
}

// Server is the HTTP adapter. Build it with New, serve Handler, and call
// Shutdown when draining.
type Server struct {
	cfg    Config
	svc    Service
	log    *slog.Logger
	router chi.Router
	keys   []apiKey
	hosts  HostPolicy
	m      instruments

	mu      sync.Mutex
	sockets map[*socket]struct{}
	// pendingWalls are wall tokens waiting for their WebSocket;
	// wallSockets the open walls' sockets.
	pendingWalls map[string]pendingWall
	wallSockets  map[*wallSocket]struct{}
	draining     bool
	reason       string         // Shutdown's reason, for sockets that open while draining
	wg           sync.WaitGroup // one per live socket handler
}

// New returns a Server for svc. A nil logger discards logs.
func New(cfg Config, svc Service, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:     cfg.withDefaults(),
		svc:     svc,
		log:     logger,
		keys:    newAPIKeys(cfg.APIKeys, cfg.Keys),
		hosts:   NewHostPolicy(cfg.AllowedHosts),
		m:       newInstruments(cfg.Meter),
		sockets: make(map[*socket]struct{}),

		pendingWalls: make(map[string]pendingWall),
		wallSockets:  make(map[*wallSocket]struct{}),
	}
	s.router = s.routes()
	return s
}

// Handler returns the HTTP handler serving every route.
func (s *Server) Handler() http.Handler { return s.router }

// Mount serves h at pattern (a chi pattern such as "/metrics") through the
// request-id, recovery, access-log and Observe middleware but without API-key
// authentication. Call it before serving.
func (s *Server) Mount(pattern string, h http.Handler) {
	s.router.Handle(pattern, h)
}

// MountAuthenticated is Mount behind the authentication of the REST API:
// with keys or tokens configured, requests need a principal allowed to
// operate (a plain API key or an admin grant): 401 without one, 403 for
// others. Call it before serving.
func (s *Server) MountAuthenticated(pattern string, h http.Handler) {
	s.router.With(s.authenticate, s.requireOperator).Handle(pattern, h)
}

// Shutdown sends every open session socket {"type":"bye","reason":reason}
// and a normal close, refuses new sockets, and waits until the socket
// handlers have finished or ctx is done. It does not close the sessions;
// draining them is the application's job. Plain HTTP requests are drained
// by http.Server.Shutdown, which the caller runs as well.
func (s *Server) Shutdown(ctx context.Context, reason string) {
	s.mu.Lock()
	s.draining = true
	s.reason = reason
	socks := make([]*socket, 0, len(s.sockets))
	for c := range s.sockets {
		socks = append(socks, c)
	}
	for c := range s.wallSockets {
		c.closeWith(websocket.StatusGoingAway, closeReason(reason))
	}
	s.mu.Unlock()
	for _, c := range socks {
		c.bye(reason)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.sockets {
			c.abort()
		}
		s.mu.Unlock()
		<-done
	}
}

// routes builds the router.
func (s *Server) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(s.requestID, s.observe, s.recoverer, s.checkHost)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errorf(http.StatusNotFound, codeNotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errorf(http.StatusMethodNotAllowed, codeMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path))
	})

	r.Get("/", s.handleViewer)
	r.Get("/healthz", s.handleHealthz)
	r.Get("/readyz", s.handleReadyz)
	if s.cfg.Walls != nil {
		r.Get("/wall", s.handleWallPage)
	}

	r.Route("/api/v1", func(r chi.Router) {
		// The session WebSocket authenticates with the session token, not
		// an API key: browsers cannot set headers on a WebSocket.
		r.Get("/sessions/{id}/ws", s.handleWebSocket)
		if s.cfg.Walls != nil {
			r.Get("/walls/{id}/ws", s.handleWallSocket)
		}
		r.Group(func(r chi.Router) {
			r.Use(s.checkOrigin, s.authenticate)
			r.Get("/devices", s.handleDevices)
			r.Get("/devices/{id}", s.handleDevice)
			r.Get("/devices/{id}/screenshot", s.handleScreenshot)
			r.Post("/devices/{id}/files", s.handleUpload(false))
			r.Post("/devices/{id}/apps", s.handleUpload(true))
			r.With(s.requireOperator).Get("/instances", s.handleInstances)
			r.Post("/sessions", s.handleCreateSession)
			r.Get("/sessions/{id}", s.handleGetSession)
			r.Delete("/sessions/{id}", s.handleDeleteSession)
			r.Get("/sessions/{id}/stats", s.handleSessionStats)
			if s.cfg.Farm != nil {
				s.farmRoutes(r)
			}
			if s.cfg.Recordings != nil {
				s.recordingRoutes(r)
			}
			if s.cfg.Walls != nil {
				r.Post("/walls", s.handleCreateWall)
			}
		})
	})

	r.Route("/whep", func(r chi.Router) {
		r.Use(s.cors)
		r.Options("/{device_id}", s.handleWHEPOptions)
		r.Options("/sessions/{id}", s.handleWHEPOptions)
		r.Group(func(r chi.Router) {
			r.Use(s.authenticate)
			r.Post("/{device_id}", s.handleWHEPOffer)
			r.Patch("/sessions/{id}", s.handleWHEPPatch)
			r.Delete("/sessions/{id}", s.handleWHEPDelete)
		})
	})
	return r
}

// serviceContext bounds a service call made for r.
func (s *Server) serviceContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReadyz(w http.ResponseWriter, _ *http.Request) {
	if !s.svc.Ready() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
