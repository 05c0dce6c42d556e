package mp4rec

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"mediasvc/domain"
	"mediasvc/ports"
)

var _ ports.RecordingWriter = (*Writer)(nil)

// Time scales of the tracks: the RTP clocks of H.264 and Opus.
const (
	videoTimeScale = 90000
	audioTimeScale = 48000
	videoTrackID   = 1
	audioTrackID   = 2
)

// Fragment lengths: a fragment ends at the first keyframe after
// minFragment, or at maxFragment whatever comes; a crash loses at most
// the fragment being gathered.
const (
	minFragment = time.Second
	maxFragment = 4 * time.Second
)

// Writer writes one recording as fragmented MP4: an init segment (ftyp,
// moov) at the first keyframe, then a moof+mdat per fragment, each
// written with one write and followed by the metadata file.
type Writer struct {
	store *Store
	f     *os.File
	info  domain.StreamInfo

	started bool
	t0      time.Duration // PTS of the first keyframe: media time 0
	seq     uint32
	video   track
	audio   track
	closed  bool
	written int64

	mu  sync.Mutex // guards rec, read by List and Get
	rec domain.Recording
}

// track gathers one track's samples of the fragment under way. A sample
// is held back until the next one tells its duration.
type track struct {
	scale   int64
	pending *fmp4.Sample
	pendAt  int64 // pending's decode time in ticks
	samples []*fmp4.Sample
	base    int64 // decode time of samples[0]
	end     int64 // decode time after the last sample in samples
}

func newWriter(s *Store, f *os.File, rec domain.Recording, info domain.StreamInfo) *Writer {
	return &Writer{store: s, f: f, info: info, rec: rec,
		video: track{scale: videoTimeScale}, audio: track{scale: audioTimeScale}}
}

func ticks(d time.Duration, scale int64) int64 {
	return int64(d) * scale / int64(time.Second)
}

// add puts s at decode time at as the track's pending sample, moving the
// previous pending one into the fragment with its duration.
func (t *track) add(s *fmp4.Sample, at int64) {
	t.settle(at)
	t.pending, t.pendAt = s, at
}

// settle moves the pending sample into the fragment, lasting until next.
func (t *track) settle(next int64) {
	if t.pending == nil {
		return
	}
	d := max(next-t.pendAt, 1)
	t.pending.Duration = uint32(d)
	if len(t.samples) == 0 {
		t.base = t.pendAt
	}
	t.samples = append(t.samples, t.pending)
	t.end = t.pendAt + d
	t.pending = nil
}

// span is how long the samples gathered so far last.
func (t *track) span() time.Duration {
	if len(t.samples) == 0 {
		return 0
	}
	return time.Duration((t.end - t.base) * int64(time.Second) / t.scale)
}

// WriteFrame implements ports.RecordingWriter.
func (w *Writer) WriteFrame(f domain.Frame) error {
	if w.closed {
		return fmt.Errorf("write recording %s: closed", w.rec.ID)
	}
	switch f.Kind {
	case domain.KindVideo:
		return w.writeVideo(f)
	case domain.KindAudio:
		if !w.started || w.rec.Audio == "" || f.PTS < w.t0 || len(f.Data) == 0 {
			return nil
		}
		w.audio.add(&fmp4.Sample{Payload: f.Data}, ticks(f.PTS-w.t0, audioTimeScale))
	}
	return nil
}

func (w *Writer) writeVideo(f domain.Frame) error {
	var au h264.AnnexB
	if err := au.Unmarshal(f.Data); err != nil {
		return nil // a malformed access unit is left out, not fatal
	}
	if !w.started {
		if !f.Keyframe {
			return nil
		}
		var sps, pps []byte
		for _, n := range au {
			if len(n) == 0 {
				continue
			}
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS:
				sps = n
			case h264.NALUTypePPS:
				pps = n
			}
		}
		if sps == nil || pps == nil {
			return nil // wait for a keyframe that carries them
		}
		if err := w.writeInit(sps, pps); err != nil {
			return err
		}
		w.started, w.t0 = true, f.PTS
	}
	if f.PTS < w.t0 {
		return nil
	}
	s := &fmp4.Sample{}
	if err := s.FillH264(0, au); err != nil {
		return nil
	}
	s.IsNonSyncSample = !f.Keyframe
	at := ticks(f.PTS-w.t0, videoTimeScale)
	w.video.settle(at)
	if span := w.video.span(); (f.Keyframe && span >= minFragment) || span >= maxFragment {
		if err := w.flush(); err != nil {
			return err
		}
	}
	w.video.add(s, at)
	return nil
}

func (w *Writer) writeInit(sps, pps []byte) error {
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{
		ID: videoTrackID, TimeScale: videoTimeScale,
		Codec: &mp4.CodecH264{SPS: sps, PPS: pps},
	}}}
	if w.rec.Audio == domain.CodecOpus {
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{
			ID: audioTrackID, TimeScale: audioTimeScale,
			Codec: &mp4.CodecOpus{ChannelCount: 2},
		})
	}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return fmt.Errorf("write recording %s init: %w", w.rec.ID, err)
	}
	return w.commit(buf.Bytes(), 0)
}

// flush writes the gathered samples as one fragment.
func (w *Writer) flush() error {
	if len(w.video.samples) == 0 && len(w.audio.samples) == 0 {
		return nil
	}
	w.seq++
	part := fmp4.Part{SequenceNumber: w.seq}
	if len(w.video.samples) > 0 {
		part.Tracks = append(part.Tracks, &fmp4.PartTrack{ID: videoTrackID, BaseTime: uint64(w.video.base), Samples: w.video.samples})
	}
	if len(w.audio.samples) > 0 {
		part.Tracks = append(part.Tracks, &fmp4.PartTrack{ID: audioTrackID, BaseTime: uint64(w.audio.base), Samples: w.audio.samples})
	}
	var buf seekablebuffer.Buffer
	if err := part.Marshal(&buf); err != nil {
		return fmt.Errorf("write recording %s fragment: %w", w.rec.ID, err)
	}
	dur := time.Duration(w.video.end * int64(time.Second) / videoTimeScale)
	w.video.samples, w.audio.samples = nil, nil
	return w.commit(buf.Bytes(), dur)
}

// commit writes b in one write, then the metadata with the new size.
func (w *Writer) commit(b []byte, dur time.Duration) error {
	n, err := w.f.Write(b)
	w.written += int64(n)
	if err != nil {
		return fmt.Errorf("write recording %s: %w", w.rec.ID, err)
	}
	w.mu.Lock()
	w.rec.Bytes = w.written
	if dur > 0 {
		w.rec.Duration = dur
	}
	rec := w.rec
	w.mu.Unlock()
	return w.store.writeMeta(rec)
}

// Recording implements ports.RecordingWriter.
func (w *Writer) Recording() domain.Recording {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rec
}

// Close implements ports.RecordingWriter.
func (w *Writer) Close(reason string) (domain.Recording, error) {
	if w.closed {
		return w.Recording(), nil
	}
	w.closed = true
	defer w.store.finished(w.rec.ID)
	var err error
	if w.started {
		frame := int64(videoTimeScale / 30)
		if w.info.FPS > 0 {
			frame = int64(videoTimeScale / w.info.FPS)
		}
		w.video.settle(w.video.pendAt + frame)
		w.audio.settle(w.audio.pendAt + audioTimeScale/50) // 20 ms, Opus's usual frame
		err = w.flush()
	}
	if serr := w.f.Sync(); err == nil {
		err = serr
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.mu.Lock()
	w.rec.State = domain.RecordingDone
	w.rec.EndedAt = time.Now().UTC()
	w.rec.StopReason = reason
	if err != nil {
		w.rec.StopReason = "failed: " + err.Error()
	}
	rec := w.rec
	w.mu.Unlock()
	if merr := w.store.writeMeta(rec); err == nil {
		err = merr
	}
	return rec, err
}
