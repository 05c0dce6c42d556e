package domain

import (
	"errors"
	"time"
)

// Recording errors.
var (
	// ErrRecordingNotFound: no recording with that id (or one the caller
	// may not see).
	ErrRecordingNotFound = errors.New("recording not found")
	// ErrStorageFull: the recordings directory holds its configured
	// maximum of bytes; nothing is deleted to make room.
	ErrStorageFull = errors.New("recording storage full")
)

// RecordingID names a recording: 16 lower-case hex digits chosen by the
// service, never by a client, so that a file name built from it cannot
// leave the recordings directory.
type RecordingID string

// Valid reports whether id is 16 lower-case hex digits.
func (id RecordingID) Valid() bool {
	if len(id) != 16 {
		return false
	}
	for _, c := range []byte(id) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// RecordingState says where a recording is in its life.
type RecordingState string

// Recording states. An interrupted recording is one whose service stopped
// without closing it (a crash, a kill): its file ends at its last complete
// fragment and plays up to there.
const (
	RecordingActive      RecordingState = "recording"
	RecordingDone        RecordingState = "done"
	RecordingInterrupted RecordingState = "interrupted"
)

// Recording is one MP4 recording of a device's stream.
type Recording struct {
	ID        RecordingID    `json:"id"`
	Device    DeviceID       `json:"device_id"`
	State     RecordingState `json:"state"`
	StartedAt time.Time      `json:"started_at"`
	EndedAt   time.Time      `json:"ended_at,omitzero"`
	// Duration is the media time written so far (complete fragments).
	Duration time.Duration `json:"-"`
	// Bytes is the file's size so far (complete fragments).
	Bytes  int64  `json:"bytes"`
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	Video  Codec  `json:"video,omitempty"`
	Audio  Codec  `json:"audio,omitempty"`
	Owner  string `json:"owner,omitempty"`
	// StopReason says why it ended: "stopped" (asked), "max_duration",
	// "storage_full", "shutdown", "failed: …".
	StopReason string `json:"stop_reason,omitempty"`
}

// RecordingLimits bound recordings.
type RecordingLimits struct {
	// MaxDuration ends a recording when its media time reaches it.
	MaxDuration time.Duration
	// MaxTotalBytes bounds the recordings directory: a new recording is
	// refused (ErrStorageFull) once it holds that many bytes, and running
	// recordings stop when their writes reach it. Nothing is deleted.
	MaxTotalBytes int64
	// MaxConcurrent bounds recordings running at once (ErrLimitExceeded).
	MaxConcurrent int
}
