package adb

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"mediasvc/domain"
)

// FuzzReadStatus: host-protocol replies never panic, and a FAIL's reason
// comes back whole.
func FuzzReadStatus(f *testing.F) {
	f.Add([]byte("OKAY"))
	f.Add([]byte("FAIL000edevice offline"))
	f.Add([]byte("FAIL0016device 'abc' not found"))
	f.Add([]byte("FAILzzzz"))
	f.Add([]byte("OKAY00040029"))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := readStatus(bytes.NewReader(b))
		if bytes.HasPrefix(b, []byte("OKAY")) && err != nil {
			t.Fatalf("OKAY gave %v", err)
		}
		var fe *FailError
		if errors.As(err, &fe) {
			n, perr := parseHex4(b[4:8])
			if perr != nil || fe.Reason != string(b[8:8+n]) {
				t.Fatalf("reason %q from %q", fe.Reason, b)
			}
		}
		// A hex4 payload reader never returns more than it was told.
		if p, err := readHex4Payload(bytes.NewReader(b)); err == nil && len(p) > maxPayload {
			t.Fatalf("payload of %d bytes", len(p))
		}
	})
}

// FuzzParseDeviceList: a device list never panics; every entry has a
// serial and a state without newlines.
func FuzzParseDeviceList(f *testing.F) {
	f.Add("emulator-5554          device product:sdk model:Pixel_7 device:emu transport_id:1\n")
	f.Add("abc\tdevice\nxyz\toffline\n")
	f.Add("0123 no permissions (udev); see [http://x] usb:1-1 transport_id:4\n")
	f.Add("only\n\n:\n a:b c:d\n")
	f.Fuzz(func(t *testing.T, body string) {
		for _, e := range parseDeviceList(body) {
			if e.Serial == "" || e.State == "" || strings.ContainsAny(e.Serial+e.State, "\n") {
				t.Fatalf("entry %+v from %q", e, body)
			}
		}
	})
}

// FuzzAUSplitter: whatever the bytes and however they are chunked, the
// splitter never panics and yields exactly the NAL units SplitAnnexB finds.
func FuzzAUSplitter(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 0x88, 0, 0, 1, 0x41, 0x9a}, uint8(3))
	f.Add([]byte{0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 9, 0x10}, uint8(1))
	f.Add([]byte("garbage"), uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8) {
		n := int(chunk%64) + 1
		nals, _ := splitChunked(t, b, n)
		want := domain.SplitAnnexB(b)
		if len(nals) != len(want) {
			t.Fatalf("%d NAL units, SplitAnnexB %d", len(nals), len(want))
		}
		for i := range want {
			if !bytes.Equal(nals[i], want[i]) {
				t.Fatalf("NAL %d: %x vs %x", i, nals[i], want[i])
			}
		}
	})
}

// FuzzReadV2: shell v2 framing never panics and never reads past its
// bounds.
func FuzzReadV2(f *testing.F) {
	f.Add(appendV2Packet(appendV2Packet(nil, v2Stdout, []byte("hi")), v2Exit, []byte{0}))
	f.Add([]byte{3, 0, 0, 0, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := readV2(bytes.NewReader(b))
		if err == nil && len(res.Stdout)+len(res.Stderr) > len(b) {
			t.Fatalf("read %d bytes from %d", len(res.Stdout)+len(res.Stderr), len(b))
		}
	})
}
