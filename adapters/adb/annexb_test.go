package adb

import (
	"bytes"
	"slices"
	"testing"

	"mediasvc/domain"
)

// splitChunked feeds stream to a splitter in chunks of size n, flushes, and
// returns every NAL unit of every access unit, and the access units.
func splitChunked(t testing.TB, stream []byte, n int) ([][]byte, [][][]byte) {
	t.Helper()
	sp := newAUSplitter()
	var aus [][][]byte
	for len(stream) > 0 {
		k := min(n, len(stream))
		got, err := sp.Write(stream[:k])
		if err != nil {
			t.Fatal(err)
		}
		aus = append(aus, got...)
		stream = stream[k:]
	}
	aus = append(aus, sp.Flush()...)
	var nals [][]byte
	for _, au := range aus {
		nals = append(nals, au...)
	}
	// Units without a slice wait for one; they are still owed.
	nals = append(nals, sp.cur...)
	return nals, aus
}

func TestSplitterMatchesSplitAnnexB(t *testing.T) {
	var stream []byte
	for _, au := range clipAUs(t, 40) {
		stream = append(stream, au...)
	}
	want := domain.SplitAnnexB(stream)
	for _, n := range []int{1, 3, 7, 1000, 65536, len(stream)} {
		nals, aus := splitChunked(t, stream, n)
		if len(nals) != len(want) {
			t.Fatalf("chunk %d: %d NAL units, want %d", n, len(nals), len(want))
		}
		for i := range want {
			if !bytes.Equal(nals[i], want[i]) {
				t.Fatalf("chunk %d: NAL %d differs", n, i)
			}
		}
		if len(aus) != 40 {
			t.Fatalf("chunk %d: %d access units, want 40", n, len(aus))
		}
		if !slices.ContainsFunc(aus[0], domain.IsIDR) || domain.NALType(aus[0][0]) != domain.NALTypeSPS {
			t.Fatalf("first access unit types %v", types(aus[0]))
		}
	}
}

func types(au [][]byte) []uint8 {
	var out []uint8
	for _, n := range au {
		out = append(out, domain.NALType(n))
	}
	return out
}

func TestSplitterDoesNotHoldLastFrame(t *testing.T) {
	aus := clipAUs(t, 3)
	sp := newAUSplitter()
	got, _ := sp.Write(aus[0])
	if len(got) != 0 {
		t.Fatalf("an access unit came out before its end was known: %d", len(got))
	}
	if !sp.Pending() {
		t.Fatal("nothing pending after a frame")
	}
	got = sp.Flush()
	if len(got) != 1 || !slices.ContainsFunc(got[0], domain.IsIDR) {
		t.Fatalf("flush gave %d access units", len(got))
	}
	// The next frame comes out as soon as the header of the one after it
	// is seen.
	got, _ = sp.Write(aus[1])
	if len(got) != 0 {
		t.Fatalf("second frame came out before its end: %d", len(got))
	}
	got, _ = sp.Write(aus[2][:6])
	if len(got) != 1 || len(got[0]) != len(domain.SplitAnnexB(aus[1])) {
		t.Fatalf("second frame: %d access units", len(got))
	}
	sp.Write(aus[2][6:])
	if sp.Flush() == nil {
		t.Fatal("third frame not flushed")
	}
	if sp.Pending() {
		t.Fatal("pending after flush")
	}
}

func TestSplitterGarbageAndLimits(t *testing.T) {
	sp := newAUSplitter()
	if got, err := sp.Write(bytes.Repeat([]byte{0xff}, 1000)); err != nil || len(got) != 0 {
		t.Fatalf("garbage: %v %v", got, err)
	}
	if len(sp.buf) > 2 {
		t.Fatalf("garbage kept: %d bytes", len(sp.buf))
	}
	sp.Write([]byte{0, 0, 1, 0x65})
	if _, err := sp.Write(make([]byte, maxPending+1)); err == nil {
		t.Fatal("no error for an oversized NAL unit")
	}
}

func TestSPSSize(t *testing.T) {
	au := clipAUs(t, 1)[0]
	sps := domain.SplitAnnexB(au)[0]
	w, h, err := domain.SPSSize(sps)
	if err != nil || w != 1280 || h != 720 {
		t.Fatalf("demo SPS: %dx%d, %v", w, h, err)
	}
	for i := range sps {
		if _, _, err := domain.SPSSize(sps[:i]); err == nil && i < 5 {
			t.Fatalf("truncated SPS of %d bytes parsed", i)
		}
	}
	if _, _, err := domain.SPSSize([]byte{0x68, 1, 2, 3}); err == nil {
		t.Fatal("PPS parsed as SPS")
	}
}
