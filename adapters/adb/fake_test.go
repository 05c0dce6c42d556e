package adb

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"mediasvc/domain"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeADB is an adb server speaking the host protocol on loopback; service
// decides what each request does after the transport switch.
type fakeADB struct {
	t  testing.TB
	ln net.Listener

	mu      sync.Mutex
	devices map[string]string // serial → adb state
	service func(c net.Conn, serial, svc string)
	conns   map[net.Conn]bool
	track   []chan string
	wg      sync.WaitGroup
}

func newFakeADB(t testing.TB, service func(c net.Conn, serial, svc string)) *fakeADB {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeADB{t: t, ln: ln, devices: map[string]string{}, service: service, conns: map[net.Conn]bool{}}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

func (f *fakeADB) addr() string { return f.ln.Addr().String() }

func (f *fakeADB) close() {
	_ = f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *fakeADB) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns[c] = true
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer func() {
				f.mu.Lock()
				delete(f.conns, c)
				f.mu.Unlock()
				_ = c.Close()
			}()
			f.serve(c)
		}()
	}
}

func readReq(r io.Reader) (string, error) {
	b, err := readHex4Payload(r)
	return string(b), err
}

func okay(w io.Writer)                  { _, _ = io.WriteString(w, "OKAY") }
func fail(w io.Writer, why string)      { _, _ = fmt.Fprintf(w, "FAIL%04x%s", len(why), why) }
func payload(w io.Writer, s string)     { _, _ = fmt.Fprintf(w, "%04x%s", len(s), s) }
func v2(w io.Writer, id byte, s string) { _, _ = w.Write(appendV2Packet(nil, id, []byte(s))) }

// setDevice changes the list (state "" removes the device) and tells every
// tracker.
func (f *fakeADB) setDevice(serial, state string) {
	f.mu.Lock()
	if state == "" {
		delete(f.devices, serial)
	} else {
		f.devices[serial] = state
	}
	list := f.listLocked()
	tr := append([]chan string(nil), f.track...)
	f.mu.Unlock()
	for _, ch := range tr {
		select {
		case ch <- list:
		default:
		}
	}
}

func (f *fakeADB) listLocked() string {
	var b strings.Builder
	for s, st := range f.devices {
		fmt.Fprintf(&b, "%-22s %s product:sdk model:Pixel_7 device:emu transport_id:1\n", s, st)
	}
	return b.String()
}

func (f *fakeADB) serve(c net.Conn) {
	req, err := readReq(c)
	if err != nil {
		return
	}
	switch {
	case req == "host:version":
		okay(c)
		payload(c, "0029")
		return
	case req == "host:track-devices-l":
		okay(c)
		ch := make(chan string, 16)
		f.mu.Lock()
		f.track = append(f.track, ch)
		first := f.listLocked()
		f.mu.Unlock()
		payload(c, first)
		gone := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, c)
			close(gone)
		}()
		for {
			select {
			case list := <-ch:
				payload(c, list)
			case <-gone:
				return
			}
		}
	case strings.HasPrefix(req, "host:transport:"):
		serial := strings.TrimPrefix(req, "host:transport:")
		f.mu.Lock()
		st, ok := f.devices[serial]
		f.mu.Unlock()
		switch {
		case !ok:
			fail(c, "device '"+serial+"' not found")
			return
		case st != "device":
			fail(c, "device "+st)
			return
		}
		okay(c)
		svc, err := readReq(c)
		if err != nil {
			return
		}
		f.service(c, serial, svc)
		return
	}
	fail(c, "unknown host service")
}

// clipAUs returns the first n access units of the demo clip, Annex-B.
func clipAUs(t testing.TB, n int) [][]byte {
	t.Helper()
	b, err := os.ReadFile("../demo/media/demo.h264")
	if err != nil {
		t.Fatal(err)
	}
	var aus [][]byte
	var cur []byte
	vcl := false
	for _, nal := range domain.SplitAnnexB(b) {
		typ := domain.NALType(nal)
		if vcl && (typ == domain.NALTypeSPS || typ == domain.NALTypeSEI || (typ <= 5 && nal[1]&0x80 != 0)) {
			aus = append(aus, cur)
			cur, vcl = nil, false
			if len(aus) == n {
				break
			}
		}
		cur = append(append(cur, 0, 0, 0, 1), nal...)
		if typ >= 1 && typ <= 5 {
			vcl = true
		}
	}
	return aus
}

// screenrecordService serves `wm size`, screenrecord (the clip's first
// frames, paced, then EOF as at a time limit) and an interactive shell that
// records its lines.
type deviceSim struct {
	aus      [][]byte
	interval time.Duration
	// limit ends screenrecord after this long (a time limit).
	limit time.Duration

	mu       sync.Mutex
	lines    []string
	commands []string
	execs    int
	failExec string // FAIL reason for screenrecord, when set
	// inputGate, when set, holds each shell line's completion until a
	// value is received from it (the phone still running `input`).
	inputGate chan struct{}
	help      string // screenrecord --help output
}

func (d *deviceSim) serve(c net.Conn, serial, svc string) {
	d.mu.Lock()
	d.commands = append(d.commands, svc)
	failExec := d.failExec
	d.mu.Unlock()
	switch {
	case svc == "exec:wm size":
		okay(c)
		_, _ = io.WriteString(c, "Physical size: 1440x3120\nOverride size: 1080x2340\n")
	case svc == "exec:screenrecord --help":
		okay(c)
		_, _ = io.WriteString(c, d.help)
	case strings.HasPrefix(svc, "exec:screenrecord"):
		if failExec != "" {
			fail(c, failExec)
			return
		}
		okay(c)
		d.mu.Lock()
		d.execs++
		d.mu.Unlock()
		start := time.Now()
		for i := 0; ; i++ {
			if d.limit > 0 && time.Since(start) >= d.limit {
				return
			}
			au := d.aus[i%len(d.aus)]
			// Write in two pieces to exercise reassembly.
			h := len(au) / 2
			if _, err := c.Write(au[:h]); err != nil {
				return
			}
			if _, err := c.Write(au[h:]); err != nil {
				return
			}
			time.Sleep(d.interval)
		}
	case svc == "shell:":
		okay(c)
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			line := sc.Text()
			// A pty echoes the line back; then each command runs in turn,
			// the completion echo last.
			_, _ = io.WriteString(c, line+"\r\n")
			cmd, hasDone := strings.CutSuffix(line, inputDoneCmd)
			d.mu.Lock()
			d.lines = append(d.lines, cmd)
			gate := d.inputGate
			d.mu.Unlock()
			if !hasDone {
				continue
			}
			if gate != nil {
				<-gate
			}
			_, _ = io.WriteString(c, inputDone+"\r\n")
		}
	case strings.HasPrefix(svc, "shell,v2,raw:"):
		okay(c)
		v2(c, v2Stdout, "out:"+strings.TrimPrefix(svc, "shell,v2,raw:"))
		v2(c, v2Stderr, "err")
		v2(c, v2Exit, "\x07")
	default:
		fail(c, "unknown service "+svc)
	}
}

func (d *deviceSim) snapshotLines() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.lines...)
}

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ = binary.LittleEndian
