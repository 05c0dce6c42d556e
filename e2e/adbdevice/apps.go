package adbdevice

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"strconv"
	"strings"
	"time"
)

// Install is one `cmd package install` the device ran, for assertions.
type Install struct {
	// Args are the options given ("-S 1234", "-r", …).
	Args []string
	// Size is the APK's size; OK whether it installed.
	Size int64
	OK   bool
	At   time.Time
}

// Installs returns the installs run so far, oldest first.
func (d *Device) Installs() []Install {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Install(nil), d.installs...)
}

// maxAPK bounds an emulated install (the file system is in memory).
const maxAPK = 256 << 20

// cmd runs `cmd SERVICE …`; only the package service's streamed install
// is emulated (`cmd package install [-r] [-t] [-g] -S SIZE`, the APK on
// stdin, as `adb install` does on Android 7+). Its output is the real
// one's: "Success", or "Failure [CODE: message]" with status 1.
func (d *Device) cmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "cmd: No service specified; use -l to list all running services. Use -w to start and wait for a service.")
		return 20
	}
	if args[0] != "package" {
		fmt.Fprintf(stderr, "cmd: Can't find service: %s\n", args[0])
		return 20
	}
	if len(args) < 2 || args[1] != "install" {
		fmt.Fprintln(stderr, "Unknown command")
		return 255
	}
	opts := args[2:]
	size := int64(-1)
	for i := 0; i < len(opts); i++ {
		switch o := opts[i]; o {
		case "-r", "-t", "-g", "-d", "--user", "--dont-kill":
			if o == "--user" {
				i++
			}
		case "-S":
			if i+1 >= len(opts) {
				fmt.Fprintln(stderr, "Error: missing size")
				return 1
			}
			n, err := strconv.ParseInt(opts[i+1], 10, 64)
			if err != nil || n <= 0 {
				fmt.Fprintf(stderr, "Error: invalid size: %s\n", opts[i+1])
				return 1
			}
			size = n
			i++
		default:
			if strings.HasPrefix(o, "-") {
				fmt.Fprintf(stderr, "Error: Unknown option: %s\n", o)
				return 1
			}
			// A path on the device (the non-streamed form) is not emulated.
			fmt.Fprintf(stdout, "Failure [INSTALL_FAILED_INVALID_URI: emulated device installs from stdin only]\n")
			return 1
		}
	}
	rec := Install{Args: append([]string(nil), opts...), Size: size, At: time.Now()}
	defer func() {
		d.mu.Lock()
		d.installs = append(d.installs, rec)
		d.mu.Unlock()
	}()
	if size < 0 {
		fmt.Fprintln(stdout, "Error: APK content must be streamed with -S SIZE (stdin)")
		return 1
	}
	if size > maxAPK {
		fmt.Fprintf(stdout, "Failure [INSTALL_FAILED_INSUFFICIENT_STORAGE: %d bytes]\n", size)
		return 1
	}
	buf := make([]byte, size)
	n, err := io.ReadFull(stdin, buf)
	if err != nil {
		fmt.Fprintf(stdout, "Failure [INSTALL_FAILED_INVALID_APK: short read: %d of %d bytes]\n", n, size)
		return 1
	}
	if ctx.Err() != nil {
		return 130
	}
	zr, err := zip.NewReader(bytes.NewReader(buf), size)
	if err != nil {
		fmt.Fprintf(stdout, "Failure [INSTALL_PARSE_FAILED_NOT_APK: Failed to parse /data/app/vmdl.tmp/base.apk: %v]\n", err)
		return 1
	}
	manifest := false
	for _, f := range zr.File {
		if f.Name == "AndroidManifest.xml" {
			manifest = true
		}
	}
	if !manifest {
		fmt.Fprintln(stdout, "Failure [INSTALL_PARSE_FAILED_NOT_APK: Failed to parse /data/app/vmdl.tmp/base.apk: AndroidManifest.xml not found]")
		return 1
	}
	rec.OK = true
	fmt.Fprintln(stdout, "Success")
	return 0
}

// screencap runs `screencap [-p] [-d ID] [FILE]`: a PNG of the display at
// its current orientation (a plain picture: the clip is not rendered), to
// stdout or FILE. Without -p and with no .png FILE it writes the raw
// RGBA form with its 16-byte header, as the real one.
func (d *Device) screencap(args []string, stdout, stderr io.Writer) int {
	asPNG := false
	file := ""
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-p":
			asPNG = true
		case a == "-d":
			if i+1 >= len(args) {
				fmt.Fprintln(stderr, "usage: screencap [-hp] [-d display-id] [FILENAME]")
				return 1
			}
			if args[i+1] != "0" {
				fmt.Fprintf(stderr, "Display Id '%s' is not valid.\n", args[i+1])
				return 1
			}
			i++
		case strings.HasPrefix(a, "-"):
			fmt.Fprintln(stderr, "usage: screencap [-hp] [-d display-id] [FILENAME]")
			return 1
		default:
			file = a
		}
	}
	if strings.HasSuffix(file, ".png") {
		asPNG = true
	}
	w, h := d.displaySize()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{R: uint8(x * 255 / w), G: uint8(y * 255 / h), B: 0x80, A: 0xff})
		}
	}
	var out bytes.Buffer
	if asPNG {
		if err := png.Encode(&out, img); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	} else {
		var hdr [16]byte
		le := func(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) }
		le(hdr[0:], uint32(w))
		le(hdr[4:], uint32(h))
		le(hdr[8:], 1) // PIXEL_FORMAT_RGBA_8888
		out.Write(hdr[:])
		out.Write(img.Pix)
	}
	if file != "" {
		d.WriteFile(file, out.Bytes(), 0o660)
		return 0
	}
	_, _ = stdout.Write(out.Bytes())
	return 0
}

// dumpsys runs `dumpsys window displays` (the display's initial and
// current, rotated, size and its rotation); other services are not
// emulated and answer as a missing one does.
func (d *Device) dumpsys(args []string, stdout, stderr io.Writer) int {
	if len(args) >= 1 && args[0] == "window" && (len(args) == 1 || args[1] == "displays" || args[1] == "d") {
		w, h := d.displaySize()
		rot := "ROTATION_0"
		if d.Fault(FaultRotated) {
			rot = "ROTATION_90"
		}
		fmt.Fprintf(stdout, "WINDOW MANAGER DISPLAY CONTENTS (dumpsys window displays)\n"+
			"  Display: mDisplayId=0 rootTasks=1\n"+
			"    init=%dx%d 320dpi cur=%dx%d app=%dx%d rng=%dx%d-%dx%d\n"+
			"    deferred=false mLayoutNeeded=false mTouchExcludeRegion=SkRegion((0,0,%d,%d))\n"+
			"  mDisplayRotation=DisplayRotation{mCurrentRotation=%s}\n",
			d.opts.Width, d.opts.Height, w, h, w, h-48, min(w, h), min(w, h)-48, max(w, h), max(w, h)-48, w, h, rot)
		return 0
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, "dumpsys: the emulated device dumps window displays only")
		return 1
	}
	fmt.Fprintf(stderr, "Can't find service: %s\n", args[0])
	return 1
}
