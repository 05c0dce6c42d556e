package domain

import "time"

// QualityStats is what one viewer's connection looks like, from RTCP and the
// server's own counters.
type QualityStats struct {
	At            time.Time `json:"at"`
	State         string    `json:"ice_state"`
	PacketsSent   uint64    `json:"packets_sent"`
	BytesSent     uint64    `json:"bytes_sent"`
	FramesSent    uint64    `json:"frames_sent"`
	AudioPackets  uint64    `json:"audio_packets_sent"`
	FrameRate     float64   `json:"frame_rate"`
	BitrateBps    float64   `json:"bitrate_bps"`
	LossFraction  float64   `json:"loss_fraction"`
	PacketsLost   int64     `json:"packets_lost"`
	JitterMs      float64   `json:"jitter_ms"`
	RTTMs         float64   `json:"rtt_ms"`
	NACKs         uint64    `json:"nacks"`
	PLIs          uint64    `json:"plis"`
	Retransmits   uint64    `json:"retransmits"`
	KeyframeSkips uint64    `json:"keyframe_skips"`
	// What the viewer sent beyond its budget and was dropped: RTCP packets
	// over its rate or malformed, PLI/FIR within its keyframe interval,
	// NACKed packets over its retransmission budget.
	RTCPDropped        uint64 `json:"rtcp_dropped"`
	PLIsDropped        uint64 `json:"plis_dropped"`
	RetransmitsDropped uint64 `json:"retransmits_dropped"`
	// EstimatedBps is the receiver's bandwidth estimate (REMB), 0 when the
	// viewer sends none.
	EstimatedBps float64 `json:"estimated_bitrate_bps"`
	// Rendition is what the viewer is sent: "original" (the device's
	// stream), "vp8" or "h264-baseline" (a transcoder's); empty before
	// its first offer.
	Rendition string `json:"rendition,omitempty"`
}
