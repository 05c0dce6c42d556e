package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"mediasvc/domain"
)

// Farm is what the HTTP adapter needs from the device-farm use cases
// (app.Farm): control handoff, reservations, the audit trail, group
// input. With Config.Farm nil the farm routes are absent and every
// controller session may send input, as before.
type Farm interface {
	// Control returns who controls device d and who waits.
	Control(ctx context.Context, d domain.DeviceID) (domain.Control, error)
	// RequestControl, ReleaseControl and TakeControl change who controls
	// d: a *domain.ReservedError when reserved for another,
	// domain.ErrForbidden when a non-admin takes.
	RequestControl(ctx context.Context, who domain.Actor, d domain.DeviceID) (domain.Control, domain.ControlOutcome, error)
	ReleaseControl(ctx context.Context, who domain.Actor, d domain.DeviceID) (domain.Control, error)
	TakeControl(ctx context.Context, who domain.Actor, d domain.DeviceID) (domain.Control, error)
	// Disconnected starts a controller's grace; Closed releases at once.
	Disconnected(ctx context.Context, who domain.Actor, d domain.DeviceID)
	Closed(ctx context.Context, who domain.Actor, d domain.DeviceID)
	// Watch calls fn on every change of d's control state until cancel.
	Watch(d domain.DeviceID, fn func(domain.Control)) (cancel func())
	// Admit refuses (*domain.ReservedError) a session on a device reserved
	// for another subject; Visible says whether d appears in listings.
	Admit(ctx context.Context, who domain.Actor, d domain.DeviceID, role domain.Role) error
	Visible(ctx context.Context, who domain.Actor, d domain.DeviceID) bool
	// Guard runs do when who may send input to d, auditing either way.
	Guard(ctx context.Context, who domain.Actor, d domain.DeviceID, action domain.AuditAction, detail string, do func() error) error
	// GuardUse runs do, a file push or install outside a session, when d
	// is not reserved for another and controlled by nobody else, auditing
	// either way.
	GuardUse(ctx context.Context, who domain.Actor, d domain.DeviceID, action domain.AuditAction, detail string, do func() error) error
	// InputDetail is the audit action and detail of an input event.
	InputDetail(ev domain.InputEvent) (domain.AuditAction, string)
	// Reserve, ExtendReservation, CancelReservation, Reservations and
	// AllReservations manage bookings.
	Reserve(ctx context.Context, who domain.Actor, d domain.DeviceID, subject string, start, until time.Time) (domain.Reservation, error)
	ExtendReservation(ctx context.Context, who domain.Actor, d domain.DeviceID, id string, until time.Time) (domain.Reservation, error)
	CancelReservation(ctx context.Context, who domain.Actor, d domain.DeviceID, id string) (domain.Reservation, error)
	Reservations(ctx context.Context, d domain.DeviceID) ([]domain.Reservation, error)
	AllReservations(ctx context.Context) ([]domain.Reservation, error)
	// Audit returns the audit events a filter selects, oldest first.
	Audit(ctx context.Context, f domain.AuditFilter) ([]domain.AuditEvent, error)
	// GroupInput sends g to the devices who controls, mapped to each
	// screen (size) and delivered by send; one error per device.
	GroupInput(ctx context.Context, who domain.Actor, devices []domain.DeviceID, g domain.GroupInput,
		size func(context.Context, domain.DeviceID) (int, int, error),
		send func(context.Context, domain.DeviceID, domain.InputEvent) error) ([]error, error)
}

// farmRoutes mounts the farm's REST routes on r (already authenticated).
func (s *Server) farmRoutes(r chi.Router) {
	r.Get("/devices/{id}/control", s.handleGetControl)
	r.Post("/sessions/{id}/control", s.handleSessionControl)
	r.Get("/devices/{id}/reservations", s.handleListReservations)
	r.Post("/devices/{id}/reservations", s.handleReserve)
	r.Patch("/devices/{id}/reservations/{rid}", s.handleExtendReservation)
	r.Delete("/devices/{id}/reservations/{rid}", s.handleCancelReservation)
	r.Get("/reservations", s.handleAllReservations)
	r.Get("/audit", s.handleAudit)
	r.Post("/input", s.handleGroupInput)
}

// actor is who makes request r about device d ("*": about every device),
// outside any session. It is an admin of d when its principal has the
// admin role on d (every caller does without authentication) or its
// subject is in Config.Admins.
func (s *Server) actor(r *http.Request, d domain.DeviceID) domain.Actor {
	return s.actorOf(principal(r), d)
}

// actorOf is principal p acting on device d (see actor).
func (s *Server) actorOf(p domain.Principal, d domain.DeviceID) domain.Actor {
	return domain.Actor{Subject: p.Subject, Admin: p.AdminOf(d) || slices.Contains(s.cfg.Admins, p.Subject)}
}

// isAdmin reports whether subject, acting through a session of device d
// (whose socket carries no principal), is an admin there: without
// authentication everyone is; else a subject in Config.Admins, or one
// whose API key has the admin role on d. (A JWT subject is an admin over
// the WebSocket only through Config.Admins; over REST its token's grants
// count.)
func (s *Server) isAdmin(subject string, d domain.DeviceID) bool {
	if len(s.keys) == 0 && s.cfg.Tokens == nil {
		return true
	}
	if slices.Contains(s.cfg.Admins, subject) {
		return true
	}
	for _, k := range s.keys {
		if k.principal.Subject == subject && k.principal.AdminOf(d) {
			return true
		}
	}
	return false
}

// controlJSON is a device's control state as the API shows it.
type controlJSON struct {
	Device         domain.DeviceID        `json:"device_id"`
	MaxControllers int                    `json:"max_controllers,omitempty"`
	Controllers    []domain.ControlHolder `json:"controllers"`
	Queue          []domain.ControlHolder `json:"queue"`
	Version        int64                  `json:"version"`
}

func toControlJSON(c domain.Control) *controlJSON {
	out := &controlJSON{Device: c.Device, Controllers: c.Controllers, Queue: c.Queue, Version: c.Version}
	if out.Controllers == nil {
		out.Controllers = []domain.ControlHolder{}
	}
	if out.Queue == nil {
		out.Queue = []domain.ControlHolder{}
	}
	return out
}

// you says where session id stands in c: "controller", "queued" or
// "viewer".
func you(c domain.Control, id domain.SessionID) (string, int) {
	switch {
	case c.Controls(id):
		return "controller", 0
	case c.Position(id) > 0:
		return "queued", c.Position(id)
	}
	return "viewer", 0
}

func (s *Server) handleGetControl(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	if err := s.visible(ctx, r, domain.DeviceID(id)); err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := s.cfg.Farm.Control(ctx, domain.DeviceID(id))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toControlJSON(c))
}

// visible returns the refusal for a device hidden from r's caller.
func (s *Server) visible(ctx context.Context, r *http.Request, d domain.DeviceID) error {
	return s.cfg.Farm.Admit(ctx, s.actor(r, d), d, domain.RoleViewer)
}

type controlRequest struct {
	Action string `json:"action"`
}

// handleSessionControl is POST /api/v1/sessions/{id}/control
// {"action":"request"|"release"|"take"} for the caller's own session.
func (s *Server) handleSessionControl(w http.ResponseWriter, r *http.Request) {
	var req controlRequest
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	sess, err := s.sessionFor(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	c, err := s.controlAction(ctx, sess, req.Action)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st, pos := you(c, sess.ID)
	writeJSON(w, http.StatusOK, map[string]any{"control": toControlJSON(c), "you": st, "position": pos})
}

// controlAction applies a control action of session sess.
func (s *Server) controlAction(ctx context.Context, sess domain.Session, action string) (domain.Control, error) {
	who := domain.Actor{Subject: sess.Owner, Session: sess.ID, Admin: s.isAdmin(sess.Owner, sess.DeviceID)}
	switch action {
	case "request":
		if sess.Role != domain.RoleController {
			return domain.Control{}, errors.Join(domain.ErrForbidden, errors.New("a viewer session may not control; create a controller session"))
		}
		c, _, err := s.cfg.Farm.RequestControl(ctx, who, sess.DeviceID)
		return c, err
	case "release":
		return s.cfg.Farm.ReleaseControl(ctx, who, sess.DeviceID)
	case "take":
		if sess.Role != domain.RoleController {
			return domain.Control{}, errors.Join(domain.ErrForbidden, errors.New("a viewer session may not control; create a controller session"))
		}
		return s.cfg.Farm.TakeControl(ctx, who, sess.DeviceID)
	}
	return domain.Control{}, badRequest("control action must be request, release or take, got %.32q", action)
}

type reserveRequest struct {
	Subject string    `json:"subject"`
	Start   time.Time `json:"start"`
	Until   time.Time `json:"until"`
}

type extendRequest struct {
	Until time.Time `json:"until"`
}

func (s *Server) handleReserve(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req reserveRequest
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Until.IsZero() {
		s.writeError(w, r, badRequest("until is required (RFC 3339)"))
		return
	}
	if len(req.Subject) > maxIDLen {
		s.writeError(w, r, badRequest("subject is longer than %d bytes", maxIDLen))
		return
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	if _, err := s.svc.Device(ctx, domain.DeviceID(id)); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.cfg.Farm.Reserve(ctx, s.actor(r, domain.DeviceID(id)), domain.DeviceID(id), req.Subject, req.Start, req.Until)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/devices/"+url.PathEscape(id)+"/reservations/"+url.PathEscape(res.ID))
	writeJSON(w, http.StatusCreated, res)
}

func (s *Server) handleListReservations(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	if err := s.visible(ctx, r, domain.DeviceID(id)); err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := s.cfg.Farm.Reservations(ctx, domain.DeviceID(id))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"reservations": list})
}

func (s *Server) handleAllReservations(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	list, err := s.cfg.Farm.AllReservations(ctx)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list = slices.DeleteFunc(list, func(res domain.Reservation) bool {
		return !principal(r).CanSee(res.Device) || !s.cfg.Farm.Visible(ctx, s.actor(r, res.Device), res.Device)
	})
	writeJSON(w, http.StatusOK, map[string]any{"reservations": list})
}

func (s *Server) handleExtendReservation(w http.ResponseWriter, r *http.Request) {
	id, rid, err := reservationPath(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req extendRequest
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Until.IsZero() {
		s.writeError(w, r, badRequest("until is required (RFC 3339)"))
		return
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	res, err := s.cfg.Farm.ExtendReservation(ctx, s.actor(r, id), id, rid, req.Until)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) handleCancelReservation(w http.ResponseWriter, r *http.Request) {
	id, rid, err := reservationPath(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	if _, err := s.cfg.Farm.CancelReservation(ctx, s.actor(r, id), id, rid); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func reservationPath(r *http.Request) (domain.DeviceID, string, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return "", "", err
	}
	rid, err := pathID(r, "rid")
	if err != nil {
		return "", "", err
	}
	return domain.DeviceID(id), rid, nil
}

// handleAudit is GET /api/v1/audit?device=&subject=&since=&limit=, for
// admins only (403 otherwise).
func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	who := s.actor(r, "*")
	if !who.Admin {
		s.writeError(w, r, errors.Join(domain.ErrForbidden, errors.New("the audit trail is for admins")))
		return
	}
	q := r.URL.Query()
	f := domain.AuditFilter{Device: domain.DeviceID(q.Get("device")), Subject: q.Get("subject")}
	if len(f.Device) > maxIDLen || len(f.Subject) > maxIDLen {
		s.writeError(w, r, badRequest("device and subject are at most %d bytes", maxIDLen))
		return
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			s.writeError(w, r, badRequest("since must be an RFC 3339 time, got %.40q", v))
			return
		}
		f.Since = t
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > domain.MaxAuditLimit {
			s.writeError(w, r, badRequest("limit must be 1..%d, got %.20q", domain.MaxAuditLimit, v))
			return
		}
		f.Limit = n
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	es, err := s.cfg.Farm.Audit(ctx, f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": es})
}

type groupInputRequest struct {
	Devices []domain.DeviceID `json:"devices"`
	Input   domain.GroupInput `json:"input"`
}

type groupResult struct {
	Device domain.DeviceID `json:"device_id"`
	OK     bool            `json:"ok"`
	Error  *errorDetail    `json:"error,omitempty"`
	Status int             `json:"status"`
}

// handleGroupInput is POST /api/v1/input {"devices":[…],"input":{…}}:
// 200 with one result per device (its status as if sent alone), 400
// when the request itself is malformed.
func (s *Server) handleGroupInput(w http.ResponseWriter, r *http.Request) {
	var req groupInputRequest
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	size := func(ctx context.Context, d domain.DeviceID) (int, int, error) {
		dev, err := s.svc.Device(ctx, d)
		return dev.Width, dev.Height, err
	}
	errs, err := s.cfg.Farm.GroupInput(ctx, s.actor(r, "*"), req.Devices, req.Input, size, s.svc.DeviceInput)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]groupResult, len(errs))
	for i, e := range errs {
		out[i] = groupResult{Device: req.Devices[i], OK: e == nil, Status: http.StatusOK}
		if e != nil {
			status, code, msg := classify(e)
			out[i].Status = status
			out[i].Error = &errorDetail{Code: code, Message: msg}
			fillReserved(out[i].Error, e)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": out})
}

// fillReserved adds who and until to the error detail of a
// *domain.ReservedError.
func fillReserved(d *errorDetail, err error) {
	var re *domain.ReservedError
	if errors.As(err, &re) {
		d.Subject = re.Subject
		until := re.Until.UTC()
		d.Until = &until
	}
}
