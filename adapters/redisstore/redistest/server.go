// Package redistest starts a throwaway redis-server for tests: on a free
// loopback port, with persistence off, stopped when the test ends. It never
// touches a Redis the machine already runs.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Binary is the redis-server the helpers start.
var Binary = "/usr/bin/redis-server"

// Server is a running redis-server (or redis-sentinel).
type Server struct {
	t    testing.TB
	Port int
	Addr string // 127.0.0.1:port
	bin  string
	args []string // beyond port, bind, dir and logging
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// URL returns the server's redis:// URL for database db.
func (s *Server) URL(db int) string { return fmt.Sprintf("redis://%s/%d", s.Addr, db) }

// Start starts redis-server on a free loopback port and stops it when t
// ends. It fails t if the binary is missing or the server does not answer
// within 10 s.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t)
}

// StartWith is Start with more redis-server arguments
// ("--replicaof", "127.0.0.1", "6380", …).
func StartWith(t testing.TB, args ...string) *Server {
	t.Helper()
	return startBin(t, Binary, freePort(t), args)
}

func startBin(t testing.TB, bin string, port int, args []string) *Server {
	t.Helper()
	s := &Server{t: t, Port: port, bin: bin, args: args, dir: t.TempDir()}
	s.Addr = "127.0.0.1:" + strconv.Itoa(s.Port)
	s.start()
	t.Cleanup(s.Kill)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	if _, err := os.Stat(s.bin); err != nil {
		s.t.Fatalf("%s not installed (%v): run scripts/install-deps.sh", s.bin, err)
	}
	logPath := filepath.Join(s.dir, "redis.log")
	var args []string
	if s.bin == SentinelBinary {
		args = append(args, filepath.Join(s.dir, "sentinel.conf"))
	}
	args = append(args,
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		"--dir", s.dir, "--loglevel", "warning", "--logfile", logPath, "--protected-mode", "yes")
	if s.bin != SentinelBinary {
		args = append(args, "--save", "", "--appendonly", "no")
	}
	s.cmd = exec.Command(s.bin, append(args, s.args...)...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.bin, err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.cmd, s.done)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ping(s.Addr) == nil {
			return
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(logPath)
			s.t.Fatalf("redis-server on %s exited at start:\n%s", s.Addr, b)
		default:
		}
		if time.Now().After(deadline) {
			s.Kill()
			s.t.Fatalf("redis-server on %s not answering within 10s", s.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server at once (SIGKILL) and waits for it. Safe to call
// more than once.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// Restart starts a new, empty server on the same port after Kill.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}

// Log returns what the server logged so far (warnings and up).
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	return string(b)
}

// ping sends PING over a raw connection and waits for +PONG.
func ping(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("redis answered %q", line)
	}
	return nil
}

// FreePort returns a loopback TCP port free at the time of the call.
func FreePort(t testing.TB) int { return freePort(t) }

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
