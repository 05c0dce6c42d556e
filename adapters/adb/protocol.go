// Package adb is mediasvc's Android source: a client of the adb server's host
// protocol (our own; the Go libraries are unmaintained), a device registry
// fed by host:track-devices-l, screen capture with screenrecord, input
// through one persistent shell per device, and a circuit breaker per device.
//
// The host protocol: a request is four hex digits of length and the service
// name ("000chost:version"); the reply is OKAY, or FAIL followed by four hex
// digits of length and a reason. Some services then send a hex4-prefixed
// payload (host:version, host:track-devices-l), others turn the socket into
// a raw pipe (exec:, shell:).
package adb

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"mediasvc/domain"
)

// maxPayload bounds a hex4 payload (the format cannot say more than 0xffff).
const maxPayload = 0xffff

// ErrProtocol is returned (wrapped) when the adb server sends something the
// host protocol does not allow.
var ErrProtocol = errors.New("adb protocol error")

// FailError is a FAIL reply from the adb server. It matches
// domain.ErrDeviceNotFound or domain.ErrDeviceUnavailable with errors.Is when
// its reason says so.
type FailError struct {
	Reason string
}

func (e *FailError) Error() string { return "adb server: " + e.Reason }

// Is maps the server's reasons to domain errors.
func (e *FailError) Is(target error) bool {
	r := strings.ToLower(e.Reason)
	switch target {
	case domain.ErrDeviceNotFound:
		return strings.Contains(r, "not found") || strings.Contains(r, "no devices")
	case domain.ErrDeviceUnavailable:
		return strings.Contains(r, "offline") || strings.Contains(r, "unauthorized") ||
			strings.Contains(r, "authorizing") || strings.Contains(r, "connecting") ||
			strings.Contains(r, "no permissions")
	}
	return false
}

// encodeRequest returns the wire form of a request for service.
func encodeRequest(service string) ([]byte, error) {
	if len(service) == 0 || len(service) > maxPayload {
		return nil, fmt.Errorf("adb request of %d bytes: %w", len(service), ErrProtocol)
	}
	return fmt.Appendf(nil, "%04x%s", len(service), service), nil
}

// parseHex4 reads the four lower- or upper-case hex digits of a length.
func parseHex4(b []byte) (int, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("length %q: %w", b, ErrProtocol)
	}
	n := 0
	for _, c := range b {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, fmt.Errorf("length %q is not hex: %w", b, ErrProtocol)
		}
		n = n<<4 | int(v)
	}
	return n, nil
}

// readHex4Payload reads a hex4 length and that many bytes.
func readHex4Payload(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n, err := parseHex4(hdr[:])
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("payload of %d bytes: %w", n, noEOF(err))
	}
	return b, nil
}

// readStatus reads OKAY, or FAIL and its reason as a *FailError.
func readStatus(r io.Reader) error {
	var st [4]byte
	if _, err := io.ReadFull(r, st[:]); err != nil {
		return fmt.Errorf("read status: %w", noEOF(err))
	}
	switch string(st[:]) {
	case "OKAY":
		return nil
	case "FAIL":
		reason, err := readHex4Payload(r)
		if err != nil {
			return fmt.Errorf("read FAIL reason: %w", noEOF(err))
		}
		return &FailError{Reason: string(reason)}
	}
	return fmt.Errorf("status %q: %w", st[:], ErrProtocol)
}

// noEOF turns a clean EOF in the middle of a reply into
// io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Entry is one line of a device list: a serial, its adb state and the
// long-format properties.
type Entry struct {
	Serial      string
	State       string // device, offline, unauthorized, authorizing, …
	Product     string
	Model       string
	Device      string
	TransportID int
}

// knownProps are the key:value words of a long device list line.
var knownProps = map[string]bool{"product": true, "model": true, "device": true, "transport_id": true, "usb": true}

// parseDeviceList parses the body of a host:devices-l or
// host:track-devices-l message: one device a line, the serial, the state
// (which may hold spaces, "no permissions (…)"), then key:value words. Lines
// it cannot read are skipped; it never fails and never panics.
func parseDeviceList(body string) []Entry {
	var out []Entry
	for line := range strings.SplitSeq(body, "\n") {
		line = strings.TrimRight(line, "\r")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		e := Entry{Serial: fields[0]}
		var state []string
		rest := fields[1:]
		for len(rest) > 0 {
			k, _, ok := strings.Cut(rest[0], ":")
			if ok && knownProps[k] {
				break
			}
			state = append(state, rest[0])
			rest = rest[1:]
		}
		e.State = strings.Join(state, " ")
		for _, w := range rest {
			k, v, ok := strings.Cut(w, ":")
			if !ok {
				continue
			}
			switch k {
			case "product":
				e.Product = v
			case "model":
				e.Model = v
			case "device":
				e.Device = v
			case "transport_id":
				e.TransportID, _ = strconv.Atoi(v)
			}
		}
		if e.State == "" {
			continue
		}
		out = append(out, e)
	}
	return out
}

// deviceState maps an adb state to the domain's.
func deviceState(adbState string) domain.DeviceState {
	switch adbState {
	case "device":
		return domain.DeviceOnline
	case "offline":
		return domain.DeviceOffline
	case "unauthorized", "authorizing":
		return domain.DeviceUnauthorized
	}
	return domain.DeviceUnavailable
}
