package adb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

var (
	_ ports.ScreenSource    = (*Source)(nil)
	_ ports.DeviceInput     = (*Source)(nil)
	_ ports.DeviceFiles     = (*Source)(nil)
	_ ports.DeviceClipboard = (*Source)(nil)
)

// Backends.
const (
	BackendScreenrecord = "screenrecord"
)

// Options configures a Source.
type Options struct {
	// Addr is the adb server, host:port.
	Addr string
	// Serials, when not empty, is the allow-list of devices to expose.
	Serials []string
	// Backend is the capture backend: "screenrecord" (default) or "scrcpy".
	Backend string
	// ScrcpyServer is the path of the scrcpy-server jar to push (needed by
	// the scrcpy backend); ScrcpyVersion its version (default
	// DefaultScrcpyVersion), which the server checks.
	ScrcpyServer  string
	ScrcpyVersion string
	// ScrcpyAudio forwards the device's audio (Opus; Android 11+) with the
	// scrcpy backend.
	ScrcpyAudio bool
	// Scrcpy holds the other scrcpy-server options.
	Scrcpy ScrcpyOptions
	// OrientationPoll is how often a screenrecord capture asks the device
	// its display orientation (`dumpsys window displays`), so input maps
	// to a rotated screen letterboxed in the stream (default 2 s; negative
	// = never). scrcpy needs no poll: its video follows the rotation.
	OrientationPoll time.Duration
	// MaxWidth and MaxHeight bound the capture size (0 = the device's own);
	// the aspect ratio is kept.
	MaxWidth, MaxHeight int
	// TimeLimit is screenrecord's --time-limit (default 180 s, its maximum
	// on older Android). The capture restarts seamlessly before it.
	TimeLimit time.Duration
	// RestartLead is how long before the time limit the next screenrecord
	// starts (default 2 s); the switch happens at its first keyframe.
	RestartLead time.Duration
	// KeyframeTimeout bounds the wait for a capture's first keyframe
	// (default 5 s); missing it counts as a device failure.
	KeyframeTimeout time.Duration
	// IdleFlush ends a pending frame when the stream stays idle this long
	// (default 50 ms).
	IdleFlush time.Duration
	// BitrateInterval is the least time between two restarts for a bitrate
	// change (default 5 s).
	BitrateInterval time.Duration
	// CommandTimeout bounds one-shot device commands (default 10 s).
	CommandTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between reconnects to the
	// adb server for device tracking (defaults 500 ms and 10 s).
	RetryMin, RetryMax time.Duration
	// PoolSize bounds concurrent command connections (default 4).
	PoolSize int
	// InputQueue bounds the input commands waiting on a device's shell
	// (default DefaultInputQueue); past it Input returns
	// domain.ErrInputBusy.
	InputQueue int
	// Breaker tunes each device's circuit breaker.
	Breaker BreakerOptions
}

func (o *Options) defaults() {
	if o.Backend == "" {
		o.Backend = BackendScreenrecord
	}
	if o.ScrcpyVersion == "" {
		o.ScrcpyVersion = DefaultScrcpyVersion
	}
	if o.TimeLimit <= 0 {
		o.TimeLimit = 180 * time.Second
	}
	if o.RestartLead <= 0 {
		o.RestartLead = 2 * time.Second
	}
	if o.RestartLead >= o.TimeLimit {
		o.RestartLead = o.TimeLimit / 2
	}
	if o.KeyframeTimeout <= 0 {
		o.KeyframeTimeout = 5 * time.Second
	}
	if o.IdleFlush <= 0 {
		o.IdleFlush = 50 * time.Millisecond
	}
	if o.BitrateInterval <= 0 {
		o.BitrateInterval = 5 * time.Second
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = 10 * time.Second
	}
	if o.InputQueue <= 0 {
		o.InputQueue = DefaultInputQueue
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 500 * time.Millisecond
	}
	if o.OrientationPoll == 0 {
		o.OrientationPoll = 2 * time.Second
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(10*time.Second, o.RetryMin)
	}
}

// Source is the ADB screen source and input sink: a registry of the devices
// the adb server reports, fed live by Run. It is safe for concurrent use.
type Source struct {
	client *Client
	opts   Options
	log    *slog.Logger

	mu        sync.Mutex
	allow     map[string]bool // the serials exposed, nil = all; SetSerials replaces it
	last      []Entry         // the server's last device list, allow-list not applied
	devices   map[string]*device
	breakers  map[string]*breaker       // kept across unplug/replug
	wg        sync.WaitGroup            // size probes and input shells
	inputOpen sync.Mutex                // serializes opening input shells
	scrcpy    map[string]*scrcpyCapture // running scrcpy captures, for input; guarded by mu

	clipMu    sync.Mutex // guards clipWatch and clipNext; never held across a call out
	clipWatch map[int]func(domain.DeviceID, string)
	clipNext  int
}

// device is one entry of the registry; guarded by Source.mu.
type device struct {
	entry    Entry
	width    int
	height   int
	probing  bool
	restarts uint64
	noLimit  int8 // screenrecord accepts --time-limit 0: 0 unknown, 1 yes, -1 no
	audio    bool // the last capture carried sound
	input    *inputShell
	// rotated: the display is turned a quarter from its `wm size`
	// orientation (learnt from scrcpy's video size or screenrecord's
	// orientation poll), so its current size is height×width.
	rotated bool
	// clipboard is the last text the device pushed; clipAt when.
	clipboard string
	clipAt    time.Time
}

// New returns a Source for the adb server at opts.Addr. It starts nothing:
// call Run to track devices.
func New(opts Options, log *slog.Logger) (*Source, error) {
	opts.defaults()
	if opts.Addr == "" {
		return nil, errors.New("new adb source: empty adb server address")
	}
	switch opts.Backend {
	case BackendScreenrecord:
	case BackendScrcpy:
		if _, err := os.Stat(opts.ScrcpyServer); err != nil {
			return nil, fmt.Errorf("new adb source: scrcpy backend needs the scrcpy-server jar: %w", err)
		}
		if err := opts.Scrcpy.Validate(); err != nil {
			return nil, fmt.Errorf("new adb source: %w", err)
		}
	default:
		return nil, fmt.Errorf("new adb source: unknown backend %q (screenrecord, scrcpy)", opts.Backend)
	}
	s := &Source{
		client:   NewClient(opts.Addr, ClientOptions{PoolSize: opts.PoolSize}),
		opts:     opts,
		log:      log,
		devices:  make(map[string]*device),
		breakers: make(map[string]*breaker),
		scrcpy:   make(map[string]*scrcpyCapture),
	}
	s.allow = allowList(opts.Serials)
	return s, nil
}

// allowList is the set of serials, nil (every device) when there are none.
func allowList(serials []string) map[string]bool {
	if len(serials) == 0 {
		return nil
	}
	allow := make(map[string]bool, len(serials))
	for _, serial := range serials {
		allow[serial] = true
	}
	return allow
}

// SetSerials replaces the allow-list (empty: every device) while the
// source runs, as a configuration reload does: a device the server reports
// that is now allowed appears at once (its size probe bounded by ctx), one
// no longer allowed vanishes as if unplugged. Captures already running are
// not stopped here; the app sees the device gone.
func (s *Source) SetSerials(ctx context.Context, serials []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allow = allowList(serials)
	if s.last != nil {
		s.applyLocked(ctx, s.last)
	}
}

// Client returns the source's adb client.
func (s *Source) Client() *Client { return s.client }

// Run tracks the adb server's devices until ctx ends, then closes every
// input shell and returns nil. When the server cannot be reached or the
// connection drops it retries with exponential backoff between RetryMin
// and RetryMax, logging each failure; meanwhile known devices are shown
// offline.
func (s *Source) Run(ctx context.Context) error {
	defer s.shutdown()
	backoff := s.opts.RetryMin
	failures := 0
	for {
		start := time.Now()
		got := false
		err := s.client.TrackDevices(ctx, func(list []Entry) {
			if !got && failures > 0 {
				s.log.Info("adb device tracking restored", "addr", s.opts.Addr, "after_failures", failures)
			}
			got = true
			s.update(ctx, list)
		})
		if ctx.Err() != nil {
			return nil
		}
		if got {
			failures = 0
			if time.Since(start) > s.opts.RetryMax {
				backoff = s.opts.RetryMin
			}
		}
		failures++
		s.markOffline()
		// Warn once per outage (and every 30th attempt), so a machine
		// without an adb server is not flooded; the rest at debug.
		level := slog.LevelDebug
		if failures == 1 || failures%30 == 0 {
			level = slog.LevelWarn
		}
		s.log.Log(ctx, level, "adb device tracking lost; retrying", "addr", s.opts.Addr, "err", err, "retry_in", backoff, "attempt", failures)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, s.opts.RetryMax)
	}
}

func (s *Source) shutdown() {
	s.mu.Lock()
	for _, d := range s.devices {
		if d.input != nil {
			d.input.close()
			d.input = nil
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// markOffline shows every known device offline while tracking is down.
func (s *Source) markOffline() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		d.entry.State = "offline"
	}
}

// update applies a whole device list from the server.
func (s *Source) update(ctx context.Context, list []Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = list
	s.applyLocked(ctx, list)
}

// applyLocked makes the registry the allowed devices of list; s.mu held.
func (s *Source) applyLocked(ctx context.Context, list []Entry) {
	seen := make(map[string]bool, len(list))
	for _, e := range list {
		if s.allow != nil && !s.allow[e.Serial] {
			continue
		}
		seen[e.Serial] = true
		d, ok := s.devices[e.Serial]
		if !ok {
			d = &device{}
			s.devices[e.Serial] = d
			s.log.Info("adb device appeared", "device_id", e.Serial, "state", e.State, "model", e.Model)
		} else if d.entry.State != e.State {
			s.log.Info("adb device state", "device_id", e.Serial, "from", d.entry.State, "to", e.State)
		}
		d.entry = e
		if e.State == "device" && d.width == 0 && !d.probing {
			d.probing = true
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.probeSize(ctx, e.Serial)
			}()
		}
		if e.State != "device" && d.input != nil {
			d.input.close()
			d.input = nil
		}
	}
	for serial, d := range s.devices {
		if seen[serial] {
			continue
		}
		s.log.Info("adb device vanished", "device_id", serial)
		if d.input != nil {
			d.input.close()
		}
		delete(s.devices, serial)
	}
}

// Clipboard returns the last clipboard text device id pushed (scrcpy's
// clipboard autosync, while a scrcpy capture runs) and when; "" and the
// zero time before any. domain.ErrDeviceNotFound if no such device.
func (s *Source) Clipboard(id domain.DeviceID) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[string(id)]
	if !ok {
		return "", time.Time{}, fmt.Errorf("adb device %q: %w", id, domain.ErrDeviceNotFound)
	}
	return d.clipboard, d.clipAt, nil
}

// WatchClipboard calls fn with every clipboard text a device pushes
// (scrcpy's clipboard autosync, while a scrcpy capture runs), from the
// capture's control reader, until cancel is called. fn must not block.
func (s *Source) WatchClipboard(fn func(id domain.DeviceID, text string)) (cancel func()) {
	s.clipMu.Lock()
	defer s.clipMu.Unlock()
	if s.clipWatch == nil {
		s.clipWatch = map[int]func(domain.DeviceID, string){}
	}
	k := s.clipNext
	s.clipNext++
	s.clipWatch[k] = fn
	return func() {
		s.clipMu.Lock()
		defer s.clipMu.Unlock()
		delete(s.clipWatch, k)
	}
}

func (s *Source) clipboardChanged(id domain.DeviceID, text string) {
	s.clipMu.Lock()
	fns := make([]func(domain.DeviceID, string), 0, len(s.clipWatch))
	for _, fn := range s.clipWatch {
		fns = append(fns, fn)
	}
	s.clipMu.Unlock()
	for _, fn := range fns {
		fn(id, text)
	}
}

var curSizeRE = regexp.MustCompile(`\bcur=(\d+)x(\d+)`)

// parseDisplayCur reads the current (rotated) size of the first display
// from `dumpsys window displays`: its "init=WxH DPI cur=WxH app=…" line.
func parseDisplayCur(out string) (w, h int, ok bool) {
	m := curSizeRE.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, false
	}
	w, err1 := strconv.Atoi(m[1])
	h, err2 := strconv.Atoi(m[2])
	if err1 != nil || err2 != nil || w <= 0 || h <= 0 || w > 1<<14 || h > 1<<14 {
		return 0, 0, false
	}
	return w, h, true
}

// displayOrientation asks the device its display's current size.
func (s *Source) displayOrientation(ctx context.Context, serial string) (int, int, error) {
	cctx, cancel := context.WithTimeout(ctx, s.opts.CommandTimeout)
	defer cancel()
	out, err := s.client.Output(cctx, serial, "dumpsys window displays")
	if err != nil {
		return 0, 0, err
	}
	w, h, ok := parseDisplayCur(string(out))
	if !ok {
		return 0, 0, fmt.Errorf("dumpsys window displays said %q: %w", truncate(string(out), 80), ErrProtocol)
	}
	return w, h, nil
}

var sizeRE = regexp.MustCompile(`(Physical|Override) size:\s*(\d+)x(\d+)`)

// parseWMSize reads `wm size` output; an override wins over the physical
// size.
func parseWMSize(out string) (w, h int, ok bool) {
	for _, m := range sizeRE.FindAllStringSubmatch(out, -1) {
		ww, err1 := strconv.Atoi(m[2])
		hh, err2 := strconv.Atoi(m[3])
		if err1 != nil || err2 != nil || ww <= 0 || hh <= 0 || ww > 1<<14 || hh > 1<<14 {
			continue
		}
		if m[1] == "Override" || !ok {
			w, h, ok = ww, hh, true
		}
	}
	return w, h, ok
}

// probeSize asks the device its screen size with `wm size`.
func (s *Source) probeSize(ctx context.Context, serial string) {
	w, h, err := s.screenSize(ctx, serial)
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[serial]
	if !ok {
		return
	}
	d.probing = false
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("adb device size unknown", "device_id", serial, "err", err)
		}
		return
	}
	d.width, d.height = w, h
}

func (s *Source) screenSize(ctx context.Context, serial string) (int, int, error) {
	var w, h int
	err := s.breaker(serial).Do(func() error {
		cctx, cancel := context.WithTimeout(ctx, s.opts.CommandTimeout)
		defer cancel()
		out, err := s.client.Output(cctx, serial, "wm size")
		if err != nil {
			return err
		}
		var ok bool
		if w, h, ok = parseWMSize(string(out)); !ok {
			return fmt.Errorf("wm size said %q: %w", truncate(string(out), 80), ErrProtocol)
		}
		return nil
	})
	return w, h, err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// breaker returns serial's breaker, creating it.
func (s *Source) breaker(serial string) *breaker {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.breakerLocked(serial)
}

func (s *Source) breakerLocked(serial string) *breaker {
	b, ok := s.breakers[serial]
	if !ok {
		b = newBreaker(serial, s.opts.Breaker, func(from, to domain.BreakerState) {
			s.log.Warn("adb device circuit breaker", "device_id", serial, "from", from, "to", to)
		})
		s.breakers[serial] = b
	}
	return b
}

func (s *Source) deviceLocked(serial string, d *device) domain.Device {
	name := strings.ReplaceAll(d.entry.Model, "_", " ")
	if name == "" {
		name = serial
	}
	w, h := d.size()
	return domain.Device{
		ID:              domain.DeviceID(serial),
		Name:            name,
		Model:           strings.ReplaceAll(d.entry.Model, "_", " "),
		State:           deviceState(d.entry.State),
		Width:           w,
		Height:          h,
		Backend:         s.opts.Backend,
		Breaker:         s.breakerLocked(serial).State(),
		CaptureRestarts: d.restarts,
		Audio:           d.audio,
	}
}

// size is the display's current size: `wm size`, turned when rotated.
func (d *device) size() (int, int) {
	if d.rotated {
		return d.height, d.width
	}
	return d.width, d.height
}

// setOrientation records that the display's current picture is w×h (a
// rotation turns `wm size`'s portrait into landscape): only the aspect
// matters, since a capture may be scaled.
func (s *Source) setOrientation(id domain.DeviceID, w, h int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[string(id)]
	if !ok || d.width == d.height || w == h || d.width == 0 {
		return
	}
	rotated := (w > h) != (d.width > d.height)
	if rotated != d.rotated {
		d.rotated = rotated
		cw, ch := d.size()
		s.log.Info("adb device rotated", "device_id", string(id), "size", fmt.Sprintf("%dx%d", cw, ch))
	}
}

// Devices lists the devices the adb server reports now (allow-listed), by
// serial. It never fails.
func (s *Source) Devices(context.Context) ([]domain.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]domain.Device, 0, len(s.devices))
	for serial, d := range s.devices {
		out = append(out, s.deviceLocked(serial, d))
	}
	slices.SortFunc(out, func(a, b domain.Device) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out, nil
}

// Device returns the device with serial id or domain.ErrDeviceNotFound.
func (s *Source) Device(_ context.Context, id domain.DeviceID) (domain.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[string(id)]
	if !ok {
		return domain.Device{}, fmt.Errorf("adb device %q: %w", id, domain.ErrDeviceNotFound)
	}
	return s.deviceLocked(string(id), d), nil
}

// online returns the device's current size, or ErrDeviceNotFound /
// ErrDeviceUnavailable.
func (s *Source) online(id domain.DeviceID) (w, h int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[string(id)]
	if !ok {
		return 0, 0, fmt.Errorf("adb device %q: %w", id, domain.ErrDeviceNotFound)
	}
	if d.entry.State != "device" {
		return 0, 0, fmt.Errorf("adb device %q is %s: %w", id, d.entry.State, domain.ErrDeviceUnavailable)
	}
	w, h = d.size()
	return w, h, nil
}

func (s *Source) countRestart(id domain.DeviceID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.devices[string(id)]; ok {
		d.restarts++
	}
}

// captureSize fits w×h within the limits, keeping the aspect ratio, in
// multiples of 8; 0,0 means no --size.
func captureSize(w, h, maxW, maxH int) (int, int) {
	if w <= 0 || h <= 0 || (maxW <= 0 && maxH <= 0) {
		return 0, 0
	}
	scale := 1.0
	if maxW > 0 && w > maxW {
		scale = min(scale, float64(maxW)/float64(w))
	}
	if maxH > 0 && h > maxH {
		scale = min(scale, float64(maxH)/float64(h))
	}
	if scale == 1.0 {
		return 0, 0
	}
	cw, ch := int(float64(w)*scale)/8*8, int(float64(h)*scale)/8*8
	if cw <= 0 || ch <= 0 {
		return 0, 0
	}
	return cw, ch
}

// maxTimeLimit is screenrecord's limit before Android 14.
const maxTimeLimit = 180 * time.Second

// noTimeLimit reports whether the device's screenrecord accepts
// --time-limit 0 (Android 14+ says "Set to 0" in its --help), asking once
// per plug.
func (s *Source) noTimeLimit(ctx context.Context, serial string) bool {
	s.mu.Lock()
	d, ok := s.devices[serial]
	known := ok && d.noLimit != 0
	yes := ok && d.noLimit > 0
	s.mu.Unlock()
	if !ok || known {
		return yes
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.CommandTimeout)
	defer cancel()
	out, err := s.client.Output(cctx, serial, "screenrecord --help")
	if err != nil {
		return false // ask again next time
	}
	yes = strings.Contains(string(out), "Set to 0")
	s.mu.Lock()
	if d, ok := s.devices[serial]; ok {
		d.noLimit = -1
		if yes {
			d.noLimit = 1
		}
	}
	s.mu.Unlock()
	return yes
}

// Open starts screenrecord on the device and returns once its first
// keyframe arrived. It returns domain.ErrDeviceNotFound when the device is
// not attached, domain.ErrDeviceUnavailable (wrapped) when it is offline or
// unauthorized, its breaker is open, or the start failed (early EOF, no
// keyframe within KeyframeTimeout, FAIL from the server); those failures
// count against the device's breaker. Cancelling ctx aborts the start only.
func (s *Source) Open(ctx context.Context, id domain.DeviceID, opts domain.CaptureOptions) (ports.Capture, error) {
	w, h, err := s.online(id)
	if err != nil {
		return nil, err
	}
	if w == 0 {
		// The probe at plug time failed or is still running: ask now.
		if pw, ph, perr := s.screenSize(ctx, string(id)); perr == nil {
			w, h = pw, ph
			s.mu.Lock()
			if d, ok := s.devices[string(id)]; ok {
				d.width, d.height = w, h
			}
			s.mu.Unlock()
		}
	}
	maxW, maxH := s.opts.MaxWidth, s.opts.MaxHeight
	if opts.MaxWidth > 0 && (maxW == 0 || opts.MaxWidth < maxW) {
		maxW = opts.MaxWidth
	}
	if opts.MaxHeight > 0 && (maxH == 0 || opts.MaxHeight < maxH) {
		maxH = opts.MaxHeight
	}
	cw, ch := captureSize(w, h, maxW, maxH)
	brk := s.breaker(string(id))
	// A secondary capture (a wall tile) is always a screenrecord of its
	// own: a second scrcpy server would take the device's control socket
	// and clipboard from the main one.
	if s.opts.Backend == BackendScrcpy && !opts.Secondary {
		return s.openScrcpy(ctx, id, brk, max(cw, ch), opts.BitrateBps)
	}
	unlimited := s.opts.TimeLimit >= maxTimeLimit && s.noTimeLimit(ctx, string(id))
	var c *screenCapture
	err = brk.Do(func() error {
		var err error
		c, err = startScreenCapture(ctx, screenConfig{
			client: s.client, serial: string(id), opts: s.opts, unlimited: unlimited,
			width: cw, height: ch, bitrate: opts.BitrateBps,
			brk: brk, onRestart: func() { s.countRestart(id) },
			orientation: func(ctx context.Context) (int, int, error) { return s.displayOrientation(ctx, string(id)) },
			onResize:    func(w, h int) { s.setOrientation(id, w, h) },
			log:         s.log.With("device_id", string(id)),
		})
		return err
	})
	if err != nil {
		if !errors.Is(err, domain.ErrDeviceUnavailable) && !errors.Is(err, domain.ErrDeviceNotFound) && ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", domain.ErrDeviceUnavailable, err)
		}
		return nil, fmt.Errorf("open screenrecord on %s: %w", id, err)
	}
	return c, nil
}

func (s *Source) openScrcpy(ctx context.Context, id domain.DeviceID, brk *breaker, maxSize, bitrate int) (ports.Capture, error) {
	var c *scrcpyCapture
	err := brk.Do(func() error {
		var err error
		c, err = startScrcpyCapture(ctx, scrcpyConfig{
			client: s.client, serial: string(id), opts: s.opts, maxSize: maxSize, bitrate: bitrate, brk: brk,
			log:     s.log.With("device_id", string(id)),
			pushJar: func(ctx context.Context) error { return s.pushScrcpyJar(ctx, string(id)) },
			register: func(c *scrcpyCapture) {
				s.mu.Lock()
				s.scrcpy[string(id)] = c
				if d, ok := s.devices[string(id)]; ok {
					d.audio = c.info.Audio == domain.CodecOpus
				}
				s.mu.Unlock()
			},
			onResize: func(w, h int) { s.setOrientation(id, w, h) },
			onClipboard: func(text string) {
				s.mu.Lock()
				if d, ok := s.devices[string(id)]; ok {
					d.clipboard, d.clipAt = text, time.Now()
				}
				s.mu.Unlock()
				s.clipboardChanged(id, text)
			},
			onClose: func(c *scrcpyCapture) {
				s.mu.Lock()
				if s.scrcpy[string(id)] == c {
					delete(s.scrcpy, string(id))
				}
				s.mu.Unlock()
			},
		})
		return err
	})
	if err != nil {
		if !errors.Is(err, domain.ErrDeviceUnavailable) && !errors.Is(err, domain.ErrDeviceNotFound) && ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", domain.ErrDeviceUnavailable, err)
		}
		return nil, fmt.Errorf("open scrcpy on %s: %w", id, err)
	}
	return c, nil
}
