package domain

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

func TestSplitAnnexB(t *testing.T) {
	sps := []byte{0x67, 0x42, 0xe0, 0x1f, 0xd9}
	pps := []byte{0x68, 0xcb, 0x8c, 0xb2}
	idr := []byte{0x65, 0x88, 0x84, 0x00, 0x03, 0x01}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	sc4, sc3 := []byte{0, 0, 0, 1}, []byte{0, 0, 1}
	tests := []struct {
		name string
		in   []byte
		want [][]byte
	}{
		{"nil", nil, nil},
		{"no start code", []byte{0x67, 0x42, 0, 0}, nil},
		{"only start code", sc4, nil},
		{"four-byte", cat(sc4, sps, sc4, pps, sc4, idr), [][]byte{sps, pps, idr}},
		{"three-byte", cat(sc3, sps, sc3, pps, sc3, idr), [][]byte{sps, pps, idr}},
		{"mixed", cat(sc4, sps, sc3, pps, sc4, idr), [][]byte{sps, pps, idr}},
		{"garbage before first", cat([]byte{0xde, 0xad, 0, 0}, sc4, sps), [][]byte{sps}},
		{"trailing zeros", cat(sc4, sps, []byte{0, 0, 0}, sc4, idr, []byte{0, 0}), [][]byte{sps, idr}},
		{"empty units", cat(sc4, sc4, sc3, sps, sc3, sc4), [][]byte{sps}},
		{"truncated start code at end", cat(sc4, sps, []byte{0, 0}), [][]byte{sps}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SplitAnnexB(tt.in)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("SplitAnnexB = %x, want %x", got, tt.want)
			}
		})
	}
}

func TestNALHelpers(t *testing.T) {
	au := []byte{0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88}
	p := []byte{0, 0, 0, 1, 0x41, 0x9a}
	tests := []struct {
		name string
		in   []byte
		want bool
	}{
		{"idr", au, true},
		{"p", p, false},
		{"empty", nil, false},
		{"raw idr without start code", []byte{0x65, 0x88}, false},
	}
	for _, tt := range tests {
		if got := IsKeyframe(tt.in); got != tt.want {
			t.Errorf("IsKeyframe(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
	for in, want := range map[string]uint8{"": 0, "\x67": NALTypeSPS, "\x68": NALTypePPS, "\x65": NALTypeIDR, "\x06": NALTypeSEI, "\x09": NALTypeAUD, "\x41": NALTypeSlice} {
		if got := NALType([]byte(in)); got != want {
			t.Errorf("NALType(%x) = %d, want %d", in, got, want)
		}
	}
	plids := []struct {
		in   []byte
		want string
	}{
		{[]byte{0x67, 0x42, 0xe0, 0x1f, 0xd9}, "42e01f"},
		{[]byte{0x27, 0x64, 0x00, 0x28}, "640028"},
		{[]byte{0x67, 0x42, 0xe0}, ""},
		{[]byte{0x68, 0x42, 0xe0, 0x1f}, ""},
		{nil, ""},
	}
	for _, tt := range plids {
		if got := ProfileLevelID(tt.in); got != tt.want {
			t.Errorf("ProfileLevelID(%x) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSEITimestampRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		t    time.Time
	}{
		{"now", time.Now()},
		{"epoch", time.Unix(0, 0)},
		{"needs emulation prevention", time.Unix(0, 0x0000000100000002)},
		{"zeros then 3", time.Unix(0, 0x1700000300000003)},
		{"before epoch", time.Unix(-5, 0)},
		{"whole second", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nal := AppendSEITimestamp([]byte{0xaa}, tt.t)[1:]
			if NALType(nal) != NALTypeSEI {
				t.Fatalf("NAL type %d, want SEI", NALType(nal))
			}
			if nal[len(nal)-1] != 0x80 {
				t.Fatalf("no rbsp trailing bits: %x", nal)
			}
			if bytes.Contains(nal, []byte{0, 0, 0}) || bytes.Contains(nal, []byte{0, 0, 1}) || bytes.Contains(nal, []byte{0, 0, 2}) {
				t.Fatalf("emulation prevention missing: %x", nal)
			}
			got, ok := ParseSEITimestamp(nal)
			if !ok || !got.Equal(tt.t) {
				t.Fatalf("ParseSEITimestamp = %v, %v, want %v", got, ok, tt.t)
			}
		})
	}
}

func TestSEITimestampEmulationPrevention(t *testing.T) {
	nal := AppendSEITimestamp(nil, time.Unix(0, 0x0000000100000002))
	// header, type, size, uuid(16), then 00 00 [03] 00 01 00 00 [03] 00 02, trailing bits.
	payload := nal[19:]
	want := []byte{0, 0, 3, 0, 1, 0, 0, 3, 0, 2, 0x80}
	if !bytes.Equal(payload, want) {
		t.Fatalf("escaped timestamp = %x, want %x", payload, want)
	}
}

func TestParseSEITimestampRejects(t *testing.T) {
	good := AppendSEITimestamp(nil, time.Unix(1700000000, 1))
	otherUUID := bytes.Clone(good)
	otherUUID[3] ^= 0xff
	// x264's own user-data SEI followed by ours in one NAL unit.
	x264 := append([]byte{0x06, 0x05, 0x13}, bytes.Repeat([]byte{0xdc}, 0x13)...)
	multi := append(bytes.Clone(x264), good[1:]...)
	long := append([]byte{0x06, 0xff, 0x01, 0x02, 0xaa, 0xbb}, good[1:]...) // type 256
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"good", good, true},
		{"second message", multi, true},
		{"extended payload type skipped", long, true},
		{"other uuid", otherUUID, false},
		{"truncated", good[:len(good)-5], false},
		{"not sei", append([]byte{0x65}, good[1:]...), false},
		{"empty", nil, false},
		{"header only", []byte{0x06}, false},
		{"size past end", []byte{0x06, 0x05, 0xff, 0xff, 0x10}, false},
		{"only x264 sei", append(bytes.Clone(x264), 0x80), false},
	}
	for _, tt := range tests {
		if _, ok := ParseSEITimestamp(tt.in); ok != tt.ok {
			t.Errorf("ParseSEITimestamp(%s) ok = %v, want %v", tt.name, ok, tt.ok)
		}
	}
}

func TestParseSEITimestampAllocs(t *testing.T) {
	nal := AppendSEITimestamp(nil, time.Now())
	au := append(append([]byte{0, 0, 0, 1}, nal...), 0, 0, 1, 0x65, 0x88)
	if n := testing.AllocsPerRun(100, func() {
		_, _ = ParseSEITimestamp(nal)
		for b := au; ; {
			var x []byte
			if x, b = NextNAL(b); x == nil {
				break
			}
		}
	}); n != 0 {
		t.Fatalf("ParseSEITimestamp+NextNAL allocate %v times, want 0", n)
	}
}

// FuzzSplitAnnexB checks that splitting never panics, that NextNAL and
// SplitAnnexB agree, and that no unit is empty, ends in a zero byte or holds
// a start code.
func FuzzSplitAnnexB(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0, 0, 1, 0x68, 0xce})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		nals := SplitAnnexB(b)
		i := 0
		for rest := b; ; i++ {
			var nal []byte
			if nal, rest = NextNAL(rest); nal == nil {
				break
			}
			if i >= len(nals) || !bytes.Equal(nal, nals[i]) {
				t.Fatalf("NextNAL unit %d = %x differs from SplitAnnexB", i, nal)
			}
		}
		if i != len(nals) {
			t.Fatalf("NextNAL found %d units, SplitAnnexB %d", i, len(nals))
		}
		for _, n := range nals {
			if len(n) == 0 || n[len(n)-1] == 0 || bytes.Contains(n, []byte{0, 0, 1}) {
				t.Fatalf("bad unit %x", n)
			}
		}
		_ = IsKeyframe(b)
	})
}

// FuzzParseSEITimestamp checks that parsing never panics on any input and
// that any timestamp round-trips through AppendSEITimestamp.
func FuzzParseSEITimestamp(f *testing.F) {
	f.Add(AppendSEITimestamp(nil, time.Unix(1700000000, 123)), int64(0))
	f.Add([]byte{0x06, 0x05, 0x18}, int64(0x0000000100000002))
	f.Fuzz(func(t *testing.T, nal []byte, ns int64) {
		_, _ = ParseSEITimestamp(nal)
		want := time.Unix(0, ns)
		got, ok := ParseSEITimestamp(AppendSEITimestamp(nil, want))
		if !ok || !got.Equal(want) {
			t.Fatalf("round trip of %d = %v, %v", ns, got, ok)
		}
	})
}

func BenchmarkSplitAnnexB(b *testing.B) {
	// A keyframe-sized access unit: SPS, PPS, SEI and a 40 kB IDR slice.
	au := []byte{0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0xd9, 0, 0, 0, 1, 0x68, 0xcb, 0x8c, 0xb2}
	au = append(append(au, 0, 0, 0, 1), AppendSEITimestamp(nil, time.Now())...)
	au = append(au, 0, 0, 0, 1, 0x65)
	for i := range 40_000 {
		au = append(au, byte(i%251)|1)
	}
	b.SetBytes(int64(len(au)))
	b.Run("SplitAnnexB", func(b *testing.B) {
		b.SetBytes(int64(len(au)))
		b.ReportAllocs()
		for b.Loop() {
			if len(SplitAnnexB(au)) != 4 {
				b.Fatal("want 4 units")
			}
		}
	})
	b.Run("NextNAL", func(b *testing.B) {
		b.SetBytes(int64(len(au)))
		b.ReportAllocs()
		for b.Loop() {
			n := 0
			for rest := au; ; n++ {
				var nal []byte
				if nal, rest = NextNAL(rest); nal == nil {
					break
				}
			}
			if n != 4 {
				b.Fatal("want 4 units")
			}
		}
	})
}

func TestUnescapeRBSP(t *testing.T) {
	for _, c := range []struct{ in, want []byte }{
		{[]byte{0x42, 0, 0, 3, 1, 0, 0, 3, 0}, []byte{0x42, 0, 0, 1, 0, 0, 0}},
		{[]byte{0, 0, 3}, []byte{0, 0}},                   // a trailing emulation byte
		{[]byte{0, 3, 0, 0, 3, 3}, []byte{0, 3, 0, 0, 3}}, // 03 only after two zeros
		{nil, nil},
	} {
		if got := UnescapeRBSP(nil, c.in); !bytes.Equal(got, c.want) {
			t.Errorf("UnescapeRBSP(% x) = % x, want % x", c.in, got, c.want)
		}
	}
}

func TestIsIDR(t *testing.T) {
	if !IsIDR([]byte{0x65, 0x88}) || IsIDR([]byte{0x41, 0x9a}) || IsIDR(nil) {
		t.Fatal("IsIDR misreads the NAL header")
	}
}
