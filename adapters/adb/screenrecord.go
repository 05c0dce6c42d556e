package adb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

var _ ports.Capture = (*screenCapture)(nil)

// screenConfig is what one capture needs.
type screenConfig struct {
	client        *Client
	serial        string
	opts          Options
	width, height int // --size, 0 = the device's own
	bitrate       int
	brk           *breaker
	// unlimited runs screenrecord with --time-limit 0 (Android 14+): no
	// restarts for the time limit.
	unlimited bool
	onRestart func()
	// orientation asks the display's current size; onResize is told it
	// every Options.OrientationPoll (both nil: no poll).
	orientation func(ctx context.Context) (int, int, error)
	onResize    func(w, h int)
	log         *slog.Logger
}

// screenrecordCommand returns the device command line; limit 0 asks for
// no limit (--time-limit 0, Android 14+).
func screenrecordCommand(bitrate, w, h int, limit time.Duration) string {
	cmd := "screenrecord --output-format=h264"
	if bitrate > 0 {
		cmd += " --bit-rate " + strconv.Itoa(bitrate)
	}
	if w > 0 && h > 0 {
		cmd += fmt.Sprintf(" --size %dx%d", w, h)
	}
	secs := int((limit + time.Second - 1) / time.Second)
	cmd += " --time-limit " + strconv.Itoa(secs)
	return cmd + " -"
}

// segment is one screenrecord process: its pipe and the access units its
// reader goroutine cuts from it.
type segment struct {
	rc      io.ReadWriteCloser
	aus     chan [][]byte
	done    chan struct{} // closed when the reader ended; err is then set
	err     error         // io.EOF for a clean end
	started time.Time
	bitrate int
	quit    chan struct{}
	once    sync.Once
}

func (g *segment) close() {
	g.once.Do(func() {
		close(g.quit)
		_ = g.rc.Close()
	})
	<-g.done
}

type deadliner interface{ SetReadDeadline(time.Time) error }

// read cuts the pipe into access units, flushing on an idle gap, until the
// pipe ends or the segment is closed.
func (g *segment) read(idle time.Duration) {
	defer close(g.done)
	defer close(g.aus)
	sp := newAUSplitter()
	dl, _ := g.rc.(deadliner)
	buf := make([]byte, 64<<10)
	send := func(aus [][][]byte) bool {
		for _, au := range aus {
			select {
			case g.aus <- au: // the usual case, without a select over two
				continue
			default:
			}
			select {
			case g.aus <- au:
			case <-g.quit:
				return false
			}
		}
		return true
	}
	for {
		if dl != nil {
			if sp.Pending() {
				_ = dl.SetReadDeadline(time.Now().Add(idle))
			} else {
				_ = dl.SetReadDeadline(time.Time{})
			}
		}
		n, err := g.rc.Read(buf)
		if n > 0 {
			aus, werr := sp.Write(buf[:n])
			if !send(aus) {
				g.err = io.ErrClosedPipe
				return
			}
			if werr != nil {
				g.err = werr
				return
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !send(sp.Flush()) {
					g.err = io.ErrClosedPipe
					return
				}
				continue
			}
			send(sp.Flush())
			g.err = err
			return
		}
	}
}

// screenCapture is a capture made of consecutive screenrecord processes,
// switched at keyframes so viewers see one stream.
type screenCapture struct {
	cfg    screenConfig
	infoMu sync.Mutex
	info   domain.StreamInfo // its size follows the SPS; guarded by infoMu
	start  time.Time
	polled chan struct{} // closed when the orientation poll ended

	pollMu     sync.Mutex
	pollCancel context.CancelFunc // ends the orientation ask in flight; guarded by pollMu

	quit chan struct{}
	once sync.Once

	// readMu is held by ReadFrame while it advances st, and by Close
	// (after closing quit) to end it.
	readMu sync.Mutex
	st     *stream // nil once the capture ended; guarded by readMu
	err    error   // why it ended; guarded by readMu

	wantBitrate atomic.Int64

	// Owned by whoever holds readMu (startScreenCapture before that).
	sps, pps []byte
	lastPTS  time.Duration
}

// startSegment starts one screenrecord process on a context of its own
// (the segment lives until closed, not until the caller's ctx ends); ctx
// bounds the start.
func (c *screenCapture) startSegment(ctx context.Context, bitrate int) (*segment, error) {
	sctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	limit := c.cfg.opts.TimeLimit
	if c.cfg.unlimited {
		limit = 0
	}
	rc, err := c.cfg.client.Exec(sctx, c.cfg.serial, screenrecordCommand(bitrate, c.cfg.width, c.cfg.height, limit))
	stop()
	if err != nil {
		cancel()
		return nil, err
	}
	g := &segment{rc: &cancelCloser{ReadWriteCloser: rc, cancel: cancel}, aus: make(chan [][]byte, 32), done: make(chan struct{}), quit: make(chan struct{}), started: time.Now(), bitrate: bitrate}
	go g.read(c.cfg.opts.IdleFlush)
	return g, nil
}

type cancelCloser struct {
	io.ReadWriteCloser
	cancel func()
}

func (c *cancelCloser) Close() error {
	c.cancel()
	return c.ReadWriteCloser.Close()
}

func (c *cancelCloser) SetReadDeadline(t time.Time) error {
	if d, ok := c.ReadWriteCloser.(deadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}

// waitKeyframe reads g until its first IDR access unit (with SPS and PPS
// known) and returns it; errors on timeout, end of stream or ctx.
func (c *screenCapture) waitKeyframe(ctx context.Context, g *segment) ([][]byte, error) {
	t := time.NewTimer(c.cfg.opts.KeyframeTimeout)
	defer t.Stop()
	for {
		select {
		case au, ok := <-g.aus:
			if !ok {
				<-g.done
				return nil, fmt.Errorf("screenrecord ended before its first keyframe (early EOF: %v): %w", g.err, domain.ErrDeviceUnavailable)
			}
			c.cacheParams(au)
			if slices.ContainsFunc(au, domain.IsIDR) && c.sps != nil && c.pps != nil {
				return au, nil
			}
		case <-t.C:
			return nil, fmt.Errorf("no keyframe from screenrecord within %s: %w", c.cfg.opts.KeyframeTimeout, domain.ErrDeviceUnavailable)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.quit:
			return nil, errClosed
		}
	}
}

var errClosed = errors.New("capture closed")

// cacheParams keeps the latest SPS and PPS.
func (c *screenCapture) cacheParams(au [][]byte) {
	for _, n := range au {
		switch domain.NALType(n) {
		case domain.NALTypeSPS:
			if c.sps != nil && !bytes.Equal(c.sps, n) {
				// A restarted screenrecord on a rotated display has
				// another size.
				if w, h, err := domain.SPSSize(n); err == nil {
					c.infoMu.Lock()
					c.info.Width, c.info.Height = w, h
					c.info.ProfileLevelID = domain.ProfileLevelID(n)
					c.infoMu.Unlock()
				}
			}
			c.sps = n
		case domain.NALTypePPS:
			c.pps = n
		}
	}
}

// startScreenCapture starts the first screenrecord and waits for its first
// keyframe.
func startScreenCapture(ctx context.Context, cfg screenConfig) (*screenCapture, error) {
	c := &screenCapture{cfg: cfg, quit: make(chan struct{}), polled: make(chan struct{}), start: time.Now()}
	c.wantBitrate.Store(int64(cfg.bitrate))
	g, err := c.startSegment(ctx, cfg.bitrate)
	if err != nil {
		return nil, err
	}
	first, err := c.waitKeyframe(ctx, g)
	if err != nil {
		g.close()
		return nil, err
	}
	c.info = domain.StreamInfo{Video: domain.CodecH264, Audio: domain.CodecNone, FPS: 30, ProfileLevelID: domain.ProfileLevelID(c.sps)}
	if w, h, err := domain.SPSSize(c.sps); err == nil {
		c.info.Width, c.info.Height = w, h
	} else {
		c.info.Width, c.info.Height = cfg.width, cfg.height
	}
	cfg.log.Info("screenrecord started", "took", time.Since(c.start).Round(time.Millisecond),
		"size", fmt.Sprintf("%dx%d", c.info.Width, c.info.Height), "profile_level_id", c.info.ProfileLevelID, "bitrate", cfg.bitrate)
	f := c.frame(first)
	now := time.Now()
	c.st = &stream{cur: g, restart: time.NewTimer(c.restartIn(g)), tick: time.NewTicker(time.Second), lastBitrate: now, lastFrame: now, first: &f}
	go c.pollOrientation()
	return c, nil
}

// pollOrientation asks the display's orientation now and every
// Options.OrientationPoll until Close: screenrecord keeps its video size
// when the screen turns and letterboxes the turned picture into it, so
// only the device can say how input maps. A failed ask is retried at the
// next tick.
func (c *screenCapture) pollOrientation() {
	defer close(c.polled)
	every := c.cfg.opts.OrientationPoll
	if c.cfg.orientation == nil || c.cfg.onResize == nil || every < 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The ask in flight ends with the capture.
	c.pollMu.Lock()
	c.pollCancel = cancel
	c.pollMu.Unlock()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if w, h, err := c.cfg.orientation(ctx); err == nil {
			c.cfg.onResize(w, h)
		} else if ctx.Err() == nil {
			c.cfg.log.Debug("display orientation unknown", "err", err)
		}
		select {
		case <-c.quit:
			return
		case <-tick.C:
		}
	}
}

// frame turns an access unit into a frame: AUD, SPS and PPS dropped, the
// cached SPS and PPS put before an IDR, an SEI ingest timestamp before the
// first slice, wall-clock PTS.
func (c *screenCapture) frame(au [][]byte) domain.Frame {
	now := time.Now()
	key := slices.ContainsFunc(au, domain.IsIDR)
	size := 64
	for _, n := range au {
		size += len(n) + 4
	}
	if key {
		size += len(c.sps) + len(c.pps) + 8
	}
	data := make([]byte, 0, size)
	if key {
		data = append(append(data, domain.AnnexBStartCode...), c.sps...)
		data = append(append(data, domain.AnnexBStartCode...), c.pps...)
	}
	stamped := false
	for _, n := range au {
		t := domain.NALType(n)
		if t == domain.NALTypeSPS || t == domain.NALTypePPS || t == domain.NALTypeAUD {
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
	return domain.Frame{Kind: domain.KindVideo, Data: data, PTS: pts, Keyframe: key, Ingest: now}
}

// stream is the state of a capture's segments, advanced by ReadFrame on
// its caller's goroutine: a frame goes from the segment's reader to the
// caller with one hand-off, not through a goroutine of its own.
type stream struct {
	cur, next   *segment
	nextKey     <-chan time.Time // keyframe deadline of next
	restart     *time.Timer
	tick        *time.Ticker
	lastBitrate time.Time
	lastFrame   time.Time
	first       *domain.Frame // the first keyframe, not yet read
}

// restartIn is how long until g should be followed by the next segment.
func (c *screenCapture) restartIn(g *segment) time.Duration {
	if c.cfg.unlimited {
		return 365 * 24 * time.Hour
	}
	return time.Until(g.started.Add(c.cfg.opts.TimeLimit - c.cfg.opts.RestartLead))
}

// startNext starts the next segment unless one is starting; a failure is
// retried soon.
func (c *screenCapture) startNext(st *stream, reason string) {
	if st.next != nil {
		return
	}
	bitrate := int(c.wantBitrate.Load())
	g, err := c.startSegment(context.Background(), bitrate)
	if err != nil {
		c.cfg.log.Warn("start next screenrecord failed", "reason", reason, "err", err)
		c.cfg.brk.Fail(err)
		st.restart.Reset(500 * time.Millisecond)
		return
	}
	st.next = g
	st.nextKey = time.After(c.cfg.opts.KeyframeTimeout)
	c.cfg.log.Debug("next screenrecord started", "reason", reason, "bitrate", bitrate)
}

// end stops the stream's segments and timers; ReadFrame then returns err.
// The caller holds readMu.
func (c *screenCapture) end(err error) {
	st := c.st
	if st == nil {
		return
	}
	c.st, c.err = nil, err
	st.restart.Stop()
	st.tick.Stop()
	if st.cur != nil {
		st.cur.close()
	}
	if st.next != nil {
		st.next.close()
	}
}

// step returns the next frame of the current segment; meanwhile it starts
// the next segment ahead of the time limit or for a new bitrate and
// switches to it at its first keyframe. A non-nil error with fatal set
// ends the capture; ctx ending or Close does not end it here.
func (c *screenCapture) step(ctx context.Context) (f domain.Frame, fatal bool, err error) {
	st := c.st
	if st.first != nil {
		f, st.first = *st.first, nil
		return f, false, nil
	}
	opts := c.cfg.opts
	for {
		var nextAUs <-chan [][]byte
		if st.next != nil {
			nextAUs = st.next.aus
		}
		select {
		case <-c.quit:
			return f, false, errClosed
		case <-ctx.Done():
			return f, false, ctx.Err()
		case au, ok := <-st.cur.aus:
			if !ok {
				cur := st.cur
				<-cur.done
				if st.next != nil {
					// The next one takes over at its keyframe; wait for it.
					cur.aus = nil
					continue
				}
				age := time.Since(cur.started)
				if errors.Is(cur.err, io.EOF) && !c.cfg.unlimited && age >= opts.TimeLimit-opts.RestartLead {
					// Reached the time limit before the next was ready.
					c.startNext(st, "time limit")
					if st.next == nil {
						return f, true, fmt.Errorf("restart screenrecord on %s: %w", c.cfg.serial, domain.ErrDeviceUnavailable)
					}
					cur.aus = nil
					continue
				}
				err := fmt.Errorf("screenrecord on %s ended after %s (early EOF: %v): %w", c.cfg.serial, age.Round(time.Millisecond), cur.err, domain.ErrDeviceUnavailable)
				c.cfg.brk.Fail(err)
				return f, true, err
			}
			c.cacheParams(au)
			st.lastFrame = time.Now()
			return c.frame(au), false, nil
		case au, ok := <-nextAUs:
			if !ok {
				<-st.next.done
				c.cfg.log.Warn("next screenrecord ended before its first keyframe", "err", st.next.err)
				c.cfg.brk.Fail(fmt.Errorf("next screenrecord: %w", st.next.err))
				st.next, st.nextKey = nil, nil
				if st.cur.aus == nil {
					return f, true, fmt.Errorf("screenrecord on %s could not be restarted: %w", c.cfg.serial, domain.ErrDeviceUnavailable)
				}
				st.restart.Reset(500 * time.Millisecond)
				continue
			}
			// Keep the current stream's parameters until the switch.
			if !slices.ContainsFunc(au, domain.IsIDR) {
				continue
			}
			gap := time.Since(st.lastFrame)
			st.cur.close()
			c.cacheParams(au)
			st.cur, st.next, st.nextKey = st.next, nil, nil
			if c.sps == nil || c.pps == nil {
				return f, true, fmt.Errorf("screenrecord on %s: keyframe without SPS/PPS: %w", c.cfg.serial, ErrProtocol)
			}
			f = c.frame(au)
			st.lastFrame = time.Now()
			if w, h, serr := domain.SPSSize(c.sps); serr == nil && (w != c.info.Width || h != c.info.Height) {
				c.cfg.log.Warn("screenrecord size changed across restart", "from", fmt.Sprintf("%dx%d", c.info.Width, c.info.Height), "to", fmt.Sprintf("%dx%d", w, h))
			}
			c.cfg.onRestart()
			c.cfg.log.Info("screenrecord restarted seamlessly", "bitrate", st.cur.bitrate, "gap", gap.Round(time.Millisecond))
			st.restart.Reset(c.restartIn(st.cur))
			return f, false, nil
		case <-st.nextKey:
			c.cfg.log.Warn("next screenrecord gave no keyframe", "timeout", opts.KeyframeTimeout)
			c.cfg.brk.Fail(fmt.Errorf("next screenrecord: no keyframe within %s: %w", opts.KeyframeTimeout, domain.ErrDeviceUnavailable))
			st.next.close()
			st.next, st.nextKey = nil, nil
			if st.cur.aus == nil {
				return f, true, fmt.Errorf("screenrecord on %s could not be restarted: %w", c.cfg.serial, domain.ErrDeviceUnavailable)
			}
			st.restart.Reset(500 * time.Millisecond)
		case <-st.restart.C:
			c.startNext(st, "time limit")
		case <-st.tick.C:
			want := int(c.wantBitrate.Load())
			if st.next == nil && want > 0 && want != st.cur.bitrate && time.Since(st.lastBitrate) >= opts.BitrateInterval {
				st.lastBitrate = time.Now()
				c.startNext(st, "bitrate "+strconv.Itoa(want))
			}
		}
	}
}

// Info describes the stream: H.264 at the size and profile its SPS says.
func (c *screenCapture) Info() domain.StreamInfo {
	c.infoMu.Lock()
	defer c.infoMu.Unlock()
	return c.info
}

// ReadFrame returns the next access unit. It returns an error wrapping
// domain.ErrDeviceUnavailable when screenrecord ended early or could not be
// restarted (and that error again afterwards), and an error after Close.
func (c *screenCapture) ReadFrame(ctx context.Context) (domain.Frame, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	select {
	case <-c.quit:
		return domain.Frame{}, errClosed
	default:
	}
	if c.st == nil {
		return domain.Frame{}, c.err
	}
	f, fatal, err := c.step(ctx)
	if fatal {
		c.end(err)
	}
	return f, err
}

// RequestKeyframe is ignored: screenrecord cannot make a keyframe on
// demand. Late joiners start from the group of pictures the fanout's ring
// keeps.
func (c *screenCapture) RequestKeyframe() {}

// SetBitrate restarts screenrecord with the new --bit-rate, seamlessly and
// at most once per BitrateInterval.
func (c *screenCapture) SetBitrate(bps int) {
	if bps > 0 {
		c.wantBitrate.Store(int64(bps))
	}
}

// Close stops the capture and its screenrecord processes and waits for
// them. Safe to call more than once.
func (c *screenCapture) Close() error {
	c.once.Do(func() {
		close(c.quit)
		c.pollMu.Lock()
		if c.pollCancel != nil {
			c.pollCancel()
		}
		c.pollMu.Unlock()
	})
	// ReadFrame returns on quit, so this waits at most for a frame in hand.
	c.readMu.Lock()
	c.end(errClosed)
	c.readMu.Unlock()
	<-c.polled
	return nil
}
