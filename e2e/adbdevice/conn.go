package adbdevice

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

var errStreamClosed = errors.New("adb stream closed")

// conn is one transport connection from the adb server.
type conn struct {
	d  *Device
	nc net.Conn

	ctx    context.Context // cancelled when the connection ends; scopes services
	cancel context.CancelFunc

	wmu sync.Mutex // serializes writes to nc

	mu      sync.Mutex
	streams map[uint32]*stream
	nextID  uint32
	maxData uint32
	online  bool
	auth    bool // an AUTH token was sent and not yet accepted

	wg sync.WaitGroup // services
}

func newConn(d *Device, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{d: d, nc: nc, ctx: ctx, cancel: cancel, streams: map[uint32]*stream{}, maxData: d.opts.MaxData}
}

// abort closes the connection abruptly.
func (c *conn) abort() {
	c.cancel()
	if tc, ok := c.nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST, as a vanished phone's network does
	}
	_ = c.nc.Close()
}

// serve reads messages until the connection ends, then closes every stream
// and waits for their services.
func (c *conn) serve() {
	defer func() {
		c.abort()
		c.mu.Lock()
		for _, s := range c.streams {
			s.peerClosed()
		}
		c.streams = map[uint32]*stream{}
		c.mu.Unlock()
		c.wg.Wait()
	}()
	br := bufio.NewReaderSize(c.nc, 64*1024)
	for {
		m, err := ReadMessage(br, max(c.d.opts.MaxData, 1024*1024))
		if err != nil {
			if !errors.Is(err, io.EOF) && c.ctx.Err() == nil {
				c.d.log.Debug("adb device read", "err", err)
			}
			return
		}
		if err := c.handle(m); err != nil {
			c.d.log.Debug("adb device protocol", "msg", m.String(), "err", err)
			return
		}
	}
}

// send writes one message, waiting while FaultStall is on.
func (c *conn) send(m Message) error {
	for c.d.Fault(FaultStall) {
		select {
		case <-c.ctx.Done():
			return c.ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.ctx.Err() != nil {
		return net.ErrClosed
	}
	if err := WriteMessage(c.nc, m); err != nil {
		c.abort()
		return err
	}
	return nil
}

func (c *conn) handle(m Message) error {
	switch m.Command {
	case CmdCNXN:
		return c.handleConnect(m)
	case CmdAUTH:
		return c.handleAuth(m)
	case CmdSTLS:
		return errors.New("TLS not supported")
	}
	c.mu.Lock()
	online := c.online
	c.mu.Unlock()
	if !online {
		return nil // adbd drops everything but CNXN/AUTH before the handshake
	}
	switch m.Command {
	case CmdOPEN:
		return c.handleOpen(m)
	case CmdOKAY:
		if s := c.stream(m.Arg1); s != nil {
			s.okay(m.Arg0)
		}
	case CmdWRTE:
		if s := c.stream(m.Arg1); s != nil {
			s.deliver(m.Data)
		}
	case CmdCLSE:
		c.mu.Lock()
		s := c.streams[m.Arg1]
		delete(c.streams, m.Arg1)
		c.mu.Unlock()
		if s != nil {
			s.peerClosed()
		}
	}
	return nil
}

func (c *conn) handleConnect(m Message) error {
	if m.Arg1 > 0 {
		c.mu.Lock()
		c.maxData = min(c.d.opts.MaxData, m.Arg1)
		c.mu.Unlock()
	}
	if c.d.Fault(FaultIgnoreConnect) {
		return nil
	}
	if c.d.Fault(FaultUnauthorized) || c.d.opts.Auth == AuthAccept {
		c.mu.Lock()
		c.auth = true
		c.mu.Unlock()
		return c.sendToken()
	}
	return c.connect()
}

func (c *conn) sendToken() error {
	tok := make([]byte, 20)
	_, _ = rand.Read(tok)
	return c.send(Message{Command: CmdAUTH, Arg0: authToken, Data: tok})
}

func (c *conn) connect() error {
	c.mu.Lock()
	c.online, c.auth = true, false
	maxData := c.maxData
	c.mu.Unlock()
	c.d.mu.Lock()
	c.d.connects++
	c.d.mu.Unlock()
	return c.send(Message{Command: CmdCNXN, Arg0: Version, Arg1: maxData, Data: []byte(c.d.banner())})
}

func (c *conn) handleAuth(m Message) error {
	c.mu.Lock()
	pending := c.auth
	c.mu.Unlock()
	if !pending {
		return nil
	}
	if c.d.Fault(FaultUnauthorized) {
		if m.Arg0 == authSignature {
			return c.sendToken() // "try the next key"
		}
		return nil // the public key: the user never answers the dialog
	}
	if m.Arg0 == authSignature || m.Arg0 == authRSAPublicKey {
		return c.connect()
	}
	return nil
}

func (c *conn) stream(local uint32) *stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams[local]
}

func (c *conn) handleOpen(m Message) error {
	name := strings.TrimRight(string(m.Data), "\x00")
	refuse := func() error { return c.send(Message{Command: CmdCLSE, Arg0: 0, Arg1: m.Arg0}) }
	if m.Arg0 == 0 || c.d.Fault(FaultRefuseOpen) {
		return refuse()
	}
	svc := c.d.service(name)
	if svc == nil {
		c.d.log.Debug("adb device refuses service", "service", name)
		return refuse()
	}
	c.mu.Lock()
	c.nextID++
	s := newStream(c, c.nextID, m.Arg0)
	c.streams[s.local] = s
	c.wg.Add(1)
	c.mu.Unlock()
	if err := c.send(Message{Command: CmdOKAY, Arg0: s.local, Arg1: s.remote}); err != nil {
		c.wg.Done()
		return err
	}
	go func() {
		defer c.wg.Done()
		defer s.Close()
		svc(s.ctx, s)
	}()
	return nil
}

// stream is one ADB stream (a socket pair between the adb server and a
// service on the device). Reads return the peer's WRTE payloads, each
// acknowledged with OKAY once consumed; writes send WRTEs, one in flight
// until the peer's OKAY.
type stream struct {
	c             *conn
	local, remote uint32
	ctx           context.Context // cancelled when the stream closes
	cancel        context.CancelFunc

	mu      sync.Mutex
	cond    *sync.Cond
	in      [][]byte
	canSend bool
	closed  bool // by the peer or the connection
	sentCLS bool
}

func newStream(c *conn, local, remote uint32) *stream {
	ctx, cancel := context.WithCancel(c.ctx)
	s := &stream{c: c, local: local, remote: remote, ctx: ctx, cancel: cancel, canSend: true}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *stream) okay(remote uint32) {
	s.mu.Lock()
	if s.remote == 0 {
		s.remote = remote
	}
	s.canSend = true
	s.mu.Unlock()
	s.cond.Broadcast()
}

func (s *stream) deliver(b []byte) {
	s.mu.Lock()
	if !s.closed {
		s.in = append(s.in, b)
	}
	s.mu.Unlock()
	s.cond.Broadcast()
}

func (s *stream) peerClosed() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.cond.Broadcast()
}

// Read reads the peer's data; it returns io.EOF once the peer closed the
// stream and everything it sent was read.
func (s *stream) Read(p []byte) (int, error) {
	s.mu.Lock()
	for len(s.in) == 0 && !s.closed && !s.sentCLS {
		s.cond.Wait()
	}
	if len(s.in) == 0 {
		s.mu.Unlock()
		return 0, io.EOF
	}
	n := copy(p, s.in[0])
	s.in[0] = s.in[0][n:]
	ack := len(s.in[0]) == 0
	if ack {
		s.in = s.in[1:]
	}
	closed := s.closed
	s.mu.Unlock()
	if ack && !closed {
		_ = s.c.send(Message{Command: CmdOKAY, Arg0: s.local, Arg1: s.remote})
	}
	return n, nil
}

// Write sends p in WRTE messages of at most maxData bytes, each after the
// peer acknowledged the previous one.
func (s *stream) Write(p []byte) (int, error) {
	s.c.mu.Lock()
	maxData := int(s.c.maxData)
	s.c.mu.Unlock()
	written := 0
	for len(p) > 0 {
		s.mu.Lock()
		for !s.canSend && !s.closed && !s.sentCLS {
			s.cond.Wait()
		}
		if s.closed || s.sentCLS {
			s.mu.Unlock()
			return written, errStreamClosed
		}
		s.canSend = false
		s.mu.Unlock()
		n := min(len(p), maxData)
		if err := s.c.send(Message{Command: CmdWRTE, Arg0: s.local, Arg1: s.remote, Data: p[:n]}); err != nil {
			return written, fmt.Errorf("write adb stream: %w", err)
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// Close sends CLSE unless the peer closed first, and forgets the stream.
func (s *stream) Close() error {
	s.mu.Lock()
	send := !s.closed && !s.sentCLS
	s.sentCLS = true
	s.mu.Unlock()
	s.cancel()
	s.cond.Broadcast()
	s.c.mu.Lock()
	delete(s.c.streams, s.local)
	s.c.mu.Unlock()
	if send {
		return s.c.send(Message{Command: CmdCLSE, Arg0: s.local, Arg1: s.remote})
	}
	return nil
}
