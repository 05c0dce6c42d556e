// Package transcode makes renditions of a device stream with Debian's
// ffmpeg as a subprocess: H.264 access units (Annex-B) go in on its stdin,
// and VP8 (libvpx, realtime, in IVF) or Constrained Baseline H.264
// (libx264, Annex-B) comes out on its stdout, one output frame per input
// frame, a keyframe at least every KeyframeInterval. A Transcoder is a
// screen capture in its own right (ports.Capture): the hub feeds it the
// capture's access units and pumps what it yields into the rendition's own
// fanout.
package transcode

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

// Defaults applied to zero Config fields.
const (
	DefaultFFmpeg           = "ffmpeg"
	DefaultBitrateBps       = 1_500_000
	DefaultKeyframeInterval = 2 * time.Second
	DefaultQueueFrames      = 30
)

// ErrUnavailable is returned when ffmpeg cannot run or lacks the encoder a
// rendition needs. It matches domain.ErrUnavailable.
var ErrUnavailable = fmt.Errorf("transcoder: %w", domain.ErrUnavailable)

// Config configures transcoders.
type Config struct {
	// FFmpeg is the ffmpeg binary (a path, or a name looked up in PATH).
	FFmpeg string
	// BitrateBps is the target bitrate of a rendition.
	BitrateBps int
	// KeyframeInterval is the longest time between two keyframes of a
	// rendition: late joiners start at the latest one.
	KeyframeInterval time.Duration
	// QueueFrames bounds the access units waiting for ffmpeg; when it is
	// full the transcoder drops input up to the next keyframe (counted)
	// rather than slow the capture.
	QueueFrames int
	// LogLevel is ffmpeg's -loglevel ("error" when empty); the tail of
	// what it writes is kept for the error of a transcoder that fails.
	LogLevel string
}

func (c *Config) defaults() {
	if c.FFmpeg == "" {
		c.FFmpeg = DefaultFFmpeg
	}
	if c.BitrateBps <= 0 {
		c.BitrateBps = DefaultBitrateBps
	}
	if c.KeyframeInterval <= 0 {
		c.KeyframeInterval = DefaultKeyframeInterval
	}
	if c.QueueFrames <= 0 {
		c.QueueFrames = DefaultQueueFrames
	}
	if c.LogLevel == "" {
		c.LogLevel = "error"
	}
}

// Available runs ffmpeg -encoders and returns the renditions it can make:
// RenditionBaseline and RenditionWall with libx264, RenditionVP8 with libvpx. It returns an
// error wrapping ErrUnavailable when ffmpeg does not run.
func Available(ctx context.Context, ffmpeg string) ([]domain.Rendition, error) {
	if ffmpeg == "" {
		ffmpeg = DefaultFFmpeg
	}
	path, err := exec.LookPath(ffmpeg)
	if err != nil {
		return nil, fmt.Errorf("find %s: %v: %w", ffmpeg, err, ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-hide_banner", "-encoders").Output()
	if err != nil {
		return nil, fmt.Errorf("%s -encoders: %v: %w", path, err, ErrUnavailable)
	}
	var rs []domain.Rendition
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[0], "V") {
			continue
		}
		switch f[1] {
		case "libx264":
			rs = append(rs, domain.RenditionBaseline, domain.RenditionWall)
		case "libvpx":
			rs = append(rs, domain.RenditionVP8)
		}
	}
	return rs, nil
}

// args is the ffmpeg command line for rendition r.
func args(cfg Config, r domain.Rendition, in domain.StreamInfo) ([]string, error) {
	kbps := strconv.Itoa(cfg.BitrateBps/1000) + "k"
	fps := in.FPS
	if fps <= 0 {
		fps = 30
	}
	gop := strconv.Itoa(max(1, int(cfg.KeyframeInterval.Seconds()*float64(fps))))
	a := []string{
		"-hide_banner", "-loglevel", cfg.LogLevel, "-nostdin",
		// Start at once and keep nothing back: a tiny probe, a decoder
		// that outputs each picture at once (low_delay; -fflags nobuffer
		// would make it lag a GOP behind).
		"-probesize", "32", "-flags", "low_delay",
		// Timestamps: frame n is at n/fps. Not the wall clock
		// (-use_wallclock_as_timestamps): frames that reach ffmpeg in a
		// burst (a pump a busy machine held back) or closer than the
		// encoder's time base (1/25 s, guessed from too few frames) got
		// equal or falling DTS, which the muxers "fix" with a warning per
		// frame (TestNoTimestampWarnings). ffmpeg's timestamps steer only
		// its rate control here (a source below fps frames/s then gets
		// under the target bitrate, never over it): each output frame is
		// given its input frame's PTS by the transcoder.
		"-framerate", strconv.Itoa(fps),
		"-f", "h264", "-i", "pipe:0",
		// Every packet leaves at once (ffmpeg buffers 32 KiB of output
		// otherwise: a second of video at a small size).
		"-an", "-fps_mode", "passthrough", "-flush_packets", "1",
		// A keyframe for every picture ffmpeg's decoder marks key: the
		// source's IDRs, and the picture RequestKeyframe tagged with a
		// recovery point SEI (ffmpeg has no other way to take a keyframe
		// request mid-stream; an expr: of frame times cannot see one).
		// Besides, the encoders' own GOP (-g) puts one every
		// KeyframeInterval of frames when the source has none.
		"-force_key_frames", "source",
	}
	switch r {
	case domain.RenditionVP8:
		a = append(a, "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
			"-b:v", kbps, "-maxrate", kbps, "-bufsize", kbps,
			"-lag-in-frames", "0", "-auto-alt-ref", "0", "-error-resilient", "1",
			"-g", gop, "-threads", "2", "-f", "ivf", "pipe:1")
	case domain.RenditionWall:
		// A wall tile: the picture scaled to domain.WallSize at
		// domain.WallBitrateBps, otherwise the baseline rendition.
		w, h := domain.WallSize(in.Width, in.Height)
		wk := strconv.Itoa(domain.WallBitrateBps/1000) + "k"
		if w <= 0 || h <= 0 {
			w, h = -2, domain.WallMaxSize
		}
		a = append(a, "-vf", fmt.Sprintf("scale=%d:%d", w, h),
			"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
			"-profile:v", "baseline", "-level:v", "3.1", "-pix_fmt", "yuv420p",
			"-b:v", wk, "-maxrate", wk, "-bufsize", wk, "-bf", "0", "-g", gop, "-threads", "1",
			"-x264-params", "aud=1:repeat-headers=1",
			"-bsf:v", "h264_metadata=level=3.1", "-f", "h264", "pipe:1")
	case domain.RenditionBaseline:
		a = append(a, "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
			"-profile:v", "baseline", "-level:v", "3.1", "-pix_fmt", "yuv420p",
			"-b:v", kbps, "-maxrate", kbps, "-bufsize", kbps, "-bf", "0", "-g", gop,
			// An AUD opens every access unit (it is how the output is split)
			// and SPS/PPS precede every keyframe.
			"-x264-params", "aud=1:repeat-headers=1",
			"-bsf:v", "h264_metadata=level=3.1", "-f", "h264", "pipe:1")
	default:
		return nil, fmt.Errorf("rendition %q: %w", r, ErrUnavailable)
	}
	return a, nil
}

// stamp is what an input frame's output inherits.
type stamp struct {
	pts    time.Duration
	ingest time.Time
}

// Transcoder is one running ffmpeg making one rendition of one device's
// stream. Write feeds it (from the capture pump), ReadFrame yields the
// rendition (from the rendition's pump); they may run concurrently.
//
// Goroutines: one writer feeding ffmpeg's stdin and one reader of its
// stderr, both ended by Close.
type Transcoder struct {
	cfg       Config
	rendition domain.Rendition
	info      domain.StreamInfo
	log       *slog.Logger

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	in     chan domain.Frame
	done   chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	stamps   []stamp // FIFO of the frames ffmpeg has been given
	needKey  bool    // dropping input until the next keyframe
	wantKey  bool    // RequestKeyframe: tag the next picture key
	dropped  uint64
	stderr   []byte // the tail of ffmpeg's stderr
	closed   bool
	closeErr error

	// ReadFrame's goroutine only.
	h264 annexBSplitter
	ivf  bool
	hdr  [12]byte
}

var _ ports.Transcoder = (*Transcoder)(nil)

// Transcoders starts ffmpeg renditions: the ports.Transcoders of the hub.
type Transcoders struct {
	cfg  Config
	made []domain.Rendition
	log  *slog.Logger
}

var _ ports.Transcoders = (*Transcoders)(nil)

// New asks cfg.FFmpeg which renditions it can make (Available) and
// returns the Transcoders making them. It returns an error wrapping
// ErrUnavailable when ffmpeg does not run or makes none.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Transcoders, error) {
	cfg.defaults()
	if log == nil {
		log = slog.Default()
	}
	made, err := Available(ctx, cfg.FFmpeg)
	if err != nil {
		return nil, err
	}
	if len(made) == 0 {
		return nil, fmt.Errorf("%s has neither libvpx nor libx264: %w", cfg.FFmpeg, ErrUnavailable)
	}
	return &Transcoders{cfg: cfg, made: made, log: log}, nil
}

// Renditions returns what ffmpeg can make.
func (t *Transcoders) Renditions() []domain.Rendition { return slices.Clone(t.made) }

// Start runs ffmpeg for rendition r (see the package Start).
func (t *Transcoders) Start(r domain.Rendition, in domain.StreamInfo) (ports.Transcoder, error) {
	if !slices.Contains(t.made, r) {
		return nil, fmt.Errorf("rendition %s: %s cannot make it: %w", r, t.cfg.FFmpeg, ErrUnavailable)
	}
	return Start(t.cfg, r, in, t.log)
}

// Start runs ffmpeg for rendition r of a stream described by in. It
// returns an error wrapping ErrUnavailable when ffmpeg cannot start. The
// caller must Close the Transcoder.
func Start(cfg Config, r domain.Rendition, in domain.StreamInfo, log *slog.Logger) (*Transcoder, error) {
	cfg.defaults()
	if log == nil {
		log = slog.Default()
	}
	a, err := args(cfg, r, in)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(cfg.FFmpeg, a...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start ffmpeg: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start ffmpeg: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("start ffmpeg: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %v: %w", cfg.FFmpeg, err, ErrUnavailable)
	}
	info := domain.StreamInfo{Video: r.Codec(), Audio: in.Audio, Width: in.Width, Height: in.Height, FPS: in.FPS}
	if r == domain.RenditionBaseline || r == domain.RenditionWall {
		info.ProfileLevelID = domain.BaselineProfileLevelID
	}
	if r == domain.RenditionWall {
		info.Width, info.Height = domain.WallSize(in.Width, in.Height)
	}
	t := &Transcoder{
		cfg: cfg, rendition: r, info: info, log: log.With("rendition", string(r)),
		cmd: cmd, stdin: stdin, stdout: bufio.NewReaderSize(stdout, 256<<10),
		in: make(chan domain.Frame, cfg.QueueFrames), done: make(chan struct{}),
		needKey: true, ivf: r == domain.RenditionVP8,
	}
	t.wg.Add(2)
	go t.feed()
	go t.drainStderr(stderr)
	return t, nil
}

// Info describes the rendition: its codec, the input's size and audio.
func (t *Transcoder) Info() domain.StreamInfo { return t.info }

// Dropped returns how many input access units were dropped because ffmpeg
// fell behind.
func (t *Transcoder) Dropped() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}

// Write hands one video access unit of the device's stream to ffmpeg
// without blocking. Audio frames are ignored (the rendition's audio is the
// device's, passed on by the caller). Until the first keyframe, and after
// the queue overflowed until the next one, input is dropped, so that
// ffmpeg's decoder never sees a picture whose references it lacks. It
// returns an error after Close.
func (t *Transcoder) Write(f domain.Frame) error {
	if f.Kind != domain.KindVideo || len(f.Data) == 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return fmt.Errorf("transcode %s: closed", t.rendition)
	}
	key := f.Keyframe || domain.IsKeyframe(f.Data)
	if t.needKey && !key {
		t.dropped++
		return nil
	}
	if t.wantKey && !key {
		f.Data = withRecoveryPoint(f.Data)
	}
	select {
	case t.in <- f:
		t.needKey = false
		t.wantKey = false
		if f.Ingest.IsZero() {
			f.Ingest = time.Now()
		}
		t.stamps = append(t.stamps, stamp{pts: f.PTS, ingest: f.Ingest})
	default:
		t.needKey = true
		t.dropped++
	}
	return nil
}

// feed writes queued access units to ffmpeg's stdin until Close. (ffmpeg's
// H.264 parser completes a picture when the next one begins: a frame of
// added latency, measured in BENCHMARKS.md. An access unit delimiter
// written after each would end it sooner, but ffmpeg decodes a lone
// delimiter as a broken picture and counts the errors.)
func (t *Transcoder) feed() {
	defer t.wg.Done()
	defer t.stdin.Close()
	for {
		select {
		case <-t.done:
			return
		case f := <-t.in:
			if _, err := t.stdin.Write(f.Data); err != nil {
				return
			}
		}
	}
}

func (t *Transcoder) drainStderr(r io.Reader) {
	defer t.wg.Done()
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			t.mu.Lock()
			t.stderr = append(t.stderr, buf[:n]...)
			if len(t.stderr) > 4096 {
				t.stderr = t.stderr[len(t.stderr)-4096:]
			}
			t.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// next pops the stamp of the oldest frame ffmpeg was given.
func (t *Transcoder) next() stamp {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.stamps) == 0 {
		return stamp{ingest: time.Now()}
	}
	s := t.stamps[0]
	t.stamps = t.stamps[1:]
	return s
}

// ReadFrame returns the next frame of the rendition, with the PTS and
// ingest time of the input frame it was made from. The first is a
// keyframe. It returns io.EOF when ffmpeg exited (with its last error
// output in the error when it failed). ctx is not watched: Close ends a
// blocked ReadFrame. It is called from one goroutine only.
func (t *Transcoder) ReadFrame(context.Context) (domain.Frame, error) {
	var data []byte
	var err error
	if t.ivf {
		data, err = t.readIVF()
	} else {
		data, err = t.h264.next(t.stdout)
	}
	if err != nil {
		return domain.Frame{}, t.exitErr(err)
	}
	s := t.next()
	f := domain.Frame{Kind: domain.KindVideo, Data: data, PTS: s.pts, Ingest: s.ingest}
	if t.ivf {
		f.Keyframe = len(data) > 0 && data[0]&1 == 0
	} else {
		f.Keyframe = domain.IsKeyframe(data)
	}
	return f, nil
}

func (t *Transcoder) exitErr(err error) error {
	t.mu.Lock()
	tail := strings.TrimSpace(string(t.stderr))
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return io.EOF
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("transcode %s: read: %w", t.rendition, err)
	}
	if tail != "" {
		return fmt.Errorf("transcode %s: ffmpeg: %s: %w", t.rendition, tail, io.EOF)
	}
	return io.EOF
}

// readIVF reads the IVF file header once, then one frame.
func (t *Transcoder) readIVF() ([]byte, error) {
	if t.hdr[0] == 0 {
		var fh [32]byte
		if _, err := io.ReadFull(t.stdout, fh[:]); err != nil {
			return nil, err
		}
		if string(fh[:4]) != "DKIF" {
			return nil, fmt.Errorf("not IVF output: %q", fh[:4])
		}
		t.hdr[0] = 1
	}
	var fh [12]byte
	if _, err := io.ReadFull(t.stdout, fh[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(fh[:4])
	if n == 0 || n > 8<<20 {
		return nil, fmt.Errorf("ivf frame of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(t.stdout, b); err != nil {
		return nil, err
	}
	return b, nil
}

// RequestKeyframe does nothing: ffmpeg takes no keyframe request while it
// runs. The rendition has a keyframe every KeyframeInterval, and its ring
// keeps the latest for joiners.
func (t *Transcoder) RequestKeyframe() {
	t.mu.Lock()
	t.wantKey = true
	t.mu.Unlock()
}

// NeedsSourceKeyframe reports whether the transcoder drops input until the
// source's next keyframe (at its start, after its queue overflowed): until
// then only the source can end a viewer's wait for a keyframe.
func (t *Transcoder) NeedsSourceKeyframe() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.needKey
}

// recoveryPointSEI is an SEI NAL unit holding one recovery point message
// (H.264 D.1.8) with recovery_frame_cnt 0, exact_match_flag 1: "this
// picture on is displayed correctly". ffmpeg's H.264 decoder marks the
// picture it precedes key, and -force_key_frames source then makes the
// rendition's frame for it a keyframe.
var recoveryPointSEI = []byte{0, 0, 0, 1, 0x06, 0x06, 0x01, 0xc4, 0x80}

// withRecoveryPoint returns a copy of the access unit au with
// recoveryPointSEI before its first slice (after an access unit
// delimiter, which must come first).
func withRecoveryPoint(au []byte) []byte {
	at := 0
	if nals := domain.SplitAnnexB(au); len(nals) > 1 && domain.NALType(nals[0]) == domain.NALTypeAUD {
		// The start code of the second NAL unit, past the first's.
		if i := bytes.Index(au[3:], []byte{0, 0, 1}); i >= 0 {
			at = i + 3
			if au[at-1] == 0 {
				at--
			}
		}
	}
	out := make([]byte, 0, len(au)+len(recoveryPointSEI))
	out = append(out, au[:at]...)
	out = append(out, recoveryPointSEI...)
	return append(out, au[at:]...)
}

// SetBitrate is ignored: ffmpeg's bitrate is fixed at start.
func (t *Transcoder) SetBitrate(int) {}

// Close stops ffmpeg and waits for it. Safe to call more than once and
// concurrently with ReadFrame and Write.
func (t *Transcoder) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return t.closeErr
	}
	t.closed = true
	close(t.done)
	t.mu.Unlock()
	// Closing stdin lets ffmpeg flush and exit; kill it if it lingers.
	exited := make(chan error, 1)
	go func() { exited <- t.cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(2 * time.Second):
		_ = t.cmd.Process.Kill()
		err = <-exited
	}
	t.wg.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.closeErr = fmt.Errorf("transcode %s: wait: %w", t.rendition, err)
	}
	return t.closeErr
}

// annexBSplitter cuts ffmpeg's Annex-B output into access units at each
// access unit delimiter (libx264 with aud=1 opens every one with it).
type annexBSplitter struct {
	buf []byte
}

// next returns the next complete access unit (from one AUD to the next;
// the last one when the output ends).
func (s *annexBSplitter) next(r *bufio.Reader) ([]byte, error) {
	for {
		if a := audAt(s.buf, 0); a >= 0 {
			if a > 0 {
				s.buf = append(s.buf[:0], s.buf[a:]...) // bytes before the first AUD
			}
			if b := audAt(s.buf, 4); b >= 0 {
				au := make([]byte, b)
				copy(au, s.buf[:b])
				s.buf = append(s.buf[:0], s.buf[b:]...)
				return au, nil
			}
		}
		var chunk [32 << 10]byte
		n, err := r.Read(chunk[:])
		s.buf = append(s.buf, chunk[:n]...)
		if err != nil {
			if errors.Is(err, io.EOF) && audAt(s.buf, 0) == 0 {
				au := s.buf
				s.buf = nil
				return au, nil
			}
			return nil, err
		}
	}
}

// audAt returns the offset of the first AUD (its start code, with a
// leading zero byte of a 4-byte one) in b whose start code begins at or
// after from, -1 if none.
func audAt(b []byte, from int) int {
	for i := from; i+3 < len(b); i++ {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 && b[i+3]&0x1f == 9 {
			if i > from && b[i-1] == 0 {
				return i - 1
			}
			return i
		}
	}
	return -1
}
