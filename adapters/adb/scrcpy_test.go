package adb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"
)

func scrcpyHeader(pts uint64, n int) []byte {
	var h [12]byte
	binary.BigEndian.PutUint64(h[:], pts)
	binary.BigEndian.PutUint32(h[8:], uint32(n))
	return h[:]
}

func TestReadScrcpyPacket(t *testing.T) {
	var b bytes.Buffer
	b.Write(scrcpyHeader(scrcpyFlagConfig, 3))
	b.WriteString("cfg")
	b.Write(scrcpyHeader(scrcpyFlagKey|1500, 2))
	b.WriteString("id")
	b.Write(scrcpyHeader(3000, 1))
	b.WriteString("p")
	want := []scrcpyPacket{{config: true, data: []byte("cfg")}, {key: true, pts: 1500 * time.Microsecond, data: []byte("id")}, {pts: 3 * time.Millisecond, data: []byte("p")}}
	for i, w := range want {
		p, err := readScrcpyPacket(&b)
		if err != nil || p.config != w.config || p.key != w.key || p.pts != w.pts || !bytes.Equal(p.data, w.data) {
			t.Fatalf("packet %d: %+v %v", i, p, err)
		}
	}
	if _, err := readScrcpyPacket(&b); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
	if _, err := readScrcpyPacket(bytes.NewReader(scrcpyHeader(0, maxScrcpyPacket+1))); !errors.Is(err, ErrProtocol) {
		t.Fatalf("oversized: %v", err)
	}
	if _, err := readScrcpyPacket(bytes.NewReader(append(scrcpyHeader(0, 10), 1, 2))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated: %v", err)
	}
}

// FuzzReadScrcpyPacket: the scrcpy video framing never panics, never
// returns an empty or oversized packet, and never reads past its bounds.
func FuzzReadScrcpyPacket(f *testing.F) {
	f.Add(append(scrcpyHeader(scrcpyFlagConfig, 4), 0, 0, 0, 1))
	f.Add(append(scrcpyHeader(scrcpyFlagKey|33333, 2), 0x65, 0x88))
	f.Add(scrcpyHeader(0, 0))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			p, err := readScrcpyPacket(r)
			if err != nil {
				return
			}
			if len(p.data) == 0 || len(p.data) > maxScrcpyPacket || p.pts < 0 {
				t.Fatalf("packet %+v", p)
			}
		}
	})
}
