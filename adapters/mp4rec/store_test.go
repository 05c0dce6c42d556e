package mp4rec

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"mediasvc/domain"
)

// encode makes secs seconds of 320x240 30 fps H.264 (no B-frames, a
// keyframe each second) with the real ffmpeg and returns its access units
// in Annex-B form with their PTS, as a capture yields them.
func encode(t *testing.T, secs int) []domain.Frame {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg is needed (scripts/install-deps installs it)")
	}
	out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
		"-t", strconv.Itoa(secs), "-c:v", "libx264", "-bf", "0", "-g", "30", "-pix_fmt", "yuv420p", "-f", "h264", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(out); err != nil {
		t.Fatal(err)
	}
	var frames []domain.Frame
	var cur [][]byte
	key := false
	for _, n := range nalus {
		typ := h264.NALUType(n[0] & 0x1f)
		cur = append(cur, n)
		if typ == h264.NALUTypeIDR {
			key = true
		}
		if typ == h264.NALUTypeIDR || typ == h264.NALUTypeNonIDR { // one slice per picture
			b, err := h264.AnnexB(cur).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, domain.Frame{Kind: domain.KindVideo, Data: b, Keyframe: key,
				PTS: time.Duration(len(frames)) * time.Second / 30})
			cur, key = nil, false
		}
	}
	return frames
}

// withAudio interleaves 20 ms Opus packets (a silent frame, TOC 0xf8)
// with the video, in PTS order.
func withAudio(video []domain.Frame) []domain.Frame {
	end := video[len(video)-1].PTS
	var out []domain.Frame
	vi := 0
	for at := time.Duration(0); at <= end; at += 20 * time.Millisecond {
		for vi < len(video) && video[vi].PTS <= at {
			out = append(out, video[vi])
			vi++
		}
		out = append(out, domain.Frame{Kind: domain.KindAudio, Data: []byte{0xf8, 0xff, 0xfe}, PTS: at, Duration: 20 * time.Millisecond})
	}
	return append(out, video[vi:]...)
}

type probe struct {
	Streams []struct {
		CodecType string `json:"codec_type"`
		CodecName string `json:"codec_name"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
		NbFrames  string `json:"nb_read_frames"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

// ffprobe runs the real ffprobe on path, decoding every frame.
func ffprobe(t *testing.T, path string) probe {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output: %v\n%s", err, out)
	}
	return p
}

// decodes runs ffmpeg's decoder over the whole file and fails on any
// error it reports.
func decodes(t *testing.T, path string) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("decode %s: %v\n%s", path, err, out)
	}
}

func newStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var info = domain.StreamInfo{Video: domain.CodecH264, Audio: domain.CodecOpus, Width: 320, Height: 240, FPS: 30}

func TestRecordingPlaysWithItsLengthAndSize(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir)
	video := encode(t, 3)
	// Frames before the first keyframe are dropped: start mid-GOP.
	frames := append([]domain.Frame{{Kind: domain.KindAudio, Data: []byte{0xf8}, PTS: 0}}, withAudio(video)...)
	w, err := s.Create(domain.Recording{ID: "0123456789abcdef", Device: "demo", StartedAt: time.Now()}, info)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := w.Close("stopped")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "0123456789abcdef.mp4")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != domain.RecordingDone || rec.Bytes != st.Size() || rec.StopReason != "stopped" {
		t.Fatalf("recording %+v, file %d bytes", rec, st.Size())
	}
	if math.Abs(rec.Duration.Seconds()-3) > 0.05 {
		t.Fatalf("duration %s, want 3s", rec.Duration)
	}
	p := ffprobe(t, path)
	if len(p.Streams) != 2 || p.Streams[0].CodecName != "h264" || p.Streams[0].Width != 320 || p.Streams[0].Height != 240 ||
		p.Streams[1].CodecName != "opus" || p.Streams[0].NbFrames != strconv.Itoa(len(video)) {
		t.Fatalf("ffprobe: %+v (want h264 320x240 with %d frames, opus)", p.Streams, len(video))
	}
	if d, _ := strconv.ParseFloat(p.Format.Duration, 64); math.Abs(d-3) > 0.1 {
		t.Fatalf("ffprobe duration %s, want 3s", p.Format.Duration)
	}
	// The directory is the index: a new store lists it as it was.
	recs, err := newStore(t, dir).List()
	if err != nil || len(recs) != 1 || recs[0].ID != rec.ID || recs[0].State != domain.RecordingDone ||
		recs[0].Bytes != rec.Bytes || recs[0].Duration != rec.Duration.Truncate(time.Millisecond) || recs[0].Device != "demo" {
		t.Fatalf("listed %+v, %v; want %+v", recs, err, rec)
	}
}

func TestVideoOnlyStreamRecordsOneTrack(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir)
	vi := info
	vi.Audio = domain.CodecNone
	w, err := s.Create(domain.Recording{ID: "00000000000000aa", Device: "d"}, vi)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range withAudio(encode(t, 2)) { // audio offered anyway is left out
		if err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close("stopped"); err != nil {
		t.Fatal(err)
	}
	if p := ffprobe(t, filepath.Join(dir, "00000000000000aa.mp4")); len(p.Streams) != 1 || p.Streams[0].CodecName != "h264" {
		t.Fatalf("streams %+v", p.Streams)
	}
}

func TestInterruptedRecordingIsCutToItsLastFragment(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir)
	w, err := s.Create(domain.Recording{ID: "fedcba9876543210", Device: "demo", StartedAt: time.Now()}, info)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range withAudio(encode(t, 4)) {
		if err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	// The service dies mid-write: a torn fragment follows the last
	// complete one, and the writer is never closed.
	committed := w.Recording()
	path := filepath.Join(dir, "fedcba9876543210.mp4")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0, 0, 0x10, 0, 'm', 'o', 'o', 'f', 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	_ = w.(*Writer).f.Close()

	recs, err := newStore(t, dir).List()
	if err != nil || len(recs) != 1 {
		t.Fatalf("%+v %v", recs, err)
	}
	r := recs[0]
	if r.State != domain.RecordingInterrupted || r.Bytes != committed.Bytes || r.Duration < 2*time.Second {
		t.Fatalf("recovered %+v; committed %d bytes, %s", r, committed.Bytes, committed.Duration)
	}
	decodes(t, path)
	if p := ffprobe(t, path); len(p.Streams) != 2 || p.Streams[0].CodecName != "h264" {
		t.Fatalf("streams %+v", p.Streams)
	}
}

func TestIDsNeverNameAFileOutsideTheDirectory(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "recs")
	s := newStore(t, dir)
	victim := filepath.Join(parent, "victim.json")
	if err := os.WriteFile(victim, []byte(`{"id":"../victim"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, id := range []domain.RecordingID{"../victim", "..", "", "0123456789ABCDEF", "0123456789abcde/", "0123456789abcdef0"} {
		if _, err := s.Create(domain.Recording{ID: id}, info); !errors.Is(err, domain.ErrInvalidRequest) {
			t.Errorf("Create(%q) = %v, want invalid request", id, err)
		}
		if _, err := s.Get(id); !errors.Is(err, domain.ErrRecordingNotFound) {
			t.Errorf("Get(%q) = %v, want not found", id, err)
		}
		if _, _, err := s.Open(id); !errors.Is(err, domain.ErrRecordingNotFound) {
			t.Errorf("Open(%q) = %v, want not found", id, err)
		}
		if err := s.Delete(id); !errors.Is(err, domain.ErrRecordingNotFound) {
			t.Errorf("Delete(%q) = %v, want not found", id, err)
		}
	}
	if _, err := os.Stat(victim); err != nil {
		t.Fatalf("file outside the directory touched: %v", err)
	}
}

func TestRunningRecordingServesCompleteFragmentsAndCannotBeDeleted(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir)
	id := domain.RecordingID("1111111111111111")
	w, err := s.Create(domain.Recording{ID: id, Device: "demo"}, info)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range encode(t, 3) {
		if err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(id); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("Delete of a running recording = %v, want conflict", err)
	}
	rc, rec, err := s.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	_ = rc.Close()
	if rec.State != domain.RecordingActive || int64(len(b)) != rec.Bytes || rec.Bytes == 0 {
		t.Fatalf("read %d bytes of %+v", len(b), rec)
	}
	part := filepath.Join(t.TempDir(), "part.mp4")
	if err := os.WriteFile(part, b, 0o600); err != nil {
		t.Fatal(err)
	}
	decodes(t, part) // what is served while it records plays
	if _, err := w.Close("stopped"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(id); !errors.Is(err, domain.ErrRecordingNotFound) {
		t.Fatalf("Get after Delete = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left in the directory: %v", ents)
	}
}
