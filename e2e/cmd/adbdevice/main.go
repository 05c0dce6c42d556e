// Command adbdevice runs one emulated Android device (package
// mediasvc/e2e/adbdevice) until interrupted, for trying mediasvc by hand
// without a phone:
//
//	go run ./e2e/cmd/adbdevice -addr 127.0.0.1:6000
//	adb connect 127.0.0.1:6000
//	adb -s 127.0.0.1:6000 exec-out screenrecord --output-format=h264 - | ffplay -
//
// With -connect the device connects itself to the adb server on that port
// (adb -P PORT connect ADDR). Every input command the device receives is
// printed. Faults can be switched on at start with -fault (comma-separated:
// stall, drop, refuse-open, ignore-connect, static, garbage, rotated,
// unauthorized).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mediasvc/e2e/adbdevice"
)

var faultNames = map[string]adbdevice.Fault{
	"stall":          adbdevice.FaultStall,
	"drop":           adbdevice.FaultDropMidStream,
	"refuse-open":    adbdevice.FaultRefuseOpen,
	"ignore-connect": adbdevice.FaultIgnoreConnect,
	"static":         adbdevice.FaultStaticScreen,
	"garbage":        adbdevice.FaultGarbage,
	"rotated":        adbdevice.FaultRotated,
	"unauthorized":   adbdevice.FaultUnauthorized,
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "adbdevice:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		opts    adbdevice.Options
		faults  string
		connect int
		verbose bool
		scrcpy  bool
		gop10   bool
	)
	flag.StringVar(&opts.Addr, "addr", "", "listen address (default: a free 127.0.0.1 port outside 5555-5585)")
	flag.StringVar(&opts.Model, "model", "", "ro.product.model (default Mediasvc_Phone)")
	flag.IntVar(&opts.SDK, "sdk", 30, "ro.build.version.sdk; 34+ allows screenrecord --time-limit 0")
	flag.StringVar(&opts.ClipPath, "clip", "", "Annex-B H.264 clip for screenrecord (default: the demo clip)")
	flag.BoolVar(&gop10, "gop10", false, "stream the embedded 10 s GOP clip (an IDR every 10 s, like real screenrecord)")
	flag.BoolVar(&opts.RepeatParameterSets, "repeat-sps", false, "send SPS/PPS before every IDR, not only at the start")
	flag.DurationVar(&opts.InputDelay, "input-delay", 0, "time each input command takes (a real one: ~300ms)")
	flag.DurationVar(&opts.RecordStartDelay, "record-delay", 0, "time screenrecord takes before its first bytes")
	flag.BoolVar(&scrcpy, "scrcpy", false, "emulate a scrcpy "+adbdevice.ScrcpyVersion+" server behind app_process")
	flag.StringVar(&faults, "fault", "", "faults to switch on: "+strings.Join(keys(), ","))
	flag.IntVar(&connect, "connect", 0, "adb server port to connect the device to (0: do not)")
	flag.BoolVar(&verbose, "v", false, "log the protocol at debug level")
	flag.Parse()
	if verbose {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}

	if gop10 {
		opts.Clip = adbdevice.ClipGOP10()
	}
	d, err := adbdevice.New(opts)
	if err != nil {
		return err
	}
	if scrcpy {
		d.EnableScrcpy("")
	}
	for _, name := range strings.FieldsFunc(faults, func(r rune) bool { return r == ',' }) {
		f, ok := faultNames[name]
		if !ok {
			return fmt.Errorf("unknown fault %q (want one of %s)", name, strings.Join(keys(), ","))
		}
		d.SetFault(f, true)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	addr, err := d.Start(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	fmt.Println("adb device listening on", addr)
	if connect > 0 {
		out, err := exec.CommandContext(ctx, "adb", "-P", strconv.Itoa(connect), "connect", addr).CombinedOutput()
		fmt.Print(string(out))
		if err != nil {
			return fmt.Errorf("adb connect: %w", err)
		}
	}
	seen := 0
	for {
		in, err := d.WaitInputs(ctx, seen+1)
		for _, s := range in[seen:] {
			fmt.Println(time.Now().Format("15:04:05.000"), "input", s)
		}
		seen = len(in)
		if err != nil {
			return nil // interrupted
		}
	}
}

func keys() []string {
	var k []string
	for name := range faultNames {
		k = append(k, name)
	}
	slices.Sort(k)
	return k
}
