package main

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"mediasvc/adapters/httpapi"
	"mediasvc/adapters/jwtauth"
	"mediasvc/domain"
)

// KeyConfig is an API key with grants (auth.keys).
type KeyConfig struct {
	Name    string   `koanf:"name"`
	Key     string   `koanf:"key"`
	Devices []string `koanf:"devices"`
	Roles   []string `koanf:"roles"`
	// Expires is an RFC 3339 time; empty = never.
	Expires string `koanf:"expires"`
}

// JWTConfig verifies signed access links (auth.jwt).
type JWTConfig struct {
	Audience string         `koanf:"audience"`
	Issuer   string         `koanf:"issuer"`
	MaxTTL   time.Duration  `koanf:"max_ttl"`
	Leeway   time.Duration  `koanf:"leeway"`
	Keys     []JWTKeyConfig `koanf:"keys"`
}

// JWTKeyConfig is one verification key: an HS256 secret or an Ed25519
// public key (PEM, or base64 of its 32 bytes).
type JWTKeyConfig struct {
	ID        string `koanf:"id"`
	Alg       string `koanf:"alg"`
	Secret    string `koanf:"secret"`
	PublicKey string `koanf:"public_key"`
}

// hasAuth reports whether any authentication is configured: plain keys,
// keys with grants or access-token keys.
func (c Config) hasAuth() bool {
	return len(c.Auth.APIKeys) > 0 || len(c.Auth.Keys) > 0 || len(c.Auth.JWT.Keys) > 0
}

// validateAuth returns one error per bad auth.keys / auth.jwt field.
func (c Config) validateAuth(bad func(key, format string, a ...any)) {
	names := map[string]bool{}
	for name := range c.Auth.APIKeys {
		names[name] = true
	}
	for i, k := range c.Auth.Keys {
		key := fmt.Sprintf("auth.keys[%d]", i)
		switch {
		case k.Name == "":
			bad(key, "needs a name (the owner its sessions count against)")
		case strings.HasPrefix(k.Name, "ip:") || strings.HasPrefix(k.Name, jwtauth.SubjectPrefix):
			bad(key, "name %q must not start with ip: or %s", k.Name, jwtauth.SubjectPrefix)
		case names[k.Name]:
			bad(key, "name %q is used twice", k.Name)
		}
		names[k.Name] = true
		if len(k.Key) < 16 {
			bad(key, "key must be at least 16 characters")
		}
		if _, err := k.grant(); err != nil {
			bad(key, "%v", err)
		}
		if k.Expires != "" {
			if _, err := time.Parse(time.RFC3339, k.Expires); err != nil {
				bad(key, "expires %q is not an RFC 3339 time like 2027-01-31T00:00:00Z", k.Expires)
			}
		}
	}
	if len(c.Auth.JWT.Keys) > 0 && c.Auth.JWT.Audience == "" {
		bad("auth.jwt.audience", "must be set when auth.jwt.keys are (tokens must name this service)")
	}
	if c.Auth.JWT.MaxTTL < 0 {
		bad("auth.jwt.max_ttl", "must be ≥ 0")
	}
	if c.Auth.JWT.Leeway < 0 || c.Auth.JWT.Leeway > 5*time.Minute {
		bad("auth.jwt.leeway", "must be 0..5m, got %s", c.Auth.JWT.Leeway)
	}
	for i, k := range c.Auth.JWT.Keys {
		if _, err := k.key(); err != nil {
			bad(fmt.Sprintf("auth.jwt.keys[%d]", i), "%v", err)
		}
	}
}

// grant is the key's grant, validated.
func (k KeyConfig) grant() (domain.Grant, error) {
	g := domain.Grant{Devices: k.Devices}
	for _, r := range k.Roles {
		g.Roles = append(g.Roles, domain.GrantRole(r))
	}
	if err := domain.ValidateGrant(g); err != nil {
		return g, errors.New(strings.TrimSuffix(err.Error(), ": "+domain.ErrInvalidRequest.Error()))
	}
	return g, nil
}

// key decodes the verification key.
func (k JWTKeyConfig) key() (jwtauth.Key, error) {
	out := jwtauth.Key{ID: k.ID, Algorithm: k.Alg}
	switch k.Alg {
	case jwtauth.HS256:
		if k.PublicKey != "" {
			return out, errors.New("an HS256 key takes secret, not public_key")
		}
		if len(k.Secret) < jwtauth.MinSecretBytes {
			return out, fmt.Errorf("an HS256 secret needs at least %d bytes", jwtauth.MinSecretBytes)
		}
		out.Secret = []byte(k.Secret)
	case jwtauth.EdDSA:
		if k.Secret != "" {
			return out, errors.New("an EdDSA key takes public_key, not secret")
		}
		pub, err := parseEd25519(k.PublicKey)
		if err != nil {
			return out, err
		}
		out.PublicKey = pub
	default:
		return out, fmt.Errorf("alg must be HS256 or EdDSA, got %q", k.Alg)
	}
	return out, nil
}

// parseEd25519 reads an Ed25519 public key as PEM (PKIX) or as base64 of
// its 32 bytes.
func parseEd25519(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		b, _ := pem.Decode([]byte(s))
		if b == nil {
			return nil, errors.New("public_key: bad PEM")
		}
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public_key: %v", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public_key is a %T, not Ed25519", k)
		}
		return pub, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("public_key is %d bytes, an Ed25519 key is %d", len(b), ed25519.PublicKeySize)
			}
			return ed25519.PublicKey(b), nil
		}
	}
	return nil, errors.New("public_key must be PEM or base64 of the 32-byte Ed25519 key")
}

// apiKeys are the keys with grants for httpapi. Call after validate.
func (c Config) apiKeys() []httpapi.Key {
	out := make([]httpapi.Key, 0, len(c.Auth.Keys))
	for _, k := range c.Auth.Keys {
		g, _ := k.grant()
		var exp time.Time
		if k.Expires != "" {
			exp, _ = time.Parse(time.RFC3339, k.Expires)
		}
		out = append(out, httpapi.Key{Name: k.Name, Secret: k.Key, Grants: []domain.Grant{g}, Expires: exp})
	}
	return out
}

// tokenVerifier is the access-token verifier, nil without auth.jwt.keys.
func (c Config) tokenVerifier() (*jwtauth.Verifier, error) {
	if len(c.Auth.JWT.Keys) == 0 {
		return nil, nil
	}
	keys := make([]jwtauth.Key, 0, len(c.Auth.JWT.Keys))
	for _, k := range c.Auth.JWT.Keys {
		jk, err := k.key()
		if err != nil {
			return nil, err
		}
		keys = append(keys, jk)
	}
	return jwtauth.New(jwtauth.Config{
		Keys: keys, Audience: c.Auth.JWT.Audience, Issuer: c.Auth.JWT.Issuer,
		MaxTTL: c.Auth.JWT.MaxTTL, Leeway: c.Auth.JWT.Leeway,
	})
}
