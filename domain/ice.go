package domain

import (
	"fmt"
	"strconv"
	"strings"
)

// ICELimits bounds what a remote peer may send us.
type ICELimits struct {
	// MaxCandidates is the most remote candidates one session may add.
	MaxCandidates int
	// MaxCandidateLen is the longest candidate line accepted, in bytes.
	MaxCandidateLen int
}

// DefaultICELimits are the limits used when config sets none.
var DefaultICELimits = ICELimits{MaxCandidates: 50, MaxCandidateLen: 1024}

// Candidate is a trickled ICE candidate as browsers send it.
type Candidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// ICEServer is a STUN or TURN server handed to clients and used by the server.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
	// Secret, when set, is a TURN REST shared secret (coturn's
	// static-auth-secret): each session gets its own Username and
	// Credential from it (ICEServersFor). It is never handed out.
	Secret string `json:"-"`
}

// ValidateCandidate checks that line is, syntactically, an ICE candidate
// attribute value (RFC 8839 §5.1), with or without the "candidate:" prefix,
// and at most maxLen bytes. An empty line is the end-of-candidates marker and
// is valid. It returns ErrInvalidCandidate (wrapped) otherwise.
func ValidateCandidate(line string, maxLen int) error {
	if maxLen > 0 && len(line) > maxLen {
		return fmt.Errorf("candidate of %d bytes exceeds %d: %w", len(line), maxLen, ErrInvalidCandidate)
	}
	if line == "" {
		return nil
	}
	s := strings.TrimPrefix(line, "a=")
	s = strings.TrimPrefix(s, "candidate:")
	f := strings.Fields(s)
	// foundation component transport priority address port "typ" type
	if len(f) < 8 {
		return fmt.Errorf("candidate has %d fields, want at least 8: %w", len(f), ErrInvalidCandidate)
	}
	if len(f[0]) == 0 || len(f[0]) > 32 || !isIceChars(f[0]) {
		return fmt.Errorf("bad foundation %q: %w", f[0], ErrInvalidCandidate)
	}
	if c, err := strconv.ParseUint(f[1], 10, 8); err != nil || c < 1 {
		return fmt.Errorf("bad component %q: %w", f[1], ErrInvalidCandidate)
	}
	switch strings.ToLower(f[2]) {
	case "udp", "tcp":
	default:
		return fmt.Errorf("bad transport %q: %w", f[2], ErrInvalidCandidate)
	}
	if _, err := strconv.ParseUint(f[3], 10, 32); err != nil {
		return fmt.Errorf("bad priority %q: %w", f[3], ErrInvalidCandidate)
	}
	if f[4] == "" || len(f[4]) > 255 {
		return fmt.Errorf("bad address: %w", ErrInvalidCandidate)
	}
	if p, err := strconv.ParseUint(f[5], 10, 16); err != nil || (p == 0 && strings.ToLower(f[2]) == "udp") {
		return fmt.Errorf("bad port %q: %w", f[5], ErrInvalidCandidate)
	}
	if f[6] != "typ" {
		return fmt.Errorf("missing typ: %w", ErrInvalidCandidate)
	}
	switch f[7] {
	case "host", "srflx", "prflx", "relay":
	default:
		return fmt.Errorf("bad candidate type %q: %w", f[7], ErrInvalidCandidate)
	}
	return nil
}

func isIceChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}
