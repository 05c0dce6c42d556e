package adbdevice

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"mediasvc/domain"
)

// errBadClip is wrapped by parseClip.
var errBadClip = errors.New("bad H.264 clip")

// picture is one access unit of the clip, in Annex-B form.
type picture struct {
	full []byte // as in the clip
	bare []byte // without SPS and PPS
	key  bool
}

// clip is an H.264 stream cut into pictures, shared read-only.
type clip struct {
	pics          []picture
	params        []byte // the first SPS and PPS, Annex-B
	width, height int    // from the SPS
}

// parseClip cuts an Annex-B stream into access units: a new one starts at
// an AUD, SPS, PPS or SEI, or at a slice with first_mb_in_slice 0, once the
// current one holds a slice. It returns an error wrapping errBadClip unless
// the stream starts with SPS, PPS and an IDR picture.
func parseClip(b []byte) (*clip, error) {
	c := &clip{}
	var cur picture
	hasSlice := false
	flush := func() {
		if hasSlice {
			c.pics = append(c.pics, cur)
		}
		cur, hasSlice = picture{}, false
	}
	for rest := b; ; {
		var nal []byte
		if nal, rest = domain.NextNAL(rest); nal == nil {
			break
		}
		typ := domain.NALType(nal)
		isSlice := typ == domain.NALTypeSlice || typ == domain.NALTypeIDR
		if hasSlice && (typ == domain.NALTypeAUD || typ == domain.NALTypeSPS || typ == domain.NALTypePPS ||
			typ == domain.NALTypeSEI || isSlice && len(nal) > 1 && nal[1]&0x80 != 0) {
			flush()
		}
		cur.full = append(append(cur.full, domain.AnnexBStartCode...), nal...)
		if typ == domain.NALTypeSPS && c.width == 0 {
			w, h, err := domain.SPSSize(nal)
			if err != nil {
				return nil, fmt.Errorf("parse clip: SPS: %w: %w", err, errBadClip)
			}
			c.width, c.height = w, h
		}
		if typ == domain.NALTypeSPS || typ == domain.NALTypePPS {
			if len(c.pics) == 0 {
				c.params = append(append(c.params, domain.AnnexBStartCode...), nal...)
			}
		} else {
			cur.bare = append(append(cur.bare, domain.AnnexBStartCode...), nal...)
		}
		hasSlice = hasSlice || isSlice
		cur.key = cur.key || typ == domain.NALTypeIDR
	}
	flush()
	if len(c.pics) == 0 || !c.pics[0].key || len(c.params) == 0 {
		return nil, fmt.Errorf("parse clip: it must start with SPS, PPS and an IDR picture: %w", errBadClip)
	}
	return c, nil
}

// maxTimeLimit is screenrecord's limit before SDK 34 (kMaxTimeLimitSec).
const maxTimeLimit = 180

func (d *Device) screenrecordHelp() string {
	limit := "    Set the maximum recording time, in seconds.  Default / maximum is 180.\n"
	if d.opts.SDK >= 34 {
		limit = "    Set the maximum recording time, in seconds.  Default is 180. Set to 0\n" +
			"    to remove the time limit.\n"
	}
	return "Usage: screenrecord [options] <filename>\n\n" +
		"Android screenrecord v1.3.  Records the device's display to a .mp4 file.\n\n" +
		"Options:\n" +
		"--size WIDTHxHEIGHT\n" +
		"    Set the video size, e.g. \"1280x720\".  Default is the device's main\n" +
		"    display resolution (if supported), 1280x720 if not.  For best results,\n" +
		"    use a size supported by the AVC encoder.\n" +
		"--bit-rate RATE\n" +
		"    Set the video bit rate, in bits per second.  Value may be specified as\n" +
		"    bits or megabits, e.g. '4000000' is equivalent to '4M'.  Default 20Mbps.\n" +
		"--bugreport\n" +
		"    Add additional information, such as a timestamp overlay, that is helpful\n" +
		"    in videos captured to illustrate bugs.\n" +
		"--time-limit TIME\n" + limit +
		"--display-id ID\n" +
		"    specify the physical display ID to record. Default is the primary display.\n" +
		"    see \"dumpsys SurfaceFlinger --display-id\" for valid display IDs.\n" +
		"--output-format FORMAT\n" +
		"    Format to output: mp4|h264|frames|raw-frames.  Default mp4.\n" +
		"--verbose\n" +
		"    Display interesting information on stderr.\n" +
		"--help\n" +
		"    Show this message.\n\n" +
		"Recording continues until Ctrl-C is hit or the time limit is reached.\n\n"
}

// parseBitRate parses screenrecord's RATE: bits, or with a K or M suffix.
func parseBitRate(s string) (int64, bool) {
	mul := int64(1)
	switch {
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mul, s = 1_000_000, s[:len(s)-1]
	case strings.HasSuffix(s, "K"), strings.HasSuffix(s, "k"):
		mul, s = 1_000, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n * mul, true
}

// screenrecord emulates /system/bin/screenrecord: it validates its flags as
// the real one does (status 2 and a message on stderr otherwise) and
// streams the clip as raw H.264 in real time until the time limit, ctx
// ends, or a write fails. Only --output-format=h264 output is real H.264;
// an mp4 file holds the same raw stream.
func (d *Device) screenrecord(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	rec := Recording{Args: append([]string(nil), args...), TimeLimit: maxTimeLimit * time.Second}
	format := "mp4"
	var sizeW, sizeH int
	var file string
	files := 0
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-" || !strings.HasPrefix(a, "--") {
			file = a
			files++
			continue
		}
		name, val, hasVal := strings.Cut(a[2:], "=")
		value := func() (string, bool) {
			if hasVal {
				return val, true
			}
			if i+1 < len(args) {
				i++
				return args[i], true
			}
			fmt.Fprintf(stderr, "screenrecord: option '--%s' requires an argument\n", name)
			return "", false
		}
		switch name {
		case "help":
			_, _ = io.WriteString(stderr, d.screenrecordHelp())
			return 0
		case "verbose", "bugreport", "rotate", "monotonic-time", "persistent-surface":
		case "size":
			v, ok := value()
			if !ok {
				return 2
			}
			w, h, ok := strings.Cut(v, "x")
			wi, err1 := strconv.Atoi(w)
			hi, err2 := strconv.Atoi(h)
			if !ok || err1 != nil || err2 != nil {
				fmt.Fprintf(stderr, "Invalid size '%s', must be width x height\n", v)
				return 2
			}
			if wi <= 0 || hi <= 0 {
				fmt.Fprintf(stderr, "Invalid size %dx%d\n", wi, hi)
				return 2
			}
			rec.Size = v
			sizeW, sizeH = wi, hi
		case "bit-rate":
			v, ok := value()
			if !ok {
				return 2
			}
			n, ok := parseBitRate(v)
			if !ok || n < 100_000 || n > 200_000_000 {
				fmt.Fprintf(stderr, "Bit rate %sbps outside acceptable range [100000,200000000]\n", v)
				return 2
			}
			rec.BitRate = n
		case "time-limit":
			v, ok := value()
			if !ok {
				return 2
			}
			n, err := strconv.Atoi(v)
			minLimit, maxLimit := 1, maxTimeLimit
			if d.opts.SDK >= 34 {
				minLimit, maxLimit = 0, 1<<30
			}
			if err != nil || n < minLimit || n > maxLimit {
				fmt.Fprintf(stderr, "Time limit %ss outside acceptable range [%d,%d]\n", v, minLimit, maxTimeLimit)
				return 2
			}
			rec.TimeLimit = time.Duration(n) * time.Second
		case "output-format":
			v, ok := value()
			if !ok {
				return 2
			}
			switch v {
			case "mp4", "h264", "frames", "raw-frames":
				format = v
			default:
				fmt.Fprintf(stderr, "Unknown format '%s'\n", v)
				return 2
			}
		case "display-id", "codec-name", "bframes":
			if _, ok := value(); !ok {
				return 2
			}
		default:
			fmt.Fprintf(stderr, "screenrecord: unrecognized option '%s'\n", a)
			fmt.Fprintf(stderr, "Unknown option '%s'; run with --help for usage\n", a)
			return 2
		}
	}
	if files != 1 {
		fmt.Fprintln(stderr, "Must specify output file (see --help).")
		return 2
	}
	if format == "frames" || format == "raw-frames" {
		fmt.Fprintln(stderr, "ERROR: frames output is not emulated")
		return 1
	}
	if file == "-" && format != "h264" {
		fmt.Fprintln(stderr, "ERROR: can only write to stdout with --output-format=h264")
		return 2
	}
	c := d.clip
	if d.Fault(FaultRotated) && d.rclip != nil {
		c = d.rclip
	}
	if sizeW > 0 {
		// The encoder makes pictures of the asked size, or refuses to
		// configure (the real one's message; it retries at 720p only
		// when no --size was given).
		if !encoderTakes(sizeW, sizeH) {
			fmt.Fprintf(stderr, "ERROR: unable to configure video/avc codec at %dx%d (err=-2147483648)\n", sizeW, sizeH)
			return 1
		}
		sc, err := scaledClip(c, sizeW, sizeH, rec.BitRate)
		if err != nil {
			fmt.Fprintf(stderr, "ERROR: unable to configure video/avc codec at %dx%d (err=-2147483648)\n", sizeW, sizeH)
			fmt.Fprintf(stderr, "emulator: %v\n", err)
			return 1
		}
		c = sc
	}
	if d.opts.RecordStartDelay > 0 {
		select {
		case <-ctx.Done():
			return 130
		case <-time.After(d.opts.RecordStartDelay):
		}
	}
	rec.Started = time.Now()
	d.mu.Lock()
	idx := len(d.records)
	d.records = append(d.records, rec)
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.records[idx].Ended = time.Now()
		d.mu.Unlock()
	}()

	out := stdout
	var buf bytes.Buffer
	if file != "-" {
		out = &buf
	}
	d.stream(ctx, c, rec.Started, rec.TimeLimit, out)
	if file != "-" {
		d.WriteFile(file, buf.Bytes(), 0o660)
	}
	return 0
}

// stream writes c's pictures to w at the device's frame rate from start
// until limit (0 = none) has passed, ctx ends or a write fails, applying
// the video faults.
func (d *Device) stream(ctx context.Context, c *clip, start time.Time, limit time.Duration, w io.Writer) {
	fps := time.Duration(d.opts.FPS)
	rotated := d.Fault(FaultRotated)
	resend := false
	timer := time.NewTimer(0)
	defer timer.Stop()
	for n := 0; ; n++ {
		at := time.Duration(n) * time.Second / fps
		if limit > 0 && at >= limit {
			return
		}
		if wait := time.Until(start.Add(at)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		if r := d.Fault(FaultRotated); r != rotated {
			rotated, resend = r, true
		}
		if n > 0 && d.Fault(FaultStaticScreen) {
			continue
		}
		if d.Fault(FaultGarbage) {
			if _, err := w.Write(garbage(64 + rand.IntN(512))); err != nil {
				return
			}
		}
		p := c.pics[n%len(c.pics)]
		data := p.bare
		switch {
		case n == 0, d.opts.RepeatParameterSets && p.key:
			data = p.full
		case resend && p.key:
			data = append(append([]byte(nil), c.params...), p.bare...)
			resend = false
		}
		if _, err := w.Write(data); err != nil {
			return
		}
		if n >= int(fps)/2 && d.Fault(FaultDropMidStream) {
			d.Drop()
			return
		}
	}
}

// garbage returns n random bytes without a zero byte, so without anything
// that looks like a start code.
func garbage(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(1 + rand.IntN(255))
	}
	return b
}
