package adb

import (
	"log/slog"
	"testing"
	"time"
)

// BenchmarkParseFrame is the device's parse path per frame: one access
// unit of the demo clip (720p30, ~2 Mbit/s) arriving in one read, cut by
// the splitter and made into a frame as ReadFrame does. Run with
// -benchmem: its allocations are the garbage a device makes per frame
// before packetizing.
func BenchmarkParseFrame(b *testing.B) {
	aus := clipAUs(b, 120)
	total := 0
	for _, au := range aus {
		total += len(au)
	}
	sp := newAUSplitter()
	c := &screenCapture{cfg: screenConfig{log: slog.New(slog.DiscardHandler)}, start: time.Now()}
	b.SetBytes(int64(total / len(aus)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		out, err := sp.Write(aus[i%len(aus)])
		if err != nil {
			b.Fatal(err)
		}
		for _, au := range out {
			c.cacheParams(au)
			_ = c.frame(au)
		}
	}
}
