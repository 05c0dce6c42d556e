//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

type e2eRecording struct {
	ID              string  `json:"id"`
	Device          string  `json:"device_id"`
	State           string  `json:"state"`
	Bytes           int64   `json:"bytes"`
	DurationSeconds float64 `json:"duration_seconds"`
	StartedAt       string  `json:"started_at"`
	StopReason      string  `json:"stop_reason"`
	FileURL         string  `json:"file_url"`
	URL             string  `json:"url"`
}

// download GETs url into a file and returns its path.
func download(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/mp4" {
		t.Fatalf("download %s: %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	path := filepath.Join(t.TempDir(), "rec.mp4")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(f, resp.Body)
	_ = f.Close()
	if err != nil || (resp.ContentLength >= 0 && n != resp.ContentLength) {
		t.Fatalf("download: %d of %d bytes, %v", n, resp.ContentLength, err)
	}
	return path
}

type probed struct {
	video, audio  string
	width, height int
	duration      float64
}

// decodeClean decodes every stream of the file at path with the real
// ffmpeg and fails the test on any error it prints; it returns the number
// of video frames decoded. The frames' times are the capture's wall clock,
// so two can come a fraction of a millisecond apart when adb delivers them
// together: -enc_time_base -1 keeps the file's own time base, where the
// default (1/fps) would round such a pair to one time and ffmpeg would
// report its own rounding as a non-monotonic DTS.
func decodeClean(t *testing.T, path string) (video int) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-xerror", "-i", path,
		"-enc_time_base", "-1", "-f", "framecrc", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg decode of %s: %v\n%s", path, err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		stream, _, ok := strings.Cut(l, ",")
		if !ok || strings.Trim(stream, "0123456789") != "" {
			t.Fatalf("ffmpeg decode of %s printed %q", path, l)
		}
		if stream == "0" {
			video++
		}
	}
	return video
}

// probeFile runs the real ffprobe, decoding every frame (-count_frames).
func probeFile(t *testing.T, path string) probed {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	var p struct {
		Streams []struct {
			CodecType     string `json:"codec_type"`
			Name          string `json:"codec_name"`
			Width, Height int
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output: %v\n%s", err, out)
	}
	var r probed
	for _, s := range p.Streams {
		switch s.CodecType {
		case "video":
			r.video, r.width, r.height = s.Name, s.Width, s.Height
		case "audio":
			r.audio = s.Name
		}
	}
	r.duration, _ = strconv.ParseFloat(p.Format.Duration, 64)
	return r
}

func recordingsConfig(dir string) Config {
	return defaultConfig().set("recordings", "dir", dir).set("recordings", "max_concurrent", 1)
}

// TestRecordingDemo records the demo device for about 3 s through the
// API, downloads the file whole and by range, reads it with ffprobe,
// deletes it; then a recording cut short by a kill is listed again as
// interrupted after a restart and still decodes.
func TestRecordingDemo(t *testing.T) {
	dir := t.TempDir()
	in := startInstance(t, recordingsConfig(dir))
	base := in.Base + "/api/v1"

	resp, body := do(t, "POST", base+"/devices/demo/recordings", "", nil, nil)
	began := time.Now()
	var rec e2eRecording
	if resp.StatusCode != 201 || json.Unmarshal(body, &rec) != nil || rec.State != "recording" || rec.Device != "demo" {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, "POST", base+"/devices/demo/recordings", "", nil, nil); resp.StatusCode != 409 {
		t.Fatalf("second start on the device: %d %s", resp.StatusCode, body)
	}
	time.Sleep(3 * time.Second)
	resp, body = do(t, "DELETE", base+"/devices/demo/recordings", "", nil, nil)
	wall := time.Since(began).Seconds()
	if resp.StatusCode != 200 || json.Unmarshal(body, &rec) != nil || rec.State != "done" || rec.StopReason != "stopped" {
		t.Fatalf("stop: %d %s", resp.StatusCode, body)
	}

	path := download(t, in.Base+rec.FileURL)
	st, _ := os.Stat(path)
	if st.Size() != rec.Bytes {
		t.Fatalf("downloaded %d bytes, listed %d", st.Size(), rec.Bytes)
	}
	p := probeFile(t, path)
	if p.video != "h264" || p.width != 1280 || p.height != 720 || p.audio != "opus" {
		t.Fatalf("ffprobe: %+v, want h264 1280x720 with opus", p)
	}
	if math.Abs(p.duration-wall) > 0.5 {
		t.Fatalf("ffprobe duration %.3f s, wall time %.3f s", p.duration, wall)
	}
	t.Logf("recorded %.3f s (wall %.3f s, listed %.3f s), %d bytes", p.duration, wall, rec.DurationSeconds, rec.Bytes)

	resp, body = do(t, "GET", in.Base+rec.FileURL, "", nil, http.Header{"Range": {"bytes=100-199"}})
	if resp.StatusCode != 206 || len(body) != 100 || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 100-199/%d", rec.Bytes) {
		t.Fatalf("range: %d, %d bytes, %q", resp.StatusCode, len(body), resp.Header.Get("Content-Range"))
	}
	whole, _ := os.ReadFile(path)
	if string(body) != string(whole[100:200]) {
		t.Fatal("range bytes differ from the file's")
	}
	if resp, _ := do(t, "GET", in.Base+rec.FileURL, "", nil, http.Header{"Range": {fmt.Sprintf("bytes=%d-", rec.Bytes)}}); resp.StatusCode != 416 {
		t.Fatalf("range past the end: %d", resp.StatusCode)
	}
	if resp, body := do(t, "GET", base+"/recordings/..%2F..%2Fetc%2Fpasswd/file", "", nil, nil); resp.StatusCode != 400 || errorCode(body) != "invalid_request" {
		t.Fatalf("traversal: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", base+"/devices/demo/recordings", "", nil, nil)
	var list struct{ Recordings []e2eRecording }
	if resp.StatusCode != 200 || json.Unmarshal(body, &list) != nil || len(list.Recordings) != 1 || list.Recordings[0].ID != rec.ID {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, "DELETE", in.Base+rec.URL, "", nil, nil); resp.StatusCode != 204 {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, "GET", in.Base+rec.FileURL, "", nil, nil); resp.StatusCode != 404 || errorCode(body) != "recording_not_found" {
		t.Fatalf("after delete: %d %s", resp.StatusCode, body)
	}

	// A finished recording and one cut short by a kill, across a restart.
	resp, body = do(t, "POST", base+"/devices/demo/recordings", "", nil, nil)
	if resp.StatusCode != 201 {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	time.Sleep(1500 * time.Millisecond)
	resp, body = do(t, "DELETE", base+"/devices/demo/recordings", "", nil, nil)
	var kept e2eRecording
	if resp.StatusCode != 200 || json.Unmarshal(body, &kept) != nil {
		t.Fatalf("stop: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "POST", base+"/devices/demo/recordings", "", nil, nil)
	var cut e2eRecording
	if resp.StatusCode != 201 || json.Unmarshal(body, &cut) != nil {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	time.Sleep(3500 * time.Millisecond) // past a fragment or two
	if err := in.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-in.Done()
	in = startInstance(t, recordingsConfig(dir))
	resp, body = do(t, "GET", in.Base+"/api/v1/recordings", "", nil, nil)
	list.Recordings = nil
	if resp.StatusCode != 200 || json.Unmarshal(body, &list) != nil || len(list.Recordings) != 2 {
		t.Fatalf("list after restart: %d %s", resp.StatusCode, body)
	}
	got := map[string]e2eRecording{}
	for _, r := range list.Recordings {
		got[r.ID] = r
	}
	if r := got[kept.ID]; r.State != "done" || r.Bytes != kept.Bytes {
		t.Fatalf("finished recording after restart: %+v, was %+v", r, kept)
	}
	r := got[cut.ID]
	if r.State != "interrupted" || r.Bytes == 0 || r.DurationSeconds < 1 {
		t.Fatalf("killed recording after restart: %+v", r)
	}
	cutPath := download(t, in.Base+r.FileURL)
	decodeClean(t, cutPath) // the interrupted recording decodes cleanly
	if p := probeFile(t, cutPath); p.video != "h264" || p.duration < 1 {
		t.Fatalf("interrupted recording: %+v", p)
	}
}
