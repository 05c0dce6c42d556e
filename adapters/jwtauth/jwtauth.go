// Package jwtauth verifies signed access links: JWTs (RFC 7519) that a
// platform in front of mediasvc mints for a browser, naming a subject, the
// devices and the role it may use, and an expiry. Keys are HS256 secrets or
// Ed25519 (EdDSA) public keys from the configuration; each key accepts only
// its own algorithm, so "none" and RS/HS key confusion are refused. Built
// on github.com/golang-jwt/jwt/v5.
package jwtauth

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"mediasvc/domain"
)

// Algorithms accepted.
const (
	HS256 = "HS256"
	EdDSA = "EdDSA"
)

// MinSecretBytes is the shortest HS256 secret accepted (RFC 7518 §3.2: at
// least the hash size).
const MinSecretBytes = 32

// SubjectPrefix starts the session owner of every token principal, so a
// token subject never collides with an API key's name or an "ip:" owner.
const SubjectPrefix = "jwt:"

// MaxTokenBytes bounds a token before any decoding.
const MaxTokenBytes = 8 << 10

// Key is one verification key.
type Key struct {
	// ID is matched against the token's "kid" header; a token without kid
	// is tried against every key of its algorithm.
	ID string
	// Algorithm is HS256 or EdDSA.
	Algorithm string
	// Secret is the HS256 key (at least MinSecretBytes).
	Secret []byte
	// PublicKey is the EdDSA key.
	PublicKey ed25519.PublicKey
}

// Config configures a Verifier.
type Config struct {
	// Keys verify signatures; at least one.
	Keys []Key
	// Audience must be among the token's "aud" (required).
	Audience string
	// Issuer, when set, must equal the token's "iss".
	Issuer string
	// Leeway absorbs clock skew on exp and nbf (default 0).
	Leeway time.Duration
	// MaxTTL, when positive, refuses tokens whose exp lies further than
	// this ahead: access links are meant to be short-lived.
	MaxTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Verifier checks access tokens. It is safe for concurrent use.
type Verifier struct {
	cfg Config
}

// New returns a Verifier, or an error naming the first bad key.
func New(cfg Config) (*Verifier, error) {
	if len(cfg.Keys) == 0 {
		return nil, errors.New("jwt: no keys")
	}
	if cfg.Audience == "" {
		return nil, errors.New("jwt: an audience is required")
	}
	for i, k := range cfg.Keys {
		switch k.Algorithm {
		case HS256:
			if len(k.Secret) < MinSecretBytes {
				return nil, fmt.Errorf("jwt key %d (%q): an HS256 secret needs at least %d bytes", i, k.ID, MinSecretBytes)
			}
		case EdDSA:
			if len(k.PublicKey) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("jwt key %d (%q): an EdDSA key is a %d-byte Ed25519 public key", i, k.ID, ed25519.PublicKeySize)
			}
		default:
			return nil, fmt.Errorf("jwt key %d (%q): algorithm must be HS256 or EdDSA, got %q", i, k.ID, k.Algorithm)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{cfg: cfg}, nil
}

// LooksLikeToken reports whether s has the shape of a JWT (three
// dot-separated parts, the first a JSON object): such a bearer value is
// verified as a token, never compared with API keys.
func LooksLikeToken(s string) bool {
	if strings.Count(s, ".") != 2 {
		return false
	}
	head, _, _ := strings.Cut(s, ".")
	return strings.HasPrefix(head, "eyJ") // base64url of `{"`
}

// Claims are the claims of an access token: the registered ones plus the
// devices (ids or globs; "device" for one) and the role.
type Claims struct {
	jwt.RegisteredClaims
	Devices []string `json:"devices,omitempty"`
	Device  string   `json:"device,omitempty"`
	Role    string   `json:"role"`
}

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// Verify checks token and returns its principal. Every failure wraps
// domain.ErrUnauthorized through one of the domain.ErrToken* errors:
// malformed, wrong algorithm (none, RS256, HS256 against an EdDSA key…),
// unknown key, bad signature (tampered), expired, not yet valid, wrong
// audience or issuer, bad claims.
func (v *Verifier) Verify(token string) (domain.Principal, error) {
	if len(token) > MaxTokenBytes {
		return domain.Principal{}, fmt.Errorf("token is %d bytes, more than %d: %w", len(token), MaxTokenBytes, domain.ErrTokenMalformed)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return domain.Principal{}, fmt.Errorf("token has %d parts, want 3: %w", len(parts), domain.ErrTokenMalformed)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return domain.Principal{}, fmt.Errorf("token header is not base64url: %w", domain.ErrTokenMalformed)
	}
	var h header
	if err := json.Unmarshal(raw, &h); err != nil {
		return domain.Principal{}, fmt.Errorf("token header is not a JSON object: %w", domain.ErrTokenMalformed)
	}
	if h.Alg != HS256 && h.Alg != EdDSA {
		return domain.Principal{}, fmt.Errorf("algorithm %.20q is not accepted (HS256 or EdDSA): %w", h.Alg, domain.ErrTokenAlgorithm)
	}
	var keys []any
	for _, k := range v.cfg.Keys {
		if h.Kid != "" && k.ID != h.Kid {
			continue
		}
		if k.Algorithm != h.Alg {
			if h.Kid != "" {
				return domain.Principal{}, fmt.Errorf("key %q takes %s, the token says %s: %w", k.ID, k.Algorithm, h.Alg, domain.ErrTokenAlgorithm)
			}
			continue
		}
		if k.Algorithm == HS256 {
			keys = append(keys, k.Secret)
		} else {
			keys = append(keys, k.PublicKey)
		}
	}
	if len(keys) == 0 {
		if h.Kid != "" {
			return domain.Principal{}, fmt.Errorf("no key %.40q: %w", h.Kid, domain.ErrTokenUnknownKey)
		}
		return domain.Principal{}, fmt.Errorf("no %s key is configured: %w", h.Alg, domain.ErrTokenAlgorithm)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{h.Alg}),
		jwt.WithAudience(v.cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(v.cfg.Leeway),
		jwt.WithTimeFunc(v.cfg.Now),
		jwt.WithStrictDecoding(),
	}
	if v.cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.cfg.Issuer))
	}
	var c Claims
	_, err = jwt.NewParser(opts...).ParseWithClaims(token, &c, func(*jwt.Token) (any, error) {
		if len(keys) == 1 {
			return keys[0], nil
		}
		set := jwt.VerificationKeySet{}
		for _, k := range keys {
			set.Keys = append(set.Keys, k)
		}
		return set, nil
	})
	if err != nil {
		if errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && len(c.Audience) == 0 {
			return domain.Principal{}, fmt.Errorf("token has no aud: %w", domain.ErrTokenAudience)
		}
		return domain.Principal{}, mapError(err)
	}
	return v.principal(c)
}

// mapError turns a jwt error into the domain error of its kind.
func mapError(err error) error {
	var target error
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		target = domain.ErrTokenMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		target = domain.ErrTokenSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		target = domain.ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		target = domain.ErrTokenNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		target = domain.ErrTokenAudience
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		target = domain.ErrTokenIssuer
	default:
		target = domain.ErrTokenClaims
	}
	return fmt.Errorf("%v: %w", err, target)
}

// maxSubject bounds the subject, which becomes a session owner and a log
// attribute.
const maxSubject = 128

// principal checks the mediasvc claims and builds the principal.
func (v *Verifier) principal(c Claims) (domain.Principal, error) {
	sub := c.Subject
	if sub == "" || len(sub) > maxSubject || strings.ContainsFunc(sub, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return domain.Principal{}, fmt.Errorf("sub must be 1..%d printable characters: %w", maxSubject, domain.ErrTokenClaims)
	}
	devices := c.Devices
	if c.Device != "" {
		devices = append(devices, c.Device)
	}
	g := domain.Grant{Devices: devices, Roles: []domain.GrantRole{domain.GrantRole(c.Role)}}
	if err := domain.ValidateGrant(g); err != nil {
		return domain.Principal{}, fmt.Errorf("%v: %w", err, domain.ErrTokenClaims)
	}
	exp := c.ExpiresAt.Time
	if v.cfg.MaxTTL > 0 && exp.Sub(v.cfg.Now()) > v.cfg.MaxTTL+v.cfg.Leeway {
		return domain.Principal{}, fmt.Errorf("exp is %s ahead, more than the %s allowed: %w",
			exp.Sub(v.cfg.Now()).Round(time.Second), v.cfg.MaxTTL, domain.ErrTokenClaims)
	}
	return domain.Principal{
		Subject: SubjectPrefix + sub,
		Kind:    domain.PrincipalToken,
		Grants:  []domain.Grant{g},
		Expires: exp,
	}, nil
}

// Sign mints a token for claims with key (HS256 secret or Ed25519 private
// key). It is what a platform backend does; mediasvc uses it for the
// `mediasvc token` command and tests.
func Sign(alg, kid string, key any, c Claims) (string, error) {
	var m jwt.SigningMethod
	switch alg {
	case HS256:
		m = jwt.SigningMethodHS256
	case EdDSA:
		m = jwt.SigningMethodEdDSA
	default:
		return "", fmt.Errorf("sign: algorithm must be HS256 or EdDSA, got %q", alg)
	}
	t := jwt.NewWithClaims(m, c)
	if kid != "" {
		t.Header["kid"] = kid
	}
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}
