package adbdevice

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
)

// serviceFunc serves one stream; ctx ends when the stream closes.
type serviceFunc func(ctx context.Context, s *stream)

// service returns the handler for an OPEN of name, or nil to refuse it.
func (d *Device) service(name string) serviceFunc {
	switch {
	case strings.HasPrefix(name, "exec:"):
		cmd := strings.TrimPrefix(name, "exec:")
		return func(ctx context.Context, s *stream) {
			d.runLine(ctx, cmd, s, s, s)
		}
	case strings.HasPrefix(name, "shell"):
		return d.shellService(name)
	case name == "sync:":
		return d.syncService
	case strings.HasPrefix(name, "localabstract:"):
		n := strings.TrimPrefix(name, "localabstract:")
		d.mu.Lock()
		ln, h := d.listeners[n], d.abstract[n]
		d.mu.Unlock()
		if ln != nil {
			// Queued here, in OPEN order, as a listening socket's backlog.
			mine, theirs := net.Pipe()
			select {
			case ln <- theirs:
			default:
				return nil // backlog full: refused
			}
			return func(ctx context.Context, s *stream) { bridge(ctx, s, mine) }
		}
		return d.forwardService(h)
	case strings.HasPrefix(name, "tcp:"):
		port, err := strconv.Atoi(strings.TrimPrefix(name, "tcp:"))
		if err != nil {
			return nil
		}
		d.mu.Lock()
		h := d.tcp[port]
		d.mu.Unlock()
		return d.forwardService(h)
	}
	return nil
}

// shellService parses "shell[,opt...]:command": opts v2 (the shell
// protocol), raw or pty, TERM=…. An empty command is an interactive shell.
func (d *Device) shellService(name string) serviceFunc {
	head, cmd, ok := strings.Cut(name, ":")
	if !ok {
		return nil
	}
	opts := strings.Split(head, ",")
	if opts[0] != "shell" {
		return nil
	}
	v2 := false
	for _, o := range opts[1:] {
		if o == "v2" {
			v2 = true
		}
	}
	return func(ctx context.Context, s *stream) {
		if !v2 {
			if cmd == "" {
				d.interactive(ctx, s, s, s)
				return
			}
			d.runLine(ctx, cmd, s, s, s)
			return
		}
		stdin := &v2Reader{r: s}
		w := &v2Writer{w: s}
		stdout, stderr := w.stream(v2Stdout), w.stream(v2Stderr)
		var code int
		if cmd == "" {
			code = d.interactive(ctx, stdin, stdout, stderr)
		} else {
			code = d.runLine(ctx, cmd, stdin, stdout, stderr)
		}
		_ = w.packet(v2Exit, []byte{byte(code)})
	}
}

// Shell protocol v2 packet ids.
const (
	v2Stdin      = 0
	v2Stdout     = 1
	v2Stderr     = 2
	v2Exit       = 3
	v2CloseStdin = 4
	v2WindowSize = 5
)

// v2Writer frames writes as shell v2 packets: id, u32 LE length, data.
type v2Writer struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *v2Writer) packet(id byte, b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	buf := make([]byte, 5, 5+len(b))
	buf[0] = id
	binary.LittleEndian.PutUint32(buf[1:], uint32(len(b)))
	_, err := w.w.Write(append(buf, b...))
	return err
}

type v2StreamWriter struct {
	w  *v2Writer
	id byte
}

func (w *v2Writer) stream(id byte) io.Writer { return v2StreamWriter{w, id} }

func (w v2StreamWriter) Write(p []byte) (int, error) {
	const chunk = 64 * 1024
	for off := 0; off < len(p); off += chunk {
		if err := w.w.packet(w.id, p[off:min(off+chunk, len(p))]); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

// v2Reader returns the stdin packets' data of a shell v2 stream, and EOF on
// close-stdin or at the end of the stream.
type v2Reader struct {
	r    io.Reader
	left int // bytes of the current stdin packet still unread
	eof  bool
}

func (r *v2Reader) Read(p []byte) (int, error) {
	for r.left == 0 {
		if r.eof {
			return 0, io.EOF
		}
		var h [5]byte
		if _, err := io.ReadFull(r.r, h[:]); err != nil {
			r.eof = true
			return 0, io.EOF
		}
		n := int(binary.LittleEndian.Uint32(h[1:]))
		switch h[0] {
		case v2Stdin:
			r.left = n
		case v2CloseStdin:
			r.eof = true
			if _, err := io.CopyN(io.Discard, r.r, int64(n)); err != nil {
				return 0, io.EOF
			}
		default: // window size and anything else: skip
			if _, err := io.CopyN(io.Discard, r.r, int64(n)); err != nil {
				r.eof = true
			}
		}
	}
	n, err := r.r.Read(p[:min(len(p), r.left)])
	r.left -= n
	if err != nil {
		r.eof = true
		r.left = 0
	}
	return n, nil
}

// forwardService bridges a stream to h over an in-memory connection.
func (d *Device) forwardService(h func(net.Conn)) serviceFunc {
	if h == nil {
		return nil
	}
	return func(ctx context.Context, s *stream) {
		mine, theirs := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer theirs.Close()
			h(theirs)
		}()
		bridge(ctx, s, mine)
		<-done
	}
}

// bridge copies between a stream and mine until either side ends or ctx
// does, then closes both.
func bridge(ctx context.Context, s *stream, mine net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(s, mine)
		_ = s.Close()
	}()
	stop := context.AfterFunc(ctx, func() { _ = mine.Close() })
	defer stop()
	_, _ = io.Copy(mine, s)
	_ = mine.Close()
	<-done
}

// ListenAbstract returns a listener for connections to the abstract UNIX
// socket name (localabstract:NAME, what `adb forward tcp:X
// localabstract:NAME` opens), accepted in the order the adb server opened
// them, as a server on a phone sees them. Up to 8 wait to be accepted;
// more are refused. It takes precedence over a HandleAbstract handler of
// the same name until closed. Close stops listening and closes the
// connections not yet accepted.
func (d *Device) ListenAbstract(name string) net.Listener {
	l := &abstractListener{d: d, name: name, ch: make(chan net.Conn, 8), done: make(chan struct{})}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.listeners[name] = l.ch
	return l
}

type abstractListener struct {
	d    *Device
	name string
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

// Accept waits for the next connection, or returns net.ErrClosed once
// the listener is closed.
func (l *abstractListener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, net.ErrClosed
	default:
	}
	select {
	case nc := <-l.ch:
		return nc, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops listening and closes the queued connections. It returns nil.
func (l *abstractListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.d.mu.Lock()
		if l.d.listeners[l.name] == l.ch {
			delete(l.d.listeners, l.name)
		}
		l.d.mu.Unlock()
		for {
			select {
			case nc := <-l.ch:
				_ = nc.Close()
			default:
				return
			}
		}
	})
	return nil
}

// Addr returns the socket's address, "@NAME" on network "unix".
func (l *abstractListener) Addr() net.Addr { return &net.UnixAddr{Name: "@" + l.name, Net: "unix"} }
