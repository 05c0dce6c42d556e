package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"mediasvc/adapters/httpapi/httpapitest"
	"mediasvc/domain"
)

// fakeVerifier answers for the tokens it holds and calls every other
// credential malformed, as a verifier does for what is not a JWT. What
// makes a real token expired, forged or wrong is jwtauth's to test; here
// the point is what httpapi does with each answer.
type fakeVerifier map[string]struct {
	p   domain.Principal
	err error
}

func (f fakeVerifier) Verify(token string) (domain.Principal, error) {
	if a, ok := f[token]; ok {
		return a.p, a.err
	}
	return domain.Principal{}, fmt.Errorf("not a token: %w", domain.ErrTokenMalformed)
}

func tokenPrincipal(role domain.GrantRole) domain.Principal {
	return domain.Principal{Subject: "jwt:carol", Kind: domain.PrincipalToken,
		Grants:  []domain.Grant{{Devices: []string{"lab-1"}, Roles: []domain.GrantRole{role}}},
		Expires: time.Now().Add(10 * time.Minute)}
}

// grantsFake serves devices lab-1, lab-2 and office-1.
func grantsFake(rec *calls) *httpapitest.Service {
	f := newFake(rec, "ip:127.0.0.1")
	devs := []domain.Device{{ID: "lab-1"}, {ID: "lab-2"}, {ID: "office-1"}}
	f.DevicesFunc = func(context.Context) ([]domain.Device, error) { return devs, nil }
	f.DeviceFunc = func(_ context.Context, id domain.DeviceID) (domain.Device, error) {
		for _, d := range devs {
			if d.ID == id {
				return d, nil
			}
		}
		return domain.Device{}, domain.ErrDeviceNotFound
	}
	create := f.CreateSessionFunc
	f.CreateSessionFunc = func(ctx context.Context, d domain.DeviceID, role domain.Role, owner string) (domain.Session, string, error) {
		rec.add("create:" + string(d) + ":" + string(role))
		return create(ctx, testDevice, role, owner)
	}
	f.WHEPFunc = func(_ context.Context, d domain.DeviceID, owner, _ string) (domain.Session, string, error) {
		rec.add("whep:" + string(d))
		return sessionOf(testSession, owner), "v=0\r\n", nil
	}
	return f
}

func bearer(cred string) map[string]string {
	return map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + cred}
}

func deviceIDs(t *testing.T, body []byte) []string {
	t.Helper()
	var got struct {
		Devices []struct {
			ID string `json:"id"`
		} `json:"devices"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range got.Devices {
		ids = append(ids, d.ID)
	}
	return ids
}

func TestKeyGrants(t *testing.T) {
	rec := &calls{}
	cfg := Config{
		APIKeys: map[string]string{"ops": "ops-key-0123456789"},
		Keys: []Key{
			{Name: "lab-viewer", Secret: "viewer-key-0123456789", Grants: []domain.Grant{{Devices: []string{"lab-*"}, Roles: []domain.GrantRole{domain.GrantViewer}}}},
			{Name: "lab-ctl", Secret: "ctl-key-0123456789", Grants: []domain.Grant{{Devices: []string{"lab-*"}, Roles: []domain.GrantRole{domain.GrantController}}}},
			{Name: "old", Secret: "old-key-0123456789", Expires: time.Now().Add(-time.Minute), Grants: []domain.Grant{{Devices: []string{"*"}, Roles: []domain.GrantRole{domain.GrantAdmin}}}},
			{Name: "boss", Secret: "boss-key-0123456789", Grants: []domain.Grant{{Devices: []string{"*"}, Roles: []domain.GrantRole{domain.GrantAdmin}}}},
		},
	}
	_, ts := start(t, cfg, grantsFake(rec))

	// A lab-* key sees only lab devices; the plain key sees all.
	r := do(t, ts, req{method: "GET", path: "/api/v1/devices", header: bearer("viewer-key-0123456789")})
	if got := deviceIDs(t, r.body); strings.Join(got, ",") != "lab-1,lab-2" {
		t.Errorf("lab-viewer sees %v", got)
	}
	r = do(t, ts, req{method: "GET", path: "/api/v1/devices", header: bearer("ops-key-0123456789")})
	if got := deviceIDs(t, r.body); len(got) != 3 {
		t.Errorf("ops sees %v", got)
	}
	if r := do(t, ts, req{method: "GET", path: "/api/v1/devices/office-1", header: bearer("viewer-key-0123456789")}); r.status != 404 || errCode(t, r.body) != "device_not_found" {
		t.Errorf("lab-viewer GET office-1 = %d %s", r.status, r.body)
	}

	tests := []struct {
		name, key, body string
		status          int
		code            string
	}{
		{"viewer key, viewer session", "viewer-key-0123456789", `{"device_id":"lab-1","role":"viewer"}`, 201, ""},
		{"viewer key, controller session", "viewer-key-0123456789", `{"device_id":"lab-1","role":"controller"}`, 403, "forbidden"},
		{"viewer key, other device", "viewer-key-0123456789", `{"device_id":"office-1"}`, 404, "device_not_found"},
		{"controller key, controller session", "ctl-key-0123456789", `{"device_id":"lab-2","role":"controller"}`, 201, ""},
		{"expired key", "old-key-0123456789", `{"device_id":"lab-1"}`, 401, "key_expired"},
		{"unknown key", "nope-0123456789abcdef", `{"device_id":"lab-1"}`, 401, "unauthorized"},
		{"plain key", "ops-key-0123456789", `{"device_id":"office-1","role":"controller"}`, 201, ""},
	}
	for _, tt := range tests {
		before := rec.count("create:office-1:controller") + rec.count("create:lab-1:controller")
		r := do(t, ts, req{method: "POST", path: "/api/v1/sessions", header: bearer(tt.key), body: tt.body})
		if r.status != tt.status || (tt.code != "" && errCode(t, r.body) != tt.code) {
			t.Errorf("%s: %d %s, want %d %s", tt.name, r.status, r.body, tt.status, tt.code)
		}
		if tt.status != 201 && rec.count("create:office-1:controller")+rec.count("create:lab-1:controller") != before {
			t.Errorf("%s: refused but the service was called", tt.name)
		}
	}
	// WHEP follows the same grants.
	whep := func(key, dev string) resp {
		return do(t, ts, req{method: "POST", path: "/whep/" + dev, header: map[string]string{"Content-Type": mimeSDP, "Authorization": "Bearer " + key}, body: "v=0\r\n"})
	}
	if r := whep("viewer-key-0123456789", "lab-2"); r.status != 201 {
		t.Errorf("WHEP lab-2 = %d %s", r.status, r.body)
	}
	if r := whep("viewer-key-0123456789", "office-1"); r.status != 404 || rec.has("whep:office-1") {
		t.Errorf("WHEP office-1 = %d %s", r.status, r.body)
	}
	// Instances and metrics need an operator: the plain key or admin.
	for key, want := range map[string]int{"ops-key-0123456789": 200, "boss-key-0123456789": 200, "ctl-key-0123456789": 403} {
		if r := do(t, ts, req{method: "GET", path: "/api/v1/instances", header: bearer(key)}); r.status != want {
			t.Errorf("instances with %s = %d, want %d", key, r.status, want)
		}
	}
	// An admin acts on sessions it does not own; others see them as absent.
	if r := do(t, ts, req{method: "GET", path: "/api/v1/sessions/sess1", header: bearer("boss-key-0123456789")}); r.status != 200 {
		t.Errorf("admin GET foreign session = %d", r.status)
	}
	if r := do(t, ts, req{method: "GET", path: "/api/v1/sessions/sess1", header: bearer("ctl-key-0123456789")}); r.status != 404 {
		t.Errorf("controller GET foreign session = %d", r.status)
	}
}

// TestAccessTokens: a JWT access link in either place gives its subject
// the device and role it names and nothing more; each bad token gets its
// own 401 code.
func TestAccessTokens(t *testing.T) {
	rec := &calls{}
	v := fakeVerifier{
		"eyJh.eyJctl.sig":         {p: tokenPrincipal(domain.GrantController)},
		"eyJh.eyJviewer.sig":      {p: tokenPrincipal(domain.GrantViewer)},
		"eyJh.eyJexpired.sig":     {err: domain.ErrTokenExpired},
		"eyJh.eyJearly.sig":       {err: domain.ErrTokenNotYetValid},
		"eyJh.eyJaud.sig":         {err: domain.ErrTokenAudience},
		"eyJh.eyJnone.sig":        {err: domain.ErrTokenAlgorithm},
		"eyJh.eyJtampered.sig":    {err: domain.ErrTokenSignature},
		"eyJh.eyJbadrole.sig":     {err: domain.ErrTokenClaims},
		"eyJh.eyJunknownkey.sig":  {err: domain.ErrTokenUnknownKey},
		"eyJh.eyJwrongissuer.sig": {err: domain.ErrTokenIssuer},
	}
	_, ts := start(t, Config{Tokens: v}, grantsFake(rec))
	tok := "eyJh.eyJctl.sig"

	r := do(t, ts, req{method: "GET", path: "/api/v1/devices?access_token=" + tok})
	if got := deviceIDs(t, r.body); r.status != 200 || strings.Join(got, ",") != "lab-1" {
		t.Fatalf("devices by access_token = %d %v", r.status, got)
	}
	r = do(t, ts, req{method: "POST", path: "/api/v1/sessions", header: bearer(tok), body: `{"device_id":"lab-1","role":"controller"}`})
	if r.status != 201 {
		t.Fatalf("create by bearer token = %d %s", r.status, r.body)
	}
	rec.mu.Lock()
	if rec.owner != "jwt:carol" {
		t.Errorf("owner %q, want jwt:carol", rec.owner)
	}
	rec.mu.Unlock()
	if r := do(t, ts, req{method: "POST", path: "/api/v1/sessions?access_token=" + tok, header: jsonHeader(), body: `{"device_id":"lab-2"}`}); r.status != 404 {
		t.Errorf("other device = %d %s", r.status, r.body)
	}
	if r := do(t, ts, req{method: "POST", path: "/api/v1/sessions", header: bearer("eyJh.eyJviewer.sig"), body: `{"device_id":"lab-1","role":"controller"}`}); r.status != 403 {
		t.Errorf("viewer token, controller session = %d", r.status)
	}
	tests := []struct {
		name, cred, code string
	}{
		{"expired", "eyJh.eyJexpired.sig", "token_expired"},
		{"not yet valid", "eyJh.eyJearly.sig", "token_not_yet_valid"},
		{"wrong audience", "eyJh.eyJaud.sig", "token_wrong_audience"},
		{"wrong issuer", "eyJh.eyJwrongissuer.sig", "token_wrong_issuer"},
		{"alg none", "eyJh.eyJnone.sig", "token_wrong_algorithm"},
		{"tampered", "eyJh.eyJtampered.sig", "token_invalid_signature"},
		{"unknown key", "eyJh.eyJunknownkey.sig", "token_unknown_key"},
		{"malformed", "eyJhbGciOiJIUzI1NiJ9.!!!.x", "token_malformed"},
		{"bad role", "eyJh.eyJbadrole.sig", "token_invalid_claims"},
		{"query not a JWT", "", "token_malformed"},
		{"no credential", "-", "unauthorized"},
	}
	for _, tt := range tests {
		var r resp
		switch tt.cred {
		case "":
			r = do(t, ts, req{method: "GET", path: "/api/v1/devices?access_token=some-api-key-in-a-url"})
		case "-":
			r = do(t, ts, req{method: "GET", path: "/api/v1/devices"})
		default:
			r = do(t, ts, req{method: "GET", path: "/api/v1/devices", header: bearer(tt.cred)})
		}
		if r.status != 401 || errCode(t, r.body) != tt.code {
			t.Errorf("%s: %d %s, want 401 %s", tt.name, r.status, r.body, tt.code)
		}
	}
}
