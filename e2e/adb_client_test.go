//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"mediasvc/adapters/adb"
	"mediasvc/domain"
	"mediasvc/e2e/adbdevice"
)

// TestADBClientAgainstRealServer drives adapters/adb's host-protocol client
// against Debian's adb server and an emulated device: version, device list,
// shell v2, exec, push, forward, and the errors the server really sends.
func TestADBClientAgainstRealServer(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	c := adb.NewClient(srv.Addr(), adb.ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	v, err := c.Version(ctx)
	if err != nil || v < 31 {
		t.Fatalf("version %d, %v", v, err)
	}
	t.Logf("adb server protocol version %d", v)
	list, err := c.Devices(ctx)
	if err != nil || len(list) != 1 || list[0].Serial != d.Serial() || list[0].State != "device" || list[0].Model != "Pixel_7" {
		t.Fatalf("devices %+v, %v", list, err)
	}

	res, err := c.ShellV2(ctx, d.Serial(), "echo hello; false")
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != "hello\n" || res.Exit != 1 {
		t.Errorf("shell v2: %+v (stdout %q stderr %q)", res, res.Stdout, res.Stderr)
	}
	out, err := c.Output(ctx, d.Serial(), "wm size")
	if err != nil || !strings.Contains(string(out), "Physical size: 1280x720") {
		t.Errorf("wm size: %q %v", out, err)
	}

	jar := bytes.Repeat([]byte("scrcpy-server"), 10000)
	if err := c.Push(ctx, d.Serial(), bytes.NewReader(jar), "/data/local/tmp/scrcpy-server.jar", 0o644, time.Now()); err != nil {
		t.Fatalf("push: %v", err)
	}
	if f, ok := d.Files()["/data/local/tmp/scrcpy-server.jar"]; !ok || !bytes.Equal(f.Data, jar) {
		t.Errorf("pushed file: present %v, %d bytes of %d", ok, len(f.Data), len(jar))
	}

	d.HandleAbstract("echo", func(conn net.Conn) {
		defer conn.Close()
		_, _ = io.Copy(conn, conn)
	})
	port := freePort(t)
	if err := c.Forward(ctx, d.Serial(), fmt.Sprintf("tcp:%d", port), "localabstract:echo"); err != nil {
		t.Fatalf("forward: %v", err)
	}
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
		t.Errorf("forwarded echo: %q %v", buf, err)
	}

	// The server's own refusals map to domain errors.
	if _, err := c.Exec(ctx, "127.0.0.1:1", "true"); !errors.Is(err, domain.ErrDeviceNotFound) {
		t.Errorf("unknown serial: %v", err)
	}
	// A stream cancelled by its context ends at once.
	sctx, scancel := context.WithCancel(ctx)
	rc, err := c.Exec(sctx, d.Serial(), "screenrecord --output-format=h264 -")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	scancel()
	start := time.Now()
	for {
		if _, err := rc.Read(buf); err != nil {
			break
		}
		if time.Since(start) > 3*time.Second {
			t.Fatal("stream still open 3 s after cancel")
		}
	}
}
