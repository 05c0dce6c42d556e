// Command loadgen starts many pion viewers of one mediasvc device on
// loopback and measures the service: session setup time, time to the first
// keyframe for late joiners, frame age from the SEI timestamps, per-viewer
// bitrate, and the server's CPU and memory per viewer from /proc.
//
//	loadgen -url http://127.0.0.1:8080 -device demo -viewers 200 \
//	    -duration 60s -ramp 10s -mode whep -pid $(pgrep -n mediasvc) -json
//
// Viewers join evenly over -ramp; the steady-state window runs from a few
// seconds after the ramp to -duration, and server CPU and RSS are sampled
// at its two ends (RSS per viewer is measured against the idle server before
// the first viewer). Every -sample-th viewer depacketizes fully to read
// frame ages; the others only count packets, to keep the client's CPU low.
// The client shares the machine with the server: its own CPU is reported.
// It only talks to loopback addresses, and stops by itself.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"mediasvc/e2e/client"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type options struct {
	url      string
	device   string
	viewers  int
	duration time.Duration
	ramp     time.Duration
	settle   time.Duration
	mode     string
	pid      int
	jsonOut  bool
	sample   int
	apiKey   string
	control  int
	ctlEvery time.Duration
	ctlTrace string

	devices    int
	server     string
	clip       string
	serverYAML string
}

// Report is what loadgen prints with -json.
type Report struct {
	Command             string `json:"command"`
	Date                string `json:"date"`
	Machine             string `json:"machine"`
	Mode                string `json:"mode"`
	Viewers             int    `json:"viewers"`
	Devices             int    `json:"devices,omitempty"`
	Duration            string `json:"duration"`
	Ramp                string `json:"ramp"`
	Connected           int    `json:"connected"`
	Failed              int    `json:"failed"`
	NoFrames            int    `json:"no_frames"`
	FirstPacketKeyframe int    `json:"first_packet_keyframe"`

	SetupAnswerP50Ms   float64 `json:"setup_answer_p50_ms"`
	SetupAnswerP95Ms   float64 `json:"setup_answer_p95_ms"`
	SetupKeyframeP50Ms float64 `json:"setup_first_keyframe_p50_ms"`
	SetupKeyframeP95Ms float64 `json:"setup_first_keyframe_p95_ms"`
	LateJoinerP50Ms    float64 `json:"late_joiner_connected_to_keyframe_p50_ms"`
	LateJoinerP95Ms    float64 `json:"late_joiner_connected_to_keyframe_p95_ms"`
	FrameAgeP50Ms      float64 `json:"frame_age_p50_ms"`
	FrameAgeP99Ms      float64 `json:"frame_age_p99_ms"`
	FrameAgeSamples    int     `json:"frame_age_samples"`
	FrameAgeMaxAllMs   float64 `json:"frame_age_max_incl_catchup_ms"`
	BitrateMeanKbps    float64 `json:"bitrate_per_viewer_mean_kbps"`
	BitrateMinKbps     float64 `json:"bitrate_per_viewer_min_kbps"`
	FPSMean            float64 `json:"fps_per_viewer_mean"`
	LostPackets        uint64  `json:"lost_packets"`
	ReceivedPackets    uint64  `json:"received_packets"`

	ServerIdleRSSKiB        uint64  `json:"server_idle_rss_kib,omitempty"`
	ServerRSSKiB            uint64  `json:"server_rss_kib,omitempty"`
	ServerRSSPerViewerKiB   float64 `json:"server_rss_per_viewer_kib,omitempty"`
	ServerMillicores        float64 `json:"server_millicores,omitempty"`
	ServerMillicoresPerView float64 `json:"server_millicores_per_viewer,omitempty"`
	ServerUsPerPacket       float64 `json:"server_us_per_packet,omitempty"`
	ServerRSSPerDeviceKiB   float64 `json:"server_rss_per_device_kib,omitempty"`
	// ServerPeakRSSKiB is the most RSS seen in the steady window (sampled
	// every second): rings follow their GOPs, so the end alone may catch
	// them low.
	ServerPeakRSSKiB          uint64  `json:"server_peak_rss_kib,omitempty"`
	ServerPeakRSSPerDeviceKiB float64 `json:"server_peak_rss_per_device_kib,omitempty"`
	// RingMemoryKiB is media_ring_memory_bytes at the window's end (held
	// and free) and GoMemoryKiB media_memory_usage_bytes (what the Go
	// runtime maps; the rings' chunks are outside it on Linux).
	RingMemoryKiB          float64 `json:"ring_memory_kib,omitempty"`
	GoMemoryKiB            float64 `json:"go_memory_kib,omitempty"`
	ServerMillicoresPerDev float64 `json:"server_millicores_per_device,omitempty"`
	ServerUsPerSentPacket  float64 `json:"server_us_per_sent_packet,omitempty"`
	SentPackets            float64 `json:"window_sent_packets,omitempty"`
	DatagramsPerSendCall   float64 `json:"datagrams_per_send_call,omitempty"`
	WindowPackets          uint64  `json:"window_packets"`
	WindowLost             uint64  `json:"window_lost"`
	ClientMillicores       float64 `json:"client_millicores"`
	// The server's own frame egress (media_video_frame_egress): a video
	// frame's ingest to its last packet leaving for the kernel, steady
	// window; the bound is the viewers × packets per frame × CPU
	// per sent packet ÷ cores, and the per-frame ratio is each frame's
	// egress over its own bound (p99 of egress per packet × cores ÷ CPU
	// per sent packet).
	EgressFrames        float64  `json:"server_egress_frames,omitempty"`
	EgressP50Ms         float64  `json:"server_egress_p50_ms,omitempty"`
	EgressP99Ms         float64  `json:"server_egress_p99_ms,omitempty"`
	PacketsPerFrame     float64  `json:"video_packets_per_frame,omitempty"`
	EgressBoundMs       float64  `json:"server_egress_bound_ms,omitempty"`
	EgressPerPacketP99  float64  `json:"server_egress_per_packet_p99_us,omitempty"`
	EgressBoundRatioP99 float64  `json:"server_egress_bound_ratio_p99,omitempty"`
	ControlSockets      int      `json:"control_sockets,omitempty"`
	ControlRTTSamples   int      `json:"control_rtt_samples,omitempty"`
	ControlRTTP50Ms     float64  `json:"control_rtt_p50_ms,omitempty"`
	ControlRTTP99Ms     float64  `json:"control_rtt_p99_ms,omitempty"`
	ControlRTTMaxMs     float64  `json:"control_rtt_max_ms,omitempty"`
	ControlFailures     int      `json:"control_failures,omitempty"`
	SteadyWindow        string   `json:"steady_window"`
	Errors              []string `json:"errors,omitempty"`
}

func run() error {
	var o options
	flag.StringVar(&o.url, "url", "http://127.0.0.1:8080", "mediasvc base URL (loopback only)")
	flag.StringVar(&o.device, "device", "demo", "device id")
	flag.IntVar(&o.viewers, "viewers", 200, "number of viewers")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "total run time, ramp included")
	flag.DurationVar(&o.ramp, "ramp", 10*time.Second, "time over which viewers join")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "wait after the ramp before the steady window")
	flag.StringVar(&o.mode, "mode", "whep", "signaling: whep or ws")
	flag.IntVar(&o.pid, "pid", 0, "server pid, to sample /proc/PID/stat and status")
	flag.BoolVar(&o.jsonOut, "json", false, "print the report as JSON too")
	flag.IntVar(&o.sample, "sample", 10, "every n-th viewer depacketizes fully and reads frame ages")
	flag.StringVar(&o.apiKey, "api-key", "", "API key (bearer), if the service requires one")
	flag.IntVar(&o.control, "control", 0, "also open this many control-only WebSockets (viewer sessions, no media) that time an input's answer; each answer is a refusal, so run the server with ws.max_bad_messages above inputs per socket")
	flag.DurationVar(&o.ctlEvery, "control-interval", 200*time.Millisecond, "how often each control socket sends an input")
	flag.StringVar(&o.ctlTrace, "control-trace", "", "write every control round trip of the steady window to this file, one line each: the send time (Unix ns) and the round trip (ns), to see when the slow ones happen")
	flag.IntVar(&o.devices, "devices", 0, "device-farm mode: start a private adb server with this many emulated devices and -server on it; -viewers is then per device")
	flag.StringVar(&o.server, "server", "", "with -devices: the mediasvc binary to start (its pid is sampled)")
	flag.StringVar(&o.clip, "clip", "", "with -devices: the Annex-B H.264 clip each device's screenrecord loops (default: the embedded 10 s GOP clip)")
	flag.StringVar(&o.serverYAML, "server-yaml", "", "with -devices: YAML appended to the server's config")
	flag.Parse()

	if o.devices < 0 || o.devices > 500 || o.viewers*max(o.devices, 1) > 5000 {
		return errors.New("-devices must be 0..500 and viewers in all at most 5000")
	}
	if o.viewers < 0 || o.viewers > 5000 || (o.viewers == 0 && o.control == 0) {
		return errors.New("-viewers must be 1..5000, or 0 with -control (a control-only probe beside another load generator)")
	}
	if o.mode != "whep" && o.mode != "ws" {
		return errors.New("-mode must be whep or ws")
	}
	if o.duration < o.ramp+o.settle+5*time.Second {
		return fmt.Errorf("-duration must be at least ramp + settle + 5s = %s", o.ramp+o.settle+5*time.Second)
	}
	if o.sample < 1 {
		o.sample = 1
	}
	if err := checkLoopback(o.url); err != nil {
		return err
	}
	o.url = strings.TrimSuffix(o.url, "/")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.duration+2*time.Minute)
	defer cancel()

	var fm *farm
	if o.devices > 0 {
		var err error
		if fm, err = startFarm(ctx, &o); err != nil {
			return fmt.Errorf("device farm: %w", err)
		}
		defer fm.close()
	}

	rep := Report{
		Command:  strings.Join(os.Args, " "),
		Date:     time.Now().UTC().Format(time.RFC3339),
		Machine:  machine(),
		Mode:     o.mode,
		Viewers:  o.viewers,
		Devices:  o.devices,
		Duration: o.duration.String(),
		Ramp:     o.ramp.String(),
	}
	var idle procStats
	if o.pid > 0 {
		var err error
		if idle, err = readProc(o.pid); err != nil {
			return fmt.Errorf("server pid %d: %w", o.pid, err)
		}
		rep.ServerIdleRSSKiB = idle.RSSKiB
	}

	lightAPI, err := client.NewAPI(true)
	if err != nil {
		return err
	}
	fullAPI, err := client.NewAPI(false)
	if err != nil {
		return err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	start := time.Now()
	var ctl controlProbe
	var ctlDone sync.WaitGroup
	if o.control > 0 {
		ctlDone.Add(1)
		go func() {
			defer ctlDone.Done()
			ctl.run(ctx, hc, o, o.control, o.ctlEvery, start.Add(o.duration))
		}()
	}
	viewers := make([]*client.Viewer, o.viewers)
	dialErrs := make([]error, o.viewers)
	var wg sync.WaitGroup
	for i := range o.viewers {
		at := start.Add(time.Duration(int64(o.ramp) * int64(i) / int64(o.viewers)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(time.Until(at)):
			case <-ctx.Done():
				dialErrs[i] = ctx.Err()
				return
			}
			device := o.device
			if fm != nil {
				device = fm.device(i)
			}
			analyze := i%o.sample == 0
			api := lightAPI
			if analyze {
				api = fullAPI
			}
			dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
			defer dcancel()
			viewers[i], dialErrs[i] = client.Dial(dctx, client.Config{
				BaseURL: o.url, Device: device, Mode: client.Mode(o.mode), APIKey: o.apiKey,
				HTTP: hc, API: api, Analyze: analyze, MaxAges: 4000,
			})
		}()
	}
	wg.Wait()
	for i, err := range dialErrs {
		if err != nil {
			rep.Failed++
			if len(rep.Errors) < 10 {
				rep.Errors = append(rep.Errors, fmt.Sprintf("viewer %d: %v", i, err))
			}
		} else {
			rep.Connected++
		}
	}
	fmt.Fprintf(os.Stderr, "loadgen: %d of %d viewers negotiated in %s\n", rep.Connected, o.viewers, time.Since(start).Round(time.Millisecond))

	// Steady window.
	sleepUntil(ctx, start.Add(o.ramp+o.settle))
	pktA, lostA := countPackets(viewers)
	metA := scrape(hc, o.url, o.apiKey)
	selfA, _ := readProc(os.Getpid())
	var srvA, srvB procStats
	if o.pid > 0 {
		srvA, err = readProc(o.pid)
		if err != nil {
			return fmt.Errorf("server pid %d: %w", o.pid, err)
		}
	}
	peakRSS := srvA.RSSKiB
	for end := start.Add(o.duration); o.pid > 0 && ctx.Err() == nil && time.Until(end) > time.Second; {
		sleepUntil(ctx, time.Now().Add(time.Second))
		if ps, err := readProc(o.pid); err == nil {
			peakRSS = max(peakRSS, ps.RSSKiB)
		}
	}
	sleepUntil(ctx, start.Add(o.duration))
	selfB, _ := readProc(os.Getpid())
	if o.pid > 0 {
		srvB, err = readProc(o.pid)
		if err != nil {
			return fmt.Errorf("server pid %d: %w", o.pid, err)
		}
	}
	pktB, lostB := countPackets(viewers)
	metB := scrape(hc, o.url, o.apiKey)
	if sent := metB["media_packets_sent_total"] - metA["media_packets_sent_total"]; sent > 0 && o.pid > 0 {
		rep.SentPackets = sent
		rep.ServerUsPerSentPacket = float64(srvB.CPUTicks-srvA.CPUTicks) / clockTicks * 1e6 / sent
	}
	if n := metB["media_video_frame_egress_seconds_count"] - metA["media_video_frame_egress_seconds_count"]; n > 0 {
		rep.EgressFrames = n
		rep.EgressP50Ms = 1000 * histQuantile(metA, metB, "media_video_frame_egress_seconds", 0.5)
		rep.EgressP99Ms = 1000 * histQuantile(metA, metB, "media_video_frame_egress_seconds", 0.99)
		perPkt := 1e6 * histQuantile(metA, metB, "media_video_frame_egress_per_packet_seconds", 0.99)
		rep.EgressPerPacketP99 = perPkt
		frames := metB["media_video_frames_sent_total"] - metA["media_video_frames_sent_total"]
		vpkts := metB["media_packets_sent_total|kind=video"] - metA["media_packets_sent_total|kind=video"]
		if frames > 0 && rep.ServerUsPerSentPacket > 0 {
			cores := float64(runtime.NumCPU())
			rep.PacketsPerFrame = vpkts / frames
			rep.EgressBoundMs = float64(rep.Connected) * rep.PacketsPerFrame * rep.ServerUsPerSentPacket / cores / 1000
			rep.EgressBoundRatioP99 = perPkt * cores / rep.ServerUsPerSentPacket
		}
	}
	if calls := metB["media_udp_send_calls_total"] - metA["media_udp_send_calls_total"]; calls > 0 {
		rep.DatagramsPerSendCall = (metB["media_udp_datagrams_sent_total"] - metA["media_udp_datagrams_sent_total"]) / calls
	}
	rep.RingMemoryKiB, rep.GoMemoryKiB = metB["media_ring_memory_bytes"]/1024, metB["media_memory_usage_bytes"]/1024
	rep.WindowPackets, rep.WindowLost = pktB-pktA, lostB-lostA
	if o.pid > 0 && rep.WindowPackets > 0 {
		// Server CPU per packet the viewers received in the window: the
		// figure that stays comparable when an overloaded machine sends
		// less than the full rate.
		rep.ServerUsPerPacket = float64(srvB.CPUTicks-srvA.CPUTicks) / clockTicks * 1e6 / float64(rep.WindowPackets)
	}
	window := selfB.At.Sub(selfA.At)
	rep.SteadyWindow = window.Round(time.Millisecond).String()
	rep.ClientMillicores = millicores(selfA, selfB)
	if o.pid > 0 {
		rep.ServerRSSKiB = srvB.RSSKiB
		rep.ServerMillicores = millicores(srvA, srvB)
		if rep.Connected > 0 {
			rep.ServerRSSPerViewerKiB = float64(int64(srvB.RSSKiB)-int64(idle.RSSKiB)) / float64(rep.Connected)
			rep.ServerMillicoresPerView = rep.ServerMillicores / float64(rep.Connected)
		}
		if o.devices > 0 {
			rep.ServerRSSPerDeviceKiB = float64(int64(srvB.RSSKiB)-int64(idle.RSSKiB)) / float64(o.devices)
			rep.ServerMillicoresPerDev = rep.ServerMillicores / float64(o.devices)
			rep.ServerPeakRSSKiB = max(peakRSS, srvB.RSSKiB)
			rep.ServerPeakRSSPerDeviceKiB = float64(int64(rep.ServerPeakRSSKiB)-int64(idle.RSSKiB)) / float64(o.devices)
		}
	}

	if o.control > 0 {
		ctlDone.Wait()
		rtts := ctl.window(selfA.At, selfB.At)
		rep.ControlSockets = o.control
		rep.ControlRTTSamples = len(rtts)
		rep.ControlRTTP50Ms, rep.ControlRTTP99Ms, rep.ControlRTTMaxMs = ms(pct(rtts, 50)), ms(pct(rtts, 99)), ms(pct(rtts, 100))
		rep.ControlFailures = ctl.fails
		if o.ctlTrace != "" {
			if err := ctl.trace(o.ctlTrace, selfA.At, selfB.At); err != nil {
				rep.Errors = append(rep.Errors, "control trace: "+err.Error())
			}
		}
		for _, e := range ctl.errs {
			rep.Errors = append(rep.Errors, "control: "+e)
		}
	}

	// Collect, then close.
	var setupAns, setupKey, late, ages []time.Duration
	var kbps, fps []float64
	var catchUpMax time.Duration
	steadyStart := selfA.At
	firstKey := time.Time{}
	for _, v := range viewers {
		if v == nil {
			continue
		}
		st := v.Stats()
		rep.LostPackets += st.LostPackets
		rep.ReceivedPackets += st.VideoPackets + st.AudioPackets
		if st.Frames == 0 {
			rep.NoFrames++
			continue
		}
		if st.FirstPacketKeyframe {
			rep.FirstPacketKeyframe++
		}
		if !st.AnswerReceived.IsZero() {
			setupAns = append(setupAns, st.AnswerReceived.Sub(st.Start))
		}
		if !st.FirstKeyframe.IsZero() {
			setupKey = append(setupKey, st.FirstKeyframe.Sub(st.Start))
			if !firstKey.IsZero() && !st.Connected.IsZero() {
				late = append(late, st.FirstKeyframe.Sub(st.Connected))
			}
			if firstKey.IsZero() {
				firstKey = st.FirstKeyframe
			}
		}
		// Live frames only: a joiner's catch-up from the cached keyframe
		// (old frames in a burst) is over before the steady window.
		ages = append(ages, st.AgesAfter(steadyStart)...)
		for _, a := range st.FrameAges {
			catchUpMax = max(catchUpMax, a)
		}
		if d := st.LastVideo.Sub(st.FirstVideo).Seconds(); d > 1 {
			kbps = append(kbps, float64(st.VideoBytes+st.AudioBytes)*8/d/1000)
			fps = append(fps, float64(st.Frames)/d)
		}
	}
	var cwg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, v := range viewers {
		if v == nil {
			continue
		}
		cwg.Add(1)
		sem <- struct{}{}
		go func() {
			defer cwg.Done()
			defer func() { <-sem }()
			_ = v.Close()
		}()
	}
	cwg.Wait()

	rep.SetupAnswerP50Ms, rep.SetupAnswerP95Ms = ms(pct(setupAns, 50)), ms(pct(setupAns, 95))
	rep.SetupKeyframeP50Ms, rep.SetupKeyframeP95Ms = ms(pct(setupKey, 50)), ms(pct(setupKey, 95))
	rep.LateJoinerP50Ms, rep.LateJoinerP95Ms = ms(pct(late, 50)), ms(pct(late, 95))
	rep.FrameAgeP50Ms, rep.FrameAgeP99Ms = ms(pct(ages, 50)), ms(pct(ages, 99))
	rep.FrameAgeSamples = len(ages)
	rep.FrameAgeMaxAllMs = ms(catchUpMax)
	rep.BitrateMeanKbps, rep.BitrateMinKbps = mean(kbps), minf(kbps)
	rep.FPSMean = mean(fps)

	printTable(rep)
	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
	if rep.Connected == 0 && o.viewers > 0 {
		return errors.New("no viewer connected")
	}
	return nil
}

// scrape reads the server's /metrics and sums each counter's series by
// name; nil when metrics are off or unreachable.
func scrape(hc *http.Client, base, apiKey string) map[string]float64 {
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(l, " ")
		labels := ""
		if i := strings.IndexByte(name, '{'); i >= 0 {
			// labels may hold spaces: take the value after the closing brace
			j := strings.LastIndexByte(l, '}')
			name, labels, rest = l[:i], l[i+1:j], strings.TrimSpace(l[j+1:])
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[name] += v
		// A histogram's buckets and a kind's series also by themselves:
		// "name|le=0.005", "name|kind=video".
		for _, kv := range strings.Split(labels, ",") {
			k, val, ok := strings.Cut(kv, "=")
			if ok && (k == "le" || k == "kind") {
				out[name+"|"+k+"="+strings.Trim(val, `"`)] += v
			}
		}
	}
	return out
}

// histQuantile estimates quantile q of histogram name over the window
// between two scrapes, interpolating inside a bucket as Prometheus's
// histogram_quantile does; 0 without observations.
func histQuantile(a, b map[string]float64, name string, q float64) float64 {
	type bucket struct{ le, n float64 }
	var bs []bucket
	prefix := name + "_bucket|le="
	for k, v := range b {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimPrefix(k, prefix), 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{le, v - a[k]})
	}
	slices.SortFunc(bs, func(x, y bucket) int { return cmp.Compare(x.le, y.le) })
	if len(bs) == 0 || bs[len(bs)-1].n <= 0 {
		return 0
	}
	rank := q * bs[len(bs)-1].n
	lo, below := 0.0, 0.0
	for _, x := range bs {
		if x.n >= rank {
			if math.IsInf(x.le, 1) {
				return lo // past the last bound: its lower edge
			}
			if x.n == below {
				return x.le
			}
			return lo + (x.le-lo)*(rank-below)/(x.n-below)
		}
		lo, below = x.le, x.n
	}
	return lo
}

// countPackets sums the packets the viewers received and lost so far.
func countPackets(viewers []*client.Viewer) (received, lost uint64) {
	for _, v := range viewers {
		if v == nil {
			continue
		}
		st := v.Stats()
		received += st.VideoPackets + st.AudioPackets
		lost += st.LostPackets
	}
	return received, lost
}

// checkLoopback refuses any target that is not a loopback address.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("-url %q: scheme must be http or https", raw)
	}
	host := u.Hostname()
	ips, err := net.LookupIP(host)
	if err != nil {
		return fmt.Errorf("-url host %q: %w", host, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("-url host %q resolves to %s: loadgen only targets loopback", host, ip)
		}
	}
	return nil
}

func sleepUntil(ctx context.Context, t time.Time) {
	select {
	case <-time.After(time.Until(t)):
	case <-ctx.Done():
	}
}

// procStats is a sample of /proc/PID/stat and /proc/PID/status.
type procStats struct {
	CPUTicks uint64
	RSSKiB   uint64
	At       time.Time
}

// clockTicks is sysconf(_SC_CLK_TCK), 100 on Linux (getconf CLK_TCK).
const clockTicks = 100

func readProc(pid int) (procStats, error) {
	ps := procStats{At: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ps, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ps, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return ps, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	ps.CPUTicks = ut + st
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			if fs := strings.Fields(v); len(fs) > 0 {
				ps.RSSKiB, _ = strconv.ParseUint(fs[0], 10, 64)
			}
		}
	}
	return ps, nil
}

func millicores(a, b procStats) float64 {
	secs := b.At.Sub(a.At).Seconds()
	if secs <= 0 {
		return 0
	}
	return float64(b.CPUTicks-a.CPUTicks) / clockTicks / secs * 1000
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs, %s, %s/%s", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH)
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func minf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return slices.Min(v)
}

func printTable(r Report) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(w, "%s\t%v\n", k, v) }
	row("date", r.Date)
	row("machine", r.Machine)
	row("mode / viewers", fmt.Sprintf("%s / %d (connected %d, failed %d, no frames %d)", r.Mode, r.Viewers, r.Connected, r.Failed, r.NoFrames))
	row("duration / ramp / steady window", fmt.Sprintf("%s / %s / %s", r.Duration, r.Ramp, r.SteadyWindow))
	row("first packet is a keyframe", fmt.Sprintf("%d of %d", r.FirstPacketKeyframe, r.Connected-r.NoFrames))
	row("setup → answer p50 / p95", fmt.Sprintf("%.1f / %.1f ms", r.SetupAnswerP50Ms, r.SetupAnswerP95Ms))
	row("setup → first keyframe p50 / p95", fmt.Sprintf("%.1f / %.1f ms", r.SetupKeyframeP50Ms, r.SetupKeyframeP95Ms))
	row("late joiner connected → keyframe p50 / p95", fmt.Sprintf("%.1f / %.1f ms", r.LateJoinerP50Ms, r.LateJoinerP95Ms))
	row("frame age (SEI, steady window) p50 / p99", fmt.Sprintf("%.2f / %.2f ms (%d frames); max incl. join catch-up %.0f ms", r.FrameAgeP50Ms, r.FrameAgeP99Ms, r.FrameAgeSamples, r.FrameAgeMaxAllMs))
	if r.EgressFrames > 0 {
		row("server frame egress (ingest → last packet out) p50 / p99", fmt.Sprintf("%.2f / %.2f ms over %.0f frames; bound %.2f ms (%d viewers × %.1f packets × %.2f µs ÷ %d cores); p99 of each frame's egress over its own bound %.2f×",
			r.EgressP50Ms, r.EgressP99Ms, r.EgressFrames, r.EgressBoundMs, r.Connected, r.PacketsPerFrame, r.ServerUsPerSentPacket, runtime.NumCPU(), r.EgressBoundRatioP99))
	}
	row("bitrate per viewer mean / min", fmt.Sprintf("%.0f / %.0f kbit/s, %.1f fps", r.BitrateMeanKbps, r.BitrateMinKbps, r.FPSMean))
	row("lost packets", fmt.Sprintf("%d of %d", r.LostPackets, r.ReceivedPackets+r.LostPackets))
	if r.ServerRSSKiB > 0 {
		row("server CPU total / per viewer", fmt.Sprintf("%.0f / %.2f millicores", r.ServerMillicores, r.ServerMillicoresPerView))
		row("server CPU per packet sent (window)", fmt.Sprintf("%.2f µs over %.0f packets; %.1f datagrams per send call", r.ServerUsPerSentPacket, r.SentPackets, r.DatagramsPerSendCall))
		row("server CPU per packet received (window)", fmt.Sprintf("%.2f µs over %d packets, %d lost", r.ServerUsPerPacket, r.WindowPackets, r.WindowLost))
		if r.Devices > 0 {
			row("devices: server CPU / RSS per device (with its viewers)", fmt.Sprintf("%d devices: %.2f millicores / %.0f KiB", r.Devices, r.ServerMillicoresPerDev, r.ServerRSSPerDeviceKiB))
			row("devices: peak RSS in the window / per device", fmt.Sprintf("%d KiB / %.0f KiB", r.ServerPeakRSSKiB, r.ServerPeakRSSPerDeviceKiB))
			row("devices: ring payload memory / per device; Go runtime memory", fmt.Sprintf("%.0f KiB / %.0f KiB; %.0f KiB", r.RingMemoryKiB, r.RingMemoryKiB/float64(r.Devices), r.GoMemoryKiB))
		}
		row("server RSS idle → loaded / per viewer", fmt.Sprintf("%d → %d KiB / %.0f KiB", r.ServerIdleRSSKiB, r.ServerRSSKiB, r.ServerRSSPerViewerKiB))
	}
	if r.ControlSockets > 0 {
		row("control round trip (input → answer) p50 / p99 / max", fmt.Sprintf("%.2f / %.2f / %.2f ms over %d sockets, %d samples, %d failed", r.ControlRTTP50Ms, r.ControlRTTP99Ms, r.ControlRTTMaxMs, r.ControlSockets, r.ControlRTTSamples, r.ControlFailures))
	}
	row("client (loadgen) CPU", fmt.Sprintf("%.0f millicores", r.ClientMillicores))
	for _, e := range r.Errors {
		row("error", e)
	}
	_ = w.Flush()
}
