package adbdevice

import (
	"bytes"
	"context"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"mediasvc/domain"
)

// pictures counts the coded pictures and SPS of an Annex-B stream.
func pictures(b []byte) (pics, sps int) {
	for _, n := range domain.SplitAnnexB(b) {
		switch domain.NALType(n) {
		case domain.NALTypeSlice, domain.NALTypeIDR:
			pics++
		case domain.NALTypeSPS:
			sps++
		}
	}
	return pics, sps
}

// TestRealADBFaults switches the video and stream faults on a device the
// real adb server holds.
func TestRealADBFaults(t *testing.T) {
	s := StartTestServer(t)
	d := PlugTestDevice(t, s, Options{})
	serial := d.Serial()
	record := func(t *testing.T, limit string) []byte {
		t.Helper()
		return []byte(run(t, s, "-s", serial, "exec-out", "screenrecord", "--output-format=h264", "--time-limit", limit, "-"))
	}

	t.Run("overlapping screenrecords", func(t *testing.T) {
		// A capture restart starts the next screenrecord before the current
		// one ends: both must stream from their own start.
		cmd := s.Command(context.Background(), "-s", serial, "exec-out", "screenrecord", "--output-format=h264", "--time-limit", "2", "-")
		var first bytes.Buffer
		cmd.Stdout = &first
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		second := record(t, "2")
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		for i, out := range [][]byte{first.Bytes(), second} {
			nals := domain.SplitAnnexB(out)
			if pics, sps := pictures(out); len(nals) == 0 || domain.NALType(nals[0]) != domain.NALTypeSPS || sps != 1 || pics < 50 {
				t.Errorf("recording %d: %d pictures, %d SPS", i, pics, sps)
			}
		}
	})
	t.Run("static screen", func(t *testing.T) {
		d.SetFault(FaultStaticScreen, true)
		defer d.SetFault(FaultStaticScreen, false)
		if pics, _ := pictures(record(t, "1")); pics != 1 {
			t.Fatalf("%d pictures, want 1", pics)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		d.SetFault(FaultGarbage, true)
		defer d.SetFault(FaultGarbage, false)
		out := record(t, "1")
		if bytes.HasPrefix(out, domain.AnnexBStartCode) || bytes.Index(out, domain.AnnexBStartCode) < 64 {
			t.Fatalf("no garbage before the first picture: % x", out[:16])
		}
	})
	t.Run("rotation", func(t *testing.T) {
		cmd := s.Command(context.Background(), "-s", serial, "exec-out", "screenrecord", "--output-format=h264", "--time-limit", "3", "-")
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		d.SetFault(FaultRotated, true)
		defer d.SetFault(FaultRotated, false)
		if got := run(t, s, "-s", serial, "shell", "wm", "size"); got != "Physical size: 720x1280\n" {
			t.Errorf("rotated wm size %q", got)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		if _, sps := pictures(out.Bytes()); sps != 2 {
			t.Fatalf("%d SPS, want 2 (start, rotation)", sps)
		}
		landscape := domain.SplitAnnexB(out.Bytes())[0]
		portrait := domain.SplitAnnexB(record(t, "1"))[0]
		if domain.NALType(portrait) != domain.NALTypeSPS || bytes.Equal(portrait, landscape) {
			t.Fatalf("a recording started rotated has the landscape SPS")
		}
	})
	t.Run("stall", func(t *testing.T) {
		d.SetFault(FaultStall, true)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		out, err := s.Run(ctx, "-s", serial, "shell", "echo", "stalled")
		cancel()
		if err == nil {
			t.Fatalf("shell on a stalled device returned %q", out)
		}
		d.SetFault(FaultStall, false)
		if got := run(t, s, "-s", serial, "shell", "echo", "hi"); got != "hi\n" {
			t.Fatalf("after the stall: %q", got)
		}
	})
	t.Run("interactive shell from stdin", func(t *testing.T) {
		d.ResetInputs()
		cmd := s.Command(context.Background(), "-s", serial, "shell")
		cmd.Stdin = strings.NewReader("input tap 5 6\ninput text abc\nexit\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if got := strings.Join(d.Inputs(), "|"); got != "tap 5 6|text abc" {
			t.Fatalf("inputs %q", got)
		}
	})
	t.Run("forward to localabstract", func(t *testing.T) {
		served := make(chan struct{})
		d.HandleAbstract("scrcpy", func(nc net.Conn) {
			defer close(served)
			_, _ = io.Copy(nc, nc) // echo until the client closes
		})
		defer d.HandleAbstract("scrcpy", nil)
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		local := "tcp:" + strconv.Itoa(port)
		run(t, s, "-s", serial, "forward", local, "localabstract:scrcpy")
		defer run(t, s, "-s", serial, "forward", "--remove", local)
		nc, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 5)
		if _, err := io.ReadFull(nc, b); err != nil || string(b) != "hello" {
			t.Fatalf("echo through the forward: %q, %v", b, err)
		}
		_ = nc.Close()
		<-served
	})
	t.Run("pull", func(t *testing.T) {
		d.WriteFile("/sdcard/p.txt", []byte("pulled"), 0o644)
		dst := t.TempDir() + "/p.txt"
		run(t, s, "-s", serial, "pull", "/sdcard/p.txt", dst)
		if out, err := exec.Command("cat", dst).Output(); err != nil || string(out) != "pulled" {
			t.Fatalf("pulled %q, %v", out, err)
		}
	})
	t.Run("unplug and replug", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		before := d.Connects()
		d.Unplug()
		if err := s.WaitState(ctx, serial, "offline"); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.WaitState(ctx, serial, "device"); err != nil {
			t.Fatal(err)
		}
		if d.Connects() <= before {
			t.Fatalf("connects %d, was %d", d.Connects(), before)
		}
		if got := run(t, s, "-s", serial, "shell", "echo", "back"); got != "back\n" {
			t.Fatalf("after replug: %q", got)
		}
	})
	// Last: the connection drops, and adb reconnects by itself.
	t.Run("drop mid-stream", func(t *testing.T) {
		d.SetFault(FaultDropMidStream, true)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, _ := s.Run(ctx, "-s", serial, "exec-out", "screenrecord", "--output-format=h264", "--time-limit", "5", "-")
		d.SetFault(FaultDropMidStream, false)
		if pics, _ := pictures(out); pics < 10 || pics > 40 {
			t.Fatalf("%d pictures before the drop, want about 15", pics)
		}
		if err := s.WaitState(ctx, serial, "device"); err != nil {
			t.Fatal(err)
		}
	})
}
