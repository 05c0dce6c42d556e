//go:build e2e

package e2e

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"mediasvc/adapters/jwtauth"
	"mediasvc/e2e/client"
)

const e2eJWTSecret = "an-e2e-shared-secret-of-32-bytes!!"

func accessToken(t *testing.T, sub, device, role string, exp time.Duration) string {
	t.Helper()
	tok, err := jwtauth.Sign(jwtauth.HS256, "platform", []byte(e2eJWTSecret), jwtauth.Claims{
		RegisteredClaims: gojwt.RegisteredClaims{
			Subject: sub, Audience: gojwt.ClaimStrings{"mediasvc"},
			ExpiresAt: gojwt.NewNumericDate(time.Now().Add(exp)),
		},
		Device: device, Role: role,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestAccessLinksAndGrants: the built binary with a JWT key and keys with
// grants. An access link for the demo device plays it over the WebSocket
// and WHEP; the subject owns the sessions and is in the log; other devices,
// roles and bad tokens are refused with their codes.
func TestAccessLinksAndGrants(t *testing.T) {
	cfg := defaultConfig()
	cfg.set("auth", "jwt", map[string]any{
		"audience": "mediasvc", "max_ttl": "1h",
		"keys": []any{map[string]any{"id": "platform", "alg": "HS256", "secret": e2eJWTSecret}},
	})
	cfg.set("auth", "keys", []any{
		map[string]any{"name": "wall", "key": "wall-key-0123456789", "devices": []string{"demo"}, "roles": []string{"viewer"}},
		map[string]any{"name": "lab", "key": "lab-key-0123456789", "devices": []string{"lab-*"}, "roles": []string{"controller"}},
	})
	in := startInstance(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	link := accessToken(t, "carol", "demo", "controller", 10*time.Minute)
	for _, mode := range []client.Mode{client.ModeWS, client.ModeWHEP} {
		v, err := client.Dial(ctx, client.Config{BaseURL: in.Base, Mode: mode, Role: "controller", APIKey: link})
		if mode == client.ModeWHEP {
			v, err = client.Dial(ctx, client.Config{BaseURL: in.Base, Mode: mode, APIKey: link})
		}
		if err != nil {
			t.Fatalf("%v with an access link: %v", mode, err)
		}
		if err := v.WaitFrames(ctx, 30, false); err != nil {
			t.Fatalf("%v frames: %v", mode, err)
		}
		v.Close()
	}
	// The link in the query, as a browser opening it has it.
	resp, body := do(t, "GET", in.Base+"/api/v1/devices?access_token="+link, "", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"id":"demo"`) {
		t.Fatalf("devices by access_token: %d %s", resp.StatusCode, body)
	}
	// The lab key sees no demo device.
	resp, body = do(t, "GET", in.Base+"/api/v1/devices", "", nil, http.Header{"Authorization": {"Bearer lab-key-0123456789"}})
	if resp.StatusCode != 200 || strings.Contains(string(body), `"id":"demo"`) {
		t.Fatalf("lab key devices: %d %s", resp.StatusCode, body)
	}
	create := func(cred, body string) (*http.Response, []byte) {
		return do(t, "POST", in.Base+"/api/v1/sessions", "application/json", []byte(body), http.Header{"Authorization": {"Bearer " + cred}})
	}
	for _, tc := range []struct {
		name, cred, body string
		status           int
		code             string
	}{
		{"viewer key, controller", "wall-key-0123456789", `{"device_id":"demo","role":"controller"}`, 403, "forbidden"},
		{"lab key, demo", "lab-key-0123456789", `{"device_id":"demo"}`, 404, "device_not_found"},
		{"link for another device", accessToken(t, "carol", "lab-1", "controller", time.Minute), `{"device_id":"demo"}`, 404, "device_not_found"},
		{"viewer link, controller", accessToken(t, "dave", "demo", "viewer", time.Minute), `{"device_id":"demo","role":"controller"}`, 403, "forbidden"},
		{"expired link", accessToken(t, "carol", "demo", "viewer", -time.Minute), `{"device_id":"demo"}`, 401, "token_expired"},
		{"link too long-lived", accessToken(t, "carol", "demo", "viewer", 48*time.Hour), `{"device_id":"demo"}`, 401, "token_invalid_claims"},
		{"no credential", "", `{"device_id":"demo"}`, 401, "unauthorized"},
	} {
		resp, body := create(tc.cred, tc.body)
		expectStatus(t, resp, body, tc.status, tc.code)
	}
	resp, body = create("wall-key-0123456789", `{"device_id":"demo","role":"viewer"}`)
	expectStatus(t, resp, body, 201, "")

	log, err := os.ReadFile(in.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "owner=jwt:carol") || !strings.Contains(string(log), "owner=wall") {
		t.Errorf("the log does not name the subjects jwt:carol and wall")
	}
}
