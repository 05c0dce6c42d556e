package domain

import (
	"fmt"
	"strconv"
	"time"
)

// AuditAction names what an audit event records.
type AuditAction string

// Audited actions.
const (
	AuditInput     AuditAction = "input"     // a pointer, key or scroll event
	AuditText      AuditAction = "text"      // text typed into the device
	AuditClipboard AuditAction = "clipboard" // the device clipboard set
	// AuditDeviceClipboard: the device's clipboard sent to a controller.
	AuditDeviceClipboard AuditAction = "device_clipboard"
	AuditFilePush        AuditAction = "file_push" // a file pushed to the device
	AuditInstall         AuditAction = "install"   // an APK installed

	AuditControlRequest AuditAction = "control_request" // granted or queued
	AuditControlRelease AuditAction = "control_release" // given up, or grace passed
	AuditControlGranted AuditAction = "control_granted" // moved up from the queue
	AuditControlTake    AuditAction = "control_take"    // an admin took control
	AuditControlLost    AuditAction = "control_lost"    // taken away (admin take, reservation)

	AuditReservationCreate AuditAction = "reservation_create"
	AuditReservationExtend AuditAction = "reservation_extend"
	AuditReservationCancel AuditAction = "reservation_cancel"
)

// Audit outcomes other than an error code.
const (
	OutcomeOK     = "ok"
	OutcomeQueued = "queued"
)

// AuditEvent is one thing someone did to a device, or tried to.
type AuditEvent struct {
	// ID is assigned by the audit sink; it orders events in one sink.
	ID      string      `json:"id"`
	Time    time.Time   `json:"time"`
	Action  AuditAction `json:"action"`
	Subject string      `json:"subject"`
	Session SessionID   `json:"session_id,omitempty"`
	Device  DeviceID    `json:"device_id,omitempty"`
	// Outcome is "ok", "queued", or the error code that refused it.
	Outcome string `json:"outcome"`
	// Detail says more: an input's kind, a text's length (or contents when
	// the operator records text), a file's name and size.
	Detail string `json:"detail,omitempty"`
	// Instance is the instance that recorded the event.
	Instance string `json:"instance,omitempty"`
}

// AuditFilter selects audit events; zero fields select everything.
type AuditFilter struct {
	Device  DeviceID
	Subject string
	// Since keeps events at or after it.
	Since time.Time
	// Limit keeps only the newest Limit matching events; zero or less
	// means DefaultAuditLimit, and MaxAuditLimit at most.
	Limit int
}

// Audit query bounds.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// Match reports whether e is selected by f.
func (f AuditFilter) Match(e AuditEvent) bool {
	return (f.Device == "" || e.Device == f.Device) &&
		(f.Subject == "" || e.Subject == f.Subject) &&
		(f.Since.IsZero() || !e.Time.Before(f.Since))
}

// Count returns f's effective limit.
func (f AuditFilter) Count() int {
	switch {
	case f.Limit <= 0:
		return DefaultAuditLimit
	case f.Limit > MaxAuditLimit:
		return MaxAuditLimit
	}
	return f.Limit
}

// TextDetail is the audit detail for typed or pasted text: its length in
// characters, and its contents (quoted) only when record is set.
func TextDetail(text string, record bool) string {
	n := len([]rune(text))
	if !record {
		return fmt.Sprintf("length %d", n)
	}
	return fmt.Sprintf("length %d text %s", n, strconv.Quote(text))
}
