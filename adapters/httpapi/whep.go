package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"mediasvc/domain"
)

// WHEP (RFC 9725 semantics applied to egress) on this server:
//
//	POST   /whep/{device_id}     application/sdp offer → 201 application/sdp answer,
//	                             Location: /whep/sessions/{session_id}, ETag, Link rel="ice-server"
//	PATCH  /whep/sessions/{id}   application/trickle-ice-sdpfrag → 204 (trickle ICE);
//	                             If-Match: "*" (an ICE restart) → 501, other If-Match mismatch → 412
//	DELETE /whep/sessions/{id}   → 200
//	OPTIONS on both              CORS preflight; Accept-Post / Accept-Patch
const (
	mimeSDP     = "application/sdp"
	mimeSDPFrag = "application/trickle-ice-sdpfrag"
	whepPrefix  = "/whep/sessions/"
)

// cors answers cross-origin requests to WHEP from allowed origins and
// refuses the others with 403.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Add("Vary", "Origin")
		if !s.originAllowed(r) {
			s.writeError(w, r, errorf(http.StatusForbidden, "forbidden_origin", "origin %.100q is not allowed", origin))
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Patch, Accept-Post, Retry-After, X-Request-Id")
		next.ServeHTTP(w, r)
	})
}

func (s *Server) handleWHEPOptions(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if strings.HasPrefix(r.URL.Path, whepPrefix) {
		h.Set("Allow", "OPTIONS, PATCH, DELETE")
		h.Set("Accept-Patch", mimeSDPFrag)
	} else {
		h.Set("Allow", "OPTIONS, POST")
		h.Set("Accept-Post", mimeSDP)
	}
	if r.Header.Get("Origin") != "" {
		h.Set("Access-Control-Allow-Methods", "POST, PATCH, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
		h.Set("Access-Control-Max-Age", "600")
	}
	w.WriteHeader(http.StatusNoContent)
}

// readSDPBody reads an SDP body of content type want, at most limit bytes.
func readSDPBody(w http.ResponseWriter, r *http.Request, want string, limit int64) (string, error) {
	if err := requireContentType(r, want); err != nil {
		return "", err
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return "", err
		}
		return "", badRequest("read body: %v", err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", badRequest("empty body")
	}
	return string(b), nil
}

// etag is the entity tag of a WHEP session's ICE session. ICE restarts are
// not supported, so it is fixed for the session's life and derived from its
// id (the server keeps no WHEP state of its own).
func etag(id domain.SessionID) string {
	h := sha256.Sum256([]byte("ice:" + string(id)))
	return `"` + hex.EncodeToString(h[:8]) + `"`
}

// whepLocation is the resource URL of a WHEP session.
func (s *Server) whepLocation(id domain.SessionID) string {
	prefix := ""
	if s.cfg.PublicURL != "" {
		if pu, err := url.Parse(s.cfg.PublicURL); err == nil {
			prefix = strings.TrimSuffix(pu.Path, "/")
		}
	}
	return prefix + whepPrefix + url.PathEscape(string(id))
}

// iceLinks renders ICE servers as RFC 9725 §4.6 Link header values.
func iceLinks(servers []domain.ICEServer) []string {
	var links []string
	for _, srv := range servers {
		for _, u := range srv.URLs {
			if u == "" || strings.ContainsAny(u, "<>\r\n \"") {
				continue
			}
			l := "<" + u + `>; rel="ice-server"`
			if strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") {
				if srv.Username != "" {
					l += `; username=` + quote(srv.Username) +
						`; credential=` + quote(srv.Credential) +
						`; credential-type="password"`
				}
			}
			links = append(links, l)
		}
	}
	return links
}

// quote renders s as an HTTP quoted-string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			// control characters cannot appear in a header value
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func (s *Server) handleWHEPOffer(w http.ResponseWriter, r *http.Request) {
	device, err := pathID(r, "device_id")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	offer, err := readSDPBody(w, r, mimeSDP, s.cfg.MaxBodyBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !strings.HasPrefix(strings.TrimSpace(offer), "v=") {
		s.writeError(w, r, fmt.Errorf("offer does not start with v=: %w", domain.ErrInvalidOffer))
		return
	}
	if err := principal(r).CanOpen(domain.DeviceID(device), domain.RoleViewer); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	sess, answer, err := s.svc.WHEP(ctx, domain.DeviceID(device), owner(r), offer)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", mimeSDP)
	h.Set("Location", s.whepLocation(sess.ID))
	h.Set("ETag", etag(sess.ID))
	h.Set("Accept-Patch", mimeSDPFrag)
	h.Set("Cache-Control", "no-store")
	for _, l := range iceLinks(s.svc.ICEServersFor(sess)) {
		h.Add("Link", l)
	}
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

func (s *Server) handleWHEPPatch(w http.ResponseWriter, r *http.Request) {
	sess, err := s.sessionFor(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body, err := readSDPBody(w, r, mimeSDPFrag, s.cfg.MaxBodyBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	switch im := strings.TrimSpace(r.Header.Get("If-Match")); {
	case im == "*":
		s.writeError(w, r, errorf(http.StatusNotImplemented, codeNotImplemented, "ICE restart is not supported; start a new session"))
		return
	case im != "" && im != etag(sess.ID):
		s.writeError(w, r, errorf(http.StatusPreconditionFailed, codePrecondition, "If-Match does not match the ICE session"))
		return
	}
	frag, err := parseSDPFrag(body, s.cfg.MaxFragmentLines)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	for _, c := range frag.candidates() {
		if err := s.svc.AddCandidate(ctx, sess.ID, c); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleWHEPDelete(w http.ResponseWriter, r *http.Request) {
	sess, err := s.sessionFor(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	if err := s.svc.CloseSession(ctx, sess.ID, "whep delete"); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
