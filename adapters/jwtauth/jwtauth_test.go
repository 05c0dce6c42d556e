package jwtauth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"mediasvc/domain"
)

var (
	now       = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	hsSecret  = []byte("0123456789abcdef0123456789abcdef")
	edPub, ed = mustEd()
)

func mustEd() (ed25519.PublicKey, ed25519.PrivateKey) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return pub, priv
}

func verifier(t testing.TB) *Verifier {
	t.Helper()
	v, err := New(Config{
		Keys: []Key{
			{ID: "hs", Algorithm: HS256, Secret: hsSecret},
			{ID: "ed", Algorithm: EdDSA, PublicKey: edPub},
		},
		Audience: "mediasvc",
		Issuer:   "platform",
		Leeway:   time.Second,
		MaxTTL:   time.Hour,
		Now:      func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func claims(mod func(*Claims)) Claims {
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   "alice",
			Issuer:    "platform",
			Audience:  jwt.ClaimStrings{"mediasvc"},
			ExpiresAt: jwt.NewNumericDate(now.Add(10 * time.Minute)),
			IssuedAt:  jwt.NewNumericDate(now),
		},
		Devices: []string{"lab-*"},
		Role:    "controller",
	}
	if mod != nil {
		mod(&c)
	}
	return c
}

func sign(t testing.TB, alg, kid string, key any, c Claims) string {
	t.Helper()
	s, err := Sign(alg, kid, key, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// forge builds a token with any header and signature bytes.
func forge(headerJSON string, c Claims, sig string) string {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	payload, _ := t.SigningString()
	_, body, _ := strings.Cut(payload, ".")
	return base64.RawURLEncoding.EncodeToString([]byte(headerJSON)) + "." + body + "." + sig
}

func TestVerifyValid(t *testing.T) {
	v := verifier(t)
	for _, tok := range []string{
		sign(t, HS256, "hs", hsSecret, claims(nil)),
		sign(t, HS256, "", hsSecret, claims(nil)),
		sign(t, EdDSA, "ed", ed, claims(nil)),
		sign(t, EdDSA, "", ed, claims(nil)),
	} {
		p, err := v.Verify(tok)
		if err != nil {
			t.Fatalf("valid token refused: %v", err)
		}
		if p.Subject != "jwt:alice" || p.Kind != domain.PrincipalToken || !p.Expires.Equal(now.Add(10*time.Minute)) {
			t.Fatalf("principal %+v", p)
		}
		if p.CanOpen("lab-3", domain.RoleController) != nil || p.CanSee("office-1") {
			t.Fatalf("grant not applied: %+v", p)
		}
	}
	// One device, by the "device" claim.
	p, err := v.Verify(sign(t, HS256, "", hsSecret, claims(func(c *Claims) { c.Devices = nil; c.Device = "pixel-7"; c.Role = "viewer" })))
	if err != nil || !p.CanSee("pixel-7") || !errors.Is(p.CanOpen("pixel-7", domain.RoleController), domain.ErrForbidden) {
		t.Fatalf("device claim: %+v %v", p, err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	v := verifier(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs256, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims(nil)).SignedString(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	noneTok, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	good := sign(t, HS256, "hs", hsSecret, claims(nil))
	parts := strings.Split(good, ".")
	tamperedPayload := claims(func(c *Claims) { c.Role = "admin"; c.Devices = []string{"*"} })
	tampered := forge(`{"alg":"HS256","kid":"hs","typ":"JWT"}`, tamperedPayload, parts[2])

	tests := []struct {
		name string
		tok  string
		want error
	}{
		{"expired", sign(t, HS256, "", hsSecret, claims(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)) })), domain.ErrTokenExpired},
		{"not yet valid", sign(t, HS256, "", hsSecret, claims(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Minute)) })), domain.ErrTokenNotYetValid},
		{"wrong audience", sign(t, HS256, "", hsSecret, claims(func(c *Claims) { c.Audience = jwt.ClaimStrings{"grafana"} })), domain.ErrTokenAudience},
		{"no audience", sign(t, HS256, "", hsSecret, claims(func(c *Claims) { c.Audience = nil })), domain.ErrTokenAudience},
		{"wrong issuer", sign(t, HS256, "", hsSecret, claims(func(c *Claims) { c.Issuer = "evil" })), domain.ErrTokenIssuer},
		{"alg none", noneTok, domain.ErrTokenAlgorithm},
		{"alg None forged", forge(`{"alg":"None"}`, claims(nil), ""), domain.ErrTokenAlgorithm},
		{"RS256", rs256, domain.ErrTokenAlgorithm},
		// Key confusion: HS256 keyed with the EdDSA public key's bytes,
		// addressed to the EdDSA key.
		{"HS256 with the EdDSA public key", sign(t, HS256, "ed", []byte(edPub), claims(nil)), domain.ErrTokenAlgorithm},
		{"EdDSA against the HS256 key", sign(t, EdDSA, "hs", ed, claims(nil)), domain.ErrTokenAlgorithm},
		{"tampered payload", tampered, domain.ErrTokenSignature},
		{"tampered signature", parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])), domain.ErrTokenSignature},
		{"other secret", sign(t, HS256, "", []byte("another-secret-of-32-bytes-long!!"), claims(nil)), domain.ErrTokenSignature},
		{"other Ed25519 key", sign(t, EdDSA, "", mustPriv(), claims(nil)), domain.ErrTokenSignature},
		{"unknown kid", sign(t, HS256, "nope", hsSecret, claims(nil)), domain.ErrTokenUnknownKey},
		{"two parts", parts[0] + "." + parts[1], domain.ErrTokenMalformed},
		{"header not base64", "!!!." + parts[1] + "." + parts[2], domain.ErrTokenMalformed},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("alg")) + "." + parts[1] + "." + parts[2], domain.ErrTokenMalformed},
		{"payload not JSON", parts[0] + ".bm90IGpzb24." + parts[2], domain.ErrTokenMalformed},
		{"huge", strings.Repeat("a", MaxTokenBytes+1), domain.ErrTokenMalformed},
		{"no exp", sign(t, HS256, "", hsSecret, claims(func(c *Claims) { c.ExpiresAt = nil })), domain.ErrTokenClaims},
		{"exp too far", sign(t, HS256, "", hsSecret, claims(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(48 * time.Hour)) })), domain.ErrTokenClaims},
		{"no subject", sign(t, HS256, "", hsSecret, claims(func(c *Claims) { c.Subject = "" })), domain.ErrTokenClaims},
		{"subject with newline", sign(t, HS256, "", hsSecret, claims(func(c *Claims) { c.Subject = "a\nb" })), domain.ErrTokenClaims},
		{"no devices", sign(t, HS256, "", hsSecret, claims(func(c *Claims) { c.Devices = nil })), domain.ErrTokenClaims},
		{"bad glob", sign(t, HS256, "", hsSecret, claims(func(c *Claims) { c.Devices = []string{"lab-["} })), domain.ErrTokenClaims},
		{"unknown role", sign(t, HS256, "", hsSecret, claims(func(c *Claims) { c.Role = "root" })), domain.ErrTokenClaims},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(tt.tok)
			if !errors.Is(err, tt.want) || !errors.Is(err, domain.ErrUnauthorized) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func mustPriv() ed25519.PrivateKey { _, p := mustEd(); return p }

func TestNewRefusesBadKeys(t *testing.T) {
	for _, cfg := range []Config{
		{Audience: "a"},
		{Keys: []Key{{Algorithm: HS256, Secret: hsSecret}}},
		{Keys: []Key{{Algorithm: HS256, Secret: []byte("short")}}, Audience: "a"},
		{Keys: []Key{{Algorithm: EdDSA, PublicKey: []byte("x")}}, Audience: "a"},
		{Keys: []Key{{Algorithm: "RS256"}}, Audience: "a"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestLooksLikeToken(t *testing.T) {
	if !LooksLikeToken(sign(t, HS256, "", hsSecret, claims(nil))) {
		t.Error("a token not recognised")
	}
	for _, s := range []string{"change-me-to-a-long-random-string", "a.b.c", "eyJ.x", ""} {
		if LooksLikeToken(s) {
			t.Errorf("LooksLikeToken(%q)", s)
		}
	}
}

func FuzzVerify(f *testing.F) {
	v := verifier(f)
	f.Add(sign(f, HS256, "hs", hsSecret, claims(nil)))
	f.Add(sign(f, EdDSA, "", ed, claims(nil)))
	f.Add(forge(`{"alg":"none"}`, claims(nil), ""))
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := v.Verify(tok)
		if err != nil {
			if !errors.Is(err, domain.ErrUnauthorized) {
				t.Fatalf("error %v does not wrap ErrUnauthorized", err)
			}
			return
		}
		if p.Subject == "" || len(p.Grants) != 1 {
			t.Fatalf("accepted token without a principal: %+v", p)
		}
	})
}
