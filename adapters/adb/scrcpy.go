package adb

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/big"
	"os"
	"strconv"
	"sync"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

// BackendScrcpy captures with scrcpy-server (scrcpy 3.x wire protocol; the
// version is pinned by Options.ScrcpyVersion and must match the jar).
const BackendScrcpy = "scrcpy"

// DefaultScrcpyVersion is the scrcpy-server version whose protocol this
// package speaks.
const DefaultScrcpyVersion = "3.3.4"

// scrcpyRemoteJar is where the server jar is pushed on the device.
const scrcpyRemoteJar = "/data/local/tmp/mediasvc-scrcpy-server.jar"

// scrcpy wire constants (scrcpy 3.x).
const (
	scrcpyCodecH264  uint32 = 0x68323634 // "h264"
	scrcpyCodecOpus  uint32 = 0x6f707573 // "opus"
	scrcpyFlagConfig        = uint64(1) << 63
	scrcpyFlagKey           = uint64(1) << 62
	scrcpyPTSMask           = scrcpyFlagKey - 1

	scrcpyMsgKeycode    byte = 0
	scrcpyMsgText       byte = 1
	scrcpyMsgTouch      byte = 2
	scrcpyMsgResetVideo byte = 17

	scrcpyActionDown byte = 0
	scrcpyActionUp   byte = 1
	scrcpyActionMove byte = 2
)

// maxScrcpyPacket bounds one video packet.
const maxScrcpyPacket = 16 << 20

// scrcpyPacket is one packet of the scrcpy video socket.
type scrcpyPacket struct {
	config, key bool
	pts         time.Duration
	data        []byte
}

// readScrcpyPacket reads a 12-byte header (u64 BE PTS with the config and
// key-frame flags, u32 BE size) and the payload.
func readScrcpyPacket(r io.Reader) (scrcpyPacket, error) {
	var h [12]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return scrcpyPacket{}, err
	}
	pts := binary.BigEndian.Uint64(h[:8])
	n := binary.BigEndian.Uint32(h[8:])
	if n == 0 || n > maxScrcpyPacket {
		return scrcpyPacket{}, fmt.Errorf("scrcpy packet of %d bytes: %w", n, ErrProtocol)
	}
	us := pts & scrcpyPTSMask
	if us > uint64(math.MaxInt64/int64(time.Microsecond)) {
		return scrcpyPacket{}, fmt.Errorf("scrcpy PTS %d µs: %w", us, ErrProtocol)
	}
	p := scrcpyPacket{config: pts&scrcpyFlagConfig != 0, key: pts&scrcpyFlagKey != 0, pts: time.Duration(us) * time.Microsecond}
	p.data = make([]byte, n)
	if _, err := io.ReadFull(r, p.data); err != nil {
		return scrcpyPacket{}, noEOF(err)
	}
	return p, nil
}

// scrcpyConfig is what one scrcpy capture needs.
type scrcpyConfig struct {
	client   *Client
	serial   string
	opts     Options
	maxSize  int
	bitrate  int
	brk      *breaker
	log      *slog.Logger
	pushJar  func(ctx context.Context) error
	onClose  func(*scrcpyCapture)
	register func(*scrcpyCapture)
}

// scrcpyCapture is a running scrcpy-server: its video and control sockets.
type scrcpyCapture struct {
	cfg     scrcpyConfig
	info    domain.StreamInfo
	server  io.ReadWriteCloser
	video   io.ReadWriteCloser
	audio   io.ReadWriteCloser // nil without audio
	control io.ReadWriteCloser
	start   time.Time

	frames chan domain.Frame // from the video and audio readers
	errs   chan error        // the first reader error

	params  []byte // Annex-B SPS/PPS from the last config packet
	lastPTS time.Duration
	pending *scrcpyPacket // first keyframe, read by Open

	ctrlMu    sync.Mutex
	keyframes chan struct{}
	quit      chan struct{}
	once      sync.Once
	wg        sync.WaitGroup
}

var _ ports.Capture = (*scrcpyCapture)(nil)

// openAbstract connects to localabstract:name on the device, retrying
// while the server is not listening yet.
func openAbstract(ctx context.Context, c *Client, serial, name string, within time.Duration) (io.ReadWriteCloser, error) {
	deadline := time.Now().Add(within)
	for {
		rc, err := c.open(context.Background(), serial, "localabstract:"+name, false)
		if err == nil {
			return rc, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil || errors.Is(err, domain.ErrDeviceNotFound) {
			return nil, fmt.Errorf("connect to scrcpy socket %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startScrcpyCapture pushes the server jar, starts scrcpy-server with
// app_process, connects its video and control sockets (scrcpy 3.x,
// forward-tunnel mode, reached through the adb transport with
// localabstract:), and waits for the first keyframe.
func startScrcpyCapture(ctx context.Context, cfg scrcpyConfig) (_ *scrcpyCapture, err error) {
	c := &scrcpyCapture{cfg: cfg, start: time.Now(), keyframes: make(chan struct{}, 1), quit: make(chan struct{})}
	defer func() {
		if err != nil {
			c.closeConns()
		}
	}()
	if err := cfg.pushJar(ctx); err != nil {
		return nil, fmt.Errorf("push scrcpy-server: %w", err)
	}
	n, err := rand.Int(rand.Reader, big.NewInt(1<<31))
	if err != nil {
		return nil, err
	}
	scid := fmt.Sprintf("%08x", n.Int64())
	cmd := "CLASSPATH=" + scrcpyRemoteJar + " app_process / com.genymobile.scrcpy.Server " + cfg.opts.ScrcpyVersion +
		" scid=" + scid + " log_level=info tunnel_forward=true audio=" + strconv.FormatBool(cfg.opts.ScrcpyAudio) +
		" audio_codec=opus control=true cleanup=false video_codec=h264"
	if cfg.maxSize > 0 {
		cmd += " max_size=" + strconv.Itoa(cfg.maxSize)
	}
	if cfg.bitrate > 0 {
		cmd += " video_bit_rate=" + strconv.Itoa(cfg.bitrate)
	}
	sctx, cancel := context.WithCancel(context.Background())
	srv, err := cfg.client.Exec(sctx, cfg.serial, cmd)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("start scrcpy-server: %w", err)
	}
	c.server = &cancelCloser{ReadWriteCloser: srv, cancel: cancel}
	// Its log, for ours; it ends when the server does.
	out := make(chan []byte, 1)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		b, _ := io.ReadAll(io.LimitReader(c.server, 64<<10))
		out <- b
		cfg.log.Debug("scrcpy-server ended", "output", truncate(string(b), 400))
	}()
	name := "scrcpy_" + scid
	if c.video, err = openAbstract(ctx, cfg.client, cfg.serial, name, cfg.opts.KeyframeTimeout); err != nil {
		select {
		case b := <-out:
			return nil, fmt.Errorf("%w (server said %q)", err, truncate(string(bytes.TrimSpace(b)), 200))
		case <-time.After(100 * time.Millisecond):
		}
		return nil, err
	}
	if cfg.opts.ScrcpyAudio {
		if c.audio, err = openAbstract(ctx, cfg.client, cfg.serial, name, cfg.opts.KeyframeTimeout); err != nil {
			return nil, err
		}
	}
	if c.control, err = openAbstract(ctx, cfg.client, cfg.serial, name, cfg.opts.KeyframeTimeout); err != nil {
		return nil, err
	}
	timer := time.AfterFunc(cfg.opts.KeyframeTimeout, func() { c.closeConns() })
	defer timer.Stop()
	// Dummy byte and the 64-byte device name on the first socket, then the
	// codec id, width and height.
	var hello [1 + 64 + 12]byte
	if _, err := io.ReadFull(c.video, hello[:]); err != nil {
		return nil, fmt.Errorf("scrcpy hello: %w: %w", noEOF(err), domain.ErrDeviceUnavailable)
	}
	meta := hello[65:]
	if codec := binary.BigEndian.Uint32(meta); codec != scrcpyCodecH264 {
		return nil, fmt.Errorf("scrcpy codec %08x is not h264: %w", codec, ErrProtocol)
	}
	c.info = domain.StreamInfo{Video: domain.CodecH264, Audio: domain.CodecNone, FPS: 30,
		Width: int(binary.BigEndian.Uint32(meta[4:])), Height: int(binary.BigEndian.Uint32(meta[8:]))}
	if c.audio != nil {
		// The audio codec id: opus, or 0 when the device cannot capture
		// audio (Android < 11); then the socket is of no further use.
		var id [4]byte
		if _, err := io.ReadFull(c.audio, id[:]); err != nil {
			return nil, fmt.Errorf("scrcpy audio header: %w: %w", noEOF(err), domain.ErrDeviceUnavailable)
		}
		switch binary.BigEndian.Uint32(id[:]) {
		case scrcpyCodecOpus:
			c.info.Audio = domain.CodecOpus
		default:
			cfg.log.Info("scrcpy: the device offers no audio")
			_ = c.audio.Close()
			c.audio = nil
		}
	}
	for {
		p, err := readScrcpyPacket(c.video)
		if err != nil {
			return nil, fmt.Errorf("scrcpy first keyframe: %w: %w", noEOF(err), domain.ErrDeviceUnavailable)
		}
		if p.config {
			c.params = p.data
			if nals := domain.SplitAnnexB(p.data); len(nals) > 0 {
				c.info.ProfileLevelID = domain.ProfileLevelID(nals[0])
				if w, h, err := spsSize(nals[0]); err == nil {
					c.info.Width, c.info.Height = w, h
				}
			}
			continue
		}
		if p.key && c.params != nil {
			c.pending = &p
			break
		}
	}
	c.frames = make(chan domain.Frame, 16)
	c.errs = make(chan error, 2)
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		c.controlLoop()
	}()
	go func() {
		defer c.wg.Done()
		c.videoLoop()
	}()
	if c.audio != nil {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.audioLoop()
		}()
	}
	cfg.log.Info("scrcpy started", "took", time.Since(c.start).Round(time.Millisecond), "size", fmt.Sprintf("%dx%d", c.info.Width, c.info.Height), "version", cfg.opts.ScrcpyVersion)
	cfg.register(c)
	return c, nil
}

func (c *scrcpyCapture) closeConns() {
	for _, rc := range []io.Closer{c.video, c.audio, c.control, c.server} {
		if rc != nil {
			_ = rc.Close()
		}
	}
}

// controlLoop sends RESET_VIDEO for coalesced keyframe requests and drains
// the device's control messages (clipboard, …).
func (c *scrcpyCapture) controlLoop() {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_, _ = io.Copy(io.Discard, c.control)
	}()
	for {
		select {
		case <-c.quit:
			return
		case <-c.keyframes:
			if err := c.send([]byte{scrcpyMsgResetVideo}); err != nil {
				c.cfg.log.Warn("scrcpy reset video", "err", err)
			}
		}
	}
}

func (c *scrcpyCapture) send(msg []byte) error {
	c.ctrlMu.Lock()
	defer c.ctrlMu.Unlock()
	if d, ok := c.control.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = d.SetWriteDeadline(time.Now().Add(c.cfg.opts.CommandTimeout))
	}
	_, err := c.control.Write(msg)
	return err
}

// Info describes the stream from scrcpy's codec header and SPS.
func (c *scrcpyCapture) Info() domain.StreamInfo { return c.info }

// ReadFrame returns the next video access unit or Opus packet: the latest
// SPS/PPS before every keyframe, an SEI ingest stamp, wall-clock PTS (audio:
// the device's clock from its first packet on). It returns an error
// wrapping domain.ErrDeviceUnavailable when a socket ends, and an error
// after Close.
func (c *scrcpyCapture) ReadFrame(ctx context.Context) (domain.Frame, error) {
	select {
	case <-c.quit:
		return domain.Frame{}, errClosed
	default:
	}
	select {
	case f := <-c.frames:
		return f, nil
	case err := <-c.errs:
		c.errs <- err // every later call fails too
		return domain.Frame{}, err
	case <-ctx.Done():
		return domain.Frame{}, ctx.Err()
	}
}

// fail reports a reader's end (once per reader; errs holds two).
func (c *scrcpyCapture) fail(what string, err error) {
	select {
	case <-c.quit:
		err = errClosed
	default:
		err = fmt.Errorf("scrcpy %s on %s ended: %w: %w", what, c.cfg.serial, noEOF(err), domain.ErrDeviceUnavailable)
		c.cfg.brk.Fail(err)
	}
	select {
	case c.errs <- err:
	default:
	}
}

func (c *scrcpyCapture) emit(f domain.Frame) bool {
	select {
	case c.frames <- f:
		return true
	case <-c.quit:
		return false
	}
}

// videoLoop reads the video socket; a config packet (a rotation, a reset)
// replaces the cached parameters.
func (c *scrcpyCapture) videoLoop() {
	if p := c.pending; p != nil {
		c.pending = nil
		if !c.emit(c.frame(*p)) {
			return
		}
	}
	for {
		p, err := readScrcpyPacket(c.video)
		if err != nil {
			c.fail("video", err)
			return
		}
		if p.config {
			c.params = p.data
			continue
		}
		if !c.emit(c.frame(p)) {
			return
		}
	}
}

// audioLoop reads Opus packets (the OpusHead config packet skipped).
func (c *scrcpyCapture) audioLoop() {
	var base time.Duration
	var first = true
	var devFirst, last time.Duration
	for {
		p, err := readScrcpyPacket(c.audio)
		if err != nil {
			c.fail("audio", err)
			return
		}
		if p.config {
			continue
		}
		now := time.Now()
		if first {
			base, devFirst, first = now.Sub(c.start), p.pts, false
		}
		pts := base + p.pts - devFirst
		if pts <= last {
			pts = last + time.Millisecond
		}
		last = pts
		if !c.emit(domain.Frame{Kind: domain.KindAudio, Data: p.data, PTS: pts, Duration: 20 * time.Millisecond, Ingest: now}) {
			return
		}
	}
}

func (c *scrcpyCapture) frame(p scrcpyPacket) domain.Frame {
	now := time.Now()
	data := make([]byte, 0, len(p.data)+len(c.params)+64)
	if p.key {
		data = append(data, c.params...)
	}
	stamped := false
	for _, n := range domain.SplitAnnexB(p.data) {
		t := domain.NALType(n)
		if t == domain.NALTypeAUD || (p.key && (t == domain.NALTypeSPS || t == domain.NALTypePPS)) {
			continue
		}
		if !stamped && t >= 1 && t <= 5 {
			data = append(data, domain.AnnexBStartCode...)
			data = domain.AppendSEITimestamp(data, now)
			stamped = true
		}
		data = append(append(data, domain.AnnexBStartCode...), n...)
	}
	pts := now.Sub(c.start)
	if pts <= c.lastPTS {
		pts = c.lastPTS + time.Millisecond
	}
	c.lastPTS = pts
	return domain.Frame{Kind: domain.KindVideo, Data: data, PTS: pts, Keyframe: p.key, Ingest: now}
}

// RequestKeyframe asks scrcpy for a fresh keyframe (RESET_VIDEO); requests
// coalesce. It never blocks.
func (c *scrcpyCapture) RequestKeyframe() {
	select {
	case c.keyframes <- struct{}{}:
	default:
	}
}

// SetBitrate is ignored: scrcpy fixes its bitrate at start.
func (c *scrcpyCapture) SetBitrate(int) {}

// Close stops the server and its sockets. Safe to call more than once.
func (c *scrcpyCapture) Close() error {
	c.once.Do(func() {
		close(c.quit)
		c.closeConns()
		c.wg.Wait()
		c.cfg.onClose(c)
	})
	return nil
}

// touch writes one INJECT_TOUCH_EVENT at video coordinates.
func (c *scrcpyCapture) touch(action byte, x, y int) error {
	var m [32]byte
	m[0] = scrcpyMsgTouch
	m[1] = action
	binary.BigEndian.PutUint64(m[2:], 0xffffffffffffffff) // POINTER_ID_MOUSE
	binary.BigEndian.PutUint32(m[10:], uint32(int32(x)))
	binary.BigEndian.PutUint32(m[14:], uint32(int32(y)))
	binary.BigEndian.PutUint16(m[18:], uint16(c.info.Width))
	binary.BigEndian.PutUint16(m[20:], uint16(c.info.Height))
	if action != scrcpyActionUp {
		binary.BigEndian.PutUint16(m[22:], 0xffff) // pressure 1.0
	}
	binary.BigEndian.PutUint32(m[24:], 1) // action button: primary
	if action != scrcpyActionUp {
		binary.BigEndian.PutUint32(m[28:], 1)
	}
	return c.send(m[:])
}

func (c *scrcpyCapture) key(code int) error {
	var m [28]byte
	for i, action := range []byte{scrcpyActionDown, scrcpyActionUp} {
		b := m[i*14:]
		b[0] = scrcpyMsgKeycode
		b[1] = action
		binary.BigEndian.PutUint32(b[2:], uint32(code))
	}
	return c.send(m[:])
}

// input injects ev, given in device coordinates of a dw×dh display, through
// the control socket (scrcpy wants video coordinates and the video size).
func (c *scrcpyCapture) input(ctx context.Context, ev domain.InputEvent, dw, dh int) error {
	vx := func(x int) int { return scale(x, c.info.Width, dw) }
	vy := func(y int) int { return scale(y, c.info.Height, dh) }
	gesture := func(x1, y1, x2, y2 int, d time.Duration) error {
		if err := c.touch(scrcpyActionDown, vx(x1), vy(y1)); err != nil {
			return err
		}
		steps := max(1, int(d/(16*time.Millisecond)))
		for i := 1; i <= steps; i++ {
			select {
			case <-ctx.Done():
				_ = c.touch(scrcpyActionUp, vx(x1), vy(y1))
				return ctx.Err()
			case <-time.After(d / time.Duration(steps)):
			}
			if x1 != x2 || y1 != y2 {
				if err := c.touch(scrcpyActionMove, vx(x1+(x2-x1)*i/steps), vy(y1+(y2-y1)*i/steps)); err != nil {
					return err
				}
			}
		}
		return c.touch(scrcpyActionUp, vx(x2), vy(y2))
	}
	switch ev.Type {
	case domain.InputTap:
		if err := c.touch(scrcpyActionDown, vx(ev.X), vy(ev.Y)); err != nil {
			return err
		}
		return c.touch(scrcpyActionUp, vx(ev.X), vy(ev.Y))
	case domain.InputLongPress:
		d := time.Duration(ev.DurationMs) * time.Millisecond
		if d <= 0 {
			d = 800 * time.Millisecond
		}
		return gesture(ev.X, ev.Y, ev.X, ev.Y, d)
	case domain.InputSwipe:
		d := time.Duration(ev.DurationMs) * time.Millisecond
		if d <= 0 {
			d = 300 * time.Millisecond
		}
		return gesture(ev.X, ev.Y, ev.X2, ev.Y2, d)
	case domain.InputText:
		if _, err := textArg(ev.Text); err != nil {
			return err
		}
		m := []byte{scrcpyMsgText, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(m[1:], uint32(len(ev.Text)))
		return c.send(append(m, ev.Text...))
	case domain.InputKey:
		code, ok := keyCode(ev.Key)
		if !ok {
			return fmt.Errorf("unknown key %q: %w", ev.Key, domain.ErrInvalidInput)
		}
		return c.key(code)
	case domain.InputBack:
		return c.key(4)
	case domain.InputHome:
		return c.key(3)
	case domain.InputRecents:
		return c.key(187)
	}
	return fmt.Errorf("input action %q: %w", ev.Type, domain.ErrInvalidInput)
}

// scale maps v from a space of size from to one of size to.
func scale(v, to, from int) int {
	if to <= 0 || from <= 0 || to == from {
		return v
	}
	return v * to / from
}

// pushScrcpyJar pushes the operator's scrcpy-server jar to serial.
func (s *Source) pushScrcpyJar(ctx context.Context, serial string) error {
	f, err := os.Open(s.opts.ScrcpyServer)
	if err != nil {
		return fmt.Errorf("open %s: %w", s.opts.ScrcpyServer, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return s.client.Push(ctx, serial, f, scrcpyRemoteJar, 0o644, st.ModTime())
}
