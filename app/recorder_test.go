package app_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"mediasvc/app"
	"mediasvc/domain"
	"mediasvc/ports"
)

// recStore is a fake ports.RecordingStore keeping each writer's frames.
type recStore struct {
	mu      sync.Mutex
	writers []*recWriter
	stored  []domain.Recording // what List returns besides the writers'
}

type recWriter struct {
	mu     sync.Mutex
	rec    domain.Recording
	frames []domain.Frame
	closed bool
}

func (s *recStore) Create(rec domain.Recording, info domain.StreamInfo) (ports.RecordingWriter, error) {
	if !rec.ID.Valid() {
		return nil, domain.ErrInvalidRequest
	}
	rec.State, rec.Width, rec.Height = domain.RecordingActive, info.Width, info.Height
	w := &recWriter{rec: rec}
	s.mu.Lock()
	s.writers = append(s.writers, w)
	s.mu.Unlock()
	return w, nil
}

func (s *recStore) List() ([]domain.Recording, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]domain.Recording(nil), s.stored...)
	for _, w := range s.writers {
		out = append(out, w.Recording())
	}
	return out, nil
}

func (s *recStore) Get(id domain.RecordingID) (domain.Recording, error) {
	recs, _ := s.List()
	for _, r := range recs {
		if r.ID == id {
			return r, nil
		}
	}
	return domain.Recording{}, domain.ErrRecordingNotFound
}

func (s *recStore) Open(domain.RecordingID) (io.ReadSeekCloser, domain.Recording, error) {
	return nil, domain.Recording{}, domain.ErrRecordingNotFound
}

func (s *recStore) Delete(domain.RecordingID) error { return domain.ErrRecordingNotFound }

func (s *recStore) writer(i int) *recWriter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.writers) {
		return nil
	}
	return s.writers[i]
}

func (w *recWriter) WriteFrame(f domain.Frame) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.frames = append(w.frames, f)
	w.rec.Bytes += int64(len(f.Data))
	return nil
}

func (w *recWriter) Recording() domain.Recording {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rec
}

func (w *recWriter) Close(reason string) (domain.Recording, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed, w.rec.State, w.rec.StopReason = true, domain.RecordingDone, reason
	return w.rec, nil
}

func (w *recWriter) snapshot() ([]domain.Frame, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]domain.Frame(nil), w.frames...), w.closed
}

func newRecorderRig(t *testing.T, lim domain.RecordingLimits) (*rig, *recStore, *app.Recorder) {
	t.Helper()
	r := newRig(t, app.Config{Hub: app.HubConfig{RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}})
	st := &recStore{}
	rec := r.svc.NewRecorder(st, app.RecorderConfig{Limits: lim}, slog.New(slog.DiscardHandler))
	return r, st, rec
}

func TestRecordingSurvivesACaptureReopenAsOneFile(t *testing.T) {
	r, st, rec := newRecorderRig(t, domain.RecordingLimits{MaxConcurrent: 2})
	ctx := context.Background()
	started, err := rec.Start(ctx, "dev", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !started.ID.Valid() || started.Device != "dev" || started.Owner != "alice" {
		t.Fatalf("started %+v", started)
	}
	first := <-r.captures
	for i := range 10 {
		first.Frames <- domain.Frame{Kind: domain.KindVideo, Keyframe: i == 0, PTS: time.Duration(i) * 33 * time.Millisecond, Data: []byte{1}}
	}
	close(first.Frames) // the device blips: the capture ends and is reopened
	second := <-r.captures
	for i := range 10 { // a new capture's PTS starts again at 0
		second.Frames <- domain.Frame{Kind: domain.KindVideo, Keyframe: i == 0, PTS: time.Duration(i) * 33 * time.Millisecond, Data: []byte{2}}
	}
	w := st.writer(0)
	eventually(t, "all 20 frames recorded", func() bool { f, _ := w.snapshot(); return len(f) == 20 })
	done, err := rec.Stop(ctx, "dev")
	if err != nil || done.ID != started.ID || done.StopReason != "stopped" {
		t.Fatalf("stop = %+v, %v", done, err)
	}
	frames, closed := w.snapshot()
	if !closed || st.writer(1) != nil {
		t.Fatalf("closed %v, a second file %v: want one file", closed, st.writer(1) != nil)
	}
	for i := 1; i < len(frames); i++ {
		if frames[i].PTS <= frames[i-1].PTS {
			t.Fatalf("PTS not growing across the reopen: frame %d at %s after %s", i, frames[i].PTS, frames[i-1].PTS)
		}
	}
	if _, err := rec.Stop(ctx, "dev"); !errors.Is(err, domain.ErrRecordingNotFound) {
		t.Fatalf("second stop = %v, want not found", err)
	}
}

func TestRecordingLimits(t *testing.T) {
	ctx := context.Background()
	t.Run("one per device, max concurrent", func(t *testing.T) {
		_, _, rec := newRecorderRig(t, domain.RecordingLimits{MaxConcurrent: 1})
		if _, err := rec.Start(ctx, "dev", "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := rec.Start(ctx, "dev", "a"); !errors.Is(err, domain.ErrConflict) {
			t.Fatalf("second on the device = %v, want conflict", err)
		}
		if _, err := rec.Start(ctx, "other", "a"); !errors.Is(err, domain.ErrLimitExceeded) {
			t.Fatalf("past max_concurrent = %v, want limit exceeded", err)
		}
	})
	t.Run("storage full refuses, deletes nothing", func(t *testing.T) {
		r, st, rec := newRecorderRig(t, domain.RecordingLimits{MaxTotalBytes: 100})
		st.stored = []domain.Recording{{ID: "00000000000000ff", State: domain.RecordingDone, Bytes: 100}}
		if _, err := rec.Start(ctx, "dev", "a"); !errors.Is(err, domain.ErrStorageFull) {
			t.Fatalf("start on a full store = %v, want storage full", err)
		}
		if r.opens.Load() != 0 {
			t.Fatal("a refused recording opened the capture")
		}
	})
	t.Run("running recording ends at the byte bound", func(t *testing.T) {
		r, st, rec := newRecorderRig(t, domain.RecordingLimits{MaxTotalBytes: 100})
		st.stored = []domain.Recording{{ID: "00000000000000ff", State: domain.RecordingDone, Bytes: 60}}
		if _, err := rec.Start(ctx, "dev", "a"); err != nil {
			t.Fatal(err)
		}
		c := <-r.captures
		for i := 0; ; i++ {
			w := st.writer(0)
			if _, closed := w.snapshot(); closed {
				break
			}
			select {
			case c.Frames <- domain.Frame{Kind: domain.KindVideo, Keyframe: i == 0, PTS: time.Duration(i) * 33 * time.Millisecond, Data: make([]byte, 10)}:
			case <-time.After(10 * time.Millisecond):
			}
			if i > 1000 {
				t.Fatal("never stopped at the byte bound")
			}
		}
		if got := st.writer(0).Recording(); got.StopReason != "storage_full" || got.Bytes != 40 {
			t.Fatalf("ended %+v, want storage_full at 40 bytes", got)
		}
	})
	t.Run("max duration", func(t *testing.T) {
		r, st, rec := newRecorderRig(t, domain.RecordingLimits{MaxDuration: time.Second})
		if _, err := rec.Start(ctx, "dev", "a"); err != nil {
			t.Fatal(err)
		}
		c := <-r.captures
		w := st.writer(0)
	send:
		for i := 0; i < 60; i++ { // 2 s of frames; the capture stops with the recording
			select {
			case c.Frames <- domain.Frame{Kind: domain.KindVideo, Keyframe: i%30 == 0, PTS: time.Duration(i) * time.Second / 30, Data: []byte{1}}:
			case <-time.After(time.Second):
				if _, closed := w.snapshot(); !closed {
					t.Fatal("pump stuck while recording")
				}
				break send
			}
		}
		eventually(t, "ended at max_duration", func() bool { _, closed := w.snapshot(); return closed })
		frames, _ := w.snapshot()
		if got := w.Recording().StopReason; got != "max_duration" || len(frames) != 30 {
			t.Fatalf("ended %q with %d frames, want max_duration with 30", got, len(frames))
		}
	})
}
