package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"

	"mediasvc/domain"
)

const ownerKey ctxKey = iota + 100

// apiKey is a configured key, kept as a hash so every comparison takes the
// same time whatever the lengths.
type apiKey struct {
	name string
	hash [32]byte
}

func newAPIKeys(m map[string]string) []apiKey {
	keys := make([]apiKey, 0, len(m))
	for name, key := range m {
		if key == "" {
			continue
		}
		keys = append(keys, apiKey{name: name, hash: sha256.Sum256([]byte(key))})
	}
	return keys
}

// lookupKey returns the name of the key matching presented. It compares
// against every key in constant time, so timing reveals neither which key
// nor how much of it matched.
func (s *Server) lookupKey(presented string) (string, bool) {
	h := sha256.Sum256([]byte(presented))
	name, found := "", 0
	for _, k := range s.keys {
		if subtle.ConstantTimeCompare(h[:], k.hash[:]) == 1 {
			name, found = k.name, 1
		}
	}
	return name, found == 1
}

// authenticate requires a valid API key when keys are configured and puts
// the request's owner in its context: the key's name, or "ip:<client ip>"
// without keys.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		owner := "ip:" + s.clientIP(r)
		if len(s.keys) > 0 {
			auth := r.Header.Get("Authorization")
			scheme, token, ok := strings.Cut(auth, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="mediasvc"`)
				s.writeError(w, r, errorf(http.StatusUnauthorized, "unauthorized", "missing bearer API key"))
				return
			}
			name, ok := s.lookupKey(strings.TrimSpace(token))
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="mediasvc", error="invalid_token"`)
				s.writeError(w, r, errorf(http.StatusUnauthorized, "unauthorized", "invalid API key"))
				return
			}
			owner = name
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ownerKey, owner)))
	})
}

// owner returns the owner authenticate stored for r.
func owner(r *http.Request) string {
	o, _ := r.Context().Value(ownerKey).(string)
	return o
}

// authorizeSession reports whether the requester may act on sess. With API
// keys a key sees only the sessions it created; without keys anyone holding
// the (random) session id may. A foreign session is reported as not found,
// so its existence does not leak.
func (s *Server) authorizeSession(r *http.Request, sess domain.Session) error {
	if len(s.keys) > 0 && sess.Owner != owner(r) {
		return domain.ErrSessionNotFound
	}
	return nil
}

// clientIP returns the client's address: the last X-Forwarded-For entry
// when TrustProxy is set and the header is present, else the peer address.
func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.TrustProxy {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			parts := strings.Split(xff[len(xff)-1], ",")
			if ip := strings.TrimSpace(parts[len(parts)-1]); net.ParseIP(ip) != nil {
				return ip
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// contextWithRequestID stores id in r's context.
func contextWithRequestID(r *http.Request, id string) context.Context {
	return context.WithValue(r.Context(), requestIDKey, id)
}
