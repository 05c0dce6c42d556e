package rtc

import (
	"testing"
	"time"

	"mediasvc/domain"
)

// frameSizes approximates a 2 Mbps 30 fps stream with a 2 s GOP: ~60 kB
// keyframes and ~7.5 kB delta frames.
const (
	benchKeySize   = 60_000
	benchDeltaSize = 7_500
)

func benchFanout(b *testing.B, ring int) (*Transport, *Fanout) {
	tp, err := New(Config{RingMaxBytes: ring * 1300}, quietLogger())
	if err != nil {
		b.Fatal(err)
	}
	f, err := tp.newFanout("dev", domain.StreamInfo{Video: domain.CodecH264, Audio: domain.CodecOpus})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close(); _ = tp.Close() })
	return tp, f
}

// BenchmarkFanoutWrite measures packetize-once cost per frame (one op = one
// access unit written to the ring, viewers woken: none here).
func BenchmarkFanoutWrite(b *testing.B) {
	for _, bc := range []struct {
		name string
		key  bool
		size int
	}{{"delta7.5kB", false, benchDeltaSize}, {"key60kB", true, benchKeySize}} {
		b.Run(bc.name, func(b *testing.B) {
			_, f := benchFanout(b, 4096)
			fr := domain.Frame{Kind: domain.KindVideo, Data: testAU(bc.key, bc.size, 0x50), Keyframe: bc.key}
			b.SetBytes(int64(len(fr.Data)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				fr.PTS = time.Duration(i) * 33 * time.Millisecond
				if err := f.WriteFrame(fr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkViewerSend measures the per-viewer per-packet cost: copy out of
// the ring under the read lock, keyframe gate, SSRC/seq/timestamp rewrite,
// NACK history, write to a no-network TrackLocalWriter. One op = one packet.
func BenchmarkViewerSend(b *testing.B) {
	_, f := benchFanout(b, 4096)
	p, w := offlinePeer(f.t, f)
	key := testAU(true, benchKeySize, 0x50)
	delta := testAU(false, benchDeltaSize, 0x60)
	// Fill the ring with one GOP's worth of packets.
	var pts time.Duration
	write := func(k bool) {
		d := delta
		if k {
			d = key
		}
		_ = f.WriteFrame(domain.Frame{Kind: domain.KindVideo, Data: d, PTS: pts, Keyframe: k})
		pts += 33 * time.Millisecond
	}
	write(true)
	for f.ring.head < 3000 {
		write(false)
	}
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for sent < b.N {
		f.ring.start(&p.cur) // rewind to the keyframe: reread the GOP
		before := w.n
		p.drain()
		sent += w.n - before
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(sent), "ns/pkt")
}

// TestViewerSendNoAlloc asserts the per-viewer hot path does not allocate.
func TestViewerSendNoAlloc(t *testing.T) {
	tp, err := New(Config{}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	f, err := tp.newFanout("dev", domain.StreamInfo{Video: domain.CodecH264, Audio: domain.CodecOpus})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, w := offlinePeer(tp, f)
	p.audio = p.video // route audio through a bound track too
	key, delta := testAU(true, 20000, 0x50), testAU(false, 5000, 0x60)
	opus := make([]byte, 120)
	var pts time.Duration
	f.ring.start(&p.cur)
	// AllocsPerRun counts every goroutine's allocations, so a background
	// goroutine of the runtime or the race detector that runs during the
	// measurement adds noise on a loaded host. An allocation on the send
	// path itself happens on every run, so it fails all attempts.
	var allocs float64
	for attempt := 0; attempt < 3; attempt++ {
		allocs = testing.AllocsPerRun(50, func() {
			_ = f.WriteFrame(domain.Frame{Kind: domain.KindVideo, Data: key, PTS: pts, Keyframe: true})
			_ = f.WriteFrame(domain.Frame{Kind: domain.KindVideo, Data: delta, PTS: pts + 33*time.Millisecond})
			_ = f.WriteFrame(domain.Frame{Kind: domain.KindAudio, Data: opus, PTS: pts})
			pts += 66 * time.Millisecond
			p.drain()
		})
		if allocs == 0 {
			break
		}
	}
	if allocs != 0 {
		t.Fatalf("allocs per write+drain = %v in each of 3 attempts, want 0", allocs)
	}
	if w.n == 0 {
		t.Fatal("nothing sent")
	}
}
