package adbdevice

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mediasvc/domain"
)

// run runs adb against s and fails t unless it succeeds; it returns the
// output.
func run(t *testing.T, s *Server, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := s.Run(ctx, args...)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return string(out)
}

// TestRealADB drives one emulated device through the real adb server.
func TestRealADB(t *testing.T) {
	s := StartTestServer(t)
	d := PlugTestDevice(t, s, Options{})
	serial := d.Serial()

	t.Run("devices -l", func(t *testing.T) {
		out := run(t, s, "devices", "-l")
		if !strings.Contains(out, serial) || !strings.Contains(out, "model:Mediasvc_Phone") ||
			!strings.Contains(out, "product:mediasvc_emu") {
			t.Fatalf("devices -l:\n%s", out)
		}
	})
	t.Run("shell echo", func(t *testing.T) {
		if out := run(t, s, "-s", serial, "shell", "echo", "hi"); out != "hi\n" {
			t.Fatalf("got %q", out)
		}
	})
	t.Run("shell quoting and exit status", func(t *testing.T) {
		if out := run(t, s, "-s", serial, "shell", `echo "a  b" 'c;d' && false || echo e\ f`); out != "a  b c;d\ne f\n" {
			t.Fatalf("got %q", out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := s.Run(ctx, "-s", serial, "shell", "exit 3")
		var ee interface{ ExitCode() int }
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Fatalf("exit 3: err %v, out %q", err, out)
		}
	})
	t.Run("getprop", func(t *testing.T) {
		if out := run(t, s, "-s", serial, "shell", "getprop", "ro.product.model"); out != "Mediasvc_Phone\n" {
			t.Fatalf("got %q", out)
		}
		if out := run(t, s, "-s", serial, "shell", "getprop ro.build.version.sdk"); out != "30\n" {
			t.Fatalf("got %q", out)
		}
	})
	t.Run("wm size", func(t *testing.T) {
		if out := run(t, s, "-s", serial, "shell", "wm", "size"); out != "Physical size: 1280x720\n" {
			t.Fatalf("got %q", out)
		}
	})
	t.Run("input", func(t *testing.T) {
		d.ResetInputs()
		run(t, s, "-s", serial, "shell", "input", "tap", "10", "20")
		run(t, s, "-s", serial, "shell", "input keyevent 4; input text hello")
		if got := d.Inputs(); strings.Join(got, "|") != "tap 10 20|keyevent 4|text hello" {
			t.Fatalf("inputs %q", got)
		}
	})
	t.Run("push", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "small.bin")
		want := bytes.Repeat([]byte("mediasvc\x00\xff"), 20000) // 200 kB: several DATA chunks
		if err := os.WriteFile(src, want, 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, s, "-s", serial, "push", src, "/data/local/tmp/x.bin")
		f, ok := d.Files()["/data/local/tmp/x.bin"]
		if !ok || !bytes.Equal(f.Data, want) {
			t.Fatalf("pushed file: ok %v, %d bytes, files %v", ok, len(f.Data), d.Files())
		}
		run(t, s, "-s", serial, "push", src, "/data/local/tmp/")
		if _, ok := d.Files()["/data/local/tmp/small.bin"]; !ok {
			t.Fatalf("push into a directory: files %v", d.Files())
		}
	})
	t.Run("screenrecord", func(t *testing.T) {
		start := time.Now()
		out := run(t, s, "-s", serial, "exec-out", "screenrecord", "--output-format=h264", "--time-limit", "2", "-")
		took := time.Since(start)
		var nals [][]byte // without SEI and AUD
		for _, n := range domain.SplitAnnexB([]byte(out)) {
			if typ := domain.NALType(n); typ != domain.NALTypeSEI && typ != domain.NALTypeAUD {
				nals = append(nals, n)
			}
		}
		if len(nals) < 3 || domain.NALType(nals[0]) != domain.NALTypeSPS || domain.NALType(nals[1]) != domain.NALTypePPS ||
			domain.NALType(nals[2]) != domain.NALTypeIDR {
			t.Fatalf("stream does not start with SPS, PPS, IDR: %d NAL units, %d bytes", len(nals), len(out))
		}
		sps := 0
		slices := 0
		for _, n := range nals {
			switch domain.NALType(n) {
			case domain.NALTypeSPS:
				sps++
			case domain.NALTypeIDR, domain.NALTypeSlice:
				slices++
			}
		}
		if sps != 1 || slices < 50 || slices > 70 {
			t.Errorf("%d SPS (want 1), %d pictures (want ~60)", sps, slices)
		}
		if took < 1500*time.Millisecond || took > 10*time.Second {
			t.Errorf("screenrecord --time-limit 2 took %v", took)
		}
		if r := d.Recordings(); len(r) == 0 || r[len(r)-1].TimeLimit != 2*time.Second || r[len(r)-1].Ended.IsZero() {
			t.Errorf("recordings %+v", r)
		}
	})
}

// TestRealADBUnauthorized checks a device that never accepts the host's key
// is listed as unauthorized, and one that accepts it works.
func TestRealADBUnauthorized(t *testing.T) {
	s := StartTestServer(t)
	PlugTestDevice(t, s, Options{Auth: AuthReject})
	d := PlugTestDevice(t, s, Options{Auth: AuthAccept})
	if out := run(t, s, "-s", d.Serial(), "shell", "echo", "hi"); out != "hi\n" {
		t.Fatalf("authorized device: %q", out)
	}
}

// TestRealADBRefuseOpen checks adb shell fails on a device that refuses
// every stream.
func TestRealADBRefuseOpen(t *testing.T) {
	s := StartTestServer(t)
	d := PlugTestDevice(t, s, Options{})
	d.SetFault(FaultRefuseOpen, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := s.Run(ctx, "-s", d.Serial(), "shell", "echo", "hi")
	var ee interface{ ExitCode() int }
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || strings.Contains(string(out), "hi") {
		t.Fatalf("shell on a refusing device: err %v, out %q", err, out)
	}
	t.Logf("adb shell on a refusing device: %v: %s", err, out)
	d.SetFault(FaultRefuseOpen, false)
	if out := run(t, s, "-s", d.Serial(), "shell", "echo", "hi"); out != "hi\n" {
		t.Fatalf("after the fault: %q", out)
	}
}
