package domain

import (
	"errors"
	"testing"
)

func TestParseProfileLevelID(t *testing.T) {
	cases := []struct {
		id      string
		profile H264Profile
		level   string
	}{
		{"42e01f", ProfileConstrainedBaseline, "3.1"},
		{"42c01f", ProfileConstrainedBaseline, "3.1"}, // x264 baseline: constraint_set0+1
		{"4d801f", ProfileConstrainedBaseline, "3.1"},
		{"42001f", ProfileBaseline, "3.1"},
		{"42801e", ProfileBaseline, "3"}, // Android MediaCodec baseline: constraint_set0
		{"4d001f", ProfileMain, "3.1"},
		{"4d4028", ProfileMain, "4"},
		{"640028", ProfileHigh, "4"},
		{"64001f", ProfileHigh, "3.1"},
		{"640c1f", ProfileConstrainedHigh, "3.1"},
		{"f4001f", ProfilePredictiveHigh444, "3.1"},
		{"42f00b", ProfileConstrainedBaseline, "1b"},
		{"640009", ProfileHigh, "1b"},
		{"6e0028", ProfileUnknown, "4"}, // High 10
		{"64E028", ProfileUnknown, "4"}, // High with unknown constraint flags
	}
	for _, c := range cases {
		pl, err := ParseProfileLevelID(c.id)
		if err != nil {
			t.Fatalf("%s: %v", c.id, err)
		}
		if pl.Profile != c.profile || pl.LevelString() != c.level {
			t.Errorf("%s = %s level %s, want %s level %s", c.id, pl.Profile, pl.LevelString(), c.profile, c.level)
		}
	}
	for _, bad := range []string{"", "42e0", "42e01f00", "zz001f", "42e01"} {
		if _, err := ParseProfileLevelID(bad); !errors.Is(err, ErrBadProfileLevelID) {
			t.Errorf("%q: err %v, want ErrBadProfileLevelID", bad, err)
		}
	}
}

func TestProfileLevelAccepts(t *testing.T) {
	p := func(id string) ProfileLevel {
		pl, err := ParseProfileLevelID(id)
		if err != nil {
			t.Fatal(err)
		}
		return pl
	}
	cases := []struct {
		recv, send string
		asym       bool
		want       bool
	}{
		{"42e01f", "42e01f", true, true},
		{"42e01f", "42c01f", true, true},  // same profile, other bytes
		{"42e01f", "640028", true, false}, // High into a CB-only decoder
		{"64001f", "640028", true, true},  // level asymmetry allowed
		{"64001f", "640028", false, false},
		{"640c1f", "640028", true, false}, // Constrained High decoder, High stream
		{"64001f", "640c1f", true, true},
		{"64001f", "4d001f", true, true},
		{"4d001f", "640028", true, false},
		{"42001f", "42e01f", true, true},
		{"4d001f", "42001f", true, false}, // Baseline is no subset of Main
		{"42001f", "42801e", false, true},
		{"64001f", "6e0028", true, false},
		{"42e00b", "42f00b", false, true}, // 1b under 1.1
	}
	for _, c := range cases {
		if got := p(c.recv).Accepts(p(c.send), c.asym); got != c.want {
			t.Errorf("%s accepts %s (asymmetry %v) = %v, want %v", c.recv, c.send, c.asym, got, c.want)
		}
	}
}

func TestNoCommonCodecError(t *testing.T) {
	err := error(&NoCommonCodecError{Offered: []string{"VP8", "VP9"}, Sends: "H264 High 4 (640028)"})
	if !errors.Is(err, ErrNoCommonCodec) {
		t.Fatal("not ErrNoCommonCodec")
	}
	want := "the offer has VP8, VP9; the device sends H264 High 4 (640028) and no transcoder is available: no common codec"
	if err.Error() != want {
		t.Errorf("got %q\nwant %q", err.Error(), want)
	}
}

func TestWallSize(t *testing.T) {
	tests := []struct{ w, h, ww, wh int }{
		{1280, 720, 320, 180},
		{720, 1280, 180, 320},
		{1080, 2400, 144, 320},
		{300, 200, 300, 200},
		{0, 0, 0, 0},
		{4000, 3, 320, 2},
	}
	for _, tt := range tests {
		if w, h := WallSize(tt.w, tt.h); w != tt.ww || h != tt.wh {
			t.Errorf("WallSize(%d, %d) = %d×%d, want %d×%d", tt.w, tt.h, w, h, tt.ww, tt.wh)
		}
	}
}
