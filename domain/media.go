package domain

import "time"

// MediaKind says whether a frame is video or audio.
type MediaKind uint8

// Media kinds.
const (
	KindVideo MediaKind = iota + 1
	KindAudio
)

// Codec names a media codec as in SDP (H264, VP8, opus).
type Codec string

// Codecs.
const (
	CodecH264 Codec = "H264"
	CodecVP8  Codec = "VP8"
	CodecOpus Codec = "opus"
	CodecNone Codec = ""
)

// Frame is one unit of media from a capture: a whole video access unit or
// one audio packet.
type Frame struct {
	Kind MediaKind
	// Data is, for H.264, one access unit in Annex-B form (start codes before
	// each NAL unit); for Opus, one packet. The receiver may keep it; the
	// source never changes it after handing it over.
	Data []byte
	// PTS is the presentation time since the start of the capture. It only
	// grows, across loops and restarts of the source.
	PTS time.Duration
	// Duration is how long the frame lasts (for audio, its sample span).
	Duration time.Duration
	// Keyframe is true for an H.264 IDR access unit; the source puts SPS and
	// PPS in front of every keyframe.
	Keyframe bool
	// Ingest is the wall-clock time the frame entered the service.
	Ingest time.Time
}

// StreamInfo describes what a capture yields.
type StreamInfo struct {
	Video  Codec
	Audio  Codec // CodecNone when the source has no audio
	Width  int
	Height int
	FPS    int
	// ProfileLevelID is the H.264 profile-level-id the SPS carries, as six
	// hex digits (42e01f for constrained baseline 3.1).
	ProfileLevelID string
}

// CaptureOptions asks a source for a capture.
type CaptureOptions struct {
	MaxWidth   int
	MaxHeight  int
	BitrateBps int
	// Secondary asks for a second, video-only capture beside the device's
	// main one (a device wall's tile): no audio, no input or clipboard
	// channel, its own bitrate that the bitrate policy leaves alone.
	Secondary bool
}
