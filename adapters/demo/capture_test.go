package demo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"testing"
	"time"

	"mediasvc/domain"
)

func newTestSource(t testing.TB, speed float64) *Source {
	t.Helper()
	s, err := New(Options{Speed: speed})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openTest(t testing.TB, s *Source) *Capture {
	t.Helper()
	c, err := s.Open(context.Background(), DeviceID, domain.CaptureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*Capture)
}

// stripSEI returns the video frame f without the SEI timestamp NAL unit and
// the time that unit carries.
func stripSEI(t testing.TB, f domain.Frame) ([]byte, time.Time) {
	t.Helper()
	var out []byte
	var ts time.Time
	found := 0
	for _, n := range domain.SplitAnnexB(f.Data) {
		if at, ok := domain.ParseSEITimestamp(n); ok {
			ts = at
			found++
			continue
		}
		out = append(append(out, domain.AnnexBStartCode...), n...)
	}
	if found != 1 {
		t.Fatalf("frame at %v holds %d SEI timestamps, want 1", f.PTS, found)
	}
	return out, ts
}

func TestReadFrameLoops(t *testing.T) {
	s := newTestSource(t, math.Inf(1))
	c := openTest(t, s)
	ctx := context.Background()
	const loops = 2
	var (
		videos, audios int
		last           time.Duration
		lastAudioEnd   time.Duration
	)
	for videos < loops*300+45 {
		f, err := c.ReadFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.PTS < last {
			t.Fatalf("PTS went back from %v to %v", last, f.PTS)
		}
		last = f.PTS
		switch f.Kind {
		case domain.KindVideo:
			if want := videoPTS(int64(videos)); f.PTS != want {
				t.Fatalf("video frame %d PTS %v, want %v", videos, f.PTS, want)
			}
			clipAU := c.clip.video[videos%300]
			data, _ := stripSEI(t, f)
			if !bytes.Equal(data, clipAU.data) {
				t.Fatalf("video frame %d is not clip picture %d", videos, videos%300)
			}
			if f.Keyframe != (videos%30 == 0) || f.Keyframe != domain.IsKeyframe(f.Data) {
				t.Fatalf("video frame %d: Keyframe %v", videos, f.Keyframe)
			}
			if videos%300 == 0 && f.PTS != time.Duration(videos/300)*10*time.Second {
				t.Fatalf("loop %d starts at %v", videos/300, f.PTS)
			}
			if f.Duration != time.Second/30 {
				t.Fatalf("video duration %v", f.Duration)
			}
			videos++
		case domain.KindAudio:
			if f.PTS != lastAudioEnd {
				t.Fatalf("audio packet %d at %v, want %v (continuous)", audios, f.PTS, lastAudioEnd)
			}
			if !bytes.Equal(f.Data, c.clip.audio[audios%500].data) {
				t.Fatalf("audio packet %d is not clip packet %d", audios, audios%500)
			}
			lastAudioEnd += f.Duration
			audios++
		default:
			t.Fatalf("frame kind %d", f.Kind)
		}
		// The next audio and video PTS stay within a frame of each other:
		// in sync across loops.
		if v := videoPTS(int64(videos)); (lastAudioEnd - v).Abs() > time.Second/30 {
			t.Fatalf("audio at %v, video at %v: out of sync", lastAudioEnd, v)
		}
	}
	if audios < loops*500 {
		t.Fatalf("%d audio packets for %d video frames", audios, videos)
	}
}

func TestFirstFrameIsStampedKeyframe(t *testing.T) {
	s := newTestSource(t, 0)
	c := openTest(t, s)
	before := time.Now()
	f, err := c.ReadFrame(context.Background())
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if f.Kind != domain.KindVideo || !f.Keyframe || f.PTS != 0 {
		t.Fatalf("first frame: kind %d keyframe %v PTS %v, want a video keyframe at 0", f.Kind, f.Keyframe, f.PTS)
	}
	types := nalTypes(f.Data)
	var seiAt, idrAt int = -1, -1
	for i, n := range domain.SplitAnnexB(f.Data) {
		if _, ok := domain.ParseSEITimestamp(n); ok {
			seiAt = i
		}
		if domain.NALType(n) == domain.NALTypeIDR && idrAt < 0 {
			idrAt = i
		}
	}
	if types[0] != domain.NALTypeSPS || types[1] != domain.NALTypePPS || seiAt < 2 || idrAt != seiAt+1 {
		t.Fatalf("NAL types %v, SEI timestamp at %d: want SPS, PPS, …, SEI timestamp, IDR", types, seiAt)
	}
	_, ts := stripSEI(t, f)
	if !ts.Equal(f.Ingest) || ts.Before(before) || ts.After(after) {
		t.Fatalf("SEI time %v, Ingest %v, want equal and within [%v, %v]", ts, f.Ingest, before, after)
	}
	if got := c.Info(); got != (domain.StreamInfo{Video: domain.CodecH264, Audio: domain.CodecOpus, Width: 1280, Height: 720, FPS: 30, ProfileLevelID: "42e01f"}) {
		t.Fatalf("Info = %+v", got)
	}
	// The next frames are stamped later, each with its own time.
	for range 5 {
		g, err := c.ReadFrame(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if g.Kind != domain.KindVideo {
			continue
		}
		if _, ts := stripSEI(t, g); !ts.Equal(g.Ingest) || ts.Before(f.Ingest) {
			t.Fatalf("frame at %v stamped %v, Ingest %v", g.PTS, ts, g.Ingest)
		}
	}
}

func TestPacing(t *testing.T) {
	const speed = 10
	s := newTestSource(t, speed)
	c := openTest(t, s)
	start := time.Now()
	var f domain.Frame
	var err error
	for f.PTS < 500*time.Millisecond {
		if f, err = c.ReadFrame(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// Pacing never runs ahead of PTS/speed; how far behind a loaded machine
	// lags is not asserted.
	if el, min := time.Since(start), time.Duration(float64(f.PTS)/speed); el < min {
		t.Fatalf("read up to PTS %v in %v, sooner than %v", f.PTS, el, min)
	}
}

func TestReadFrameUnblocks(t *testing.T) {
	tests := []struct {
		name    string
		stop    func(*Capture, context.CancelFunc)
		wantErr error
	}{
		{"close", func(c *Capture, _ context.CancelFunc) { _ = c.Close() }, io.EOF},
		{"cancel", func(_ *Capture, cancel context.CancelFunc) { cancel() }, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// At 1/1000 speed the third frame (audio at 20 ms) is due 20 s
			// after the first two (video and audio at 0).
			s := newTestSource(t, 0.001)
			c := openTest(t, s)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for range 2 {
				if _, err := c.ReadFrame(ctx); err != nil {
					t.Fatal(err)
				}
			}
			done := make(chan error, 1)
			go func() {
				_, err := c.ReadFrame(ctx)
				done <- err
			}()
			time.Sleep(20 * time.Millisecond)
			tt.stop(c, cancel)
			select {
			case err := <-done:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ReadFrame err = %v, want %v", err, tt.wantErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("ReadFrame still blocked")
			}
		})
	}
}

func TestClosed(t *testing.T) {
	c := openTest(t, newTestSource(t, 0))
	for range 2 {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.ReadFrame(context.Background()); !errors.Is(err, io.EOF) {
		t.Fatalf("ReadFrame after Close: %v, want io.EOF", err)
	}
	c2 := openTest(t, newTestSource(t, 0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c2.ReadFrame(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadFrame with done ctx: %v", err)
	}
}

// readVideo reads frames until the next video frame, returning it and the
// audio frames read before it.
func readVideo(t *testing.T, c *Capture) (domain.Frame, []domain.Frame) {
	t.Helper()
	var audio []domain.Frame
	for {
		f, err := c.ReadFrame(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if f.Kind == domain.KindVideo {
			return f, audio
		}
		audio = append(audio, f)
	}
}

func TestRequestKeyframe(t *testing.T) {
	tests := []struct {
		name      string
		requestAt int // video frames read before the request
		keyAt     int // index of the first keyframe after it
		clipPic   int // the clip picture it shows
	}{
		{"mid GOP jumps to next GOP", 15, 15, 30},
		{"right after a keyframe waits for the gap", 2, minKeyframeGap, 30},
		{"in the last GOP wraps to the clip start", 9*30 + 20, 9*30 + 20, 0},
		{"when a keyframe is due anyway", 30, 30, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := openTest(t, newTestSource(t, math.Inf(1)))
			for range tt.requestAt {
				readVideo(t, c)
			}
			c.RequestKeyframe()
			c.RequestKeyframe() // coalesced
			var lastAudio time.Duration = -1
			for i := tt.requestAt; ; i++ {
				f, audio := readVideo(t, c)
				if f.PTS != videoPTS(int64(i)) {
					t.Fatalf("video frame %d PTS %v, want %v", i, f.PTS, videoPTS(int64(i)))
				}
				for _, a := range audio {
					if lastAudio >= 0 && a.PTS != lastAudio+20*time.Millisecond {
						t.Fatalf("audio PTS jumped from %v to %v", lastAudio, a.PTS)
					}
					lastAudio = a.PTS
				}
				if i < tt.keyAt {
					if f.Keyframe {
						t.Fatalf("keyframe at %d, want it at %d", i, tt.keyAt)
					}
					continue
				}
				if !f.Keyframe {
					t.Fatalf("video frame %d is no keyframe", i)
				}
				data, _ := stripSEI(t, f)
				if !bytes.Equal(data, c.clip.video[tt.clipPic].data) {
					t.Fatalf("keyframe is not clip picture %d", tt.clipPic)
				}
				break
			}
			// Audio follows the jump: the next packet is the one at the
			// GOP's start, with PTS still continuous.
			f, err := c.ReadFrame(context.Background())
			for err == nil && f.Kind != domain.KindAudio {
				f, err = c.ReadFrame(context.Background())
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := c.clip.audio[c.clip.audioIndexAt(videoPTS(int64(tt.clipPic)))].data; !bytes.Equal(f.Data, want) {
				t.Fatalf("audio did not follow the jump")
			}
			// The request is spent: the next keyframe is a GOP later.
			for j := 1; j < 30; j++ {
				if g, _ := readVideo(t, c); g.Keyframe {
					t.Fatalf("extra keyframe %d frames after the forced one", j)
				}
			}
		})
	}
}

func TestDevices(t *testing.T) {
	s := newTestSource(t, 0)
	ctx := context.Background()
	want := domain.Device{ID: "demo", Name: "Demo device", Model: "mediasvc demo", State: domain.DeviceOnline,
		Width: 1280, Height: 720, Backend: "demo", Breaker: domain.BreakerClosed, Audio: true}
	ds, err := s.Devices(ctx)
	if err != nil || len(ds) != 1 || ds[0] != want {
		t.Fatalf("Devices = %+v, %v", ds, err)
	}
	if d, err := s.Device(ctx, "demo"); err != nil || d != want {
		t.Fatalf("Device(demo) = %+v, %v", d, err)
	}
	if _, err := s.Device(ctx, "other"); !errors.Is(err, domain.ErrDeviceNotFound) {
		t.Fatalf("Device(other) err = %v", err)
	}
	if _, err := s.Open(ctx, "other", domain.CaptureOptions{}); !errors.Is(err, domain.ErrDeviceNotFound) {
		t.Fatalf("Open(other) err = %v", err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Open(done, "demo", domain.CaptureOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with done ctx err = %v", err)
	}
	c := openTest(t, s)
	c.SetBitrate(500_000) // ignored
	c.RequestKeyframe()
	if f, err := c.ReadFrame(ctx); err != nil || !f.Keyframe {
		t.Fatalf("first frame after SetBitrate: %v, %v", f.Keyframe, err)
	}
}

func TestInput(t *testing.T) {
	s := newTestSource(t, 0)
	ctx := context.Background()
	evs := []domain.InputEvent{
		{Type: domain.InputTap, X: 10, Y: 10}, {Type: domain.InputTap, X: 1279, Y: 719},
		{Type: domain.InputKey, Key: "KEYCODE_A"}, {Type: domain.InputHome},
	}
	for _, ev := range evs {
		if err := s.Input(ctx, DeviceID, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Input(ctx, "other", evs[0]); !errors.Is(err, domain.ErrDeviceNotFound) {
		t.Fatalf("Input(other) err = %v", err)
	}
	if err := s.Input(ctx, DeviceID, domain.InputEvent{Type: "explode"}); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("Input(bad type) err = %v", err)
	}
	got := s.Inputs()
	want := map[domain.InputType]uint64{domain.InputTap: 2, domain.InputKey: 1, domain.InputHome: 1}
	if len(got) != len(want) {
		t.Fatalf("Inputs = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("Inputs = %v, want %v", got, want)
		}
	}
	got[domain.InputTap] = 100
	if s.Inputs()[domain.InputTap] != 2 {
		t.Fatal("Inputs returned its own map")
	}
}

func TestNewOptions(t *testing.T) {
	for _, speed := range []float64{-1, math.NaN(), math.Inf(-1)} {
		if _, err := New(Options{Speed: speed}); err == nil {
			t.Errorf("New(Speed %v) succeeded", speed)
		}
	}
}

// BenchmarkReadFrame measures ReadFrame without pacing: mostly the copy of
// each video access unit with its SEI timestamp.
func BenchmarkReadFrame(b *testing.B) {
	c := openTest(b, newTestSource(b, math.Inf(1)))
	ctx := context.Background()
	var n int64
	b.ReportAllocs()
	for b.Loop() {
		f, err := c.ReadFrame(ctx)
		if err != nil {
			b.Fatal(err)
		}
		n += int64(len(f.Data))
	}
	b.ReportMetric(float64(n)/float64(b.N), "bytes/frame")
}

// BenchmarkNew measures parsing the embedded clip, which New does once.
func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestKeyframeIsTheLatest: the demo's keyframe is the clip's first before
// any capture, then the one a capture handed out last; another id is not
// found.
func TestKeyframeIsTheLatest(t *testing.T) {
	s, err := New(Options{Speed: math.Inf(1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := s.Keyframe(ctx, DeviceID)
	if err != nil || !bytes.Equal(first, s.clip.video[0].data) {
		t.Fatalf("before any capture: %d bytes, %v", len(first), err)
	}
	c, err := s.Open(ctx, DeviceID, domain.CaptureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	keys := 0
	for keys < 2 {
		f, err := c.ReadFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.Keyframe {
			keys++
		}
	}
	got, _ := s.Keyframe(ctx, DeviceID)
	if bytes.Equal(got, first) || !bytes.Equal(got, s.clip.video[s.clip.nextKey[0]].data) {
		t.Fatalf("after two keyframes: still the first (%d bytes)", len(got))
	}
	if _, err := s.Keyframe(ctx, "other"); !errors.Is(err, domain.ErrDeviceNotFound) {
		t.Fatalf("other id: %v", err)
	}
}
