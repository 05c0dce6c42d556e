package domain

import (
	"fmt"
	"path"
	"slices"
	"time"
)

// Access-token errors: each is an ErrUnauthorized with its own reason, so
// a client (or the platform that minted the token) can tell them apart.
var (
	ErrTokenMalformed   = fmt.Errorf("%w: malformed access token", ErrUnauthorized)
	ErrTokenExpired     = fmt.Errorf("%w: access token expired", ErrUnauthorized)
	ErrTokenNotYetValid = fmt.Errorf("%w: access token not valid yet", ErrUnauthorized)
	ErrTokenAudience    = fmt.Errorf("%w: access token for another audience", ErrUnauthorized)
	ErrTokenIssuer      = fmt.Errorf("%w: access token from an unknown issuer", ErrUnauthorized)
	ErrTokenAlgorithm   = fmt.Errorf("%w: access token signed with an algorithm not accepted for its key", ErrUnauthorized)
	ErrTokenSignature   = fmt.Errorf("%w: access token signature invalid", ErrUnauthorized)
	ErrTokenUnknownKey  = fmt.Errorf("%w: access token names an unknown key", ErrUnauthorized)
	ErrTokenClaims      = fmt.Errorf("%w: access token claims invalid", ErrUnauthorized)
	ErrKeyExpired       = fmt.Errorf("%w: API key expired", ErrUnauthorized)
)

// GrantRole is what a grant lets its holder do with a device.
type GrantRole string

// Grant roles. A controller may also view; an admin may also control, and
// may act on every session of its devices (not only its own), list the
// instances and read metrics.
const (
	GrantViewer     GrantRole = "viewer"
	GrantController GrantRole = "controller"
	GrantAdmin      GrantRole = "admin"
)

// Valid reports whether r is a known grant role.
func (r GrantRole) Valid() bool {
	return r == GrantViewer || r == GrantController || r == GrantAdmin
}

// rank orders roles so that a higher one includes the lower ones.
func (r GrantRole) rank() int {
	switch r {
	case GrantViewer:
		return 1
	case GrantController:
		return 2
	case GrantAdmin:
		return 3
	}
	return 0
}

// Grant is one permission: the devices it covers (exact ids or path.Match
// globs such as "lab-*"; "*" is every device) and the roles it gives on
// them.
type Grant struct {
	Devices []string
	Roles   []GrantRole
}

// ValidateGrant returns an ErrInvalidRequest-wrapped error naming the first
// problem of g: no devices, a bad glob, no roles or an unknown role.
func ValidateGrant(g Grant) error {
	if len(g.Devices) == 0 {
		return fmt.Errorf("grant names no devices: %w", ErrInvalidRequest)
	}
	for _, d := range g.Devices {
		if d == "" {
			return fmt.Errorf("grant has an empty device pattern: %w", ErrInvalidRequest)
		}
		if _, err := path.Match(d, ""); err != nil {
			return fmt.Errorf("grant device pattern %q: %v: %w", d, err, ErrInvalidRequest)
		}
	}
	if len(g.Roles) == 0 {
		return fmt.Errorf("grant names no roles: %w", ErrInvalidRequest)
	}
	for _, r := range g.Roles {
		if !r.Valid() {
			return fmt.Errorf("grant role %q is not viewer, controller or admin: %w", r, ErrInvalidRequest)
		}
	}
	return nil
}

// covers reports whether the grant's device patterns match id.
func (g Grant) covers(id DeviceID) bool {
	for _, p := range g.Devices {
		if p == "*" || p == string(id) {
			return true
		}
		if ok, err := path.Match(p, string(id)); err == nil && ok {
			return true
		}
	}
	return false
}

// best is the highest role the grant gives.
func (g Grant) best() GrantRole {
	var b GrantRole
	for _, r := range g.Roles {
		if r.rank() > b.rank() {
			b = r
		}
	}
	return b
}

// PrincipalKind says how a principal was authenticated.
type PrincipalKind string

// Principal kinds.
const (
	PrincipalOpen   PrincipalKind = "open"   // no authentication configured (loopback by default)
	PrincipalAPIKey PrincipalKind = "apikey" // a configured API key
	PrincipalToken  PrincipalKind = "token"  // a signed access token (JWT)
)

// Principal is who makes a request and what they may do. Subject is the
// session owner that per-owner limits count and logs name.
type Principal struct {
	Subject string
	Kind    PrincipalKind
	Grants  []Grant
	// Expires, when set, is when the principal's authority ends (a key's
	// expiry, a token's exp).
	Expires time.Time
	// Operator lets the principal list instances and read metrics without
	// an admin grant: the plain auth.api_keys, which always could.
	Operator bool
}

// OpenPrincipal is the principal of a service without authentication: it
// may do everything with every device, as subject.
func OpenPrincipal(subject string) Principal {
	return Principal{Subject: subject, Kind: PrincipalOpen, Operator: true,
		Grants: []Grant{{Devices: []string{"*"}, Roles: []GrantRole{GrantAdmin}}}}
}

// roleOn is the highest role p holds on device id, "" for none.
func (p Principal) roleOn(id DeviceID) GrantRole {
	var b GrantRole
	for _, g := range p.Grants {
		if g.covers(id) {
			if r := g.best(); r.rank() > b.rank() {
				b = r
			}
		}
	}
	return b
}

// Expired reports whether p's authority has ended at now.
func (p Principal) Expired(now time.Time) bool {
	return !p.Expires.IsZero() && !now.Before(p.Expires)
}

// CanSee reports whether p may see device id (list it, read it).
func (p Principal) CanSee(id DeviceID) bool { return p.roleOn(id) != "" }

// CanOpen returns nil if p may open a session of role on device id:
// ErrDeviceNotFound when p may not see the device at all (its existence is
// not revealed), ErrForbidden when p may see it but not with that role.
func (p Principal) CanOpen(id DeviceID, role Role) error {
	have := p.roleOn(id)
	if have == "" {
		return fmt.Errorf("device %q: %w", id, ErrDeviceNotFound)
	}
	need := GrantViewer
	if role == RoleController {
		need = GrantController
	}
	if have.rank() < need.rank() {
		return fmt.Errorf("a %s grant cannot open a %s session of %q: %w", have, role, id, ErrForbidden)
	}
	return nil
}

// CanActOn returns nil if p may read or end session s: its own sessions,
// or any session of a device p administers. Otherwise ErrSessionNotFound,
// so a foreign session's existence does not leak.
func (p Principal) CanActOn(s Session) error {
	if s.Owner == p.Subject || p.roleOn(s.DeviceID) == GrantAdmin {
		return nil
	}
	return ErrSessionNotFound
}

// AdminOf reports whether p holds the admin role on device id; AdminOf("*")
// whether it does on every device.
func (p Principal) AdminOf(id DeviceID) bool { return p.roleOn(id) == GrantAdmin }

// CanOperate reports whether p may list instances and read metrics.
func (p Principal) CanOperate() bool {
	if p.Operator {
		return true
	}
	return slices.ContainsFunc(p.Grants, func(g Grant) bool { return g.best() == GrantAdmin })
}
