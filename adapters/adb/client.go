package adb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// Client speaks the adb server's host protocol. It is safe for concurrent
// use.
//
// Command connections (host:version, one-shot exec and shell v2 commands)
// go through a bounded pool: at most PoolSize run at once and the rest wait
// for a slot. The adb server ends a connection when its service ends, so a
// slot, not the socket, is what is reused. Streaming connections (device
// tracking, screen capture, the input shell) are dedicated and not counted.
type Client struct {
	addr   string
	dialer net.Dialer
	pool   chan struct{}
}

// ClientOptions tunes a Client. The zero value works.
type ClientOptions struct {
	// PoolSize bounds concurrent command connections (default 4).
	PoolSize int
	// DialTimeout bounds connecting to the server (default 3 s).
	DialTimeout time.Duration
}

// NewClient returns a client of the adb server at addr (host:port).
func NewClient(addr string, opts ClientOptions) *Client {
	if opts.PoolSize <= 0 {
		opts.PoolSize = 4
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 3 * time.Second
	}
	return &Client{addr: addr, dialer: net.Dialer{Timeout: opts.DialTimeout}, pool: make(chan struct{}, opts.PoolSize)}
}

// Addr returns the adb server's address.
func (c *Client) Addr() string { return c.addr }

// conn is a connection to the adb server that ctx cancellation closes.
type conn struct {
	net.Conn
	stop func() bool
	once sync.Once
	rel  func()
}

func (c *conn) Close() error {
	var err error
	c.once.Do(func() {
		c.stop()
		err = c.Conn.Close()
		if c.rel != nil {
			c.rel()
		}
	})
	return err
}

// dial connects and arranges for ctx's end to close the connection until
// the caller closes it.
func (c *Client) dial(ctx context.Context) (*conn, error) {
	nc, err := c.dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, fmt.Errorf("connect to adb server %s: %w", c.addr, err)
	}
	return &conn{Conn: nc, stop: context.AfterFunc(ctx, func() { _ = nc.Close() })}, nil
}

// acquire takes a pool slot; release gives it back.
func (c *Client) acquire(ctx context.Context) (release func(), err error) {
	select {
	case c.pool <- struct{}{}:
		return func() { <-c.pool }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for an adb connection: %w", ctx.Err())
	}
}

// request sends service on cn and reads the status.
func request(cn net.Conn, service string) error {
	req, err := encodeRequest(service)
	if err != nil {
		return err
	}
	if _, err := cn.Write(req); err != nil {
		return fmt.Errorf("send %q: %w", service, err)
	}
	if err := readStatus(cn); err != nil {
		return fmt.Errorf("%s: %w", service, err)
	}
	return nil
}

// ctxErr prefers ctx's error over the closed-connection error its
// cancellation causes.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && err != nil {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}

// open connects, switches to serial's transport when serial is not empty,
// and opens service. With pooled set it first takes a pool slot, released
// at Close.
func (c *Client) open(ctx context.Context, serial, service string, pooled bool) (*conn, error) {
	var rel func()
	if pooled {
		var err error
		if rel, err = c.acquire(ctx); err != nil {
			return nil, err
		}
	}
	cn, err := c.dial(ctx)
	if err != nil {
		if rel != nil {
			rel()
		}
		return nil, err
	}
	cn.rel = rel
	if serial != "" {
		if err := request(cn, "host:transport:"+serial); err != nil {
			_ = cn.Close()
			return nil, ctxErr(ctx, err)
		}
	}
	if err := request(cn, service); err != nil {
		_ = cn.Close()
		return nil, ctxErr(ctx, err)
	}
	return cn, nil
}

// Version returns the adb server's protocol version (41 for adb 1.0.41).
func (c *Client) Version(ctx context.Context) (int, error) {
	cn, err := c.open(ctx, "", "host:version", true)
	if err != nil {
		return 0, err
	}
	defer cn.Close()
	b, err := readHex4Payload(cn)
	if err != nil {
		return 0, fmt.Errorf("host:version: %w", ctxErr(ctx, noEOF(err)))
	}
	v, err := parseHex4(bytes.TrimSpace(b))
	if err != nil {
		return 0, fmt.Errorf("host:version %q: %w", b, err)
	}
	return v, nil
}

// Devices returns the device list once (host:devices-l).
func (c *Client) Devices(ctx context.Context) ([]Entry, error) {
	cn, err := c.open(ctx, "", "host:devices-l", true)
	if err != nil {
		return nil, err
	}
	defer cn.Close()
	b, err := readHex4Payload(cn)
	if err != nil {
		return nil, fmt.Errorf("host:devices-l: %w", ctxErr(ctx, noEOF(err)))
	}
	return parseDeviceList(string(b)), nil
}

// TrackDevices opens host:track-devices-l and calls fn with the whole
// device list each time it changes (the first call comes at once). It
// returns when the connection fails or ctx ends (then ctx.Err(), wrapped);
// it never returns nil. fn runs on the caller's goroutine.
func (c *Client) TrackDevices(ctx context.Context, fn func([]Entry)) error {
	cn, err := c.open(ctx, "", "host:track-devices-l", false)
	if err != nil {
		return err
	}
	defer cn.Close()
	for {
		b, err := readHex4Payload(cn)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("track devices: %w", ctxErr(ctx, err))
		}
		fn(parseDeviceList(string(b)))
	}
}

// Exec runs cmd on the device with exec: (a binary-safe pipe, no PTY, stdout
// only) on a dedicated connection and returns it: read the command's output,
// write its stdin. The connection closes when ctx ends or the caller closes
// it; the caller must Close it. Errors wrap *FailError (errors.Is
// domain.ErrDeviceNotFound / ErrDeviceUnavailable) when the server refuses.
func (c *Client) Exec(ctx context.Context, serial, cmd string) (io.ReadWriteCloser, error) {
	return c.open(ctx, serial, "exec:"+cmd, false)
}

// Shell opens "shell:cmd" (shell protocol v1: raw bytes both ways) on a
// dedicated connection. An empty cmd starts an interactive shell that reads
// command lines from what the caller writes. The caller must Close it.
func (c *Client) Shell(ctx context.Context, serial, cmd string) (io.ReadWriteCloser, error) {
	return c.open(ctx, serial, "shell:"+cmd, false)
}

// maxOutput bounds what a one-shot command may print.
const maxOutput = 1 << 20

// Output runs cmd with exec: through the command pool and returns its output
// (at most 1 MiB), when the command ends.
func (c *Client) Output(ctx context.Context, serial, cmd string) ([]byte, error) {
	cn, err := c.open(ctx, serial, "exec:"+cmd, true)
	if err != nil {
		return nil, err
	}
	defer cn.Close()
	b, err := io.ReadAll(io.LimitReader(cn, maxOutput))
	if err != nil {
		return nil, fmt.Errorf("exec %q on %s: %w", cmd, serial, ctxErr(ctx, err))
	}
	return b, nil
}

// Shell protocol v2 packet ids.
const (
	v2Stdin      byte = 0
	v2Stdout     byte = 1
	v2Stderr     byte = 2
	v2Exit       byte = 3
	v2CloseStdin byte = 4
)

// ShellResult is what a shell v2 command produced.
type ShellResult struct {
	Stdout, Stderr []byte
	Exit           int
}

// ShellV2 runs cmd with "shell,v2,raw:" through the command pool and returns
// its stdout, stderr and exit code (each stream at most 1 MiB). A missing
// exit packet is an error (the device went away mid-command).
func (c *Client) ShellV2(ctx context.Context, serial, cmd string) (ShellResult, error) {
	cn, err := c.open(ctx, serial, "shell,v2,raw:"+cmd, true)
	if err != nil {
		return ShellResult{}, err
	}
	defer cn.Close()
	// No stdin: tell the device at once.
	if _, err := cn.Write(appendV2Packet(nil, v2CloseStdin, nil)); err != nil {
		return ShellResult{}, fmt.Errorf("shell v2 %q: %w", cmd, ctxErr(ctx, err))
	}
	res, err := readV2(cn)
	if err != nil {
		return res, fmt.Errorf("shell v2 %q on %s: %w", cmd, serial, ctxErr(ctx, err))
	}
	return res, nil
}

// appendV2Packet appends a shell v2 packet: id, little-endian u32 length,
// data.
func appendV2Packet(dst []byte, id byte, data []byte) []byte {
	dst = append(dst, id)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(data)))
	return append(dst, data...)
}

// readV2 reads shell v2 packets until the exit packet.
func readV2(r io.Reader) (ShellResult, error) {
	var res ShellResult
	var hdr [5]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return res, fmt.Errorf("no exit status: %w", io.ErrUnexpectedEOF)
			}
			return res, err
		}
		n := binary.LittleEndian.Uint32(hdr[1:])
		if n > maxOutput {
			return res, fmt.Errorf("shell v2 packet of %d bytes: %w", n, ErrProtocol)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return res, noEOF(err)
		}
		switch hdr[0] {
		case v2Stdout:
			if len(res.Stdout)+len(data) > maxOutput {
				return res, fmt.Errorf("stdout over %d bytes: %w", maxOutput, ErrProtocol)
			}
			res.Stdout = append(res.Stdout, data...)
		case v2Stderr:
			if len(res.Stderr)+len(data) > maxOutput {
				return res, fmt.Errorf("stderr over %d bytes: %w", maxOutput, ErrProtocol)
			}
			res.Stderr = append(res.Stderr, data...)
		case v2Exit:
			if len(data) != 1 {
				return res, fmt.Errorf("exit packet of %d bytes: %w", len(data), ErrProtocol)
			}
			res.Exit = int(data[0])
			return res, nil
		}
	}
}

// Forward asks the server to forward local (such as "tcp:27183") to remote
// on the device (such as "localabstract:scrcpy"), with
// host-serial:<serial>:forward:…. The server answers OKAY twice.
func (c *Client) Forward(ctx context.Context, serial, local, remote string) error {
	if strings.ContainsAny(local+remote, ";\x00") {
		return fmt.Errorf("forward %s to %s: bad address: %w", local, remote, ErrProtocol)
	}
	cn, err := c.open(ctx, "", "host-serial:"+serial+":forward:"+local+";"+remote, true)
	if err != nil {
		return err
	}
	defer cn.Close()
	if err := readStatus(cn); err != nil {
		return fmt.Errorf("forward %s to %s on %s: %w", local, remote, serial, ctxErr(ctx, err))
	}
	return nil
}
