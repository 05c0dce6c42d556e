package adb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mediasvc/domain"
)

// Android key codes (android.view.KeyEvent) for the key names a browser or
// an API client sends: Android's own names (BACK, KEYCODE_BACK) and the
// browser's KeyboardEvent.key values (Backspace, ArrowUp, …).
var keyCodes = map[string]int{
	"HOME": 3, "BACK": 4, "CALL": 5, "ENDCALL": 6,
	"DPAD_UP": 19, "DPAD_DOWN": 20, "DPAD_LEFT": 21, "DPAD_RIGHT": 22, "DPAD_CENTER": 23,
	"VOLUME_UP": 24, "VOLUME_DOWN": 25, "POWER": 26, "CAMERA": 27,
	"TAB": 61, "SPACE": 62, "ENTER": 66, "DEL": 67, "MENU": 82, "SEARCH": 84,
	"MEDIA_PLAY_PAUSE": 85, "PAGE_UP": 92, "PAGE_DOWN": 93, "ESCAPE": 111,
	"FORWARD_DEL": 112, "MOVE_HOME": 122, "MOVE_END": 123, "VOLUME_MUTE": 164,
	"APP_SWITCH": 187, "WAKEUP": 224, "SLEEP": 223,
	// Browser KeyboardEvent.key names.
	"ARROWUP": 19, "ARROWDOWN": 20, "ARROWLEFT": 21, "ARROWRIGHT": 22,
	"BACKSPACE": 67, "DELETE": 112, "END": 123, "PAGEUP": 92, "PAGEDOWN": 93,
	"AUDIOVOLUMEUP": 24, "AUDIOVOLUMEDOWN": 25, "AUDIOVOLUMEMUTE": 164,
	"RECENTS": 187, " ": 62,
}

// keyCode returns the Android key code for a key name, case-insensitive,
// with or without the KEYCODE_ prefix; letters and digits map to their keys.
// ok is false for an unknown name.
func keyCode(name string) (int, bool) {
	if n, err := strconv.Atoi(name); err == nil && n > 0 && n < 400 {
		return n, true
	}
	up := strings.TrimPrefix(strings.ToUpper(name), "KEYCODE_")
	if up == "HOME" && name == "Home" {
		// The browser's Home key moves the caret; Android's HOME leaves the
		// app. Only the upper-case name means the latter.
		return 122, true
	}
	if c, ok := keyCodes[up]; ok {
		return c, true
	}
	if len(up) == 1 {
		switch c := up[0]; {
		case c >= 'A' && c <= 'Z':
			return 29 + int(c-'A'), true
		case c >= '0' && c <= '9':
			return 7 + int(c-'0'), true
		}
	}
	return 0, false
}

// shellQuote quotes s as one POSIX shell word.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// textArg encodes text for `input text`: printable ASCII only (the command
// cannot type anything else, and a control character could end the command
// line), spaces as %s (how `input text` spells a space), quoted for the
// shell. A literal "%s" in text is typed as a space: `input text` has no
// escape for it.
func textArg(text string) (string, error) {
	for i := 0; i < len(text); i++ {
		if c := text[i]; c < 0x20 || c > 0x7e {
			return "", fmt.Errorf("text holds byte 0x%02x; only printable ASCII can be typed: %w", c, domain.ErrInvalidInput)
		}
	}
	return shellQuote(strings.ReplaceAll(text, " ", "%s")), nil
}

// inputCommand returns the shell command line (without newline) that
// injects ev, given in device coordinates.
func inputCommand(ev domain.InputEvent) (string, error) {
	switch ev.Type {
	case domain.InputTap:
		return fmt.Sprintf("input tap %d %d", ev.X, ev.Y), nil
	case domain.InputLongPress:
		d := ev.DurationMs
		if d <= 0 {
			d = 800
		}
		return fmt.Sprintf("input swipe %d %d %d %d %d", ev.X, ev.Y, ev.X, ev.Y, d), nil
	case domain.InputSwipe:
		d := ev.DurationMs
		if d <= 0 {
			d = 300
		}
		return fmt.Sprintf("input swipe %d %d %d %d %d", ev.X, ev.Y, ev.X2, ev.Y2, d), nil
	case domain.InputKey:
		c, ok := keyCode(ev.Key)
		if !ok {
			return "", fmt.Errorf("unknown key %q: %w", ev.Key, domain.ErrInvalidInput)
		}
		if ev.Phase == domain.PhaseUp || ev.Repeat > 0 {
			// `input` presses a key (down and up at once): the press went
			// with the down; a held key's repeats cannot be made.
			return "", nil
		}
		var mods []string
		for _, m := range []struct {
			on   bool
			code int
		}{{ev.Ctrl, 113}, {ev.Shift, 59}, {ev.Alt, 57}, {ev.Meta, 117}} { // CTRL_LEFT, SHIFT_LEFT, ALT_LEFT, META_LEFT
			if m.on {
				mods = append(mods, strconv.Itoa(m.code))
			}
		}
		if len(mods) > 0 {
			// Android 13+: the keys go down in order and up in reverse.
			return "input keycombination " + strings.Join(mods, " ") + " " + strconv.Itoa(c), nil
		}
		return "input keyevent " + strconv.Itoa(c), nil
	case domain.InputPointer:
		return pointerCommand(ev)
	case domain.InputScroll:
		// Android 13+: a mouse scroll at a point; AXIS_VSCROLL grows
		// upwards, WheelEvent's deltaY downwards.
		cmd := fmt.Sprintf("input mouse scroll %d %d", ev.X, ev.Y)
		if ev.ScrollY != 0 {
			cmd += " --axis VSCROLL," + strconv.FormatFloat(-ev.ScrollY, 'f', -1, 64)
		}
		if ev.ScrollX != 0 {
			cmd += " --axis HSCROLL," + strconv.FormatFloat(ev.ScrollX, 'f', -1, 64)
		}
		return cmd, nil
	case domain.InputClipboard:
		return "", fmt.Errorf("the shell cannot set the device's clipboard (the scrcpy backend can): %w", domain.ErrInvalidInput)
	case domain.InputText:
		arg, err := textArg(ev.Text)
		if err != nil {
			return "", err
		}
		return "input text " + arg, nil
	case domain.InputBack:
		return "input keyevent 4", nil
	case domain.InputHome:
		return "input keyevent 3", nil
	case domain.InputRecents:
		return "input keyevent 187", nil
	}
	return "", fmt.Errorf("input action %q: %w", ev.Type, domain.ErrInvalidInput)
}

// pointerCommand is the nearest `input motionevent` (one pointer: DOWN,
// MOVE, UP, CANCEL) to a Pointer Events step. What it cannot do — a
// second finger, a hover, a mouse button other than the primary — is
// refused with a message saying so.
func pointerCommand(ev domain.InputEvent) (string, error) {
	if ev.PointerID != 0 {
		return "", fmt.Errorf("the shell injects one pointer; pointer %d dropped (the scrcpy backend takes %d): %w", ev.PointerID, domain.MaxPointers, domain.ErrInvalidInput)
	}
	if ev.PointerType == domain.PointerMouse && ev.Buttons&^1 != 0 {
		return "", fmt.Errorf("the shell has no mouse buttons but the primary; buttons %d dropped: %w", ev.Buttons, domain.ErrInvalidInput)
	}
	var action string
	switch ev.Phase {
	case domain.PhaseDown:
		action = "DOWN"
	case domain.PhaseMove:
		action = "MOVE"
	case domain.PhaseUp:
		action = "UP"
	case domain.PhaseCancel:
		action = "CANCEL"
	default:
		return "", fmt.Errorf("the shell cannot hover; pointer %s dropped: %w", ev.Phase, domain.ErrInvalidInput)
	}
	return fmt.Sprintf("input touchscreen motionevent %s %d %d", action, ev.X, ev.Y), nil
}

// inputShell is one device's persistent interactive shell: each event is
// one command line written to it, so no adb connection or process per
// event on the host side (`input` itself still starts on the device).
//
// The shell runs its lines one after another and each `input` starts a
// JVM on the phone (hundreds of ms), so lines written faster than that
// queue on the device. The queue is bounded: each line ends by echoing
// inputDone, the reader counts those, and at most limit lines are
// outstanding; past that write refuses with domain.ErrInputBusy.
type inputShell struct {
	rc      io.ReadWriteCloser
	mu      sync.Mutex
	dead    chan struct{}
	once    sync.Once
	pending atomic.Int64 // lines written whose inputDone has not come back
	limit   int64
}

// inputDone is what the shell prints after each line; the line spells it
// in two quoted halves (inputDoneCmd), so a terminal echoing the line back
// never prints it.
const (
	inputDone    = "mediasvc-input-done"
	inputDoneCmd = " ; echo 'mediasvc''-input-done'"
)

// DefaultInputQueue is how many input commands may wait on a device's
// shell by default.
const DefaultInputQueue = 8

// busy reports whether the shell's queue is full.
func (sh *inputShell) busy() bool { return sh.pending.Load() >= sh.limit }

// readOutput reads the shell's output until it ends, counting the
// completions of the lines written; everything else (echo, prompts, the
// output of input) is dropped.
func (sh *inputShell) readOutput() {
	br := bufio.NewReaderSize(sh.rc, 4096)
	for {
		line, err := br.ReadSlice('\n')
		if bytes.Contains(line, []byte(inputDone)) {
			for {
				n := sh.pending.Load()
				if n <= 0 || sh.pending.CompareAndSwap(n, n-1) {
					break
				}
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// openInputShell opens "shell:" and drains its output (echo, prompts) so
// the device never blocks on it.
func (s *Source) openInputShell(serial string) (*inputShell, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CommandTimeout)
	defer cancel()
	rc, err := s.client.Shell(ctx, serial, "")
	if err != nil {
		return nil, err
	}
	// The shell outlives the open's ctx.
	if cc, ok := rc.(*conn); ok {
		cc.stop()
	}
	sh := &inputShell{rc: rc, dead: make(chan struct{}), limit: int64(s.opts.InputQueue)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		sh.readOutput()
		sh.close()
	}()
	return sh, nil
}

func (sh *inputShell) close() {
	sh.once.Do(func() {
		close(sh.dead)
		_ = sh.rc.Close()
	})
}

func (sh *inputShell) alive() bool {
	select {
	case <-sh.dead:
		return false
	default:
		return true
	}
}

// write queues line on the shell; errInputBusy when limit lines are
// outstanding already.
func (sh *inputShell) write(line string, timeout time.Duration) error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.pending.Add(1) > sh.limit {
		sh.pending.Add(-1)
		return errInputBusy
	}
	if d, ok := sh.rc.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = d.SetWriteDeadline(time.Now().Add(timeout))
	}
	_, err := io.WriteString(sh.rc, line+inputDoneCmd+"\n")
	if err != nil {
		sh.pending.Add(-1)
	}
	return err
}

// errInputBusy is a full input queue: not a device failure.
var errInputBusy = fmt.Errorf("device input queue full: %w", domain.ErrInputBusy)

// shell returns the device's input shell, opening it when needed.
func (s *Source) shell(id domain.DeviceID) (*inputShell, error) {
	s.mu.Lock()
	d, ok := s.devices[string(id)]
	if ok && d.input != nil && d.input.alive() {
		sh := d.input
		s.mu.Unlock()
		return sh, nil
	}
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("adb device %q: %w", id, domain.ErrDeviceNotFound)
	}
	s.inputOpen.Lock()
	defer s.inputOpen.Unlock()
	s.mu.Lock()
	if d, ok := s.devices[string(id)]; ok && d.input != nil && d.input.alive() {
		sh := d.input
		s.mu.Unlock()
		return sh, nil
	}
	s.mu.Unlock()
	sh, err := s.openInputShell(string(id))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok = s.devices[string(id)]
	if !ok {
		sh.close()
		return nil, fmt.Errorf("adb device %q vanished: %w", id, domain.ErrDeviceNotFound)
	}
	if d.input != nil {
		d.input.close()
	}
	d.input = sh
	return sh, nil
}

// Input injects ev (validated, in device coordinates) through the device's
// persistent shell. It returns domain.ErrInvalidInput for an unknown key or
// untypeable text, domain.ErrDeviceNotFound when the device is not attached,
// and domain.ErrDeviceUnavailable when it is offline, its breaker is open or
// the shell fails (which counts against the breaker).
func (s *Source) Input(ctx context.Context, id domain.DeviceID, ev domain.InputEvent) error {
	dw, dh, err := s.online(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	sc := s.scrcpy[string(id)]
	s.mu.Unlock()
	if sc != nil {
		// A running scrcpy capture has a control socket: no process per
		// event on the device either.
		if err := sc.input(ctx, ev, dw, dh); err == nil || errors.Is(err, domain.ErrInvalidInput) {
			return err
		}
		// Fall back to the shell below.
	}
	line, err := inputCommand(ev)
	if err != nil {
		return err
	}
	if line == "" {
		return nil // nothing the shell can or need do
	}
	s.mu.Lock()
	var cur *inputShell
	if d, ok := s.devices[string(id)]; ok {
		cur = d.input
	}
	s.mu.Unlock()
	if cur != nil && cur.alive() && cur.busy() {
		return fmt.Errorf("input to %s: %w", id, errInputBusy)
	}
	busy := false
	err = s.breaker(string(id)).Do(func() error {
		var err error
		for attempt := 0; attempt < 2; attempt++ {
			var sh *inputShell
			if sh, err = s.shell(id); err != nil {
				break
			}
			if err = sh.write(line, s.opts.CommandTimeout); err == nil {
				return nil
			}
			if errors.Is(err, domain.ErrInputBusy) {
				busy = true // not the device's failure
				return nil
			}
			sh.close() // a stale shell (device replugged): retry on a fresh one
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("input shell on %s: %w: %w", id, domain.ErrDeviceUnavailable, err)
	})
	if busy {
		return fmt.Errorf("input to %s: %w", id, errInputBusy)
	}
	return err
}
