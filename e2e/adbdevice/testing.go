package adbdevice

import (
	"context"
	"errors"
	"testing"
	"time"
)

// StartTestServer starts a private adb server (StartServer with adb from
// PATH) and kills it when tb's test ends. It fails tb if adb is missing
// (Debian: apt-get install -y adb) or does not start.
func StartTestServer(tb testing.TB) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := StartServer(ctx, "")
	if errors.Is(err, ErrNoADB) {
		tb.Fatalf("%v (apt-get install -y adb)", err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Logf("close adb server: %v", err)
		}
	})
	return s
}

// PlugTestDevice creates a device with opts, starts it, connects srv to it
// and waits until srv lists it as "device" ("unauthorized" with
// AuthReject). At the end of tb's test it disconnects and closes the
// device. It fails tb on any error.
func PlugTestDevice(tb testing.TB, srv *Server, opts Options) *Device {
	tb.Helper()
	want := "device"
	if opts.Auth == AuthReject {
		want = "unauthorized"
	}
	d, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr, err := d.Start(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Disconnect(ctx, addr)
		_ = d.Close()
	})
	if err := srv.Connect(ctx, addr, want); err != nil {
		tb.Fatal(err)
	}
	return d
}
