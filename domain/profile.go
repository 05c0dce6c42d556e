package domain

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// H264Profile is an H.264 profile as WebRTC endpoints tell them apart in a
// profile-level-id (RFC 6184 §8.1): profile_idc together with the
// constraint flags, so that Constrained Baseline (42e0, 42c0, 4d80, …) is
// one profile whatever bytes spell it.
type H264Profile uint8

// H.264 profiles. ProfileUnknown is a profile-level-id no browser decodes
// (High 10, 4:2:2, …).
const (
	ProfileUnknown H264Profile = iota
	ProfileConstrainedBaseline
	ProfileBaseline
	ProfileMain
	ProfileConstrainedHigh
	ProfileHigh
	ProfilePredictiveHigh444
)

var profileNames = [...]string{
	ProfileUnknown:             "unknown",
	ProfileConstrainedBaseline: "Constrained Baseline",
	ProfileBaseline:            "Baseline",
	ProfileMain:                "Main",
	ProfileConstrainedHigh:     "Constrained High",
	ProfileHigh:                "High",
	ProfilePredictiveHigh444:   "High 4:4:4 Predictive",
}

func (p H264Profile) String() string {
	if int(p) < len(profileNames) {
		return profileNames[p]
	}
	return "unknown"
}

// profilePattern maps a profile_idc and a constraint-flag bit pattern
// ('x' = any) to a profile; the first match wins. The table is the one
// libwebrtc applies (api/video_codecs/h264_profile_level_id.cc), so our
// reading of an offer agrees with the browser's.
var profilePatterns = []struct {
	idc     byte
	pattern string
	profile H264Profile
}{
	{0x42, "x1xx0000", ProfileConstrainedBaseline},
	{0x4d, "1xxx0000", ProfileConstrainedBaseline},
	{0x58, "11xx0000", ProfileConstrainedBaseline},
	{0x42, "x0xx0000", ProfileBaseline},
	{0x58, "10xx0000", ProfileBaseline},
	{0x4d, "0x0x0000", ProfileMain},
	{0x64, "00000000", ProfileHigh},
	{0x64, "00001100", ProfileConstrainedHigh},
	{0xf4, "00000000", ProfilePredictiveHigh444},
}

func matchPattern(pattern string, b byte) bool {
	for i := range 8 {
		bit := b>>(7-i)&1 == 1
		switch pattern[i] {
		case '1':
			if !bit {
				return false
			}
		case '0':
			if bit {
				return false
			}
		}
	}
	return true
}

// Level1b is the Level of a level 1b profile-level-id (level_idc 11 with
// constraint_set3 in Baseline and Main, level_idc 9 in High profiles); it
// orders between level 1 (10) and level 1.1 (11).
const Level1b = 9

// ProfileLevel is a parsed H.264 profile-level-id.
type ProfileLevel struct {
	Profile H264Profile
	// Level is level_idc (31 for level 3.1), or Level1b.
	Level int
	// ID is the profile-level-id as given, lower-cased.
	ID string
}

// ErrBadProfileLevelID is returned by ParseProfileLevelID for a
// profile-level-id that is not six hex digits.
var ErrBadProfileLevelID = errors.New("bad profile-level-id")

// ParseProfileLevelID parses six hex digits of profile_idc, constraint
// flags and level_idc. A well-formed id of a profile browsers do not know
// parses with ProfileUnknown. It returns ErrBadProfileLevelID (wrapped)
// when s is not six hex digits.
func ParseProfileLevelID(s string) (ProfileLevel, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 3 {
		return ProfileLevel{}, fmt.Errorf("%q: %w", s, ErrBadProfileLevelID)
	}
	pl := ProfileLevel{ID: strings.ToLower(s), Level: int(b[2])}
	for _, p := range profilePatterns {
		if b[0] == p.idc && matchPattern(p.pattern, b[1]) {
			pl.Profile = p.profile
			break
		}
	}
	switch {
	case pl.Level == 11 && b[1]&0x10 != 0 && (pl.Profile == ProfileConstrainedBaseline || pl.Profile == ProfileBaseline || pl.Profile == ProfileMain):
		pl.Level = Level1b
	case pl.Level == 9:
		pl.Level = Level1b
	}
	return pl, nil
}

// LevelString is the level as people write it: "3.1", "4", "1b".
func (pl ProfileLevel) LevelString() string {
	if pl.Level == Level1b {
		return "1b"
	}
	if pl.Level%10 == 0 {
		return fmt.Sprintf("%d", pl.Level/10)
	}
	return fmt.Sprintf("%d.%d", pl.Level/10, pl.Level%10)
}

// String is e.g. "High 4 (640028)".
func (pl ProfileLevel) String() string {
	return fmt.Sprintf("%s %s (%s)", pl.Profile, pl.LevelString(), pl.ID)
}

// Decodes reports whether a decoder of profile p decodes every stream of
// profile s: the same profile, or a subset of it (Constrained Baseline is
// decodable by every profile but Baseline's superset rule holds too;
// Main and Constrained High by High). Baseline is no subset of Main (FMO,
// ASO, redundant slices). ProfileUnknown decodes and is decoded by nothing.
func (p H264Profile) Decodes(s H264Profile) bool {
	if p == ProfileUnknown || s == ProfileUnknown {
		return false
	}
	if p == s {
		return true
	}
	switch s {
	case ProfileConstrainedBaseline:
		return true
	case ProfileMain, ProfileConstrainedHigh:
		return p == ProfileHigh || p == ProfilePredictiveHigh444
	case ProfileHigh:
		return p == ProfilePredictiveHigh444
	}
	return false
}

// Accepts reports whether a receiver that declared recv (its offer's
// profile-level-id) can take a stream declared as send: its profile must
// decode send's, and its level must be at least send's unless the receiver
// allows level asymmetry (level-asymmetry-allowed=1, RFC 6184 §8.1).
func (recv ProfileLevel) Accepts(send ProfileLevel, levelAsymmetry bool) bool {
	if !recv.Profile.Decodes(send.Profile) {
		return false
	}
	return levelAsymmetry || send.Level <= recv.Level
}

// ErrNoCommonCodec is returned when a viewer's offer accepts none of the
// encodings a device can be served in.
var ErrNoCommonCodec = errors.New("no common codec")

// NoCommonCodecError says what a viewer offered and what the device sends
// when they have nothing in common. It matches ErrNoCommonCodec with
// errors.Is.
type NoCommonCodecError struct {
	// Offered lists the offer's video codecs, e.g. "VP8", "H264 42e01f".
	Offered []string
	// Sends is what the device sends, e.g. "H264 High 4 (640028)".
	Sends string
	// Renditions lists the other encodings this service could make, empty
	// when it makes none (no transcoder).
	Renditions []string
}

func (e *NoCommonCodecError) Error() string {
	offered := "no video codec"
	if len(e.Offered) > 0 {
		offered = strings.Join(e.Offered, ", ")
	}
	msg := fmt.Sprintf("the offer has %s; the device sends %s", offered, e.Sends)
	if len(e.Renditions) > 0 {
		msg += " and can be transcoded to " + strings.Join(e.Renditions, ", ")
	} else {
		msg += " and no transcoder is available"
	}
	return msg + ": " + ErrNoCommonCodec.Error()
}

// Is makes errors.Is(err, ErrNoCommonCodec) true.
func (e *NoCommonCodecError) Is(target error) bool { return target == ErrNoCommonCodec }

// Rendition names one encoding a device is served in.
type Rendition string

// Renditions. The original is what the device sends; the others are made
// by a transcoder, one per device, for viewers that cannot take it.
const (
	RenditionOriginal Rendition = ""
	// RenditionVP8 is VP8 (libvpx, realtime), for browsers without H.264
	// (Firefox without OpenH264).
	RenditionVP8 Rendition = "vp8"
	// RenditionBaseline is Constrained Baseline H.264 (libx264), for
	// browsers that decode H.264 but not the device's profile.
	RenditionBaseline Rendition = "h264-baseline"
	// RenditionWall is a small, low-bitrate Constrained Baseline H.264
	// picture (libx264) for a tile of the device wall, made from the
	// capture of a source that cannot capture a second, smaller picture
	// itself (the demo). It is never offered to a device's own viewers.
	RenditionWall Rendition = "wall"
)

// Wall tiles: the largest side of a tile's picture and its bitrate, for a
// second capture of the device or the wall rendition alike.
const (
	WallMaxSize    = 320
	WallBitrateBps = 250_000
)

// WallSize fits a w×h picture within WallMaxSize on its longer side,
// keeping its aspect, in even numbers (what H.264 encoders take); a
// picture already that small, or of unknown size, is returned as it is.
func WallSize(w, h int) (int, int) {
	if w <= 0 || h <= 0 || max(w, h) <= WallMaxSize {
		return w, h
	}
	if w >= h {
		return WallMaxSize, max(2, h*WallMaxSize/w/2*2)
	}
	return max(2, w*WallMaxSize/h/2*2), WallMaxSize
}

// Codec is the codec the rendition carries; for the original, "" (the
// capture's own).
func (r Rendition) Codec() Codec {
	switch r {
	case RenditionVP8:
		return CodecVP8
	case RenditionBaseline, RenditionWall:
		return CodecH264
	}
	return CodecNone
}

// String is "original" for the original.
func (r Rendition) String() string {
	if r == RenditionOriginal {
		return "original"
	}
	return string(r)
}

// BaselineProfileLevelID is what the Constrained Baseline rendition
// declares: Constrained Baseline, level 3.1.
const BaselineProfileLevelID = "42e01f"
