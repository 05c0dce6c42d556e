package adb

import (
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

	// scrcpyCodecDisabled and scrcpyCodecError are the codec ids a server
	// sends instead of a codec: the stream is disabled (no audio capture
	// before Android 11; go on without it), or a configuration error
	// happened and the server stops.
	scrcpyCodecDisabled uint32 = 0
	scrcpyCodecError    uint32 = 1
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
	// onResize is told the video size of every config packet (a rotation
	// changes it); onClipboard every clipboard text the device pushes.
	// Either may be nil; neither may block.
	onResize    func(w, h int)
	onClipboard func(text string)
}

// scrcpyCapture is a running scrcpy-server: its video and control sockets.
type scrcpyCapture struct {
	cfg     scrcpyConfig
	infoMu  sync.Mutex
	info    domain.StreamInfo // its size follows the config packets; guarded by infoMu
	server  io.ReadWriteCloser
	log     *serverLog // the server's output, drained for its whole life
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
	mouseBtn  int // mouse buttons held, for the action button; guarded by ctrlMu
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
	cmd := scrcpyCommand(cfg.opts, scid, cfg.maxSize, cfg.bitrate)
	sctx, cancel := context.WithCancel(context.Background())
	srv, err := cfg.client.Exec(sctx, cfg.serial, cmd)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("start scrcpy-server: %w", err)
	}
	c.server = &cancelCloser{ReadWriteCloser: srv, cancel: cancel}
	// Its output is read for as long as it runs: a server whose stdout
	// fills blocks the thread that logs (its controller logs a line per
	// RESET_VIDEO and clipboard change at info level).
	c.log = newServerLog(cfg.log)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.log.drain(c.server)
	}()
	name := "scrcpy_" + scid
	if c.video, err = openAbstract(ctx, cfg.client, cfg.serial, name, cfg.opts.KeyframeTimeout); err != nil {
		return nil, c.log.explain(err, 100*time.Millisecond)
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
		switch codec := binary.BigEndian.Uint32(id[:]); codec {
		case scrcpyCodecOpus:
			c.info.Audio = domain.CodecOpus
		case scrcpyCodecDisabled:
			cfg.log.Info("scrcpy: the device offers no audio (Android < 11)")
			_ = c.audio.Close()
			c.audio = nil
		case scrcpyCodecError:
			// The server stops after this: say why now instead of failing
			// later on a closed socket.
			return nil, c.log.explain(fmt.Errorf("scrcpy-server %s reported an audio configuration error (codec id 1) and exits; set adb.scrcpy.audio: false or fix the audio options: %w",
				cfg.opts.ScrcpyVersion, domain.ErrDeviceUnavailable), time.Second)
		default:
			return nil, fmt.Errorf("scrcpy audio codec %08x is not opus: %w", codec, ErrProtocol)
		}
	}
	for {
		p, err := readScrcpyPacket(c.video)
		if err != nil {
			return nil, fmt.Errorf("scrcpy first keyframe: %w: %w", noEOF(err), domain.ErrDeviceUnavailable)
		}
		if p.config {
			c.config(p.data)
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
	info := c.Info()
	cfg.log.Info("scrcpy started", "took", time.Since(c.start).Round(time.Millisecond), "size", fmt.Sprintf("%dx%d", info.Width, info.Height), "version", cfg.opts.ScrcpyVersion)
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

// controlLoop sends RESET_VIDEO for coalesced keyframe requests and reads
// the device's messages (clipboard, acknowledgements, UHID output).
func (c *scrcpyCapture) controlLoop() {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.deviceMessages()
	}()
	for {
		select {
		case <-c.quit:
			return
		case <-c.keyframes:
			if err := c.send(appendResetVideo(nil)); err != nil {
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

// Info describes the stream from scrcpy's codec header and the latest
// config packet's SPS: after a rotation, the new size.
func (c *scrcpyCapture) Info() domain.StreamInfo {
	c.infoMu.Lock()
	defer c.infoMu.Unlock()
	return c.info
}

// videoSize returns the current video size.
func (c *scrcpyCapture) videoSize() (int, int) {
	i := c.Info()
	return i.Width, i.Height
}

// config takes a config packet (SPS, PPS): cached for the next keyframes,
// and its SPS gives the video size (the server restarts its encoder on a
// rotation with a new size and no new codec header).
func (c *scrcpyCapture) config(data []byte) {
	c.params = data
	nals := domain.SplitAnnexB(data)
	if len(nals) == 0 || domain.NALType(nals[0]) != domain.NALTypeSPS {
		return
	}
	w, h, err := domain.SPSSize(nals[0])
	c.infoMu.Lock()
	c.info.ProfileLevelID = domain.ProfileLevelID(nals[0])
	changed := err == nil && (w != c.info.Width || h != c.info.Height)
	if err == nil {
		c.info.Width, c.info.Height = w, h
	}
	c.infoMu.Unlock()
	if err == nil && c.cfg.onResize != nil {
		c.cfg.onResize(w, h)
	}
	if changed && c.frames != nil {
		c.cfg.log.Info("scrcpy video size changed", "size", fmt.Sprintf("%dx%d", w, h))
	}
}

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
			c.config(p.data)
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

// scale maps v from a space of size from to one of size to, rounding.
func scale(v, to, from int) int {
	if to <= 0 || from <= 0 || to == from {
		return v
	}
	return (2*v*to + from) / (2 * from)
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
