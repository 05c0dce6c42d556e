package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"mediasvc/domain"
)

const principalKey ctxKey = iota + 100

// TokenVerifier checks signed access tokens (JWT access links).
type TokenVerifier interface {
	// Verify returns the token's principal, or an error wrapping one of
	// the domain.ErrToken* errors (all of them domain.ErrUnauthorized).
	Verify(token string) (domain.Principal, error)
}

// Key is an API key with grants.
type Key struct {
	// Name is the session owner the key's sessions count against and the
	// subject logs name.
	Name string
	// Secret is what clients send as "Authorization: Bearer <secret>".
	Secret string
	// Grants say which devices and roles the key has.
	Grants []domain.Grant
	// Expires, when set, is when the key stops working (401 key_expired).
	Expires time.Time
}

// apiKey is a configured key, kept as a hash so every comparison takes the
// same time whatever the lengths.
type apiKey struct {
	principal domain.Principal
	hash      [32]byte
}

// newAPIKeys hashes the plain keys (every device, every session role, and
// the operator routes, as they always could) and the keys with grants.
func newAPIKeys(plain map[string]string, granted []Key) []apiKey {
	keys := make([]apiKey, 0, len(plain)+len(granted))
	for name, key := range plain {
		if key == "" {
			continue
		}
		keys = append(keys, apiKey{hash: sha256.Sum256([]byte(key)), principal: domain.Principal{
			Subject: name, Kind: domain.PrincipalAPIKey, Operator: true,
			Grants: []domain.Grant{{Devices: []string{"*"}, Roles: []domain.GrantRole{domain.GrantController}}},
		}})
	}
	for _, k := range granted {
		if k.Secret == "" {
			continue
		}
		keys = append(keys, apiKey{hash: sha256.Sum256([]byte(k.Secret)), principal: domain.Principal{
			Subject: k.Name, Kind: domain.PrincipalAPIKey, Grants: k.Grants, Expires: k.Expires,
		}})
	}
	return keys
}

// lookupKey returns the principal of the key matching presented. It
// compares against every key in constant time, so timing reveals neither
// which key nor how much of it matched.
func (s *Server) lookupKey(presented string) (domain.Principal, bool) {
	h := sha256.Sum256([]byte(presented))
	var (
		p     domain.Principal
		found int
	)
	for _, k := range s.keys {
		if subtle.ConstantTimeCompare(h[:], k.hash[:]) == 1 {
			p, found = k.principal, 1
		}
	}
	return p, found == 1
}

// authRequired reports whether requests must authenticate: API keys or an
// access-token verifier are configured.
func (s *Server) authRequired() bool { return len(s.keys) > 0 || s.cfg.Tokens != nil }

// looksLikeJWT reports whether s has a JWT's shape: three dot-separated
// parts, the first starting like a base64url JSON object.
func looksLikeJWT(s string) bool {
	return strings.Count(s, ".") == 2 && strings.HasPrefix(s, "eyJ")
}

// maxCredentialBytes bounds a presented key or token.
const maxCredentialBytes = 8 << 10

// authenticate puts the request's principal in its context. Without keys
// and tokens configured it is the open principal "ip:<client ip>". With
// them, the request needs "Authorization: Bearer <API key or JWT>" or
// "?access_token=<JWT>" (tokens only: keys stay out of URLs and logs);
// anything else is 401 with a code saying why.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.principalOf(r)
		if err != nil {
			if errors.Is(err, domain.ErrTokenMalformed) || errors.Is(err, domain.ErrTokenSignature) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="mediasvc", error="invalid_token"`)
			}
			s.log.LogAttrs(r.Context(), slog.LevelDebug, "authentication refused",
				slog.String("path", r.URL.Path), slog.String("remote", s.clientIP(r)),
				slog.String("request_id", requestID(r)), slog.Any("err", err))
			s.writeError(w, r, err)
			return
		}
		if ri := infoOf(r); ri != nil {
			ri.subject = p.Subject
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey, p)))
	})
}

// principalOf authenticates r.
func (s *Server) principalOf(r *http.Request) (domain.Principal, error) {
	if !s.authRequired() {
		return domain.OpenPrincipal("ip:" + s.clientIP(r)), nil
	}
	var cred string
	fromQuery := false
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, token, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return domain.Principal{}, errorf(http.StatusUnauthorized, "unauthorized", "Authorization must be \"Bearer <API key or access token>\"")
		}
		cred = strings.TrimSpace(token)
	} else if q := r.URL.Query().Get("access_token"); q != "" {
		cred, fromQuery = q, true
	}
	if cred == "" {
		return domain.Principal{}, errorf(http.StatusUnauthorized, "unauthorized", "missing bearer API key or access token")
	}
	if len(cred) > maxCredentialBytes {
		return domain.Principal{}, fmt.Errorf("credential is longer than %d bytes: %w", maxCredentialBytes, domain.ErrTokenMalformed)
	}
	now := time.Now()
	if looksLikeJWT(cred) || fromQuery {
		if s.cfg.Tokens == nil {
			return domain.Principal{}, errorf(http.StatusUnauthorized, "unauthorized", "access tokens are not accepted here (no auth.jwt keys)")
		}
		if !looksLikeJWT(cred) {
			return domain.Principal{}, fmt.Errorf("access_token is not a JWT: %w", domain.ErrTokenMalformed)
		}
		p, err := s.cfg.Tokens.Verify(cred)
		if err != nil {
			return domain.Principal{}, err
		}
		return p, nil
	}
	p, ok := s.lookupKey(cred)
	if !ok {
		return domain.Principal{}, errorf(http.StatusUnauthorized, "unauthorized", "invalid API key")
	}
	if p.Expired(now) {
		return domain.Principal{}, fmt.Errorf("key %q expired at %s: %w", p.Subject, p.Expires.UTC().Format(time.RFC3339), domain.ErrKeyExpired)
	}
	return p, nil
}

// principal returns the principal authenticate stored for r; outside it
// (the session WebSocket, which authenticates with its token) the zero
// Principal, which may do nothing.
func principal(r *http.Request) domain.Principal {
	p, _ := r.Context().Value(principalKey).(domain.Principal)
	return p
}

// owner returns the session owner of r: its principal's subject.
func owner(r *http.Request) string { return principal(r).Subject }

// authorizeSession reports whether the requester may act on sess: its own
// sessions, any with an admin grant on the device, any at all without
// authentication (the random session id is the secret then). A foreign
// session is reported as not found, so its existence does not leak.
func (s *Server) authorizeSession(r *http.Request, sess domain.Session) error {
	return principal(r).CanActOn(sess)
}

// requireOperator refuses principals that may not list instances or read
// metrics with 403.
func (s *Server) requireOperator(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !principal(r).CanOperate() {
			s.writeError(w, r, fmt.Errorf("%s needs an admin grant: %w", r.URL.Path, domain.ErrForbidden))
			return
		}
		next.ServeHTTP(w, r)
	})
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
