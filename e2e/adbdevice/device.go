package adbdevice

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// AuthMode says how the device answers the adb server's CNXN.
type AuthMode int

const (
	// AuthNone answers CNXN with CNXN at once, as a device with adb
	// authentication disabled (or an emulator) does.
	AuthNone AuthMode = iota
	// AuthAccept sends an AUTH token and accepts the first signature or
	// public key, as a device whose user always taps "Allow".
	AuthAccept
	// AuthReject sends AUTH tokens and never accepts, so adb lists the
	// device as "unauthorized". FaultUnauthorized does the same on a
	// running device.
	AuthReject
)

// Options configure a Device. The zero value is a 1280x720 Android 11
// (SDK 30) phone listening on a free loopback port.
type Options struct {
	// Addr is the TCP address to listen on. Empty means 127.0.0.1 with a
	// free port outside 5555–5585 (the adb server claims those as
	// emulators).
	Addr string
	// Product, Model and Device fill the banner's ro.product.name,
	// ro.product.model and ro.product.device, which `adb devices -l` shows
	// as product:, model: and device:. Defaults "mediasvc_emu",
	// "Mediasvc_Phone", "emu".
	Product, Model, Device string
	// SDK is ro.build.version.sdk (default 30). At 34 and above
	// screenrecord accepts --time-limit 0 (no limit) and says so in its
	// --help; below, the limit is 1–180 s.
	SDK int
	// Width and Height are the physical display size `wm size` reports
	// (default 1280x720). The clip is not scaled to it.
	Width, Height int
	// Features are advertised in the banner (default shell_v2 and cmd).
	// Never put delayed_ack here for adb 29.
	Features []string
	// MaxData is the largest payload the device accepts and sends (default
	// 256 KiB; the handshake lowers it to the server's if smaller).
	MaxData uint32
	// Auth is how CNXN is answered (default AuthNone).
	Auth AuthMode
	// Props are extra getprop properties, or overrides.
	Props map[string]string
	// Clip is the Annex-B H.264 stream screenrecord emits, looped. It must
	// start with SPS, PPS and an IDR picture. Empty means the file at
	// ClipPath.
	Clip []byte
	// ClipPath is read when Clip is empty. Empty means the committed demo
	// clip, adapters/demo/media/demo.h264 of this module.
	ClipPath string
	// RotatedClip is streamed by screenrecord runs started while
	// FaultRotated is on. Empty means ClipPortrait (720x1280, its own SPS).
	RotatedClip []byte
	// Audio is the Ogg Opus stream (20 ms packets) emulated scrcpy servers
	// send on an audio socket, looped. Empty means the file at AudioPath,
	// or DefaultAudioPath; if that cannot be read or parsed, the audio
	// socket answers "disabled" (codec id 0).
	Audio     []byte
	AudioPath string
	// FPS paces screenrecord (default 30).
	FPS int
	// RepeatParameterSets keeps the clip's SPS/PPS before every IDR. The
	// default, like real screenrecord, sends them once at the start (the
	// clip's IDRs are kept: the GOP is the clip's).
	RepeatParameterSets bool
	// InputDelay is how long each input command takes before it is
	// recorded and returns (a real `input` starts a JVM: hundreds of ms).
	// Default 0.
	InputDelay time.Duration
	// RecordStartDelay is how long screenrecord takes to start before its
	// first bytes (real: a few hundred ms). Default 0.
	RecordStartDelay time.Duration
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
}

// Fault is a misbehaviour a test switches on and off with SetFault, safely
// while the device runs.
type Fault uint32

const (
	// FaultStall stops the device sending anything on any connection until
	// switched off (messages wait; nothing is lost).
	FaultStall Fault = 1 << iota
	// FaultDropMidStream makes every running or new screenrecord close the
	// device's TCP connection abruptly once it has sent about half a
	// second of video.
	FaultDropMidStream
	// FaultRefuseOpen answers every OPEN with CLSE, so every service fails.
	FaultRefuseOpen
	// FaultIgnoreConnect makes new connections never get an answer to CNXN;
	// adb leaves such a device offline.
	FaultIgnoreConnect
	// FaultStaticScreen makes screenrecord send nothing after the first
	// picture, as real screenrecord does while the screen does not change;
	// it still ends at its time limit.
	FaultStaticScreen
	// FaultGarbage inserts random bytes (no start codes) before every
	// picture screenrecord sends.
	FaultGarbage
	// FaultRotated turns the display to portrait: `wm size` reports the
	// size swapped; screenrecord runs started while it is on stream
	// RotatedClip (720x1280, a different SPS); a run already going keeps
	// its size, as real screenrecord does, but re-sends its SPS/PPS before
	// its next IDR whenever the rotation changes.
	FaultRotated
	// FaultUnauthorized answers new connections' CNXN with AUTH and rejects
	// every signature, as AuthReject does.
	FaultUnauthorized
)

// Device is an emulated Android device. Create it with New, then Start.
// All methods are safe for concurrent use.
type Device struct {
	opts   Options
	log    *slog.Logger
	clip   *clip
	rclip  *clip
	opus   [][]byte // OpusHead, OpusTags, then 20 ms packets; nil: no audio
	faults atomic.Uint32

	mu       sync.Mutex
	ln       net.Listener
	addr     string
	conns    map[*conn]struct{}
	inputs   []string
	inputCh  chan struct{} // closed and replaced on each input
	files    map[string]*File
	records  []Recording
	abstract map[string]func(net.Conn)
	// listeners queue localabstract connections for emulated servers.
	listeners map[string]chan net.Conn
	tcp       map[int]func(net.Conn)
	commands  map[string]CommandFunc
	closed    bool
	connects  int
	// scrcpyRuns are the arguments of each emulated scrcpy server start.
	scrcpyRuns [][]string
	// ignored are events the device dropped as the real one does.
	ignored []string
	// clipboard is the device's primary clip; clipWatch the running
	// scrcpy servers' autosync listeners.
	clipboard string
	clipWatch map[int]func(string)
	clipNext  int
	installs  []Install
	wg        sync.WaitGroup // accept loop and connections
}

// File is a file pushed to the device with sync:.
type File struct {
	Data  []byte
	Mode  os.FileMode
	MTime time.Time
}

// Recording describes one screenrecord run, for assertions.
type Recording struct {
	// Args are the command's arguments, without "screenrecord".
	Args []string
	// Size is --size ("" if not given), BitRate --bit-rate (0 if not
	// given), TimeLimit the effective limit (0 = none).
	Size      string
	BitRate   int64
	TimeLimit time.Duration
	Started   time.Time
	// Ended is when the run stopped (zero while it runs).
	Ended time.Time
}

// New returns a device configured by opts, with defaults filled in. It
// reads the clip and returns an error if it cannot or if the clip holds no
// SPS, PPS and IDR picture.
func New(opts Options) (*Device, error) {
	if opts.Product == "" {
		opts.Product = "mediasvc_emu"
	}
	if opts.Model == "" {
		opts.Model = "Mediasvc_Phone"
	}
	if opts.Device == "" {
		opts.Device = "emu"
	}
	if opts.SDK == 0 {
		opts.SDK = 30
	}
	if opts.Width == 0 || opts.Height == 0 {
		opts.Width, opts.Height = 1280, 720
	}
	if opts.Features == nil {
		opts.Features = []string{"shell_v2", "cmd"}
	}
	if opts.MaxData == 0 {
		opts.MaxData = 256 * 1024
	}
	if opts.FPS <= 0 {
		opts.FPS = 30
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	data := opts.Clip
	if len(data) == 0 {
		path := opts.ClipPath
		if path == "" {
			path = DefaultClipPath()
		}
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("new adb device: read clip: %w", err)
		}
	}
	c, err := parseClip(data)
	if err != nil {
		return nil, fmt.Errorf("new adb device: %w", err)
	}
	d := &Device{
		opts:      opts,
		log:       log,
		clip:      c,
		conns:     map[*conn]struct{}{},
		inputCh:   make(chan struct{}),
		files:     map[string]*File{},
		abstract:  map[string]func(net.Conn){},
		listeners: map[string]chan net.Conn{},
		tcp:       map[int]func(net.Conn){},
		commands:  map[string]CommandFunc{},
	}
	if len(opts.RotatedClip) == 0 {
		opts.RotatedClip = portraitClip
	}
	if d.rclip, err = parseClip(opts.RotatedClip); err != nil {
		return nil, fmt.Errorf("new adb device: rotated clip: %w", err)
	}
	audio := opts.Audio
	if len(audio) == 0 {
		path := opts.AudioPath
		if path == "" {
			path = DefaultAudioPath()
		}
		audio, _ = os.ReadFile(path) // optional: no audio means "disabled"
	}
	if len(audio) > 0 {
		d.opus, _ = oggPackets(audio)
		if len(d.opus) < 3 || !bytes.HasPrefix(d.opus[0], []byte("OpusHead")) {
			d.opus = nil
		}
	}
	if opts.Auth == AuthReject {
		d.faults.Store(uint32(FaultUnauthorized))
	}
	return d, nil
}

var (
	//go:embed media/gop10.h264
	gop10Clip []byte
	//go:embed media/portrait.h264
	portraitClip []byte
	//go:embed media/high.h264
	highClip []byte
)

// ClipGOP10 returns a 10 s 1280x720 30 fps clip with a single IDR (so an
// IDR every 10 s when looped, as real screenrecord), SPS/PPS once, for
// Options.Clip. The slice is shared: do not modify it. See media/README.md.
func ClipGOP10() []byte { return gop10Clip }

// ClipPortrait returns the 10 s 720x1280 30 fps clip (GOP 30) a rotated
// device streams by default. The slice is shared: do not modify it.
func ClipPortrait() []byte { return portraitClip }

// ClipHigh returns a 3 s 1280x720 30 fps High 4.0 clip (profile-level-id
// 640028, GOP 30, no B-frames), a phone whose encoder sends High, for
// Options.Clip. The slice is shared: do not modify it.
func ClipHigh() []byte { return highClip }

// DefaultClipPath returns the path of the committed demo clip,
// adapters/demo/media/demo.h264 (see moduleFile).
func DefaultClipPath() string {
	return moduleFile(filepath.Join("adapters", "demo", "media", "demo.h264"))
}

// DefaultAudioPath returns the path of the committed demo audio,
// adapters/demo/media/demo.ogg (Opus, 20 ms packets), which emulated
// scrcpy servers stream on their audio socket.
func DefaultAudioPath() string {
	return moduleFile(filepath.Join("adapters", "demo", "media", "demo.ogg"))
}

// moduleFile returns the path of rel in this module: found from this
// source file's location, or, when that is not a usable path (a -trimpath
// build), from the working directory and its parents. It returns the first
// candidate if none exists.
func moduleFile(rel string) string {
	_, file, _, _ := runtime.Caller(0)
	first := filepath.Join(filepath.Dir(file), "..", "..", rel)
	if _, err := os.Stat(first); err == nil {
		return first
	}
	if dir, err := os.Getwd(); err == nil {
		for {
			p := filepath.Join(dir, rel)
			if _, err := os.Stat(p); err == nil {
				return p
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return first
}

// Start listens and serves connections until Close (or Unplug). It returns
// the address to pass to `adb connect`, which is also the device's serial
// in the adb server. ctx bounds only the start itself. Start after Unplug
// listens again on the same address.
func (d *Device) Start(ctx context.Context) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return "", errors.New("start adb device: closed")
	}
	if d.ln != nil {
		return d.addr, nil
	}
	addr := d.opts.Addr
	if addr == "" && d.addr != "" {
		addr = d.addr // replug on the same port
	}
	ln, err := listen(ctx, addr)
	if err != nil {
		return "", fmt.Errorf("start adb device: %w", err)
	}
	d.ln = ln
	d.addr = ln.Addr().String()
	d.wg.Add(1)
	go d.accept(ln)
	d.log.Debug("adb device listening", "addr", d.addr)
	return d.addr, nil
}

// listen listens on addr, or on a free loopback port outside 5555–5585 if
// addr is empty.
func listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	if addr != "" {
		return lc.Listen(ctx, "tcp", addr)
	}
	var discard []net.Listener
	defer func() {
		for _, l := range discard {
			_ = l.Close()
		}
	}()
	for range 20 {
		ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		if p := ln.Addr().(*net.TCPAddr).Port; p >= 5555 && p <= 5585 {
			discard = append(discard, ln)
			continue
		}
		return ln, nil
	}
	return nil, errors.New("no free port outside 5555-5585")
}

// Addr returns the address the device listens (or last listened) on.
func (d *Device) Addr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addr
}

// Serial returns the serial the adb server gives the device once connected:
// its address.
func (d *Device) Serial() string { return d.Addr() }

// Unplug stops listening and drops every connection abruptly, as pulling
// the cable (or the phone leaving the network) does. Start plugs it in
// again on the same address.
func (d *Device) Unplug() {
	d.mu.Lock()
	ln := d.ln
	d.ln = nil
	d.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	d.Drop()
}

// Drop closes every current transport connection abruptly, without CLSE,
// and keeps listening: the adb server sees the device vanish and may
// reconnect.
func (d *Device) Drop() {
	d.mu.Lock()
	conns := make([]*conn, 0, len(d.conns))
	for c := range d.conns {
		conns = append(conns, c)
	}
	d.mu.Unlock()
	for _, c := range conns {
		c.abort()
	}
}

// Close unplugs the device and waits for every goroutine it started,
// including handlers it called. It returns nil.
func (d *Device) Close() error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.Unplug()
	d.wg.Wait()
	return nil
}

// SetFault switches fault f on or off. Several faults can be on at once.
func (d *Device) SetFault(f Fault, on bool) {
	for {
		old := d.faults.Load()
		v := old &^ uint32(f)
		if on {
			v = old | uint32(f)
		}
		if d.faults.CompareAndSwap(old, v) {
			return
		}
	}
}

// Ignored returns the events the device dropped without an error, as the
// real one does (oldest first): "scrcpy position for 1280x720 (video is
// 720x1280)" for a touch or scroll whose size is not the current video
// size (PositionMapper), "scrcpy touch: too many pointers", "scrcpy char
// u+4e16" for a character INJECT_TEXT cannot type.
func (d *Device) Ignored() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.ignored...)
}

func (d *Device) recordIgnored(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ignored = append(d.ignored, s)
}

// Clipboard returns the device's clipboard text.
func (d *Device) Clipboard() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.clipboard
}

// SetClipboard sets the device's clipboard as an app copying text does:
// every running scrcpy server with clipboard autosync pushes it to its
// client.
func (d *Device) SetClipboard(text string) { d.setClipboard(text, true) }

func (d *Device) setClipboard(text string, notify bool) {
	d.mu.Lock()
	d.clipboard = text
	var watchers []func(string)
	if notify {
		for _, k := range slices.Sorted(maps.Keys(d.clipWatch)) {
			watchers = append(watchers, d.clipWatch[k])
		}
	}
	d.mu.Unlock()
	for _, w := range watchers {
		w(text)
	}
}

// watchClipboard calls fn on every clipboard change until the returned
// func is called.
func (d *Device) watchClipboard(fn func(string)) func() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.clipWatch == nil {
		d.clipWatch = map[int]func(string){}
	}
	k := d.clipNext
	d.clipNext++
	d.clipWatch[k] = fn
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		delete(d.clipWatch, k)
	}
}

// Fault reports whether fault f is on.
func (d *Device) Fault(f Fault) bool { return d.faults.Load()&uint32(f) != 0 }

// Inputs returns the input commands the device ran, oldest first, each as
// its words after "input" joined by single spaces: "tap 10 20",
// "swipe 1 2 3 4 100", "keyevent 4", "text hello" (`input text 'a b'`
// gives "text a b"), and the control messages of emulated scrcpy servers
// as "scrcpy …" (see EnableScrcpy).
func (d *Device) Inputs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.inputs...)
}

// WaitInputs waits until the device has run at least n input commands and
// returns them all, or returns ctx's error with those it has.
func (d *Device) WaitInputs(ctx context.Context, n int) ([]string, error) {
	for {
		d.mu.Lock()
		in, ch := append([]string(nil), d.inputs...), d.inputCh
		d.mu.Unlock()
		if len(in) >= n {
			return in, nil
		}
		select {
		case <-ctx.Done():
			return in, fmt.Errorf("wait for %d inputs, have %d: %w", n, len(in), ctx.Err())
		case <-ch:
		}
	}
}

// ResetInputs forgets the recorded inputs.
func (d *Device) ResetInputs() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inputs = nil
}

func (d *Device) recordInput(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inputs = append(d.inputs, s)
	close(d.inputCh)
	d.inputCh = make(chan struct{})
}

// Connects returns how many times the device completed the handshake (sent
// its CNXN): 1 after the first `adb connect`, one more per reconnection.
func (d *Device) Connects() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.connects
}

// Recordings returns the screenrecord runs started so far, oldest first.
func (d *Device) Recordings() []Recording {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Recording(nil), d.records...)
}

// Files returns a copy of the device's file system: files pushed with
// sync: or written by screenrecord to a path, by absolute path.
func (d *Device) Files() map[string]File {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]File, len(d.files))
	for p, f := range d.files {
		out[p] = File{Data: append([]byte(nil), f.Data...), Mode: f.Mode, MTime: f.MTime}
	}
	return out
}

// WriteFile stores a file on the device, as if pushed.
func (d *Device) WriteFile(path string, data []byte, mode os.FileMode) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.files[path] = &File{Data: append([]byte(nil), data...), Mode: mode, MTime: time.Now()}
}

func (d *Device) file(path string) (File, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f, ok := d.files[path]
	if !ok {
		return File{}, false
	}
	return *f, true
}

// HandleAbstract registers h for connections to the abstract UNIX socket
// name (the service localabstract:NAME, which `adb forward tcp:X
// localabstract:NAME` opens). h gets one end of an in-memory connection
// whose other end is the ADB stream; it runs in its own goroutine and must
// return once the connection is closed. Handlers of simultaneous
// connections start in no defined order: use ListenAbstract when the order
// matters. A nil h removes the handler; OPENs without a handler or
// listener are refused, like a socket nobody listens on.
func (d *Device) HandleAbstract(name string, h func(net.Conn)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h == nil {
		delete(d.abstract, name)
		return
	}
	d.abstract[name] = h
}

// HandleTCP is HandleAbstract for the service tcp:PORT (a TCP port on the
// device's loopback).
func (d *Device) HandleTCP(port int, h func(net.Conn)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h == nil {
		delete(d.tcp, port)
		return
	}
	d.tcp[port] = h
}

// CommandFunc runs a command registered with HandleCommand. args[0] is the
// command name; env holds VAR=value words that preceded it. It reads stdin
// (which may never end: watch ctx, cancelled when the stream closes),
// writes stdout and stderr, and returns the exit status.
type CommandFunc func(ctx context.Context, env, args []string, stdin io.Reader, stdout, stderr io.Writer) int

// HandleCommand registers (or, with a nil f, removes) a shell command, for
// example app_process to start an emulated scrcpy server. A registered
// command overrides a built-in one of the same name.
func (d *Device) HandleCommand(name string, f CommandFunc) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if f == nil {
		delete(d.commands, name)
		return
	}
	d.commands[name] = f
}

// Props returns the device's system properties, as getprop shows them.
func (d *Device) Props() map[string]string {
	p := map[string]string{
		"ro.product.name":           d.opts.Product,
		"ro.product.model":          d.opts.Model,
		"ro.product.device":         d.opts.Device,
		"ro.product.manufacturer":   "mediasvc",
		"ro.product.brand":          "mediasvc",
		"ro.build.version.sdk":      strconv.Itoa(d.opts.SDK),
		"ro.build.version.release":  releaseOf(d.opts.SDK),
		"ro.build.characteristics":  "default",
		"ro.product.cpu.abi":        "x86_64",
		"ro.serialno":               "EMU" + strconv.Itoa(d.opts.SDK),
		"sys.boot_completed":        "1",
		"ro.sf.lcd_density":         "320",
		"service.adb.tcp.port":      "",
		"persist.sys.usb.config":    "adb",
		"ro.boot.qemu":              "0",
		"ro.kernel.qemu":            "0",
		"ro.secure":                 "1",
		"ro.debuggable":             "0",
		"ro.adb.secure":             "1",
		"ro.build.type":             "user",
		"ro.build.fingerprint":      "mediasvc/" + d.opts.Product + "/" + d.opts.Device + ":" + releaseOf(d.opts.SDK) + "/EMU/1:user/release-keys",
		"ro.config.low_ram":         "false",
		"ro.product.locale":         "en-US",
		"persist.sys.timezone":      "UTC",
		"ro.hardware":               "mediasvc",
		"ro.build.version.codename": "REL",
	}
	if port := d.port(); port != "" {
		p["service.adb.tcp.port"] = port
	}
	for k, v := range d.opts.Props {
		p[k] = v
	}
	return p
}

func (d *Device) port() string {
	_, port, _ := net.SplitHostPort(d.Addr())
	return port
}

func releaseOf(sdk int) string {
	switch {
	case sdk >= 35:
		return strconv.Itoa(sdk - 20)
	case sdk >= 30:
		return strconv.Itoa(sdk - 19)
	case sdk == 29:
		return "10"
	case sdk == 28:
		return "9"
	}
	return "8.1.0"
}

// banner is the payload of the device's CNXN.
func (d *Device) banner() string {
	return fmt.Sprintf("device::ro.product.name=%s;ro.product.model=%s;ro.product.device=%s;features=%s",
		d.opts.Product, d.opts.Model, d.opts.Device, strings.Join(d.opts.Features, ","))
}

// displaySize returns the size `wm size` reports, swapped while rotated.
func (d *Device) displaySize() (w, h int) {
	if d.Fault(FaultRotated) {
		return d.opts.Height, d.opts.Width
	}
	return d.opts.Width, d.opts.Height
}

func (d *Device) accept(ln net.Listener) {
	defer d.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		c := newConn(d, nc)
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			_ = nc.Close()
			return
		}
		d.conns[c] = struct{}{}
		d.wg.Add(1)
		d.mu.Unlock()
		go func() {
			defer d.wg.Done()
			c.serve()
			d.mu.Lock()
			delete(d.conns, c)
			d.mu.Unlock()
		}()
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
