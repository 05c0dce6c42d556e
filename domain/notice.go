package domain

import "time"

// NoticeType names a farm event told to outside systems (webhooks).
type NoticeType string

// Farm event types, as webhook payloads carry them in "type".
const (
	NoticeDeviceOnline     NoticeType = "device.online"
	NoticeDeviceOffline    NoticeType = "device.offline"
	NoticeControlChanged   NoticeType = "control.changed"
	NoticeReservationStart NoticeType = "reservation.started"
	NoticeReservationEnd   NoticeType = "reservation.ended"
)

// Notice is one farm event for outside systems.
type Notice struct {
	// ID is unique per event, so a receiver can drop a retried duplicate.
	ID          string       `json:"id"`
	Type        NoticeType   `json:"type"`
	Time        time.Time    `json:"time"`
	Device      DeviceID     `json:"device_id"`
	Control     *Control     `json:"control,omitempty"`
	Reservation *Reservation `json:"reservation,omitempty"`
	// Reason says why, when it is not obvious: "grace", "taken",
	// "reserved", "cancelled".
	Reason string `json:"reason,omitempty"`
}
