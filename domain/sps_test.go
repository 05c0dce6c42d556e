package domain

import "testing"

// FuzzSPSSize: the SPS reader never panics and never returns a
// non-positive size without an error.
func FuzzSPSSize(f *testing.F) {
	f.Add([]byte{0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8, 0x40})
	f.Add([]byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10})
	f.Add([]byte{0x67})
	f.Fuzz(func(t *testing.T, b []byte) {
		w, h, err := SPSSize(b)
		if err == nil && (w <= 0 || h <= 0) {
			t.Fatalf("%dx%d without error", w, h)
		}
	})
}
