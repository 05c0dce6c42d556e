package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"mediasvc/domain"
)

// maxIDLen bounds ids taken from URL paths.
const maxIDLen = 128

// pathID returns the URL parameter name, checked to be a plausible id
// (1..128 printable bytes without '/').
func pathID(r *http.Request, name string) (string, error) {
	id := chi.URLParam(r, name)
	if u, err := url.PathUnescape(id); err == nil {
		id = u
	}
	if id == "" || len(id) > maxIDLen || strings.ContainsAny(id, "/ \t\r\n") {
		return "", badRequest("bad %s in path", name)
	}
	return id, nil
}

func (s *Server) handleDevices(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	devs, err := s.svc.Devices(ctx)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := principal(r)
	seen := make([]domain.Device, 0, len(devs))
	for _, d := range devs {
		if p.CanSee(d.ID) {
			seen = append(seen, d)
		}
	}
	if s.cfg.Farm != nil {
		seen = slices.DeleteFunc(seen, func(d domain.Device) bool { return !s.cfg.Farm.Visible(ctx, s.actor(r, d.ID), d.ID) })
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": seen})
}

func (s *Server) handleInstances(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	ins, err := s.svc.Instances(ctx)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if ins == nil {
		ins = []domain.Instance{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"instances": ins})
}

func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !principal(r).CanSee(domain.DeviceID(id)) {
		s.writeError(w, r, fmt.Errorf("device %q: %w", id, domain.ErrDeviceNotFound))
		return
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	d, err := s.svc.Device(ctx, domain.DeviceID(id))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.cfg.Farm == nil {
		writeJSON(w, http.StatusOK, d)
		return
	}
	if err := s.visible(ctx, r, d.ID); err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := s.cfg.Farm.Control(ctx, d.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.cfg.Farm.Reservations(ctx, d.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deviceJSON{Device: d, Control: toControlJSON(c), Reservations: res})
}

// deviceJSON is a device with, when the farm is on, who controls it and
// its reservations.
type deviceJSON struct {
	domain.Device
	Control      *controlJSON         `json:"control"`
	Reservations []domain.Reservation `json:"reservations"`
}

// createSessionRequest is the body of POST /api/v1/sessions.
type createSessionRequest struct {
	DeviceID string `json:"device_id"`
	Role     string `json:"role"`
}

// createSessionResponse is the 201 body of POST /api/v1/sessions. The token
// appears here only.
type createSessionResponse struct {
	SessionID  string             `json:"session_id"`
	Token      string             `json:"token"`
	WSURL      string             `json:"ws_url"`
	ICEServers []domain.ICEServer `json:"ice_servers"`
	ExpiresAt  time.Time          `json:"expires_at"`
	DeviceID   string             `json:"device_id"`
	Role       domain.Role        `json:"role"`
}

// sessionJSON is a session as the API shows it: never the token or its hash.
type sessionJSON struct {
	SessionID string       `json:"session_id"`
	DeviceID  string       `json:"device_id"`
	Role      domain.Role  `json:"role"`
	Kind      string       `json:"kind,omitempty"`
	State     domain.State `json:"state"`
	Reason    string       `json:"reason,omitempty"`
	Owner     string       `json:"owner,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
	ExpiresAt time.Time    `json:"expires_at"`
}

func toSessionJSON(s domain.Session) sessionJSON {
	return sessionJSON{
		SessionID: string(s.ID), DeviceID: string(s.DeviceID), Role: s.Role,
		Kind: s.Kind, State: s.State, Reason: s.Reason, Owner: s.Owner,
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, ExpiresAt: s.ExpiresAt,
	}
}

func (s *Server) handleCreateSession(w http.ResponseWriter, r *http.Request) {
	var req createSessionRequest
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.DeviceID == "" {
		s.writeError(w, r, badRequest("device_id is required"))
		return
	}
	if len(req.DeviceID) > maxIDLen {
		s.writeError(w, r, badRequest("device_id is longer than %d bytes", maxIDLen))
		return
	}
	role := domain.Role(req.Role)
	if role == "" {
		role = domain.RoleViewer
	}
	if !role.Valid() {
		s.writeError(w, r, badRequest("role must be %q or %q", domain.RoleViewer, domain.RoleController))
		return
	}
	if err := principal(r).CanOpen(domain.DeviceID(req.DeviceID), role); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	if s.cfg.Farm != nil {
		if err := s.cfg.Farm.Admit(ctx, s.actor(r, domain.DeviceID(req.DeviceID)), domain.DeviceID(req.DeviceID), role); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	sess, token, err := s.svc.CreateSession(ctx, domain.DeviceID(req.DeviceID), role, owner(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ice := s.svc.ICEServersFor(sess)
	if ice == nil {
		ice = []domain.ICEServer{}
	}
	w.Header().Set("Location", "/api/v1/sessions/"+url.PathEscape(string(sess.ID)))
	writeJSON(w, http.StatusCreated, createSessionResponse{
		SessionID:  string(sess.ID),
		Token:      token,
		WSURL:      s.wsURL(r, sess.ID, token),
		ICEServers: ice,
		ExpiresAt:  sess.ExpiresAt,
		DeviceID:   string(sess.DeviceID),
		Role:       sess.Role,
	})
}

// wsURL builds the session's WebSocket URL from Config.PublicURL or, when
// that is empty, from the request's host and scheme.
func (s *Server) wsURL(r *http.Request, id domain.SessionID, token string) string {
	u := url.URL{Scheme: "ws", Host: r.Host}
	if r.TLS != nil || (s.cfg.TrustProxy && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")) {
		u.Scheme = "wss"
	}
	prefix := ""
	if s.cfg.PublicURL != "" {
		if pu, err := url.Parse(s.cfg.PublicURL); err == nil && pu.Host != "" {
			u.Host = pu.Host
			u.Scheme = "ws"
			if pu.Scheme == "https" || pu.Scheme == "wss" {
				u.Scheme = "wss"
			}
			prefix = strings.TrimSuffix(pu.Path, "/")
		}
	}
	u.Path = prefix + "/api/v1/sessions/" + string(id) + "/ws"
	u.RawQuery = url.Values{"token": {token}}.Encode()
	return u.String()
}

// sessionFor loads the path's session and checks the requester may use it.
func (s *Server) sessionFor(r *http.Request) (domain.Session, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return domain.Session{}, err
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	sess, err := s.svc.Session(ctx, domain.SessionID(id))
	if err != nil {
		return domain.Session{}, err
	}
	if err := s.authorizeSession(r, sess); err != nil {
		return domain.Session{}, err
	}
	return sess, nil
}

func (s *Server) handleGetSession(w http.ResponseWriter, r *http.Request) {
	sess, err := s.sessionFor(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toSessionJSON(sess))
}

func (s *Server) handleDeleteSession(w http.ResponseWriter, r *http.Request) {
	sess, err := s.sessionFor(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	if err := s.svc.CloseSession(ctx, sess.ID, "deleted"); err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.cfg.Farm != nil {
		s.cfg.Farm.Closed(ctx, domain.Actor{Subject: sess.Owner, Session: sess.ID}, sess.DeviceID)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleSessionStats(w http.ResponseWriter, r *http.Request) {
	sess, err := s.sessionFor(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	st, err := s.svc.SessionStats(ctx, sess.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
