package domain

import (
	"fmt"
	"net/netip"
	"strings"
)

// Reasons a remote candidate's address is refused: the values of
// media_ice_candidates_rejected_total's reason label besides "limit",
// "invalid" and "other".
const (
	// CandidateLinkLocal: 169.254.0.0/16 or fe80::/10 (cloud metadata
	// services live at 169.254.169.254).
	CandidateLinkLocal = "link_local"
	// CandidateMulticast: a multicast group, or the IPv4 broadcast address.
	CandidateMulticast = "multicast"
	// CandidateUnspecified: 0.0.0.0/8 or ::.
	CandidateUnspecified = "unspecified"
	// CandidateLoopback: 127.0.0.0/8 or ::1, refused unless the policy
	// allows loopback (the service listens on loopback only).
	CandidateLoopback = "loopback"
	// CandidateHostname: a DNS name other than an mDNS ".local" name; the
	// service never resolves names a peer hands it.
	CandidateHostname = "hostname"
	// CandidateMDNS is not a refusal: an mDNS (".local") host candidate,
	// as browsers send for their host addresses, is accepted without an
	// error but not resolved (the peer is reached through the
	// peer-reflexive candidate its own checks make). It is counted under
	// this reason.
	CandidateMDNS = "mdns"
)

// CandidateRefusals are the refusal reasons CandidatePolicy.Check gives.
var CandidateRefusals = []string{CandidateLinkLocal, CandidateMulticast, CandidateUnspecified, CandidateLoopback, CandidateHostname}

// CandidateRefusedError is a remote candidate whose address a peer must not
// be pointed at. errors.Is(err, ErrInvalidCandidate) holds.
type CandidateRefusedError struct {
	// Address is the candidate's connection address as sent.
	Address string
	// Reason is one of CandidateRefusals.
	Reason string
}

func (e *CandidateRefusedError) Error() string {
	return fmt.Sprintf("candidate address %q refused (%s): %v", e.Address, e.Reason, ErrInvalidCandidate)
}

// Unwrap makes the error an ErrInvalidCandidate.
func (e *CandidateRefusedError) Unwrap() error { return ErrInvalidCandidate }

// CandidatePolicy says which addresses a remote candidate may point the
// service's ICE agent at. Whatever a peer sends, the agent sends STUN
// checks to it: a candidate is a way to make the service send UDP to an
// address of the peer's choosing.
type CandidatePolicy struct {
	// AllowLoopback accepts loopback addresses: the service listens on
	// loopback only, so its viewers run on the same machine.
	AllowLoopback bool
}

// Check returns a *CandidateRefusedError when the candidate line's
// connection address is link-local, multicast or broadcast, unspecified, a
// DNS name other than ".local", or (unless AllowLoopback) loopback; nil
// otherwise. The end-of-candidates marker, mDNS names and lines too short
// to carry an address pass: syntax is ValidateCandidate's business.
func (p CandidatePolicy) Check(line string) error {
	if addr, reason := p.refusal(line); reason != "" {
		return &CandidateRefusedError{Address: addr, Reason: reason}
	}
	return nil
}

// refusal returns the line's address and why it is refused, "" when not.
func (p CandidatePolicy) refusal(line string) (addr, reason string) {
	addr, ok := candidateAddress(line)
	if !ok {
		return "", ""
	}
	switch reason = classifyAddress(addr); reason {
	case "", CandidateMDNS:
		return addr, ""
	case CandidateLoopback:
		if p.AllowLoopback {
			return addr, ""
		}
	}
	return addr, reason
}

// IsMDNSCandidate reports whether the candidate line's connection address
// is an mDNS ".local" name.
func IsMDNSCandidate(line string) bool {
	addr, ok := candidateAddress(line)
	return ok && classifyAddress(addr) == CandidateMDNS
}

// FilterSDP returns sdp without the candidate lines Check refuses, the
// refusal reason of each removed line in order, and how many candidate
// lines sdp had. mDNS candidates stay (their count is in mdns). Line
// endings are kept as they were.
func (p CandidatePolicy) FilterSDP(sdp string) (out string, refused []string, mdns, total int) {
	if !strings.Contains(sdp, "a=candidate:") {
		return sdp, nil, 0, 0
	}
	var b strings.Builder
	b.Grow(len(sdp))
	for _, line := range strings.SplitAfter(sdp, "\n") {
		l := strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(l, "a=candidate:") {
			total++
			if _, reason := p.refusal(l); reason != "" {
				refused = append(refused, reason)
				continue
			}
			if IsMDNSCandidate(l) {
				mdns++
			}
		}
		b.WriteString(line)
	}
	return b.String(), refused, mdns, total
}

// candidateAddress returns the connection address (the fifth field) of a
// candidate line, with or without its "a=" and "candidate:" prefixes.
func candidateAddress(line string) (string, bool) {
	s := strings.TrimPrefix(line, "a=")
	s = strings.TrimPrefix(s, "candidate:")
	f := strings.Fields(s)
	if len(f) < 5 {
		return "", false
	}
	return f[4], true
}

// classifyAddress returns why addr is special for a remote candidate, ""
// for an ordinary unicast IP address.
func classifyAddress(addr string) string {
	if name := strings.TrimSuffix(strings.ToLower(addr), "."); strings.HasSuffix(name, ".local") && len(name) > len(".local") {
		return CandidateMDNS
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return CandidateHostname
	}
	ip = ip.Unmap()
	switch {
	case ip.IsUnspecified(), ip.Is4() && ip.As4()[0] == 0:
		return CandidateUnspecified
	case ip.IsLinkLocalUnicast():
		return CandidateLinkLocal
	case ip.IsMulticast(), ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return CandidateMulticast
	case ip.IsLoopback():
		return CandidateLoopback
	}
	return ""
}
