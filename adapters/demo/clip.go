package demo

import (
	_ "embed"
	"errors"
	"fmt"
	"time"

	"mediasvc/domain"
)

// The clip media/generate.sh makes: 10 s of 1280x720 H.264 constrained
// baseline at 30 fps with an IDR every 30 frames, and 10 s of 48 kHz stereo
// Opus in 20 ms packets. Its frame rate and size are facts of that command,
// not parsed from the SPS; clip_test.go checks them against the stream.
var (
	//go:embed media/demo.h264
	clipH264 []byte
	//go:embed media/demo.ogg
	clipOgg []byte
)

const (
	clipWidth  = 1280
	clipHeight = 720
	clipFPS    = 30
)

var errBadClip = errors.New("malformed demo clip")

// accessUnit is one picture of the clip in Annex-B form, every NAL unit
// behind a 4-byte start code.
type accessUnit struct {
	data []byte
	// split is the offset in data of the first slice's start code, where
	// the SEI timestamp goes: after AUD, SPS, PPS and any SEI, before the
	// slices.
	split int
	key   bool
}

// opusPacket is one Opus packet of the clip.
type opusPacket struct {
	data []byte
	dur  time.Duration
	at   time.Duration // start within the clip
}

// clip is the demo media cut into what a capture emits, shared read-only by
// every capture.
type clip struct {
	video []accessUnit
	// nextKey[i] is the index of the first keyframe after picture i,
	// wrapping to 0 past the last GOP.
	nextKey  []int
	audio    []opusPacket
	duration time.Duration
	info     domain.StreamInfo
}

// videoPTS returns the presentation time of the n-th video frame counted
// from 0, at clipFPS, without accumulating rounding.
func videoPTS(n int64) time.Duration {
	return time.Duration(n * int64(time.Second) / clipFPS)
}

// parseClip cuts an Annex-B H.264 stream and an Ogg Opus file into a clip.
// The video is grouped into access units (ITU-T H.264 §7.4.1.2.3, simplified:
// a new one starts at an AUD, SPS, PPS or SEI, or at a slice with
// first_mb_in_slice 0, once the current one holds a slice); it must start
// with a keyframe. Audio packets whose start lies at or past the video's
// duration are dropped, so one loop of both lasts the same. It returns an
// error wrapping errBadClip otherwise.
func parseClip(h264, ogg []byte) (*clip, error) {
	c := &clip{}
	var (
		cur      []byte
		split    = -1
		key      bool
		hasSlice bool
	)
	flush := func() {
		if hasSlice {
			c.video = append(c.video, accessUnit{data: cur, split: split, key: key})
		}
		cur, split, key, hasSlice = nil, -1, false, false
	}
	for rest := h264; ; {
		var nal []byte
		if nal, rest = domain.NextNAL(rest); nal == nil {
			break
		}
		typ := domain.NALType(nal)
		isSlice := typ == domain.NALTypeSlice || typ == domain.NALTypeIDR
		switch {
		case !hasSlice:
		case typ == domain.NALTypeAUD, typ == domain.NALTypeSPS, typ == domain.NALTypePPS,
			typ == domain.NALTypeSEI, typ >= 14 && typ <= 18:
			flush()
		case isSlice && len(nal) > 1 && nal[1]&0x80 != 0: // first_mb_in_slice == 0
			flush()
		}
		if typ == domain.NALTypeSPS && c.info.ProfileLevelID == "" {
			c.info.ProfileLevelID = domain.ProfileLevelID(nal)
		}
		if isSlice && !hasSlice {
			split = len(cur)
			hasSlice = true
		}
		key = key || typ == domain.NALTypeIDR
		cur = append(append(cur, domain.AnnexBStartCode...), nal...)
	}
	flush()
	if len(c.video) == 0 || !c.video[0].key {
		return nil, fmt.Errorf("parse demo video: no access units or first is not a keyframe: %w", errBadClip)
	}
	if c.info.ProfileLevelID == "" {
		return nil, fmt.Errorf("parse demo video: no SPS: %w", errBadClip)
	}
	c.nextKey = make([]int, len(c.video))
	next := 0
	for i := len(c.video) - 1; i >= 0; i-- {
		c.nextKey[i] = next
		if c.video[i].key {
			next = i
		}
	}
	c.duration = videoPTS(int64(len(c.video)))

	head, packets, err := readOggOpus(ogg, true)
	if err != nil {
		return nil, fmt.Errorf("parse demo audio: %w", err)
	}
	if head.Channels != 2 {
		return nil, fmt.Errorf("parse demo audio: %d channels, want 2: %w", head.Channels, errBadClip)
	}
	var at time.Duration
	for i, p := range packets {
		if at >= c.duration {
			break
		}
		d, ok := opusPacketDuration(p)
		if !ok {
			return nil, fmt.Errorf("parse demo audio: packet %d: bad TOC: %w", i, errBadClip)
		}
		c.audio = append(c.audio, opusPacket{data: p, dur: d, at: at})
		at += d
	}
	if at != c.duration {
		return nil, fmt.Errorf("parse demo audio: %v of audio for %v of video: %w", at, c.duration, errBadClip)
	}
	c.info = domain.StreamInfo{
		Video: domain.CodecH264, Audio: domain.CodecOpus,
		Width: clipWidth, Height: clipHeight, FPS: clipFPS,
		ProfileLevelID: c.info.ProfileLevelID,
	}
	return c, nil
}

// audioIndexAt returns the index of the first audio packet that starts at or
// after t within the clip, or 0 when none does.
func (c *clip) audioIndexAt(t time.Duration) int {
	for i, p := range c.audio {
		if p.at >= t {
			return i
		}
	}
	return 0
}
