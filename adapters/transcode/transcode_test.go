package transcode

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"mediasvc/domain"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testAUs returns the access units of a small H.264 clip made by ffmpeg
// (320x240, 30 fps, Constrained Baseline, SPS/PPS and an IDR every 30
// frames): small, so the tests stay cheap on a shared machine.
func testAUs(t *testing.T) [][]byte { return testAUsGOP(t, 30) }

// testAUsGOP is testAUs with an IDR every gop frames.
func testAUsGOP(t *testing.T, gop int) [][]byte {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=30:d=4",
		"-c:v", "libx264", "-profile:v", "baseline", "-preset", "ultrafast", "-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop), "-sc_threshold", "0", "-bf", "0",
		"-x264-params", "repeat-headers=1", "-f", "h264", "pipe:1").Output()
	if err != nil {
		t.Fatalf("make test clip: %v", err)
	}
	var aus [][]byte
	var cur []byte
	for _, nal := range domain.SplitAnnexB(out) {
		cur = append(cur, 0, 0, 0, 1)
		cur = append(cur, nal...)
		if typ := domain.NALType(nal); typ == domain.NALTypeSlice || typ == domain.NALTypeIDR {
			aus = append(aus, cur)
			cur = nil
		}
	}
	if len(aus) != 120 {
		t.Fatalf("test clip has %d access units", len(aus))
	}
	return aus
}

func needFFmpeg(t *testing.T, r domain.Rendition) {
	t.Helper()
	rs, err := Available(context.Background(), "")
	if err != nil {
		t.Fatalf("ffmpeg is needed (scripts/install-deps.sh installs it): %v", err)
	}
	for _, x := range rs {
		if x == r {
			return
		}
	}
	t.Fatalf("ffmpeg lacks the encoder for %s", r)
}

// run feeds n access units at 30 fps and reads the rendition until every
// frame ffmpeg was given came out (bar the last two, which may still be
// inside it); it returns them. On a busy machine ffmpeg may fall behind and
// the transcoder drop input up to a keyframe: those frames never come.
func run(t *testing.T, r domain.Rendition, n int) []domain.Frame {
	t.Helper()
	return runGOP(t, r, n, 30)
}

// runGOP is run with a source keyframe every gop frames.
func runGOP(t *testing.T, r domain.Rendition, n, gop int) []domain.Frame {
	t.Helper()
	return runRequests(t, r, n, gop, nil)
}

// runRequests is runGOP calling RequestKeyframe before writing frame i
// for each i of at.
func runRequests(t *testing.T, r domain.Rendition, n, gop int, at []int) []domain.Frame {
	t.Helper()
	needFFmpeg(t, r)
	tc, err := Start(Config{}, r, domain.StreamInfo{Video: domain.CodecH264, Audio: domain.CodecOpus, Width: 320, Height: 240, FPS: 30}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if got := tc.Info(); got.Video != r.Codec() || got.Audio != domain.CodecOpus || got.Width != 320 {
		t.Fatalf("info %+v", got)
	}
	aus := testAUsGOP(t, gop)
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		tick := time.NewTicker(time.Second / 30)
		defer tick.Stop()
		for i := range n {
			if slices.Contains(at, i) {
				tc.RequestKeyframe()
			}
			_ = tc.Write(domain.Frame{Kind: domain.KindVideo, Data: aus[i%len(aus)], PTS: time.Duration(i) * time.Second / 30, Keyframe: i%len(aus)%gop == 0})
			<-tick.C
		}
	}()
	frames := make(chan domain.Frame, n)
	readErr := make(chan error, 1)
	go func() {
		for {
			f, err := tc.ReadFrame(context.Background())
			if err != nil {
				readErr <- err
				return
			}
			frames <- f
		}
	}()
	defer func() { _ = tc.Close() }()
	out := make([]domain.Frame, 0, n)
	var quiet <-chan time.Time // after feeding: how long to wait for stragglers
	for {
		select {
		case f := <-frames:
			out = append(out, f)
			if quiet != nil && len(out) >= n-int(tc.Dropped())-2 {
				return out
			}
		case err := <-readErr:
			t.Fatalf("after %d frames (%d dropped): %v", len(out), tc.Dropped(), err)
		case <-fed:
			fed = nil
			quiet = time.After(30 * time.Second)
			if len(out) >= n-int(tc.Dropped())-2 {
				return out
			}
		case <-quiet:
			// A slow machine: frames still inside ffmpeg. Enough came out
			// to check what they are.
			if len(out) < n/2 {
				t.Fatalf("only %d of %d frames came out (%d dropped)", len(out), n, tc.Dropped())
			}
			return out
		}
	}
}

// checkPTS: every output carries the PTS of an input frame, in order.
func checkPTS(t *testing.T, out []domain.Frame) {
	t.Helper()
	for i, f := range out {
		if f.PTS%(time.Second/30) != 0 && f.PTS != time.Duration(int(f.PTS/(time.Second/30)))*time.Second/30 {
			t.Fatalf("frame %d pts %v is no input pts", i, f.PTS)
		}
		if i > 0 && f.PTS <= out[i-1].PTS {
			t.Fatalf("frame %d pts %v after %v", i, f.PTS, out[i-1].PTS)
		}
	}
}

func TestVP8Rendition(t *testing.T) {
	out := run(t, domain.RenditionVP8, 100) // 3.3 s at 30 fps, longer on a busy machine
	if !out[0].Keyframe || out[0].PTS != 0 {
		t.Fatalf("first frame keyframe=%v pts=%v", out[0].Keyframe, out[0].PTS)
	}
	checkPTS(t, out)
	keys := 0
	for i, f := range out {
		if f.Keyframe {
			keys++
		}
		if len(f.Data) < 3 || (f.Keyframe && !(f.Data[3] == 0x9d && f.Data[4] == 0x01 && f.Data[5] == 0x2a)) {
			t.Fatalf("frame %d is no VP8 frame", i)
		}
	}
	// One per source keyframe (every 30 frames of PTS; a busy machine
	// drops frames, not keyframes), no more.
	if last := int(out[len(out)-1].PTS / (time.Second / 30)); keys < 1 || keys > last/30+1 {
		t.Fatalf("%d keyframes in %d frames (up to frame %d), want one every 30", keys, len(out), last)
	}
}

// A source with a long GOP still gets a rendition keyframe every
// KeyframeInterval (2 s) of frames: 60 at 30 fps.
func TestRenditionKeyframeInterval(t *testing.T) {
	for _, r := range []domain.Rendition{domain.RenditionVP8, domain.RenditionBaseline} {
		t.Run(string(r), func(t *testing.T) {
			out := runGOP(t, r, 120, 1000)
			var keys []time.Duration
			for _, f := range out {
				if f.Keyframe {
					keys = append(keys, f.PTS)
				}
			}
			if len(keys) < 2 || keys[0] != 0 {
				t.Fatalf("keyframes at %v", keys)
			}
			for i := 1; i < len(keys); i++ {
				if gap := keys[i] - keys[i-1]; gap > 2*time.Second {
					t.Fatalf("keyframes at %v: a gap of %v", keys, gap)
				}
			}
		})
	}
}

func TestBaselineRendition(t *testing.T) {
	out := run(t, domain.RenditionBaseline, 70)
	if !out[0].Keyframe {
		t.Fatal("first frame is no keyframe")
	}
	var sps []byte
	for _, nal := range domain.SplitAnnexB(out[0].Data) {
		if domain.NALType(nal) == domain.NALTypeSPS {
			sps = nal
		}
	}
	if got := domain.ProfileLevelID(sps); got[:2] != "42" || got[4:] != "1f" {
		t.Fatalf("profile-level-id %q, want Constrained Baseline 3.1", got)
	}
	pl, _ := domain.ParseProfileLevelID(domain.ProfileLevelID(sps))
	if pl.Profile != domain.ProfileConstrainedBaseline {
		t.Fatalf("profile %s", pl)
	}
	checkPTS(t, out)
}

func TestDropsUntilKeyframe(t *testing.T) {
	needFFmpeg(t, domain.RenditionVP8)
	tc, err := Start(Config{QueueFrames: 1}, domain.RenditionVP8, domain.StreamInfo{Video: domain.CodecH264}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	aus := testAUs(t)
	// Deltas before any keyframe are dropped.
	for i := 1; i < 5; i++ {
		if err := tc.Write(domain.Frame{Kind: domain.KindVideo, Data: aus[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if got := tc.Dropped(); got != 4 {
		t.Fatalf("dropped %d, want 4", got)
	}
	if err := tc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tc.Write(domain.Frame{Kind: domain.KindVideo, Data: aus[0]}); err == nil {
		t.Fatal("write after close succeeded")
	}
	if _, err := tc.ReadFrame(context.Background()); !errors.Is(err, io.EOF) {
		t.Fatalf("read after close: %v", err)
	}
}

func TestStartFailures(t *testing.T) {
	if _, err := Start(Config{FFmpeg: "/nonexistent/ffmpeg"}, domain.RenditionVP8, domain.StreamInfo{}, quiet()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("missing ffmpeg: %v", err)
	}
	if _, err := Available(context.Background(), "/nonexistent/ffmpeg"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Available with a missing ffmpeg: %v", err)
	}
	if _, err := Start(Config{}, domain.Rendition("av1"), domain.StreamInfo{}, quiet()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("unknown rendition: %v", err)
	}
	// ffmpeg that exits at once: the error carries what it said.
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	fake := t.TempDir() + "/ffmpeg"
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'Unknown encoder libvpx' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tc, err := Start(Config{FFmpeg: fake}, domain.RenditionVP8, domain.StreamInfo{}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	_, err = tc.ReadFrame(context.Background())
	if !errors.Is(err, io.EOF) {
		t.Fatalf("read: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, err = tc.ReadFrame(context.Background()); err == nil {
		t.Fatal("read after exit succeeded")
	}
}

// ffmpeg must not complain about its timestamps (non-monotonic DTS, PTS
// it had to change) however the frames arrive: here in bursts, as they
// come from a capture pump that a busy machine held back, and spaced
// less than a frame apart.
func TestNoTimestampWarnings(t *testing.T) {
	for _, r := range []domain.Rendition{domain.RenditionBaseline, domain.RenditionVP8} {
		t.Run(string(r), func(t *testing.T) {
			needFFmpeg(t, r)
			tc, err := Start(Config{LogLevel: "warning", QueueFrames: 200}, r, domain.StreamInfo{Video: domain.CodecH264, Width: 320, Height: 240, FPS: 30}, quiet())
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()
			aus := testAUs(t)
			n := 0
			readErr := make(chan error, 1)
			go func() {
				for {
					if _, err := tc.ReadFrame(context.Background()); err != nil {
						readErr <- err
						return
					}
					n++
				}
			}()
			for i, au := range aus {
				_ = tc.Write(domain.Frame{Kind: domain.KindVideo, Data: au, PTS: time.Duration(i) * time.Second / 30, Keyframe: i%30 == 0})
				switch {
				case i%10 == 9:
					time.Sleep(200 * time.Millisecond) // a stall, then a burst
				case i%10 >= 5:
					// a burst: no wait at all
				default:
					time.Sleep(5 * time.Millisecond)
				}
			}
			for len(tc.in) > 0 {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond) // the last write
			_ = tc.stdin.Close()               // end of input: ffmpeg flushes and exits
			if err := <-readErr; !errors.Is(err, io.EOF) {
				t.Fatalf("read: %v", err)
			}
			tc.mu.Lock()
			log := string(tc.stderr)
			tc.mu.Unlock()
			if n < len(aus)/2 {
				t.Fatalf("%d of %d frames out; ffmpeg said:\n%s", n, len(aus), log)
			}
			for _, bad := range []string{"onotonous", "onotonic", "Invalid timestamps", "changing to", "Past duration"} {
				if strings.Contains(log, bad) {
					t.Fatalf("%d frames out; ffmpeg warned about timestamps (%q):\n%s", n, bad, log)
				}
			}
			t.Logf("%d frames out, ffmpeg said: %q", n, log)
		})
	}
}

// The wall rendition scales the picture to domain.WallSize at the wall's
// bitrate and says so in its Info; its frames are Constrained Baseline.
func TestWallRendition(t *testing.T) {
	a, err := args(Config{BitrateBps: 1_500_000, KeyframeInterval: 2 * time.Second, LogLevel: "error"}, domain.RenditionWall,
		domain.StreamInfo{Video: domain.CodecH264, Width: 1280, Height: 720, FPS: 30})
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(a, " ")
	if !strings.Contains(line, "-vf scale=320:180") || !strings.Contains(line, "-b:v 250k") || !strings.Contains(line, "-profile:v baseline") {
		t.Fatalf("wall arguments %q", line)
	}
	needFFmpeg(t, domain.RenditionBaseline)
	tc, err := Start(Config{}, domain.RenditionWall, domain.StreamInfo{Video: domain.CodecH264, Width: 1280, Height: 720, FPS: 30}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if got := tc.Info(); got.Width != 320 || got.Height != 180 || got.ProfileLevelID != domain.BaselineProfileLevelID {
		t.Fatalf("wall info %+v", got)
	}
	out := run(t, domain.RenditionWall, 40)
	if len(out) == 0 || !out[0].Keyframe {
		t.Fatalf("wall rendition made %d frames", len(out))
	}
}

// TestKeyframeOnRequest: a viewer's PLI, passed to RequestKeyframe, makes
// the rendition's frame for the next source picture a keyframe — on a
// source whose own GOP is longer than the test — instead of leaving the
// viewer up to KeyframeInterval (2 s) without a picture.
func TestKeyframeOnRequest(t *testing.T) {
	const fps = 30
	reqs := []int{20, 75}
	for _, r := range []domain.Rendition{domain.RenditionVP8, domain.RenditionBaseline} {
		t.Run(string(r), func(t *testing.T) {
			out := runRequests(t, r, 110, 1000, reqs)
			var keys []int
			for _, f := range out {
				if f.Keyframe {
					keys = append(keys, int(f.PTS/(time.Second/fps)))
				}
			}
			t.Logf("keyframes at frames %v (requests before frames %v)", keys, reqs)
			for i, at := range reqs {
				// The first frame out at or after the request is a
				// keyframe: the request's own frame, or, when a busy
				// machine's queue dropped it, the source keyframe the
				// transcoder then waits for.
				j := slices.IndexFunc(out, func(f domain.Frame) bool { return f.PTS >= time.Duration(at)*time.Second/fps })
				if j < 0 && i > 0 {
					t.Logf("no frame out after frame %d (a busy machine): not checked", at)
					continue
				}
				if j < 0 || !out[j].Keyframe {
					t.Errorf("the request before frame %d: no keyframe next; keyframes at %v", at, keys)
				}
			}
			// Besides the first and the requested ones, only the GOP's:
			// at least 60 frames after the previous keyframe.
			for i := 1; i < len(keys); i++ {
				if !slices.Contains(reqs, keys[i]) && keys[i]-keys[i-1] < 60 {
					t.Errorf("an unexpected keyframe at frame %d: %v", keys[i], keys)
				}
			}
		})
	}
}

func TestWithRecoveryPoint(t *testing.T) {
	sei := string(recoveryPointSEI)
	for in, want := range map[string]string{
		"\x00\x00\x00\x01\x41\x9a":                                             sei + "\x00\x00\x00\x01\x41\x9a",
		"\x00\x00\x01\x41\x9a":                                                 sei + "\x00\x00\x01\x41\x9a",
		"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x41\x9a":                     "\x00\x00\x00\x01\x09\xf0" + sei + "\x00\x00\x00\x01\x41\x9a",
		"\x00\x00\x01\x09\xf0\x00\x00\x01\x41\x9a":                             "\x00\x00\x01\x09\xf0" + sei + "\x00\x00\x01\x41\x9a",
		"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x06\x05\x00\x00\x00\x01\x41": "\x00\x00\x00\x01\x09\xf0" + sei + "\x00\x00\x00\x01\x06\x05\x00\x00\x00\x01\x41",
	} {
		b := []byte(in)
		if got := withRecoveryPoint(b); string(got) != want {
			t.Errorf("withRecoveryPoint(%x) = %x, want %x", in, got, want)
		}
		if string(b) != in {
			t.Errorf("withRecoveryPoint changed its input %x", in)
		}
	}
	// The SEI itself: one recovery point message (payload type 6, 1 byte).
	nals := domain.SplitAnnexB(recoveryPointSEI)
	if len(nals) != 1 || domain.NALType(nals[0]) != domain.NALTypeSEI || nals[0][1] != 6 || nals[0][2] != 1 {
		t.Fatalf("recoveryPointSEI %x", recoveryPointSEI)
	}
}
