//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binPath is the mediasvc binary TestMain builds.
var binPath string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "mediasvc-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	binPath = filepath.Join(tmp, "mediasvc")
	cmd := exec.Command("go", "build", "-o", binPath, "./cmd/mediasvc")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build mediasvc:", err)
		return 1
	}
	return m.Run()
}

// moduleRoot returns the directory of the go.mod this package belongs to.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Config is an instance's configuration, section → key → value, written as
// a YAML file (JSON is YAML). Durations are strings like "5s".
type Config map[string]map[string]any

// defaultConfig is generous: tests that need tight limits lower them.
func defaultConfig() Config {
	return Config{
		"http": {"drain_timeout": "5s", "shutdown_delay": "0s"},
		"limits": {
			"sessions_total": 1000, "sessions_per_device": 1000, "sessions_per_owner": 1000,
			"create_rate": 1000, "create_burst": 1000,
			"global_create_rate": 1000, "global_create_burst": 1000,
		},
		"log": {"level": "debug", "format": "text"},
	}
}

// set assigns section.key, creating the section.
func (c Config) set(section, key string, v any) Config {
	if c[section] == nil {
		c[section] = map[string]any{}
	}
	c[section][key] = v
	return c
}

// logSeq counts the instances each test started, to name their logs.
var logSeq = struct {
	sync.Mutex
	n map[string]int
}{n: map[string]int{}}

// Instance is a running mediasvc process.
type Instance struct {
	t       testing.TB
	cmd     *exec.Cmd
	Addr    string // 127.0.0.1:port
	Base    string // http://127.0.0.1:port
	LogPath string
	CfgPath string // the config file it started with (Rewrite replaces it)
	Drain   time.Duration
	done    chan struct{}
	waitErr error
	stopped bool
}

// startInstance writes cfg (with http.addr set to a free port) to a YAML
// file, starts the binary with -config, and waits for /readyz. The instance
// is stopped (SIGTERM, then SIGKILL) when the test ends; its log is shown
// if the test failed.
func startInstance(t testing.TB, cfg Config) *Instance {
	t.Helper()
	if cfg == nil {
		cfg = defaultConfig()
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg.set("http", "addr", addr)
	drain := 5 * time.Second
	if s, ok := cfg["http"]["drain_timeout"].(string); ok {
		if d, err := time.ParseDuration(s); err == nil {
			drain = d
		}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatalf("encode config: %v", err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "mediasvc.yaml")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatalf("write config: %v", err)
	}
	logDir := filepath.Join("artifacts", "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatalf("log dir: %v", err)
	}
	// One log per instance: a test running several gets name.log,
	// name-2.log, …
	logPath := filepath.Join(logDir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	logSeq.Lock()
	logSeq.n[t.Name()]++
	if n := logSeq.n[t.Name()]; n > 1 {
		logPath += fmt.Sprintf("-%d", n)
	}
	logSeq.Unlock()
	logPath += ".log"
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("log file: %v", err)
	}
	fmt.Fprintf(logf, "# config %s\n%s\n# ---\n", cfgPath, b)

	cmd := exec.Command(binPath, "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Keep the environment free of MEDIASVC_* settings from the caller.
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "MEDIASVC_") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start mediasvc: %v", err)
	}
	in := &Instance{t: t, cmd: cmd, Addr: addr, Base: "http://" + addr, LogPath: logPath, CfgPath: cfgPath, Drain: drain, done: make(chan struct{})}
	go func() {
		in.waitErr = cmd.Wait()
		logf.Close()
		close(in.done)
	}()
	t.Cleanup(func() {
		in.Stop()
		if t.Failed() {
			t.Logf("mediasvc log (%s), last lines:\n%s", logPath, tail(logPath, 80))
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		select {
		case <-in.done:
			t.Fatalf("mediasvc exited before ready (%v); log:\n%s", in.waitErr, tail(logPath, 80))
		case <-ctx.Done():
			t.Fatalf("mediasvc not ready within 20s; log:\n%s", tail(logPath, 80))
		case <-time.After(50 * time.Millisecond):
		}
		if code, _ := httpStatus(ctx, in.Base+"/readyz"); code == http.StatusOK {
			return in
		}
	}
}

// Rewrite replaces the instance's config file with cfg (its http.addr
// kept), written whole to a temporary file and renamed over the old one,
// as editors and configuration managers do.
func (in *Instance) Rewrite(cfg Config) {
	in.t.Helper()
	cfg.set("http", "addr", in.Addr)
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		in.t.Fatalf("encode config: %v", err)
	}
	tmp := in.CfgPath + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		in.t.Fatalf("write config: %v", err)
	}
	if err := os.Rename(tmp, in.CfgPath); err != nil {
		in.t.Fatalf("replace config: %v", err)
	}
}

// PID returns the process id.
func (in *Instance) PID() int { return in.cmd.Process.Pid }

// Signal sends sig to the process.
func (in *Instance) Signal(sig os.Signal) error { return in.cmd.Process.Signal(sig) }

// Done is closed when the process has exited.
func (in *Instance) Done() <-chan struct{} { return in.done }

// ExitCode returns the exit code after Done (-1 if killed by a signal).
func (in *Instance) ExitCode() int { return in.cmd.ProcessState.ExitCode() }

// Stop sends SIGTERM and waits up to the drain timeout + 5 s, then kills.
// It returns the wait error. Safe to call more than once.
func (in *Instance) Stop() error {
	if !in.stopped {
		in.stopped = true
		select {
		case <-in.done:
		default:
			_ = in.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-in.done:
			case <-time.After(in.Drain + 5*time.Second):
				in.t.Errorf("mediasvc did not exit within %s of SIGTERM; killing it", in.Drain+5*time.Second)
				_ = in.cmd.Process.Kill()
				<-in.done
			}
		}
	}
	return in.waitErr
}

// Log returns the instance log so far.
func (in *Instance) Log() string {
	b, _ := os.ReadFile(in.LogPath)
	return string(b)
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// httpStatus GETs url and returns the status and body.
func httpStatus(ctx context.Context, url string) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b)
}

// do sends a request with a body and content type and returns the response
// with its body read (at most 1 MiB).
func do(t testing.TB, method, url, contentType string, body []byte, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, b
}

// errorCode returns error.code from a JSON error body, or "".
func errorCode(body []byte) string {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

// procStats is what /proc says about a process.
type procStats struct {
	CPUTicks uint64 // utime + stime
	RSSKiB   uint64
	Threads  int
	At       time.Time
}

// readProc reads /proc/pid/stat and /proc/pid/status.
func readProc(pid int) (procStats, error) {
	ps := procStats{At: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ps, fmt.Errorf("read stat: %w", err)
	}
	// Fields after the parenthesized comm: state is field 3; utime 14, stime 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ps, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return ps, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	ps.CPUTicks = ut + st
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, fmt.Errorf("read status: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			fs := strings.Fields(v)
			if len(fs) > 0 {
				ps.RSSKiB, _ = strconv.ParseUint(fs[0], 10, 64)
			}
		}
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			ps.Threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return ps, nil
}
