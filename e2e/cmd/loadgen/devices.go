package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"mediasvc/e2e/adbdevice"
)

// farm is -devices: a private real adb server (Debian's adb), D emulated
// devices connected to it, and a mediasvc process (-server) serving them;
// the viewers are spread over the devices. It is the device-farm shape:
// its figures are per device (capture over ADB, parsing, packetizing, the
// ring, and the device's viewers).
type farm struct {
	adb     *adbdevice.Server
	devices []*adbdevice.Device
	server  *exec.Cmd
	dir     string
	serials []string
}

// startFarm brings the farm up and points o at its server: o.url, o.pid,
// and o.viewers becomes devices × viewers per device.
func startFarm(ctx context.Context, o *options) (*farm, error) {
	if o.server == "" {
		return nil, errors.New("-devices needs -server (the mediasvc binary to start)")
	}
	f := &farm{}
	var err error
	if f.dir, err = os.MkdirTemp("", "loadgen-farm-"); err != nil {
		return nil, err
	}
	if f.adb, err = adbdevice.StartServer(ctx, ""); err != nil {
		f.close()
		return nil, err
	}
	var clip []byte
	if o.clip == "" {
		clip = adbdevice.ClipGOP10()
	} else if clip, err = os.ReadFile(o.clip); err != nil {
		f.close()
		return nil, fmt.Errorf("-clip: %w", err)
	}
	for i := range o.devices {
		d, err := adbdevice.New(adbdevice.Options{Clip: clip, SDK: 34, Model: fmt.Sprintf("Farm_%d", i)})
		if err != nil {
			f.close()
			return nil, err
		}
		f.devices = append(f.devices, d)
		addr, err := d.Start(ctx)
		if err != nil {
			f.close()
			return nil, err
		}
		if err := f.adb.Connect(ctx, addr, "device"); err != nil {
			f.close()
			return nil, err
		}
		f.serials = append(f.serials, addr)
	}
	port, err := freeTCPPort()
	if err != nil {
		f.close()
		return nil, err
	}
	cfg := fmt.Sprintf(`http: {addr: "127.0.0.1:%d"}
limits: {sessions_total: 100000, sessions_per_device: 10000, sessions_per_owner: 100000, create_rate: 1000, create_burst: 1000, global_create_rate: 1000, global_create_burst: 1000}
log: {level: warn}
demo: {enabled: false}
adb: {addr: %q, screenrecord: {time_limit: 180s}}
%s
`, port, f.adb.Addr(), o.serverYAML)
	path := filepath.Join(f.dir, "mediasvc.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		f.close()
		return nil, err
	}
	f.server = exec.Command(o.server, "-config", path)
	logf, err := os.Create(filepath.Join(f.dir, "server.log"))
	if err != nil {
		f.close()
		return nil, err
	}
	f.server.Stdout, f.server.Stderr = logf, logf
	if err := f.server.Start(); err != nil {
		f.close()
		return nil, fmt.Errorf("start %s: %w", o.server, err)
	}
	o.url = "http://127.0.0.1:" + strconv.Itoa(port)
	o.pid = f.server.Process.Pid
	o.viewers *= o.devices
	if err := f.waitDevices(ctx, o.url, o.apiKey, len(f.serials)); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

// device returns the device the i-th viewer watches.
func (f *farm) device(i int) string { return f.serials[i%len(f.serials)] }

// waitDevices waits until the server lists n devices, then a little more
// for the idle figures to settle.
func (f *farm) waitDevices(ctx context.Context, base, apiKey string, n int) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/devices", nil)
		if err != nil {
			return err
		}
		if apiKey != "" {
			req.Header.Set("Authorization", "Bearer "+apiKey)
		}
		got := 0
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var body struct {
				Devices []json.RawMessage `json:"devices"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			got = len(body.Devices)
		}
		if got >= n {
			sleepUntil(ctx, time.Now().Add(2*time.Second))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server lists %d of %d devices after 60s (log in %s)", got, n, f.dir)
		}
		sleepUntil(ctx, time.Now().Add(200*time.Millisecond))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func (f *farm) close() {
	if f.server != nil && f.server.Process != nil {
		_ = f.server.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = f.server.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = f.server.Process.Kill()
			<-done
		}
	}
	for _, d := range f.devices {
		_ = d.Close()
	}
	if f.adb != nil {
		_ = f.adb.Close()
	}
	if f.dir != "" {
		_ = os.RemoveAll(f.dir)
	}
}

func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
