package adbdevice

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ErrNoADB is returned by StartServer when no adb binary is found.
var ErrNoADB = errors.New("adb binary not found")

// Server is a private adb server for tests: its own port, and its own HOME
// (so its own ~/.android keys) and TMPDIR (so its own log), never the
// user's server on 5037.
type Server struct {
	// Bin is the adb binary; Port the server's port on 127.0.0.1; Home
	// the temporary HOME and TMPDIR, removed by Close.
	Bin  string
	Port int
	Home string
}

// StartServer starts a private adb server with `adb -P PORT start-server`
// on a free port, using bin (empty: "adb" from PATH). It returns an error
// wrapping ErrNoADB if there is no adb, or the server's output if it fails
// to start. The caller must Close it.
func StartServer(ctx context.Context, bin string) (*Server, error) {
	if bin == "" {
		bin = "adb"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("start adb server: %w: %w", ErrNoADB, err)
	}
	home, err := os.MkdirTemp("", "adbdevice-home-")
	if err != nil {
		return nil, fmt.Errorf("start adb server: %w", err)
	}
	port, err := freePort()
	if err != nil {
		_ = os.RemoveAll(home)
		return nil, fmt.Errorf("start adb server: %w", err)
	}
	s := &Server{Bin: path, Port: port, Home: home}
	if out, err := s.Run(ctx, "start-server"); err != nil {
		_ = os.RemoveAll(home)
		return nil, fmt.Errorf("start adb server on port %d: %w: %s", port, err, out)
	}
	return s, nil
}

// freePort returns a loopback TCP port that was free a moment ago, outside
// 5555–5585 and not 5037.
func freePort() (int, error) {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if port != 5037 && (port < 5555 || port > 5585) {
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

// Addr returns the server's host-protocol address, "127.0.0.1:PORT".
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// Env returns the environment adb commands against this server run with:
// the process's, with HOME, TMPDIR and ANDROID_ADB_SERVER_PORT replaced.
func (s *Server) Env() []string {
	var env []string
	for _, e := range os.Environ() {
		if k, _, _ := strings.Cut(e, "="); k != "HOME" && k != "TMPDIR" && k != "ANDROID_ADB_SERVER_PORT" &&
			k != "ANDROID_SERIAL" && k != "ADB_VENDOR_KEYS" {
			env = append(env, e)
		}
	}
	return append(env, "HOME="+s.Home, "TMPDIR="+s.Home, "ANDROID_ADB_SERVER_PORT="+strconv.Itoa(s.Port))
}

// Command returns an `adb -P PORT args...` command against this server.
// Its output must not be a pipe the caller waits on if args may start the
// server (which would inherit it).
func (s *Server) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, s.Bin, append([]string{"-P", strconv.Itoa(s.Port)}, args...)...)
	cmd.Env = s.Env()
	cmd.Dir = s.Home
	return cmd
}

// Run runs `adb -P PORT args...` and returns its combined stdout and
// stderr. The output goes through a temporary file, not a pipe, so a
// server the command forks cannot hold Run up. The error is the command's.
func (s *Server) Run(ctx context.Context, args ...string) ([]byte, error) {
	f, err := os.CreateTemp(s.Home, "out-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd := s.Command(ctx, args...)
	cmd.Stdout, cmd.Stderr = f, f
	runErr := cmd.Run()
	out, err := os.ReadFile(f.Name())
	if err != nil {
		return nil, err
	}
	if runErr != nil {
		return out, fmt.Errorf("adb %s: %w", strings.Join(args, " "), runErr)
	}
	return out, nil
}

// Connect runs `adb connect addr` and waits until the device is listed in
// state want ("device", "unauthorized", "offline"; empty means "device").
// adb connect answers "failed to authenticate" for a device that demands
// authorization; that is accepted when want is "unauthorized".
// It returns an error with the last listing if ctx ends first.
func (s *Server) Connect(ctx context.Context, addr, want string) error {
	out, err := s.Run(ctx, "connect", addr)
	if err != nil {
		return err
	}
	if want == "" {
		want = "device"
	}
	// adb 29 prints "failed to authenticate to ADDR" for a device that
	// demands authorization, yet keeps it listed as unauthorized.
	if !bytes.Contains(out, []byte("connected to")) &&
		(want != "unauthorized" || !bytes.Contains(out, []byte("failed to authenticate"))) {
		return fmt.Errorf("adb connect %s: %s", addr, bytes.TrimSpace(out))
	}
	return s.WaitState(ctx, addr, want)
}

// Disconnect runs `adb disconnect addr`.
func (s *Server) Disconnect(ctx context.Context, addr string) error {
	_, err := s.Run(ctx, "disconnect", addr)
	return err
}

// State returns the device's state in `adb devices` ("device",
// "unauthorized", "offline", …), or "" if it is not listed.
func (s *Server) State(ctx context.Context, serial string) (string, error) {
	out, err := s.Run(ctx, "devices")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == serial {
			return f[1], nil
		}
	}
	return "", nil
}

// WaitState polls `adb devices` until serial is in state want ("" means
// gone), or ctx ends.
func (s *Server) WaitState(ctx context.Context, serial, want string) error {
	var last string
	for {
		st, err := s.State(ctx, serial)
		if err == nil && st == want {
			return nil
		}
		if err == nil {
			last = st
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to be %q (last %q): %w", serial, want, last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close stops the server with `adb kill-server` and removes its HOME. It
// returns the kill-server error, if any.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.Run(ctx, "kill-server")
	_ = os.RemoveAll(s.Home)
	return err
}
