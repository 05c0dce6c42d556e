//go:build e2e

package e2e

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"mediasvc/e2e/adbdevice"
)

// TestRecordingAcrossRotation: a recording of a scrcpy device that turns
// mid-way decodes whole with the real ffmpeg — every keyframe sample
// carries its SPS and PPS in-band, so the decoder follows the new size
// although the file's avcC holds the first — and ffprobe -show_frames
// sees frames of both sizes, with no error.
func TestRecordingAcrossRotation(t *testing.T) {
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	d.EnableScrcpy("")
	cfg := scrcpyConfig(t, srv, map[string]any{"audio": false}).
		set("recordings", "dir", t.TempDir())
	in := startInstance(t, cfg)
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width == 1280 })
	base := in.Base + "/api/v1/devices/" + d.Serial() + "/recordings"
	resp, body := do(t, "POST", base, "", nil, nil)
	if resp.StatusCode != 201 {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	time.Sleep(2 * time.Second)
	d.SetFault(adbdevice.FaultRotated, true)
	time.Sleep(3 * time.Second)
	resp, body = do(t, "DELETE", base, "", nil, nil)
	var rec e2eRecording
	if resp.StatusCode != 200 || json.Unmarshal(body, &rec) != nil || rec.State != "done" {
		t.Fatalf("stop: %d %s", resp.StatusCode, body)
	}
	path := download(t, in.Base+rec.FileURL)

	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v", "-show_frames",
		"-show_entries", "frame=width,height", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe -show_frames: %v", err)
	}
	sizes := map[string]int{}
	for _, l := range strings.Split(string(out), "\n") {
		// A frame's line starts with its size; side data (the SEI
		// timestamps) follows on the same line.
		if f := strings.SplitN(l, ",", 3); len(f) >= 2 {
			sizes[f[0]+","+f[1]]++
		}
	}
	if sizes["1280,720"] == 0 || sizes["720,1280"] == 0 {
		t.Fatalf("frame sizes %v, want both 1280,720 and 720,1280", sizes)
	}
	decoded := decodeClean(t, path) // every frame, none with an error
	frames := 0
	for _, n := range sizes {
		frames += n
	}
	if decoded != frames {
		t.Fatalf("ffmpeg decoded %d frames, ffprobe saw %d", decoded, frames)
	}
	t.Logf("frame sizes %v, %d frames decoded", sizes, decoded)
}
