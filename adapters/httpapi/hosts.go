package httpapi

import (
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// codeMisdirectedHost is the error code of a request whose Host header names
// a host the service does not answer to (a DNS-rebinding page, most likely).
const codeMisdirectedHost = "misdirected_host"

// DefaultAllowedHosts are the names a server answers to when
// Config.AllowedHosts is empty: the loopback names.
var DefaultAllowedHosts = []string{"localhost", "127.0.0.1", "::1"}

// HostPolicy decides which Host headers a listener answers to. A web page
// under a name of its own that resolves to this machine (DNS rebinding)
// sends that name as Host, so refusing unknown names keeps such pages out
// even though the browser treats them as same-origin.
type HostPolicy struct {
	patterns []string // lower-case host names without port or brackets, "*.suffix", or "*"
	any      bool
}

// NewHostPolicy returns the policy answering to hosts: exact names or IP
// addresses ("media.example.com", "10.0.0.5", "::1" or "[::1]"), a leading
// "*." wildcard ("*.example.com", which does not match example.com itself),
// or "*" for any host (no DNS-rebinding protection). Ports are ignored. An
// empty list means DefaultAllowedHosts.
func NewHostPolicy(hosts []string) HostPolicy {
	if len(hosts) == 0 {
		hosts = DefaultAllowedHosts
	}
	var p HostPolicy
	for _, h := range hosts {
		h = normalizeHost(h)
		if h == "" {
			continue
		}
		if h == "*" {
			p.any = true
			continue
		}
		p.patterns = append(p.patterns, h)
	}
	return p
}

// normalizeHost lower-cases h and strips IPv6 brackets and one trailing dot.
func normalizeHost(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = strings.TrimPrefix(h, "[")
	h = strings.TrimSuffix(h, "]")
	return strings.TrimSuffix(h, ".")
}

// hostOnly returns the host of a Host header or URL authority ("name:port",
// "[::1]:8080", "name") without port and brackets, normalized.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return normalizeHost(h)
	}
	return normalizeHost(hostport)
}

// matchName reports whether the normalized host h matches one of the
// policy's names (never the "*" opt-out).
func (p HostPolicy) matchName(h string) bool {
	if h == "" {
		return false
	}
	for _, pat := range p.patterns {
		if strings.HasPrefix(pat, "*.") {
			if strings.HasSuffix(h, pat[1:]) && len(h) > len(pat)-1 {
				return true
			}
			continue
		}
		if pat == h {
			return true
		}
	}
	return false
}

// Allows reports whether a request with this Host header is answered.
func (p HostPolicy) Allows(hostHeader string) bool {
	if p.any {
		return true
	}
	return p.matchName(hostOnly(hostHeader))
}

// Any reports whether the policy is the "*" opt-out.
func (p HostPolicy) Any() bool { return p.any }

// Guard wraps h so that a request whose Host is not allowed gets
// 421 {"error":{"code":"misdirected_host",…}} and reaches nothing else.
func (p HostPolicy) Guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.Allows(r.Host) {
			writeMisdirected(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeMisdirected(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	writeJSON(w, http.StatusMisdirectedRequest, errorBody{Error: errorDetail{
		Code:    codeMisdirectedHost,
		Message: "this service does not answer to host " + quoteShort(r.Host) + "; add it to http.allowed_hosts",
	}})
}

// quoteShort quotes s, cut to 100 bytes.
func quoteShort(s string) string {
	if len(s) > 100 {
		s = s[:100]
	}
	return `"` + strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f || c == '"' || c == '\\' {
			return '?'
		}
		return c
	}, s) + `"`
}

// checkHost is the Server's host guard; it runs before routing, so every
// route (and an unmatched one) is covered — except a GET of
// /healthz and /readyz: orchestrators probe those by the pod's address
// (Kubernetes sends Host: <pod IP>:<port>), and all they tell a page that
// rebinds a name to us is {"status":"ok"} or whether we are ready.
func (s *Server) checkHost(next http.Handler) http.Handler {
	guarded := s.hosts.Guard(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && (r.URL.Path == "/healthz" || r.URL.Path == "/readyz") {
			next.ServeHTTP(w, r)
			return
		}
		guarded.ServeHTTP(w, r)
	})
}

// originAllowed reports whether r's Origin may use the API from a browser:
// no Origin (not a browser), an origin whose host is one of the allowed
// hosts, or a match in Config.AllowedOrigins. It never compares with the
// request's own Host, which a DNS-rebinding page controls — except under
// the "*" host opt-out, where same-host origins are allowed as before.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	return originAllowed(origin, r.Host, s.hosts, s.cfg.AllowedOrigins)
}

// originAllowed is the rule of Server.originAllowed.
func originAllowed(origin, reqHost string, hosts HostPolicy, patterns []string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	if hosts.matchName(hostOnly(u.Host)) {
		return true
	}
	if hosts.any && strings.EqualFold(u.Host, reqHost) {
		return true
	}
	return matchOrigin(u, patterns)
}

// matchOrigin reports whether origin matches one of patterns: "*" matches
// everything; a pattern with "://" is matched against scheme://host, any
// other against the host, with path.Match syntax.
func matchOrigin(u *url.URL, patterns []string) bool {
	for _, p := range patterns {
		if p == "*" {
			return true
		}
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, err := path.Match(strings.ToLower(p), strings.ToLower(target)); err == nil && ok {
			return true
		}
	}
	return false
}

// checkOrigin refuses a browser request from an origin that is not allowed
// with 403 forbidden_origin, before it reaches a handler.
func (s *Server) checkOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.originAllowed(r) {
			s.writeError(w, r, errorf(http.StatusForbidden, "forbidden_origin", "origin %.100q is not allowed", r.Header.Get("Origin")))
			return
		}
		next.ServeHTTP(w, r)
	})
}
