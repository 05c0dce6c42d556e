package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mediasvc.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigDefaults(t *testing.T) {
	cfg, _, err := loadConfig(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:8080" || !cfg.Demo.Enabled || cfg.Session.TTL != time.Minute || cfg.Limits.MaxCandidates != 50 {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestSampleConfigIsValidAndComplete(t *testing.T) {
	cfg, k, err := loadConfig([]string{"-config", "../../mediasvc.yaml"}, nil)
	if err != nil {
		t.Fatalf("sample config: %v", err)
	}
	def, dk, _ := loadConfig(nil, nil)
	if cfg.HTTP.Addr != def.HTTP.Addr || cfg.Session != def.Session || cfg.Limits != def.Limits || cfg.Stream != def.Stream {
		t.Fatalf("sample differs from defaults:\n%+v\n%+v", cfg, def)
	}
	// Every default key is documented in the sample.
	sample, _ := os.ReadFile("../../mediasvc.yaml")
	for _, key := range dk.Keys() {
		leaf := key[strings.LastIndex(key, ".")+1:]
		if !bytes.Contains(sample, []byte(leaf+":")) {
			t.Errorf("mediasvc.yaml does not document %s", key)
		}
	}
	if len(k.Keys()) == 0 {
		t.Fatal("empty config tree")
	}
}

func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, "http:\n  addr: 127.0.0.1:1000\nlog:\n  level: warn\n  format: json\nsession:\n  ttl: 2m\n")
	cfg, _, err := loadConfig(
		[]string{"-config", file, "--log.level", "debug"},
		[]string{"MEDIASVC_HTTP_ADDR=127.0.0.1:2000", "MEDIASVC_HTTP_ALLOWED_ORIGINS=https://a.example, https://b.example", "PATH=/bin"},
	)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:2000" {
		t.Errorf("env must beat file: addr %s", cfg.HTTP.Addr)
	}
	if cfg.Log.Level != "debug" {
		t.Errorf("flag must beat file: level %s", cfg.Log.Level)
	}
	if cfg.Log.Format != "json" || cfg.Session.TTL != 2*time.Minute {
		t.Errorf("file must beat defaults: %+v %v", cfg.Log, cfg.Session.TTL)
	}
	if len(cfg.HTTP.AllowedOrigins) != 2 || cfg.HTTP.AllowedOrigins[1] != "https://b.example" {
		t.Errorf("env list: %q", cfg.HTTP.AllowedOrigins)
	}
}

func TestConfigReportsEveryBadFieldAtOnce(t *testing.T) {
	file := writeFile(t, `
http:
  addr: 0.0.0.0:8080
  max_body_bytes: -1
log:
  level: loud
stream:
  ring_packets: 4096
  ring_max_bytes: 1000
webrtc:
  ice_servers:
    - urls: ["turn:turn.example.net"]
  nat_1to1_ips: ["not-an-ip"]
  mtu: 9000
  interfaces: [""]
ws:
  write_timeout: 0s
  max_bad_messages: -1
  send_queue: 4
bogus:
  key: 1
`)
	_, _, err := loadConfig([]string{"-config", file}, []string{"MEDIASVC_NOPE=1"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"http.addr", "http.max_body_bytes", "log.level", "stream.ring_packets: replaced by", "stream.ring_max_bytes",
		"webrtc.ice_servers[0]", "webrtc.nat_1to1_ips", "bogus.key: unknown key", "MEDIASVC_NOPE",
		"webrtc.mtu", "webrtc.interfaces[0]", "ws.write_timeout", "ws.max_bad_messages", "ws.send_queue: must be at least 16",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}

func TestOpenListenerNeedsKeysOrConsent(t *testing.T) {
	if _, _, err := loadConfig([]string{"--http.addr", "0.0.0.0:8080"}, nil); err == nil {
		t.Fatal("open listener beyond loopback accepted")
	}
	if _, _, err := loadConfig([]string{"--http.addr", "0.0.0.0:8080", "--auth.allow_open"}, nil); err != nil {
		t.Fatalf("allow_open: %v", err)
	}
	file := writeFile(t, "http:\n  addr: 0.0.0.0:8080\nauth:\n  api_keys:\n    ops: abcdefghijklmnop1234\n")
	if _, _, err := loadConfig([]string{"-config", file}, nil); err != nil {
		t.Fatalf("with keys: %v", err)
	}
}

func TestConfigPrintMasksSecrets(t *testing.T) {
	file := writeFile(t, `
auth:
  api_keys:
    ops: abcdefghijklmnop1234
webrtc:
  ice_servers:
    - urls: ["turn:turn.example.net:3478"]
      username: u
      credential: topsecret
`)
	var out, errb bytes.Buffer
	code := run([]string{"config", "print", "-config", file}, nil, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	s := out.String()
	if strings.Contains(s, "abcdefghijklmnop1234") || strings.Contains(s, "topsecret") {
		t.Fatalf("secret printed:\n%s", s)
	}
	if !strings.Contains(s, "ops: '********'") && !strings.Contains(s, `ops: "********"`) {
		t.Fatalf("masked key missing:\n%s", s)
	}
}

func TestBadConfigExitsNonZero(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--log.level", "loud"}, nil, &out, &errb); code == 0 {
		t.Fatal("exit 0 on bad config")
	}
	if !strings.Contains(errb.String(), "log.level") {
		t.Fatalf("stderr: %s", errb.String())
	}
	if code := run([]string{"frobnicate"}, nil, &out, &errb); code != 2 {
		t.Fatalf("unknown command exit %d", code)
	}
}

func TestMetricsConfig(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string // substring of the error, "" = valid
	}{
		{nil, ""},
		{[]string{"MEDIASVC_METRICS_ADDR=127.0.0.1:9464"}, ""},
		{[]string{"MEDIASVC_METRICS_ADDR=nonsense"}, "metrics.addr"},
		{[]string{"MEDIASVC_METRICS_ADDR=0.0.0.0:9464"}, "beyond loopback"},
		{[]string{"MEDIASVC_METRICS_ADDR=0.0.0.0:9464", "MEDIASVC_METRICS_ALLOW_OPEN=true"}, ""},
		{[]string{"MEDIASVC_METRICS_QUALITY_INTERVAL=0s"}, "metrics.quality_interval"},
		{[]string{"MEDIASVC_METRICS_ENABLED=false"}, ""},
	} {
		cfg, _, err := loadConfig(nil, tc.env)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.env, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want one naming %q", tc.env, err, tc.want)
		}
		if len(tc.env) == 1 && tc.env[0] == "MEDIASVC_METRICS_ENABLED=false" && cfg.Metrics.Enabled {
			t.Error("metrics.enabled=false not applied")
		}
	}
}

// testBusSecret is a valid redis.bus_secret for configurations that use Redis.
const testBusSecret = "MEDIASVC_REDIS_BUS_SECRET=a-bus-secret-of-at-least-32-bytes!"

func TestRedisConfig(t *testing.T) {
	cfg, _, err := loadConfig(nil, []string{"MEDIASVC_STORE_BACKEND=redis", "MEDIASVC_REDIS_URL=redis://:hunter2secret@127.0.0.1:6390/2", testBusSecret})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.Backend != "redis" || cfg.Redis.URL != "redis://:hunter2secret@127.0.0.1:6390/2" || cfg.Redis.KeyPrefix != "mediasvc:" {
		t.Fatalf("redis config: %+v %+v", cfg.Store, cfg.Redis)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"config", "print"}, []string{"MEDIASVC_REDIS_URL=redis://:hunter2secret@127.0.0.1:6390/2", testBusSecret,
		"MEDIASVC_REDIS_BUS_ACCEPT_SECRETS=an-older-bus-secret-of-32-bytes-too"}, &out, &errb); code != 0 {
		t.Fatalf("config print: exit %d %s", code, errb.String())
	}
	if strings.Contains(out.String(), "hunter2secret") || !strings.Contains(out.String(), "127.0.0.1:6390") {
		t.Fatalf("redis.url not masked:\n%s", out.String())
	}
	if strings.Contains(out.String(), "a-bus-secret") || strings.Contains(out.String(), "older-bus-secret") {
		t.Fatalf("bus secrets not masked:\n%s", out.String())
	}
	for _, c := range []struct {
		env  []string
		want string
	}{
		{[]string{"MEDIASVC_STORE_BACKEND=redis", testBusSecret}, "redis.url"},
		{[]string{"MEDIASVC_STORE_BACKEND=redis", "MEDIASVC_REDIS_URL=redis://127.0.0.1:6390"}, "redis.bus_secret: store.backend redis needs a bus secret"},
		{[]string{"MEDIASVC_STORE_BACKEND=redis", "MEDIASVC_REDIS_URL=redis://127.0.0.1:6390", "MEDIASVC_REDIS_BUS_SECRET=short"}, "redis.bus_secret: is 5 bytes, want at least 32"},
		{[]string{"MEDIASVC_STORE_BACKEND=redis", "MEDIASVC_REDIS_URL=redis://127.0.0.1:6390", testBusSecret, "MEDIASVC_REDIS_BUS_ACCEPT_SECRETS=old"}, "redis.bus_accept_secrets[0]"},
		{[]string{"MEDIASVC_STORE_BACKEND=redis", "MEDIASVC_REDIS_URL=redis://127.0.0.1:6390", testBusSecret, "MEDIASVC_REDIS_BUS_WINDOW=0s"}, "redis.bus_window"},
		{[]string{"MEDIASVC_STORE_BACKEND=redis", "MEDIASVC_REDIS_URL=http://x"}, "redis.url"},
		{[]string{"MEDIASVC_STORE_BACKEND=etcd"}, "store.backend"},
		{[]string{"MEDIASVC_REDIS_TOUCH_THROTTLE=30s"}, "redis.touch_throttle"},
		{[]string{"MEDIASVC_INSTANCE_ADVERTISE_URL=ftp://x"}, "instance.advertise_url"},
		{[]string{"MEDIASVC_REDIS_MODE=ring"}, "redis.mode"},
		{[]string{"MEDIASVC_STORE_BACKEND=redis", "MEDIASVC_REDIS_MODE=sentinel", "MEDIASVC_REDIS_URL=redis://127.0.0.1:26379/0"}, "master_name"},
		{[]string{"MEDIASVC_STORE_BACKEND=redis", "MEDIASVC_REDIS_MODE=cluster", "MEDIASVC_REDIS_URL=redis://127.0.0.1:7000?addr=bad"}, "redis.url"},
		{[]string{"MEDIASVC_REDIS_MODE=cluster", "MEDIASVC_REDIS_WAIT_REPLICAS=1"}, "redis.wait_replicas"},
		{[]string{"MEDIASVC_REDIS_WAIT_REPLICAS=1", "MEDIASVC_REDIS_WAIT_TIMEOUT=2s"}, "redis.wait_timeout"},
	} {
		if _, _, err := loadConfig(nil, c.env); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %s", c.env, err, c.want)
		}
	}
}

// TestRedisTopologyURLs checks that each mode reads its URL form, and
// that config print masks the data nodes' password a Sentinel URL carries
// as a parameter.
func TestRedisTopologyURLs(t *testing.T) {
	for _, env := range [][]string{
		{"MEDIASVC_REDIS_MODE=cluster", "MEDIASVC_REDIS_URL=redis://:pw@10.0.0.1:7000?addr=10.0.0.2:7000&addr=10.0.0.3:7000"},
		{"MEDIASVC_REDIS_MODE=sentinel", "MEDIASVC_REDIS_URL=redis://10.0.0.1:26379/1?master_name=mymaster&addr=10.0.0.2:26379&password=hunter2secret",
			"MEDIASVC_REDIS_WAIT_REPLICAS=1"},
	} {
		env = append(env, "MEDIASVC_STORE_BACKEND=redis", testBusSecret)
		if _, _, err := loadConfig(nil, env); err != nil {
			t.Errorf("%v: %v", env, err)
		}
		var out, errb bytes.Buffer
		if code := run([]string{"config", "print"}, env, &out, &errb); code != 0 || strings.Contains(out.String(), "hunter2secret") {
			t.Errorf("config print %v: exit %d, password shown:\n%s", env, code, out.String())
		}
	}
}

func TestMigrateUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"migrate"}, nil, &out, &errb); code != 2 {
		t.Fatalf("migrate without a verb: exit %d", code)
	}
	if code := run([]string{"migrate", "up"}, nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "redis.url") {
		t.Fatalf("migrate up without redis.url: exit %d %s", code, errb.String())
	}
}

func TestADBConfig(t *testing.T) {
	cfg, _, err := loadConfig(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ADB.Addr != "127.0.0.1:5037" || cfg.ADB.Backend != "screenrecord" || cfg.ADB.Screenrecord.TimeLimit != 180*time.Second || cfg.ADB.Breaker.Failures != 3 {
		t.Fatalf("adb defaults: %+v", cfg.ADB)
	}
	cfg, _, err = loadConfig(nil, []string{"MEDIASVC_ADB_ADDR=", "MEDIASVC_ADB_SERIALS=emulator-5554, R58M123"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ADB.Addr != "" || len(cfg.ADB.Serials) != 2 || cfg.ADB.Serials[1] != "R58M123" {
		t.Fatalf("adb from env: %+v", cfg.ADB)
	}
	file := writeFile(t, `
adb:
  addr: nonsense
  backend: scrcpy
  pool_size: 0
  orientation_poll: -1s
  scrcpy:
    video_codec_options: "i-frame-interval=two"
  screenrecord:
    time_limit: 300s
    restart_lead: 0s
  breaker:
    failures: 0
`)
	_, _, err = loadConfig([]string{"-config", file}, nil)
	if err == nil {
		t.Fatal("bad adb config accepted")
	}
	for _, want := range []string{"adb.addr", "adb.scrcpy.server", "adb.pool_size", "adb.screenrecord.time_limit", "adb.screenrecord.restart_lead", "adb.breaker.failures", "adb.orientation_poll", "video_codec_options"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}

func TestAllowedHostsConfig(t *testing.T) {
	cfg, _, err := loadConfig(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.allowedHosts(cfg.HTTP.Addr); !slices.Equal(got, []string{"localhost", "127.0.0.1", "::1"}) {
		t.Errorf("default allowed hosts %q", got)
	}
	keys := writeFile(t, "auth:\n  api_keys:\n    ops: 0123456789abcdef\n")
	cfg, _, err = loadConfig([]string{"--http.addr", "0.0.0.0:8080", "-config", keys}, []string{
		"MEDIASVC_HTTP_PUBLIC_URL=https://media.example.com",
		"MEDIASVC_HTTP_ALLOWED_HOSTS=lab.example, *.farm.example",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.allowedHosts(cfg.HTTP.Addr); !slices.Equal(got, []string{"localhost", "127.0.0.1", "::1", "media.example.com", "lab.example", "*.farm.example"}) {
		t.Errorf("allowed hosts %q", got)
	}
	if got := cfg.allowedHosts("10.1.2.3:8080"); !slices.Contains(got, "10.1.2.3") {
		t.Errorf("listen host missing: %q", got)
	}
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"MEDIASVC_HTTP_ALLOWED_HOSTS=*"}, `http.allowed_hosts: "*" answers to any Host name`},
		{[]string{"MEDIASVC_HTTP_ALLOWED_ORIGINS=*"}, `http.allowed_origins: "*" lets any web page`},
		{[]string{"MEDIASVC_HTTP_ALLOWED_HOSTS=http://x.example"}, `"http://x.example" is not a host name`},
		{[]string{"MEDIASVC_HTTP_ALLOWED_HOSTS=x.example:8080"}, `"x.example:8080" is not a host name`},
		{[]string{"MEDIASVC_HTTP_ALLOWED_HOSTS=a..b"}, `"a..b" is not a host name`},
	} {
		_, _, err := loadConfig(nil, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want %q", tc.env, err, tc.want)
		}
	}
	// With keys the opt-outs are accepted.
	if _, _, err := loadConfig([]string{"-config", keys}, []string{"MEDIASVC_HTTP_ALLOWED_HOSTS=*", "MEDIASVC_HTTP_ALLOWED_ORIGINS=*"}); err != nil {
		t.Errorf("opt-out with keys: %v", err)
	}
	for _, ok := range []string{"[::1]", "fd00::1", "10.0.0.5", "media.example.com", "*.example.com", "host_1"} {
		if !validHostPattern(ok) {
			t.Errorf("validHostPattern(%q) = false", ok)
		}
	}
}

func TestAuthGrantsAndJWTConfig(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	good := writeFile(t, `
auth:
  keys:
    - name: lab-wall
      key: lab-wall-key-0123456789
      devices: ["lab-*"]
      roles: [viewer]
      expires: "2030-01-31T00:00:00Z"
  jwt:
    audience: mediasvc
    keys:
      - id: platform
        alg: HS256
        secret: a-shared-secret-of-at-least-32-bytes
      - id: ed
        alg: EdDSA
        public_key: "`+base64.StdEncoding.EncodeToString(pub)+`"
      - id: ed-pem
        alg: EdDSA
        public_key: |
`+indentLines(pemKey, "          ")+`
`)
	cfg, _, err := loadConfig([]string{"-config", good, "--http.addr", "0.0.0.0:0"}, nil)
	if err != nil {
		t.Fatalf("good auth config refused: %v", err)
	}
	if !cfg.hasAuth() {
		t.Fatal("keys with grants do not count as auth")
	}
	if keys := cfg.apiKeys(); len(keys) != 1 || keys[0].Grants[0].Devices[0] != "lab-*" || keys[0].Expires.Year() != 2030 {
		t.Fatalf("apiKeys %+v", keys)
	}
	if v, err := cfg.tokenVerifier(); err != nil || v == nil {
		t.Fatalf("verifier %v %v", v, err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"config", "print", "-config", good}, nil, &out, &errb); code != 0 {
		t.Fatalf("print exit %d: %s", code, errb.String())
	}
	if s := out.String(); strings.Contains(s, "lab-wall-key-0123456789") || strings.Contains(s, "a-shared-secret-of-at-least-32-bytes") {
		t.Fatalf("secret printed:\n%s", s)
	}

	bad := writeFile(t, `
auth:
  keys:
    - name: ""
      key: short
      devices: []
      roles: [root]
      expires: tomorrow
    - name: ip:x
      key: 0123456789abcdef
      devices: ["lab-["]
      roles: [viewer]
  jwt:
    audience: ""
    leeway: 1h
    keys:
      - alg: HS256
        secret: short
      - alg: RS256
      - alg: EdDSA
        public_key: "AAAA"
      - alg: EdDSA
        secret: x
`)
	_, _, err = loadConfig([]string{"-config", bad}, nil)
	if err == nil {
		t.Fatal("bad auth config accepted")
	}
	for _, want := range []string{
		"auth.keys[0]: needs a name", "auth.keys[0]: key must be at least 16", "auth.keys[0]: grant names no devices",
		`auth.keys[0]: expires "tomorrow"`, "auth.keys[1]: name \"ip:x\"", `auth.keys[1]: grant device pattern "lab-["`,
		"auth.jwt.audience: must be set", "auth.jwt.leeway", "auth.jwt.keys[0]: an HS256 secret needs at least 32",
		`auth.jwt.keys[1]: alg must be HS256 or EdDSA, got "RS256"`, "auth.jwt.keys[2]: public_key is 3 bytes",
		"auth.jwt.keys[3]: an EdDSA key takes public_key",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func indentLines(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = pre + lines[i]
	}
	return strings.Join(lines, "\n")
}

func TestTURNConfig(t *testing.T) {
	const secret = "a-coturn-static-auth-secret"
	file := writeFile(t, `
webrtc:
  ice_servers:
    - urls: ["stun:stun.example.net:3478"]
  turn:
    urls: ["turn:turn.example.net:3478?transport=udp", "turns:turn.example.net:5349"]
    secret: `+secret+"\n")
	cfg, _, err := loadConfig([]string{"-config", file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	servers := iceServers(cfg)
	if len(servers) != 2 || servers[1].Secret != secret || len(servers[1].URLs) != 2 || servers[1].Username != "" {
		t.Fatalf("iceServers = %+v, want the STUN server then the TURN REST one", servers)
	}
	// The secret is masked by config print.
	var out, errb bytes.Buffer
	if code := run([]string{"config", "print", "-config", file}, nil, &out, &errb); code != 0 || strings.Contains(out.String(), secret) {
		t.Fatalf("config print exit %d, secret shown: %v\n%s%s", code, strings.Contains(out.String(), secret), out.String(), errb.String())
	}
	// From the environment, static credentials.
	cfg, _, err = loadConfig(nil, []string{"MEDIASVC_WEBRTC_TURN_URLS=turn:127.0.0.1:3478", "MEDIASVC_WEBRTC_TURN_USERNAME=u", "MEDIASVC_WEBRTC_TURN_CREDENTIAL=p"})
	if err != nil {
		t.Fatal(err)
	}
	if s := iceServers(cfg); len(s) != 1 || s[0].Username != "u" || s[0].Credential != "p" || s[0].Secret != "" {
		t.Fatalf("static TURN from env: %+v", s)
	}
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"MEDIASVC_WEBRTC_TURN_SECRET=" + secret}, "webrtc.turn.urls: needs at least one"},
		{[]string{"MEDIASVC_WEBRTC_TURN_URLS=stun:x.example:3478", "MEDIASVC_WEBRTC_TURN_SECRET=" + secret}, `"stun:x.example:3478" is not a turn: or turns: URL`},
		{[]string{"MEDIASVC_WEBRTC_TURN_URLS=turn:x.example", "MEDIASVC_WEBRTC_TURN_SECRET=short"}, "webrtc.turn.secret: must be at least 16"},
		{[]string{"MEDIASVC_WEBRTC_TURN_URLS=turn:x.example", "MEDIASVC_WEBRTC_TURN_SECRET=" + secret, "MEDIASVC_WEBRTC_TURN_USERNAME=u", "MEDIASVC_WEBRTC_TURN_CREDENTIAL=p"}, "either a secret"},
		{[]string{"MEDIASVC_WEBRTC_TURN_URLS=turn:x.example", "MEDIASVC_WEBRTC_TURN_USERNAME=u"}, "need both username and credential"},
		{[]string{"MEDIASVC_WEBRTC_TURN_URLS=turn:x.example"}, "need a secret (TURN REST) or username and credential"},
	} {
		_, _, err := loadConfig(nil, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want %q", tc.env, err, tc.want)
		}
	}
	// Without UDP, a TURN server in webrtc.turn is enough.
	if _, _, err := loadConfig(nil, []string{"MEDIASVC_WEBRTC_UDP=false", "MEDIASVC_WEBRTC_TURN_URLS=turn:x.example?transport=tcp", "MEDIASVC_WEBRTC_TURN_SECRET=" + secret}); err != nil {
		t.Errorf("no UDP with webrtc.turn: %v", err)
	}
}

func TestLoopbackICE(t *testing.T) {
	keys := []string{"MEDIASVC_AUTH_ALLOW_OPEN=true"}
	for _, tc := range []struct {
		addr             string
		env              []string
		listener, iceOff bool // loopbackListener, loopbackICE
	}{
		{"127.0.0.1:8080", nil, true, true},
		{"localhost:8080", nil, true, true},
		{"[::1]:8080", nil, true, true},
		{"127.0.0.1:8080", []string{"MEDIASVC_WEBRTC_INTERFACES=eth0"}, true, false},
		{"127.0.0.1:8080", []string{"MEDIASVC_WEBRTC_NAT_1TO1_IPS=203.0.113.7"}, true, false},
		{"0.0.0.0:8080", keys, false, false},
		{":8080", keys, false, false},
		{"192.0.2.2:8080", keys, false, false},
	} {
		cfg, _, err := loadConfig([]string{"--http.addr", tc.addr}, tc.env)
		if err != nil {
			t.Fatalf("%s %v: %v", tc.addr, tc.env, err)
		}
		if cfg.loopbackListener() != tc.listener || cfg.loopbackICE() != tc.iceOff {
			t.Errorf("%s %v: loopback listener %v, loopback ICE %v; want %v, %v", tc.addr, tc.env,
				cfg.loopbackListener(), cfg.loopbackICE(), tc.listener, tc.iceOff)
		}
	}
}

func TestRuntimeConfig(t *testing.T) {
	for _, tc := range []struct {
		env     []string
		want    string // substring of the error, "" = valid
		percent int
		limit   int64
	}{
		{nil, "", 0, 0},
		{[]string{"MEDIASVC_RUNTIME_GC_PERCENT=50", "MEDIASVC_RUNTIME_MEMORY_LIMIT_BYTES=1073741824"}, "", 50, 1 << 30},
		{[]string{"MEDIASVC_RUNTIME_GC_PERCENT=-1"}, "runtime.gc_percent", 0, 0},
		{[]string{"MEDIASVC_RUNTIME_GC_PERCENT=5000"}, "runtime.gc_percent", 0, 0},
		{[]string{"MEDIASVC_RUNTIME_MEMORY_LIMIT_BYTES=-1"}, "runtime.memory_limit_bytes", 0, 0},
	} {
		cfg, _, err := loadConfig(nil, tc.env)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.env, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want one naming %q", tc.env, err, tc.want)
		case tc.want == "" && (cfg.Runtime.GCPercent != tc.percent || cfg.Runtime.MemoryLimitBytes != tc.limit):
			t.Errorf("%v: runtime %+v", tc.env, cfg.Runtime)
		}
	}
}
