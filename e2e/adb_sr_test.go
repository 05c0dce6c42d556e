//go:build e2e

package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"mediasvc/e2e/adbdevice"
	"mediasvc/e2e/client"
)

// TestADBSenderReportsAcrossOutage: the capture stops for 3 s and is
// reopened; afterwards the RTCP sender reports' NTP/RTP pair still maps
// each frame's RTP timestamp to its capture time (the SEI ingest stamp the
// adb adapter puts on it) within 20 ms — the reports sent before the
// outage as well as those sent after. Were the timestamps to continue at
// the last frame's + 33 ms after a reopen, the mapping would be off by the
// whole outage.
func TestADBSenderReportsAcrossOutage(t *testing.T) {
	const outage, tolerance = 3 * time.Second, 20 * time.Millisecond
	srv := adbdevice.StartTestServer(t)
	d := adbdevice.PlugTestDevice(t, srv, adbdevice.Options{Model: "Pixel_7"})
	in := startInstance(t, adbConfig(srv).set("adb", "breaker", map[string]any{"failures": 100}))
	waitDevices(t, in, 5*time.Second, "device online", func(ds map[string]adbDevice) bool { return ds[d.Serial()].Width > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v, err := client.Dial(ctx, client.Config{BaseURL: in.Base, Device: d.Serial(), Mode: client.ModeWS, Analyze: true, SenderReports: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.WaitFrames(ctx, 30, false); err != nil {
		t.Fatal(err)
	}
	waitReports(ctx, t, v, 1)
	before := v.Stats()

	// The outage: the device refuses every service and drops its
	// connection, so the running screenrecord ends and every reopen fails.
	d.SetFault(adbdevice.FaultRefuseOpen, true)
	d.Drop()
	time.Sleep(outage)
	d.SetFault(adbdevice.FaultRefuseOpen, false)
	back := time.Now()
	if err := v.WaitFrames(ctx, v.Stats().Frames+60, false); err != nil {
		t.Fatalf("frames after the outage: %v", err)
	}
	waitReports(ctx, t, v, len(v.Stats().SenderReports)+2)
	st := v.Stats()

	// The frames of the reopened capture, by their capture time.
	type frame struct {
		captured time.Time
		rtp      uint32
	}
	var after []frame
	for i, a := range st.FrameArrivals {
		c := a.Add(-st.FrameAges[i])
		if c.After(back) {
			after = append(after, frame{c, st.FrameRTP[i]})
		}
	}
	var lastOld time.Time // the last frame captured before the outage
	for i, a := range st.FrameArrivals {
		if c := a.Add(-st.FrameAges[i]); c.Before(back) && c.After(lastOld) {
			lastOld = c
		}
	}
	if len(after) > 0 {
		gap := after[0].captured.Sub(lastOld)
		t.Logf("no frame captured for %v", gap.Round(time.Millisecond))
		if gap < outage {
			t.Fatalf("frames stopped for only %v: no outage of %v to test", gap, outage)
		}
	}
	if len(after) < 30 {
		t.Fatalf("%d stamped frames captured after the outage, want 30 or more", len(after))
	}
	lastBefore := before.SenderReports[len(before.SenderReports)-1]
	var afterReports []client.SenderReport
	for _, r := range st.SenderReports {
		if r.Received.After(back) {
			afterReports = append(afterReports, r)
		}
	}
	if len(afterReports) == 0 {
		t.Fatal("no sender report after the outage")
	}
	check := func(what string, r client.SenderReport) {
		var errs []time.Duration
		for _, f := range after {
			e := r.Map(f.rtp, 90000).Sub(f.captured)
			errs = append(errs, e.Abs())
		}
		slices.Sort(errs)
		worst := errs[len(errs)-1]
		t.Logf("%s: %d frames after the outage mapped to their capture time: median error %v, max %v",
			what, len(errs), errs[len(errs)/2].Round(10*time.Microsecond), worst.Round(10*time.Microsecond))
		if worst > tolerance {
			t.Errorf("%s maps a frame captured after the outage %v away from its capture time (tolerance %v)", what, worst, tolerance)
		}
	}
	check("the last sender report before the outage", lastBefore)
	check("the first sender report after it", afterReports[0])
	check("the last sender report after it", afterReports[len(afterReports)-1])
}

// waitReports waits until v has received n video sender reports.
func waitReports(ctx context.Context, t *testing.T, v *client.Viewer, n int) {
	t.Helper()
	for len(v.Stats().SenderReports) < n {
		select {
		case <-ctx.Done():
			t.Fatalf("%d sender reports, want %d: %v", len(v.Stats().SenderReports), n, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
