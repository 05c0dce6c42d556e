package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"mediasvc/app"
	"mediasvc/domain"
	"mediasvc/ports"
	"mediasvc/ports/portstest"
)

// withRenditions gives the rig transcoders making made, and a transport
// whose Negotiate picks VP8 for the offer "vp8" (when a transcoder makes
// it; no_common_codec otherwise) and the original for any other.
func withRenditions(tcs *portstest.Transcoders) func(*app.Deps) {
	return func(d *app.Deps) {
		if tcs != nil {
			d.Transcoders = tcs
		}
		d.Transport.(*portstest.Transport).NegotiateFunc = func(offer string, _ domain.StreamInfo, rs []domain.Rendition) (domain.Rendition, error) {
			if offer != "vp8" {
				return domain.RenditionOriginal, nil
			}
			for _, r := range rs {
				if r == domain.RenditionVP8 {
					return r, nil
				}
			}
			return "", &domain.NoCommonCodecError{Offered: []string{"VP8"}, Sends: "H264"}
		}
	}
}

// offer creates a viewer session and offers sdp.
func (r *rig) offer(t *testing.T, sdp string) (domain.Session, error) {
	t.Helper()
	ctx := context.Background()
	sess, _, err := r.svc.CreateSession(ctx, "dev", domain.RoleViewer, "o")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.svc.Offer(ctx, sess.ID, sdp)
	return sess, err
}

var kvVP8 = attribute.String("rendition", "vp8")

// Two VP8 viewers share one transcoder fed by the capture pump: video goes
// through it, audio to the rendition's fanout as it is; the original's
// viewer is served by the capture alone. A rendition viewer's keyframe
// request reaches the transcoder and the source. The transcoder stops a
// grace period after its last viewer, the capture goes on for the other.
func TestRenditionSharedFedAndStopped(t *testing.T) {
	rd, mp := newReading(t)
	tcs := &portstest.Transcoders{Made: []domain.Rendition{domain.RenditionVP8}}
	r := newRigOn(t, app.Config{Hub: app.HubConfig{Grace: 50 * time.Millisecond}}, newMemstore(), nil,
		withRenditions(tcs), func(d *app.Deps) { d.Meter = mp.Meter("mediasvc/app") })
	ctx := context.Background()
	if _, err := r.offer(t, "h264"); err != nil {
		t.Fatal(err)
	}
	capt := <-r.captures
	if n := len(tcs.Started()); n != 0 {
		t.Fatalf("%d transcoders for an H.264 viewer", n)
	}
	a, err := r.offer(t, "vp8")
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.offer(t, "vp8")
	if err != nil {
		t.Fatal(err)
	}
	started := tcs.Started()
	if len(started) != 1 {
		t.Fatalf("%d transcoders for two VP8 viewers, want one shared", len(started))
	}
	tc := started[0]
	if tc.Rendition != domain.RenditionVP8 || tc.Info().Video != domain.CodecVP8 {
		t.Fatalf("transcoder %s making %s", tc.Rendition, tc.Info().Video)
	}
	r.mu.Lock()
	orig, rend, nfan := r.fanouts[0], r.fanouts[1], len(r.fanouts)
	r.mu.Unlock()
	if nfan != 2 {
		t.Fatalf("%d fanouts, want the original's and the rendition's", nfan)
	}
	if got := rd.value("media_transcoders_active", kvDevice, kvVP8); got != 1 {
		t.Fatalf("media_transcoders_active = %v, want 1", got)
	}
	// The transcoder asked the capture for a keyframe to start from.
	eventually(t, "a source keyframe requested for the transcoder", func() bool { return capt.Keyframes.Load() == 1 })

	capt.Frames <- domain.Frame{Kind: domain.KindVideo, Keyframe: true, Data: []byte{0, 0, 0, 1, 0x65}, PTS: 0}
	capt.Frames <- domain.Frame{Kind: domain.KindAudio, Data: []byte{1, 2, 3}, PTS: 10 * time.Millisecond}
	eventually(t, "both frames in the original", func() bool { return len(orig.Frames()) == 2 })
	eventually(t, "the transcoded video and the source's audio in the rendition", func() bool {
		fs := rend.Frames()
		return len(fs) == 2
	})
	var video, audio int
	for _, f := range rend.Frames() {
		switch f.Kind {
		case domain.KindVideo:
			video++
		case domain.KindAudio:
			audio++
			if string(f.Data) != "\x01\x02\x03" {
				t.Fatalf("audio changed on its way: %x", f.Data)
			}
		}
	}
	if video != 1 || audio != 1 || tc.Written.Load() != 1 {
		t.Fatalf("rendition got %d video, %d audio; transcoder written %d", video, audio, tc.Written.Load())
	}

	// A VP8 viewer's PLI (its fanout's coalesced request): the transcoder
	// makes the keyframe; the source is asked only while the transcoder
	// waits for one of its keyframes.
	rend.RequestKeyframe()
	eventually(t, "the keyframe request at the transcoder", func() bool { return tc.Keyframes.Load() == 1 })
	time.Sleep(50 * time.Millisecond)
	if n := capt.Keyframes.Load(); n != 1 {
		t.Fatalf("the source was asked for %d keyframes, want only the first", n)
	}
	tc.NeedSource.Store(true)
	rend.RequestKeyframe()
	eventually(t, "the second request at the transcoder", func() bool { return tc.Keyframes.Load() == 2 })
	eventually(t, "and at the source, the transcoder waiting for its keyframe", func() bool { return capt.Keyframes.Load() == 2 })
	tc.NeedSource.Store(false)

	if err := r.svc.CloseSession(ctx, a.ID, "bye"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // past the grace: one viewer is left
	if tc.Closed.Load() {
		t.Fatal("transcoder stopped with a viewer left")
	}
	if err := r.svc.CloseSession(ctx, b.ID, "bye"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the transcoder stopped after the grace", tc.Closed.Load)
	eventually(t, "its fanout closed", rend.Closed.Load)
	eventually(t, "media_transcoders_active back to 0", func() bool {
		return rd.value("media_transcoders_active", kvDevice, kvVP8) == 0
	})
	if capt.Closed.Load() || orig.Closed.Load() {
		t.Fatal("the capture stopped with the rendition while its viewer stays")
	}
	// A new VP8 viewer starts a new one.
	if _, err := r.offer(t, "vp8"); err != nil {
		t.Fatal(err)
	}
	if n := len(tcs.Started()); n != 2 {
		t.Fatalf("%d transcoders started, want a second one", n)
	}
}

// Without a transcoder a VP8-only viewer gets no_common_codec, and a
// transcoder that cannot start makes the device unavailable to that
// viewer only; the next one tries again.
func TestRenditionUnavailable(t *testing.T) {
	r := newRigOn(t, app.Config{}, newMemstore(), nil, withRenditions(nil))
	if _, err := r.offer(t, "vp8"); !errors.Is(err, domain.ErrNoCommonCodec) {
		t.Fatalf("VP8 offer without transcoders = %v, want ErrNoCommonCodec", err)
	}

	fail := true
	tcs := &portstest.Transcoders{Made: []domain.Rendition{domain.RenditionVP8}}
	fake := &portstest.Transcoders{}
	tcs.StartFunc = func(rr domain.Rendition, in domain.StreamInfo) (ports.Transcoder, error) {
		if fail {
			fail = false
			return nil, errors.New("ffmpeg: exec format error")
		}
		return fake.Start(rr, in)
	}
	r = newRigOn(t, app.Config{}, newMemstore(), nil, withRenditions(tcs))
	if _, err := r.offer(t, "vp8"); !errors.Is(err, domain.ErrDeviceUnavailable) {
		t.Fatalf("VP8 offer with a failing transcoder = %v, want ErrDeviceUnavailable", err)
	}
	if _, err := r.offer(t, "vp8"); err != nil {
		t.Fatalf("the next VP8 viewer = %v", err)
	}
	if n := len(fake.Started()); n != 1 {
		t.Fatalf("%d transcoders running", n)
	}
}

// A source whose picture changes size (a rotated device) gets a new
// transcoder for the new size from its keyframe on; the viewers keep the
// rendition's fanout.
func TestRenditionFollowsSourceSize(t *testing.T) {
	tcs := &portstest.Transcoders{Made: []domain.Rendition{domain.RenditionVP8}}
	r := newRigOn(t, app.Config{}, newMemstore(), nil, withRenditions(tcs))
	if _, err := r.offer(t, "vp8"); err != nil {
		t.Fatal(err)
	}
	capt := <-r.captures
	first := tcs.Started()[0]
	key := domain.Frame{Kind: domain.KindVideo, Keyframe: true, Data: []byte{0, 0, 0, 1, 0x65}}
	capt.Frames <- key
	eventually(t, "the first keyframe through the transcoder", func() bool { return first.Written.Load() == 1 })
	rotated := capt.Info()
	rotated.Width, rotated.Height = rotated.Height, rotated.Width
	capt.SetInfo(rotated)
	key.PTS = time.Second
	capt.Frames <- key
	eventually(t, "a second transcoder", func() bool { return len(tcs.Started()) == 2 })
	eventually(t, "the first one closed", first.Closed.Load)
	second := tcs.Started()[1]
	if got := second.Info(); got.Width != rotated.Width || got.Height != rotated.Height {
		t.Fatalf("second transcoder for %dx%d, want %dx%d", got.Width, got.Height, rotated.Width, rotated.Height)
	}
	if first.Written.Load() != 1 {
		t.Fatalf("the old transcoder got the new size's keyframe")
	}
	key.PTS = 2 * time.Second
	capt.Frames <- key
	eventually(t, "frames into the new transcoder", func() bool { return second.Written.Load() == 1 })
	r.mu.Lock()
	nfan := len(r.fanouts)
	r.mu.Unlock()
	if nfan != 2 {
		t.Fatalf("%d fanouts, want the original's and the one rendition's", nfan)
	}
}
