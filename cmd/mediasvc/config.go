package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"

	"mediasvc/adapters/adb"
	"mediasvc/adapters/redisstore"
)

// Config is the whole configuration. Every key is documented in
// mediasvc.yaml at the repository root.
type Config struct {
	HTTP       HTTPConfig       `koanf:"http"`
	Auth       AuthConfig       `koanf:"auth"`
	WS         WSConfig         `koanf:"ws"`
	Limits     LimitsConfig     `koanf:"limits"`
	Session    SessionConfig    `koanf:"session"`
	Stream     StreamConfig     `koanf:"stream"`
	WebRTC     WebRTCConfig     `koanf:"webrtc"`
	Demo       DemoConfig       `koanf:"demo"`
	Transcode  TranscodeConfig  `koanf:"transcode"`
	Recordings RecordingsConfig `koanf:"recordings"`
	ADB        ADBConfig        `koanf:"adb"`
	Log        LogConfig        `koanf:"log"`
	Instance   InstanceConfig   `koanf:"instance"`
	Metrics    MetricsConfig    `koanf:"metrics"`
	Tracing    TracingConfig    `koanf:"tracing"`
	Debug      DebugConfig      `koanf:"debug"`
	Runtime    RuntimeConfig    `koanf:"runtime"`
	Store      StoreConfig      `koanf:"store"`
	Redis      RedisConfig      `koanf:"redis"`

	Control      ControlConfig      `koanf:"control"`
	Reservations ReservationsConfig `koanf:"reservations"`
	Audit        AuditConfig        `koanf:"audit"`
	Webhooks     WebhooksConfig     `koanf:"webhooks"`
	Farm         FarmConfig         `koanf:"farm"`
}

// MetricsConfig is the Prometheus endpoint.
type MetricsConfig struct {
	Enabled         bool          `koanf:"enabled"`
	Addr            string        `koanf:"addr"`
	AllowOpen       bool          `koanf:"allow_open"`
	QualityInterval time.Duration `koanf:"quality_interval"`
}

// DebugConfig holds operator diagnostics.
type DebugConfig struct {
	// PprofAddr, when set, serves net/http/pprof on its own listener.
	PprofAddr string `koanf:"pprof_addr"`
}

// RuntimeConfig tunes the Go garbage collector, which decides how much of
// the process's memory is headroom rather than live data.
type RuntimeConfig struct {
	// GCPercent is GOGC: how far the heap may grow past the live heap
	// (and stacks) before the next collection, in percent; Go's default
	// 100 lets memory reach about twice what is live. 0 leaves the GOGC
	// environment variable or Go's default.
	GCPercent int `koanf:"gc_percent"`
	// MemoryLimitBytes is GOMEMLIMIT: a soft limit on the memory the Go
	// runtime uses, past which it collects more often whatever
	// GCPercent says. 0 leaves GOMEMLIMIT or no limit.
	MemoryLimitBytes int64 `koanf:"memory_limit_bytes"`
}

// StoreConfig picks where sessions live.
type StoreConfig struct {
	Backend string `koanf:"backend"`
}

// RedisConfig is the shared Redis (store.backend: redis).
type RedisConfig struct {
	// Mode is the topology: single, cluster or sentinel.
	Mode           string        `koanf:"mode"`
	URL            string        `koanf:"url"`
	KeyPrefix      string        `koanf:"key_prefix"`
	Timeout        time.Duration `koanf:"timeout"`
	TouchThrottle  time.Duration `koanf:"touch_throttle"`
	KeyGrace       time.Duration `koanf:"key_grace"`
	HealthInterval time.Duration `koanf:"health_interval"`
	MaxBackoff     time.Duration `koanf:"max_backoff"`
	// WaitReplicas > 0 makes session writes wait (WAIT) until that many
	// replicas have them, at most WaitTimeout.
	WaitReplicas int           `koanf:"wait_replicas"`
	WaitTimeout  time.Duration `koanf:"wait_timeout"`
	// BusSecret signs every bus message (HMAC-SHA256); required with
	// store.backend redis, at least 32 bytes, the same on every instance.
	BusSecret string `koanf:"bus_secret"`
	// BusAcceptSecrets are accepted on messages too (never used to sign):
	// the previous or next secret while one is rotated.
	BusAcceptSecrets []string `koanf:"bus_accept_secrets"`
	// BusWindow is how far a bus message's timestamp may be from this
	// instance's clock.
	BusWindow time.Duration `koanf:"bus_window"`
}

// busSecrets is the bus's list of secrets: the signing one first.
func (c RedisConfig) busSecrets() [][]byte {
	out := [][]byte{[]byte(c.BusSecret)}
	for _, s := range c.BusAcceptSecrets {
		out = append(out, []byte(s))
	}
	return out
}

// HTTPConfig is the listener.
type HTTPConfig struct {
	Addr              string        `koanf:"addr"`
	PublicURL         string        `koanf:"public_url"`
	AllowedHosts      []string      `koanf:"allowed_hosts"`
	AllowedOrigins    []string      `koanf:"allowed_origins"`
	TrustProxy        bool          `koanf:"trust_proxy"`
	MaxBodyBytes      int64         `koanf:"max_body_bytes"`
	DrainTimeout      time.Duration `koanf:"drain_timeout"`
	ShutdownDelay     time.Duration `koanf:"shutdown_delay"`
	ReadHeaderTimeout time.Duration `koanf:"read_header_timeout"`
	ReadTimeout       time.Duration `koanf:"read_timeout"`
	WriteTimeout      time.Duration `koanf:"write_timeout"`
	IdleTimeout       time.Duration `koanf:"idle_timeout"`
	MaxHeaderBytes    int           `koanf:"max_header_bytes"`
}

// AuthConfig holds the API keys.
type AuthConfig struct {
	APIKeys   map[string]string `koanf:"api_keys"`
	Keys      []KeyConfig       `koanf:"keys"`
	JWT       JWTConfig         `koanf:"jwt"`
	AllowOpen bool              `koanf:"allow_open"`
}

// WSConfig tunes session WebSockets.
type WSConfig struct {
	MaxMessageBytes int64         `koanf:"max_message_bytes"`
	SendQueue       int           `koanf:"send_queue"`
	PingInterval    time.Duration `koanf:"ping_interval"`
	StatsInterval   time.Duration `koanf:"stats_interval"`
	WriteTimeout    time.Duration `koanf:"write_timeout"`
	MaxBadMessages  int           `koanf:"max_bad_messages"`
}

// LimitsConfig bounds sessions, creation rates, input and ICE.
type LimitsConfig struct {
	SessionsTotal     int     `koanf:"sessions_total"`
	SessionsPerDevice int     `koanf:"sessions_per_device"`
	SessionsPerOwner  int     `koanf:"sessions_per_owner"`
	CreateRate        float64 `koanf:"create_rate"`
	CreateBurst       int     `koanf:"create_burst"`
	GlobalCreateRate  float64 `koanf:"global_create_rate"`
	GlobalCreateBurst int     `koanf:"global_create_burst"`
	InputRate         float64 `koanf:"input_rate"`
	InputBurst        int     `koanf:"input_burst"`
	// GroupInputRate and GroupInputBurst bound POST /api/v1/input calls
	// per subject (each call reaches up to 100 devices).
	GroupInputRate    float64 `koanf:"group_input_rate"`
	GroupInputBurst   int     `koanf:"group_input_burst"`
	MaxCandidates     int     `koanf:"max_candidates"`
	MaxCandidateBytes int     `koanf:"max_candidate_bytes"`
}

// SessionConfig is the session life.
type SessionConfig struct {
	TTL time.Duration `koanf:"ttl"`
}

// StreamConfig tunes captures and the fanout.
type StreamConfig struct {
	Grace           time.Duration `koanf:"grace"`
	RingHistory     time.Duration `koanf:"ring_history"`
	RingMaxBytes    int           `koanf:"ring_max_bytes"`
	BitrateBps      int           `koanf:"bitrate_bps"`
	MinBitrateBps   int           `koanf:"min_bitrate_bps"`
	MaxBitrateBps   int           `koanf:"max_bitrate_bps"`
	BitrateInterval time.Duration `koanf:"bitrate_interval"`
	// KeyframeInterval is the least time between two keyframe requests
	// the fanout passes to a capture.
	KeyframeInterval time.Duration `koanf:"keyframe_interval"`
	// Per-viewer budgets on what a viewer's RTCP may cost: keyframe
	// requests (PLI/FIR) passed on, packets retransmitted for its NACKs
	// (per second, and bytes per second), RTCP packets read per second.
	ViewerKeyframeInterval time.Duration `koanf:"viewer_keyframe_interval"`
	ViewerRetransmitRate   int           `koanf:"viewer_retransmit_rate"`
	ViewerRetransmitBytes  int           `koanf:"viewer_retransmit_bytes"`
	ViewerRTCPRate         int           `koanf:"viewer_rtcp_rate"`
}

// ICEServerConfig is one STUN/TURN server.
type ICEServerConfig struct {
	URLs       []string `koanf:"urls"`
	Username   string   `koanf:"username"`
	Credential string   `koanf:"credential"`
}

// TURNConfig is the TURN server every session is handed (webrtc.turn),
// with static credentials or a TURN REST secret (coturn's
// use-auth-secret / static-auth-secret) from which each session gets its
// own, expiring with it.
type TURNConfig struct {
	URLs       []string `koanf:"urls"`
	Username   string   `koanf:"username"`
	Credential string   `koanf:"credential"`
	Secret     string   `koanf:"secret"`
}

// minTURNSecret is the shortest TURN REST secret accepted: every viewer
// holds a username and its HMAC, enough to try secrets offline.
const minTURNSecret = 16

// WebRTCConfig is NAT traversal.
type WebRTCConfig struct {
	ICEServers     []ICEServerConfig `koanf:"ice_servers"`
	TURN           TURNConfig        `koanf:"turn"`
	NAT1To1IPs     []string          `koanf:"nat_1to1_ips"`
	UDPPort        int               `koanf:"udp_port"`
	TCPPort        int               `koanf:"tcp_port"`
	UDP            bool              `koanf:"udp"`
	EphemeralPorts bool              `koanf:"ephemeral_ports"`
	UDPPortMin     int               `koanf:"udp_port_min"`
	UDPPortMax     int               `koanf:"udp_port_max"`
	SendBatch      int               `koanf:"send_batch"`
	UDPGSO         bool              `koanf:"udp_gso"`
	IPv6           bool              `koanf:"ipv6"`
	GatherTimeout  time.Duration     `koanf:"gather_timeout"`
	// Interfaces, when not empty, limits ICE candidates to these network
	// interfaces (loopback is always kept).
	Interfaces []string `koanf:"interfaces"`
	// MTU is the largest RTP payload the video packetizer produces.
	MTU int `koanf:"mtu"`
}

// TranscodeConfig is the ffmpeg transcoder making renditions (VP8,
// Constrained Baseline) for viewers that cannot take a device's stream.
type TranscodeConfig struct {
	Enabled    bool   `koanf:"enabled"`
	FFmpeg     string `koanf:"ffmpeg"`
	BitrateBps int    `koanf:"bitrate_bps"`
}

// RecordingsConfig is where MP4 recordings of device streams go and
// what bounds them.
type RecordingsConfig struct {
	Enabled       bool          `koanf:"enabled"`
	Dir           string        `koanf:"dir"`
	MaxDuration   time.Duration `koanf:"max_duration"`
	MaxTotalBytes int64         `koanf:"max_total_bytes"`
	MaxConcurrent int           `koanf:"max_concurrent"`
}

// DemoConfig is the built-in demo device.
type DemoConfig struct {
	Enabled bool   `koanf:"enabled"`
	Owner   string `koanf:"owner"`
}

// ADBConfig is the Android source: devices of an adb server.
type ADBConfig struct {
	Addr            string           `koanf:"addr"`
	Serials         []string         `koanf:"serials"`
	Backend         string           `koanf:"backend"`
	MaxWidth        int              `koanf:"max_width"`
	MaxHeight       int              `koanf:"max_height"`
	KeyframeTimeout time.Duration    `koanf:"keyframe_timeout"`
	CommandTimeout  time.Duration    `koanf:"command_timeout"`
	PoolSize        int              `koanf:"pool_size"`
	InputQueue      int              `koanf:"input_queue"`
	RetryMin        time.Duration    `koanf:"retry_min"`
	RetryMax        time.Duration    `koanf:"retry_max"`
	Screenrecord    ScreenrecordConf `koanf:"screenrecord"`
	Scrcpy          ScrcpyConf       `koanf:"scrcpy"`
	Breaker         BreakerConfig    `koanf:"breaker"`
	// OrientationPoll is how often a screenrecord capture asks the
	// display's orientation; 0 never.
	OrientationPoll time.Duration `koanf:"orientation_poll"`
}

// ScreenrecordConf tunes the screenrecord backend.
type ScreenrecordConf struct {
	TimeLimit   time.Duration `koanf:"time_limit"`
	RestartLead time.Duration `koanf:"restart_lead"`
	IdleFlush   time.Duration `koanf:"idle_flush"`
}

// ScrcpyConf is the scrcpy backend: the operator's scrcpy-server jar and
// its version.
type ScrcpyConf struct {
	Server            string `koanf:"server"`
	Version           string `koanf:"version"`
	Audio             bool   `koanf:"audio"`
	StayAwake         bool   `koanf:"stay_awake"`
	PowerOffOnClose   bool   `koanf:"power_off_on_close"`
	MaxFPS            int    `koanf:"max_fps"`
	VideoCodecOptions string `koanf:"video_codec_options"`
	DisplayID         int    `koanf:"display_id"`
	ClipboardSync     bool   `koanf:"clipboard_sync"`
}

// options maps the scrcpy keys to the adapter's options.
func (c ScrcpyConf) options() adb.ScrcpyOptions {
	return adb.ScrcpyOptions{StayAwake: c.StayAwake, PowerOffOnClose: c.PowerOffOnClose, MaxFPS: c.MaxFPS,
		VideoCodecOptions: c.VideoCodecOptions, DisplayID: c.DisplayID, NoClipboardSync: !c.ClipboardSync}
}

// BreakerConfig tunes each device's circuit breaker.
type BreakerConfig struct {
	Failures int           `koanf:"failures"`
	OpenFor  time.Duration `koanf:"open_for"`
	Interval time.Duration `koanf:"interval"`
}

// LogConfig is logging.
type LogConfig struct {
	Level  string `koanf:"level"`
	Format string `koanf:"format"`
}

// InstanceConfig names this instance.
type InstanceConfig struct {
	ID           string        `koanf:"id"`
	AdvertiseURL string        `koanf:"advertise_url"`
	HeartbeatTTL time.Duration `koanf:"heartbeat_ttl"`
	LeaseTTL     time.Duration `koanf:"lease_ttl"`
}

// defaults are the built-in values: an open service on loopback with the
// demo device.
func defaults() map[string]any {
	return map[string]any{
		"http.addr":                       "127.0.0.1:8080",
		"http.public_url":                 "",
		"http.allowed_hosts":              []string{},
		"http.allowed_origins":            []string{},
		"http.trust_proxy":                false,
		"http.max_body_bytes":             65536,
		"http.drain_timeout":              "10s",
		"http.shutdown_delay":             "1s",
		"http.read_header_timeout":        "5s",
		"http.read_timeout":               "30s",
		"http.write_timeout":              "60s",
		"http.idle_timeout":               "120s",
		"http.max_header_bytes":           16384,
		"auth.api_keys":                   map[string]any{},
		"auth.allow_open":                 false,
		"auth.keys":                       []any{},
		"auth.jwt.audience":               "mediasvc",
		"auth.jwt.issuer":                 "",
		"auth.jwt.max_ttl":                "24h",
		"auth.jwt.leeway":                 "30s",
		"auth.jwt.keys":                   []any{},
		"ws.max_message_bytes":            65536,
		"ws.send_queue":                   64,
		"ws.ping_interval":                "15s",
		"ws.stats_interval":               "2s",
		"ws.write_timeout":                "10s",
		"ws.max_bad_messages":             20,
		"limits.sessions_total":           2000,
		"limits.sessions_per_device":      500,
		"limits.sessions_per_owner":       100,
		"limits.create_rate":              5,
		"limits.create_burst":             20,
		"limits.global_create_rate":       100,
		"limits.global_create_burst":      200,
		"limits.input_rate":               30,
		"limits.input_burst":              60,
		"limits.group_input_rate":         10,
		"limits.group_input_burst":        20,
		"limits.max_candidates":           50,
		"limits.max_candidate_bytes":      1024,
		"session.ttl":                     "60s",
		"stream.grace":                    "5s",
		"stream.ring_history":             "2s",
		"stream.ring_max_bytes":           33554432,
		"stream.bitrate_bps":              2000000,
		"stream.min_bitrate_bps":          300000,
		"stream.max_bitrate_bps":          4000000,
		"stream.bitrate_interval":         "5s",
		"stream.keyframe_interval":        "500ms",
		"stream.viewer_keyframe_interval": "1s",
		"stream.viewer_retransmit_rate":   400,
		"stream.viewer_retransmit_bytes":  524288,
		"stream.viewer_rtcp_rate":         200,
		"webrtc.ice_servers":              []any{},
		"webrtc.turn.urls":                []string{},
		"webrtc.turn.username":            "",
		"webrtc.turn.credential":          "",
		"webrtc.turn.secret":              "",
		"webrtc.nat_1to1_ips":             []string{},
		"webrtc.udp_port":                 0,
		"webrtc.tcp_port":                 0,
		"webrtc.udp":                      true,
		"webrtc.udp_port_min":             0,
		"webrtc.udp_port_max":             0,
		"webrtc.ephemeral_ports":          false,
		"webrtc.send_batch":               64,
		"webrtc.udp_gso":                  true,
		"webrtc.ipv6":                     true,
		"webrtc.gather_timeout":           "5s",
		"webrtc.interfaces":               []string{},
		"webrtc.mtu":                      1200,
		"demo.enabled":                    true,
		"transcode.enabled":               true,
		"transcode.ffmpeg":                "ffmpeg",
		"transcode.bitrate_bps":           1500000,
		"recordings.enabled":              true,
		"recordings.dir":                  "recordings",
		"recordings.max_duration":         "1h",
		"recordings.max_total_bytes":      int64(10 << 30),
		"recordings.max_concurrent":       4,
		"adb.addr":                        "127.0.0.1:5037",
		"adb.serials":                     []string{},
		"adb.backend":                     "screenrecord",
		"adb.max_width":                   0,
		"adb.max_height":                  0,
		"adb.keyframe_timeout":            "5s",
		"adb.command_timeout":             "10s",
		"adb.pool_size":                   4,
		"adb.input_queue":                 8,
		"adb.retry_min":                   "500ms",
		"adb.retry_max":                   "10s",
		"adb.screenrecord.time_limit":     "180s",
		"adb.screenrecord.restart_lead":   "2s",
		"adb.screenrecord.idle_flush":     "50ms",
		"adb.scrcpy.server":               "",
		"adb.scrcpy.version":              "3.3.4",
		"adb.scrcpy.audio":                true,
		"adb.scrcpy.stay_awake":           false,
		"adb.scrcpy.power_off_on_close":   false,
		"adb.scrcpy.max_fps":              0,
		"adb.scrcpy.video_codec_options":  "",
		"adb.scrcpy.display_id":           0,
		"adb.scrcpy.clipboard_sync":       true,
		"adb.orientation_poll":            "2s",
		"adb.breaker.failures":            3,
		"adb.breaker.open_for":            "30s",
		"adb.breaker.interval":            "60s",
		"log.level":                       "info",
		"tracing.otlp_endpoint":           "",
		"tracing.sample_ratio":            1.0,
		"log.format":                      "text",
		"instance.id":                     "",
		"metrics.enabled":                 true,
		"metrics.addr":                    "",
		"metrics.allow_open":              false,
		"metrics.quality_interval":        "5s",
		"debug.pprof_addr":                "",
		"runtime.gc_percent":              0,
		"runtime.memory_limit_bytes":      int64(0),
		"instance.advertise_url":          "",
		"instance.heartbeat_ttl":          "15s",
		"instance.lease_ttl":              "10s",
		"demo.owner":                      "",
		"store.backend":                   "memory",
		"redis.mode":                      "single",
		"redis.url":                       "",
		"redis.wait_replicas":             0,
		"redis.wait_timeout":              "500ms",
		"redis.key_prefix":                "mediasvc:",
		"redis.timeout":                   "1s",
		"redis.touch_throttle":            "5s",
		"redis.key_grace":                 "1m",
		"redis.health_interval":           "1s",
		"redis.max_backoff":               "10s",
		"redis.bus_secret":                "",
		"redis.bus_accept_secrets":        []string{},
		"redis.bus_window":                "30s",
	}
}

// secretKeys are masked by `config print`.
func isSecret(key string) bool {
	return strings.HasPrefix(key, "auth.api_keys.") || strings.HasSuffix(key, ".credential") || strings.HasSuffix(key, ".secret") ||
		key == "redis.bus_secret" || key == "redis.bus_accept_secrets"
}

// envPrefix starts every environment variable the service reads.
const envPrefix = "MEDIASVC_"

// flagSet declares the command-line flags; their names are config keys.
func flagSet(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.String("config", "", "YAML config file (see mediasvc.yaml)")
	fs.String("http.addr", "", "listen address")
	fs.String("log.level", "", "log level: debug, info, warn, error")
	fs.String("log.format", "", "log format: text or json")
	fs.Bool("demo.enabled", true, "serve the built-in demo device")
	fs.Bool("auth.allow_open", false, "allow listening beyond loopback without API keys")
	fs.String("instance.id", "", "this instance's id")
	return fs
}

// loadConfig builds the configuration: defaults, then the YAML file named
// by -config, then MEDIASVC_* environment variables, then flags. It returns
// the config, the koanf tree (for printing) and every problem found, joined.
func loadConfig(args []string, environ []string) (Config, *koanf.Koanf, error) {
	k := koanf.New(".")
	_ = k.Load(confmap.Provider(withFarmDefaults(defaults()), "."), nil)
	known := k.Keys()

	fs := flagSet("mediasvc")
	if err := fs.Parse(longFlags(args)); err != nil {
		return Config{}, nil, err
	}
	if len(fs.Args()) > 0 {
		return Config{}, nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	var problems []error
	if path, _ := fs.GetString("config"); path != "" {
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return Config{}, nil, fmt.Errorf("read config file %s: %w", path, err)
		}
	}
	envKeys := make(map[string]string, len(known))
	for _, key := range known {
		envKeys[envPrefix+strings.ToUpper(strings.ReplaceAll(key, ".", "_"))] = key
	}
	if err := k.Load(env.Provider(".", env.Opt{
		Prefix:      envPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, v string) (string, any) {
			key, ok := envKeys[name]
			if !ok {
				problems = append(problems, fmt.Errorf("%s: unknown environment variable", name))
				return "", nil
			}
			if _, isList := k.Get(key).([]string); isList || key == "http.allowed_origins" || key == "http.allowed_hosts" || key == "webrtc.nat_1to1_ips" || key == "adb.serials" {
				return key, splitList(v)
			}
			return key, v
		},
	}), nil); err != nil {
		return Config{}, nil, fmt.Errorf("read environment: %w", err)
	}
	if err := k.Load(posflag.Provider(fs, ".", k), nil); err != nil {
		return Config{}, nil, fmt.Errorf("read flags: %w", err)
	}
	k.Delete("config")

	for _, key := range k.Keys() {
		if slices.Contains(known, key) || strings.HasPrefix(key, "auth.api_keys.") || strings.HasPrefix(key, "webrtc.ice_servers") || strings.HasPrefix(key, "auth.keys") || strings.HasPrefix(key, "auth.jwt.keys") {
			continue
		}
		if key == "stream.ring_packets" {
			problems = append(problems, fmt.Errorf("%s: replaced by stream.ring_history and stream.ring_max_bytes (rings are sized by time and bytes)", key))
			continue
		}
		problems = append(problems, fmt.Errorf("%s: unknown key", key))
	}
	var cfg Config
	if err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		problems = append(problems, fmt.Errorf("decode: %w", err))
	}
	problems = append(problems, cfg.validate()...)
	problems = append(problems, cfg.validateFarm()...)
	return cfg, k, errors.Join(problems...)
}

// longFlags lets Go-style single-dash flags (-config x, -http.addr=…)
// through pflag, which reads them as bundles of shorthands otherwise.
func longFlags(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			a = "-" + a
		}
		out[i] = a
	}
	return out
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// validate returns one error per bad field.
// minSendQueue is the smallest ws.send_queue: room for an answer, the local
// candidates of a host with several interfaces and a state message.
const minSendQueue = 16

func (c Config) validate() []error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	host, port, err := net.SplitHostPort(c.HTTP.Addr)
	if err != nil {
		bad("http.addr", "%q is not host:port", c.HTTP.Addr)
	} else {
		if _, err := net.LookupPort("tcp", port); err != nil {
			bad("http.addr", "bad port %q", port)
		}
		if !c.hasAuth() && !c.Auth.AllowOpen && !isLoopback(host) {
			bad("http.addr", "%q is beyond loopback but no auth.api_keys, auth.keys or auth.jwt.keys are set; set keys, or auth.allow_open: true to run open on purpose", c.HTTP.Addr)
		}
	}
	if c.HTTP.PublicURL != "" {
		if u, err := url.Parse(c.HTTP.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("http.public_url", "%q is not an http(s) URL", c.HTTP.PublicURL)
		}
	}
	for _, h := range c.HTTP.AllowedHosts {
		switch {
		case h == "*":
			if !c.hasAuth() {
				bad("http.allowed_hosts", `"*" answers to any Host name, which lets any web page reach the service by DNS rebinding; it needs auth.api_keys`)
			}
		case !validHostPattern(h):
			bad("http.allowed_hosts", "%q is not a host name, IP address or *.domain pattern (no scheme, no port)", h)
		}
	}
	for _, o := range c.HTTP.AllowedOrigins {
		if o == "*" {
			if !c.hasAuth() {
				bad("http.allowed_origins", `"*" lets any web page use the API from a browser; it needs auth.api_keys`)
			}
			continue
		}
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" {
			bad("http.allowed_origins", "%q is not an origin like https://example.com (or *)", o)
		}
	}
	positive := func(key string, v int64) {
		if v <= 0 {
			bad(key, "must be > 0, got %d", v)
		}
	}
	nonNeg := func(key string, v int64) {
		if v < 0 {
			bad(key, "must be ≥ 0, got %d", v)
		}
	}
	positive("http.max_body_bytes", c.HTTP.MaxBodyBytes)
	positive("http.drain_timeout", int64(c.HTTP.DrainTimeout))
	nonNeg("http.shutdown_delay", int64(c.HTTP.ShutdownDelay))
	if c.HTTP.ShutdownDelay >= c.HTTP.DrainTimeout {
		bad("http.shutdown_delay", "must be shorter than http.drain_timeout")
	}
	positive("http.read_header_timeout", int64(c.HTTP.ReadHeaderTimeout))
	if c.HTTP.ReadTimeout < c.HTTP.ReadHeaderTimeout {
		bad("http.read_timeout", "must be at least http.read_header_timeout (%s), got %s", c.HTTP.ReadHeaderTimeout, c.HTTP.ReadTimeout)
	}
	positive("http.write_timeout", int64(c.HTTP.WriteTimeout))
	positive("http.idle_timeout", int64(c.HTTP.IdleTimeout))
	if c.HTTP.MaxHeaderBytes < 4096 || c.HTTP.MaxHeaderBytes > 1<<20 {
		bad("http.max_header_bytes", "must be 4096..1048576, got %d", c.HTTP.MaxHeaderBytes)
	}
	for name, key := range c.Auth.APIKeys {
		if len(key) < 16 {
			bad("auth.api_keys."+name, "key must be at least 16 characters")
		}
	}
	c.validateAuth(bad)
	positive("ws.max_message_bytes", c.WS.MaxMessageBytes)
	// An answer is sent together with the local candidates held back while
	// it was made, so a smaller queue closes healthy clients on a busy host.
	if c.WS.SendQueue < minSendQueue {
		bad("ws.send_queue", "must be at least %d (an answer and its candidates are queued at once), got %d", minSendQueue, c.WS.SendQueue)
	}
	positive("ws.ping_interval", int64(c.WS.PingInterval))
	positive("ws.stats_interval", int64(c.WS.StatsInterval))
	positive("ws.write_timeout", int64(c.WS.WriteTimeout))
	positive("ws.max_bad_messages", int64(c.WS.MaxBadMessages))
	positive("stream.keyframe_interval", int64(c.Stream.KeyframeInterval))
	positive("stream.viewer_keyframe_interval", int64(c.Stream.ViewerKeyframeInterval))
	positive("stream.viewer_retransmit_rate", int64(c.Stream.ViewerRetransmitRate))
	positive("stream.viewer_retransmit_bytes", int64(c.Stream.ViewerRetransmitBytes))
	positive("stream.viewer_rtcp_rate", int64(c.Stream.ViewerRTCPRate))
	if c.WebRTC.MTU < 100 || c.WebRTC.MTU > 1400 {
		bad("webrtc.mtu", "must be within [100, 1400], got %d", c.WebRTC.MTU)
	}
	for i, name := range c.WebRTC.Interfaces {
		if strings.TrimSpace(name) == "" {
			bad(fmt.Sprintf("webrtc.interfaces[%d]", i), "must name an interface")
		}
	}
	nonNeg("limits.sessions_total", int64(c.Limits.SessionsTotal))
	nonNeg("limits.sessions_per_device", int64(c.Limits.SessionsPerDevice))
	nonNeg("limits.sessions_per_owner", int64(c.Limits.SessionsPerOwner))
	if c.Limits.CreateRate <= 0 {
		bad("limits.create_rate", "must be > 0")
	}
	if c.Limits.GlobalCreateRate <= 0 {
		bad("limits.global_create_rate", "must be > 0")
	}
	if c.Limits.InputRate <= 0 {
		bad("limits.input_rate", "must be > 0")
	}
	positive("limits.create_burst", int64(c.Limits.CreateBurst))
	positive("limits.global_create_burst", int64(c.Limits.GlobalCreateBurst))
	positive("limits.input_burst", int64(c.Limits.InputBurst))
	if !(c.Limits.GroupInputRate > 0) || math.IsInf(c.Limits.GroupInputRate, 1) {
		bad("limits.group_input_rate", "must be > 0 and finite")
	}
	positive("limits.group_input_burst", int64(c.Limits.GroupInputBurst))
	positive("limits.max_candidates", int64(c.Limits.MaxCandidates))
	positive("limits.max_candidate_bytes", int64(c.Limits.MaxCandidateBytes))
	if c.Session.TTL < time.Second {
		bad("session.ttl", "must be at least 1s, got %s", c.Session.TTL)
	}
	nonNeg("stream.grace", int64(c.Stream.Grace))
	if c.Stream.RingHistory < 100*time.Millisecond || c.Stream.RingHistory > time.Minute {
		bad("stream.ring_history", "must be 100ms..1m, got %s", c.Stream.RingHistory)
	}
	if c.Stream.RingMaxBytes < 1<<20 || c.Stream.RingMaxBytes > 1<<30 {
		bad("stream.ring_max_bytes", "must be 1 MiB..1 GiB, got %d", c.Stream.RingMaxBytes)
	}
	positive("stream.min_bitrate_bps", int64(c.Stream.MinBitrateBps))
	if c.Stream.MaxBitrateBps < c.Stream.MinBitrateBps {
		bad("stream.max_bitrate_bps", "must be ≥ stream.min_bitrate_bps")
	}
	if c.Stream.BitrateBps < c.Stream.MinBitrateBps || c.Stream.BitrateBps > c.Stream.MaxBitrateBps {
		bad("stream.bitrate_bps", "must lie within [min_bitrate_bps, max_bitrate_bps]")
	}
	positive("stream.bitrate_interval", int64(c.Stream.BitrateInterval))
	if c.Transcode.Enabled {
		positive("transcode.bitrate_bps", int64(c.Transcode.BitrateBps))
		if c.Transcode.FFmpeg == "" {
			bad("transcode.ffmpeg", "must name the ffmpeg binary (a path or a name in PATH)")
		}
	}
	if c.Recordings.Enabled {
		if c.Recordings.Dir == "" {
			bad("recordings.dir", "must name a directory")
		}
		if c.Recordings.MaxDuration < time.Second {
			bad("recordings.max_duration", "must be at least 1s, got %s", c.Recordings.MaxDuration)
		}
		if c.Recordings.MaxTotalBytes < 1<<20 {
			bad("recordings.max_total_bytes", "must be at least 1 MiB, got %d", c.Recordings.MaxTotalBytes)
		}
		positive("recordings.max_concurrent", int64(c.Recordings.MaxConcurrent))
	}
	for i, s := range c.WebRTC.ICEServers {
		key := fmt.Sprintf("webrtc.ice_servers[%d]", i)
		if len(s.URLs) == 0 {
			bad(key, "needs urls")
		}
		for _, u := range s.URLs {
			switch {
			case strings.HasPrefix(u, "stun:"), strings.HasPrefix(u, "stuns:"):
			case strings.HasPrefix(u, "turn:"), strings.HasPrefix(u, "turns:"):
				if s.Username == "" || s.Credential == "" {
					bad(key, "TURN server %q needs username and credential", u)
				}
			default:
				bad(key, "%q is not a stun:, stuns:, turn: or turns: URL", u)
			}
		}
	}
	if t := c.WebRTC.TURN; len(t.URLs) > 0 || t.Username != "" || t.Credential != "" || t.Secret != "" {
		if len(t.URLs) == 0 {
			bad("webrtc.turn.urls", "needs at least one turn: or turns: URL with webrtc.turn's credentials or secret")
		}
		for _, u := range t.URLs {
			if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") || strings.ContainsAny(u, "<>\" \r\n") {
				bad("webrtc.turn.urls", "%q is not a turn: or turns: URL", u)
			}
		}
		switch static := t.Username != "" || t.Credential != ""; {
		case static && t.Secret != "":
			bad("webrtc.turn.secret", "either a secret (TURN REST, credentials per session) or username and credential (static), not both")
		case static && (t.Username == "" || t.Credential == ""):
			bad("webrtc.turn.credential", "static TURN credentials need both username and credential")
		case t.Secret != "" && len(t.Secret) < minTURNSecret:
			bad("webrtc.turn.secret", "must be at least %d characters (coturn's static-auth-secret)", minTURNSecret)
		case !static && t.Secret == "":
			bad("webrtc.turn.secret", "TURN servers need a secret (TURN REST) or username and credential")
		}
	}
	for _, ip := range c.WebRTC.NAT1To1IPs {
		if net.ParseIP(ip) == nil {
			bad("webrtc.nat_1to1_ips", "%q is not an IP address", ip)
		}
	}
	portKey := func(key string, v int) {
		if v < 0 || v > 65535 {
			bad(key, "must be a port 0..65535, got %d", v)
		}
	}
	portKey("webrtc.udp_port", c.WebRTC.UDPPort)
	portKey("webrtc.tcp_port", c.WebRTC.TCPPort)
	if !c.WebRTC.UDP && c.WebRTC.TCPPort == 0 && len(c.WebRTC.ICEServers) == 0 && len(c.WebRTC.TURN.URLs) == 0 {
		bad("webrtc.udp", "without UDP viewers need webrtc.tcp_port or a TURN server (webrtc.turn or webrtc.ice_servers)")
	}
	portKey("webrtc.udp_port_min", c.WebRTC.UDPPortMin)
	portKey("webrtc.udp_port_max", c.WebRTC.UDPPortMax)
	if (c.WebRTC.UDPPortMin == 0) != (c.WebRTC.UDPPortMax == 0) || c.WebRTC.UDPPortMin > c.WebRTC.UDPPortMax {
		bad("webrtc.udp_port_min", "udp_port_min and udp_port_max go together, min ≤ max")
	}
	if c.WebRTC.EphemeralPorts && c.WebRTC.UDPPort != 0 {
		bad("webrtc.udp_port", "a shared port and webrtc.ephemeral_ports exclude each other")
	}
	if !c.WebRTC.EphemeralPorts && c.WebRTC.UDPPortMax != 0 {
		bad("webrtc.udp_port_min", "a port range needs webrtc.ephemeral_ports: true")
	}
	if c.WebRTC.SendBatch < 1 || c.WebRTC.SendBatch > 1024 {
		bad("webrtc.send_batch", "must be 1..1024, got %d", c.WebRTC.SendBatch)
	}
	positive("webrtc.gather_timeout", int64(c.WebRTC.GatherTimeout))
	if c.Tracing.OTLPEndpoint != "" {
		if _, err := otlpURL(c.Tracing.OTLPEndpoint); err != nil {
			bad("tracing.otlp_endpoint", "%v", err)
		}
	}
	if c.Tracing.SampleRatio < 0 || c.Tracing.SampleRatio > 1 {
		bad("tracing.sample_ratio", "must be 0..1, got %v", c.Tracing.SampleRatio)
	}
	if c.Metrics.Addr != "" {
		if host, port, err := net.SplitHostPort(c.Metrics.Addr); err != nil {
			bad("metrics.addr", "%q is not host:port", c.Metrics.Addr)
		} else if _, err := net.LookupPort("tcp", port); err != nil {
			bad("metrics.addr", "bad port %q", port)
		} else if !isLoopback(host) && !c.Metrics.AllowOpen {
			bad("metrics.addr", "%q is beyond loopback and the metrics listener has no authentication; set metrics.allow_open: true to serve it there on purpose", c.Metrics.Addr)
		}
	}
	positive("metrics.quality_interval", int64(c.Metrics.QualityInterval))
	if c.Debug.PprofAddr != "" {
		if host, _, err := net.SplitHostPort(c.Debug.PprofAddr); err != nil {
			bad("debug.pprof_addr", "%q is not host:port", c.Debug.PprofAddr)
		} else if !isLoopback(host) {
			bad("debug.pprof_addr", "%q must be a loopback address: profiles expose internals", c.Debug.PprofAddr)
		}
	}
	if c.Runtime.GCPercent < 0 || c.Runtime.GCPercent > 1000 {
		bad("runtime.gc_percent", "must be 0 (GOGC or Go's default) or 1..1000, got %d", c.Runtime.GCPercent)
	}
	if c.Runtime.MemoryLimitBytes < 0 {
		bad("runtime.memory_limit_bytes", "must be 0 (GOMEMLIMIT or none) or positive, got %d", c.Runtime.MemoryLimitBytes)
	}
	switch c.Store.Backend {
	case "memory":
	case "redis":
		if c.Redis.URL == "" {
			bad("redis.url", "store.backend redis needs a URL (MEDIASVC_REDIS_URL)")
		} else if _, err := newRedisClient(c.Redis, false); err != nil {
			bad("redis.url", "%v", err)
		}
		switch n := len(c.Redis.BusSecret); {
		case n == 0:
			bad("redis.bus_secret", "store.backend redis needs a bus secret (at least %d bytes, the same on every instance; MEDIASVC_REDIS_BUS_SECRET): instances sign their bus messages with it", redisstore.MinBusSecret)
		case n < redisstore.MinBusSecret:
			bad("redis.bus_secret", "is %d bytes, want at least %d", n, redisstore.MinBusSecret)
		}
		for i, s := range c.Redis.BusAcceptSecrets {
			if len(s) < redisstore.MinBusSecret {
				bad(fmt.Sprintf("redis.bus_accept_secrets[%d]", i), "is %d bytes, want at least %d", len(s), redisstore.MinBusSecret)
			}
		}
		positive("redis.bus_window", int64(c.Redis.BusWindow))
	default:
		bad("store.backend", "must be memory or redis, got %q", c.Store.Backend)
	}
	switch c.Redis.Mode {
	case "single", "sentinel":
	case "cluster":
		if c.Redis.WaitReplicas > 0 {
			bad("redis.wait_replicas", "is for mode single or sentinel: a cluster client cannot send WAIT to the node that took the write")
		}
	default:
		bad("redis.mode", "must be single, cluster or sentinel, got %q", c.Redis.Mode)
	}
	if c.Redis.KeyPrefix == "" {
		bad("redis.key_prefix", "must not be empty")
	}
	nonNeg("redis.wait_replicas", int64(c.Redis.WaitReplicas))
	positive("redis.wait_timeout", int64(c.Redis.WaitTimeout))
	if c.Redis.WaitReplicas > 0 && c.Redis.WaitTimeout >= c.Redis.Timeout {
		bad("redis.wait_timeout", "must be shorter than redis.timeout (%s), or the client gives up on WAIT first", c.Redis.Timeout)
	}
	positive("redis.timeout", int64(c.Redis.Timeout))
	nonNeg("redis.touch_throttle", int64(c.Redis.TouchThrottle))
	if c.Redis.TouchThrottle >= c.Session.TTL/3 && c.Session.TTL > 0 {
		bad("redis.touch_throttle", "must be shorter than a third of session.ttl (the keepalive period)")
	}
	positive("redis.key_grace", int64(c.Redis.KeyGrace))
	positive("redis.health_interval", int64(c.Redis.HealthInterval))
	if c.Redis.MaxBackoff < c.Redis.HealthInterval {
		bad("redis.max_backoff", "must be at least redis.health_interval")
	}
	if c.Instance.LeaseTTL < time.Second {
		bad("instance.lease_ttl", "must be at least 1s, got %s", c.Instance.LeaseTTL)
	}
	if c.Instance.HeartbeatTTL < time.Second {
		bad("instance.heartbeat_ttl", "must be at least 1s, got %s", c.Instance.HeartbeatTTL)
	}
	if c.Instance.AdvertiseURL != "" {
		if u, err := url.Parse(c.Instance.AdvertiseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("instance.advertise_url", "%q is not an http(s) URL", c.Instance.AdvertiseURL)
		}
	}
	if c.ADB.Addr != "" {
		if _, port, err := net.SplitHostPort(c.ADB.Addr); err != nil || port == "" {
			bad("adb.addr", "%q is not host:port (empty disables ADB)", c.ADB.Addr)
		}
	}
	switch c.ADB.Backend {
	case "screenrecord":
	case "scrcpy":
		if c.ADB.Scrcpy.Server == "" {
			bad("adb.scrcpy.server", "the scrcpy backend needs the path of a scrcpy-server %s jar", c.ADB.Scrcpy.Version)
		} else if _, err := os.Stat(c.ADB.Scrcpy.Server); err != nil {
			bad("adb.scrcpy.server", "%v", err)
		}
		if c.ADB.Scrcpy.Version == "" {
			bad("adb.scrcpy.version", "must name the jar's version (3.3.4)")
		}
		if err := c.ADB.Scrcpy.options().Validate(); err != nil {
			bad("adb.scrcpy", "%v", err)
		}
	default:
		bad("adb.backend", "must be screenrecord or scrcpy, got %q", c.ADB.Backend)
	}
	nonNeg("adb.max_width", int64(c.ADB.MaxWidth))
	nonNeg("adb.max_height", int64(c.ADB.MaxHeight))
	positive("adb.keyframe_timeout", int64(c.ADB.KeyframeTimeout))
	positive("adb.command_timeout", int64(c.ADB.CommandTimeout))
	positive("adb.pool_size", int64(c.ADB.PoolSize))
	positive("adb.input_queue", int64(c.ADB.InputQueue))
	positive("adb.retry_min", int64(c.ADB.RetryMin))
	if c.ADB.RetryMax < c.ADB.RetryMin {
		bad("adb.retry_max", "must be ≥ adb.retry_min")
	}
	if tl := c.ADB.Screenrecord.TimeLimit; tl < time.Second || tl > 180*time.Second {
		bad("adb.screenrecord.time_limit", "must be 1s..180s, got %s", tl)
	}
	if rl := c.ADB.Screenrecord.RestartLead; rl <= 0 || rl >= c.ADB.Screenrecord.TimeLimit {
		bad("adb.screenrecord.restart_lead", "must be > 0 and shorter than time_limit, got %s", rl)
	}
	if f := c.ADB.Screenrecord.IdleFlush; f < time.Millisecond || f > time.Second {
		bad("adb.screenrecord.idle_flush", "must be 1ms..1s, got %s", f)
	}
	nonNeg("adb.orientation_poll", int64(c.ADB.OrientationPoll))
	positive("adb.breaker.failures", int64(c.ADB.Breaker.Failures))
	positive("adb.breaker.open_for", int64(c.ADB.Breaker.OpenFor))
	positive("adb.breaker.interval", int64(c.ADB.Breaker.Interval))
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "must be text or json, got %q", c.Log.Format)
	}
	return errs
}

// validHostPattern reports whether h is a host name, an IP address (IPv6
// with or without brackets) or "*." followed by a host name.
func validHostPattern(h string) bool {
	if ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); ip != nil {
		return true
	}
	h = strings.TrimPrefix(h, "*.")
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// allowedHosts is the effective http.allowed_hosts: the loopback names, the
// host of http.addr (unless it is a wildcard address), the host of
// http.public_url when set, and the configured names.
func (c Config) allowedHosts(listenAddr string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	add := func(h string) {
		if h == "" {
			return
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			return
		}
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	if h, _, err := net.SplitHostPort(listenAddr); err == nil {
		add(h)
	}
	if c.HTTP.PublicURL != "" {
		if u, err := url.Parse(c.HTTP.PublicURL); err == nil {
			add(u.Hostname())
		}
	}
	for _, h := range c.HTTP.AllowedHosts {
		add(h)
	}
	return hosts
}

// loopbackListener reports whether http.addr binds loopback only: the
// service's viewers then run on this machine, ICE gathers on loopback
// (unless webrtc.interfaces or webrtc.nat_1to1_ips say where else) and
// loopback remote candidates are accepted.
func (c Config) loopbackListener() bool {
	host, _, err := net.SplitHostPort(c.HTTP.Addr)
	return err == nil && isLoopback(host)
}

// loopbackICE reports whether ICE gathers on loopback only.
func (c Config) loopbackICE() bool {
	return c.loopbackListener() && len(c.WebRTC.Interfaces) == 0 && len(c.WebRTC.NAT1To1IPs) == 0
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// printConfig writes the effective configuration as YAML with secrets
// masked.
func printConfig(k *koanf.Koanf, w io.Writer) error {
	masked := koanf.New(".")
	for key, v := range k.All() {
		if isSecret(key) {
			v = "********"
		}
		if s, ok := v.(string); ok && key == "redis.url" && s != "" {
			if u, err := url.Parse(s); err == nil {
				if q := u.Query(); q.Has("password") {
					q.Set("password", "xxxxx")
					u.RawQuery = q.Encode()
				}
				v = u.Redacted()
			} else {
				v = "********"
			}
		}
		if list, ok := v.([]any); ok && (key == "webrtc.ice_servers" || key == "auth.keys" || key == "auth.jwt.keys") {
			servers := make([]any, len(list))
			for i, e := range list {
				m, ok := e.(map[string]any)
				if !ok {
					servers[i] = e
					continue
				}
				c := make(map[string]any, len(m))
				for mk, mv := range m {
					if mk == "credential" || mk == "secret" || (mk == "key" && key == "auth.keys") {
						mv = "********"
					}
					c[mk] = mv
				}
				servers[i] = c
			}
			v = servers
		}
		_ = masked.Set(key, v)
	}
	b, err := masked.Marshal(yaml.Parser())
	if err != nil {
		return fmt.Errorf("print config: %w", err)
	}
	_, err = w.Write(b)
	return err
}
