package demo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// oggPage builds one Ogg page with a valid CRC from lacing values and body.
func oggPage(serial, seq uint32, flags byte, lacing []byte, body []byte) []byte {
	p := []byte("OggS")
	p = append(p, 0, flags)
	p = binary.LittleEndian.AppendUint64(p, 0)
	p = binary.LittleEndian.AppendUint32(p, serial)
	p = binary.LittleEndian.AppendUint32(p, seq)
	p = append(p, 0, 0, 0, 0, byte(len(lacing)))
	p = append(p, lacing...)
	p = append(p, body...)
	binary.LittleEndian.PutUint32(p[22:], oggCRC(p))
	return p
}

func opusHeadPacket(channels byte) []byte {
	h := append([]byte("OpusHead"), 1, channels, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0)
	return h
}

// oggHeaders returns the two header pages of a stream with serial 7.
func oggHeaders() []byte {
	head := opusHeadPacket(2)
	tags := []byte("OpusTags\x00\x00\x00\x00\x00\x00\x00\x00")
	return append(oggPage(7, 0, 0x02, []byte{byte(len(head))}, head),
		oggPage(7, 1, 0, []byte{byte(len(tags))}, tags)...)
}

func TestReadOggOpusEmbedded(t *testing.T) {
	head, packets, err := readOggOpus(clipOgg, true)
	if err != nil {
		t.Fatal(err)
	}
	if head.Channels != 2 || head.SampleRate != 48000 {
		t.Fatalf("head = %+v, want 2 channels at 48000 Hz", head)
	}
	var total time.Duration
	for i, p := range packets {
		d, ok := opusPacketDuration(p)
		if !ok || d != 20*time.Millisecond {
			t.Fatalf("packet %d (toc %#x): duration %v, %v; the clip is 20 ms frames", i, p[0], d, ok)
		}
		total += d
	}
	if total < 10*time.Second || total > 10100*time.Millisecond {
		t.Fatalf("audio lasts %v, want about 10 s", total)
	}
}

func TestReadOggOpus(t *testing.T) {
	big := bytes.Repeat([]byte{0xfc}, 600) // spans pages: 255+255+90
	pkt := []byte{0xfc, 1, 2, 3}
	tests := []struct {
		name    string
		in      []byte
		want    [][]byte
		wantErr bool
	}{
		{name: "two packets in a page",
			in:   append(oggHeaders(), oggPage(7, 2, 0, []byte{4, 2}, append(bytes.Clone(pkt), 0xfc, 9))...),
			want: [][]byte{pkt, {0xfc, 9}}},
		{name: "packet across pages",
			in: bytes.Join([][]byte{oggHeaders(),
				oggPage(7, 2, 0, []byte{255, 255}, big[:510]),
				oggPage(7, 3, 0x01, []byte{90, 4}, append(bytes.Clone(big[510:]), pkt...))}, nil),
			want: [][]byte{big, pkt}},
		{name: "other stream skipped",
			in:   bytes.Join([][]byte{oggHeaders(), oggPage(9, 0, 0x02, []byte{4}, []byte{1, 2, 3, 4}), oggPage(7, 2, 0, []byte{4}, pkt)}, nil),
			want: [][]byte{pkt}},
		{name: "orphan continuation dropped",
			in:   append(oggHeaders(), oggPage(7, 2, 0x01, []byte{3, 4}, append([]byte{7, 7, 7}, pkt...))...),
			want: [][]byte{pkt}},
		{name: "unfinished packet dropped",
			in: bytes.Join([][]byte{oggHeaders(),
				oggPage(7, 2, 0, []byte{255}, big[:255]),
				oggPage(7, 3, 0, []byte{4}, pkt)}, nil),
			want: [][]byte{pkt}},
		{name: "headers only", in: oggHeaders()},
		{name: "empty", in: nil, wantErr: true},
		{name: "not ogg", in: []byte("RIFF0000WAVEfmt 00000000000000000000"), wantErr: true},
		{name: "truncated", in: oggHeaders()[:40], wantErr: true},
		{name: "bad crc", in: func() []byte { b := oggHeaders(); b[30] ^= 1; return b }(), wantErr: true},
		{name: "not opus", in: oggPage(7, 0, 0x02, []byte{8}, []byte("OggVorbi")), wantErr: true},
		{name: "no tags",
			in:      append(oggPage(7, 0, 0x02, []byte{19}, opusHeadPacket(2)), oggPage(7, 1, 0, []byte{4}, pkt)...),
			wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got, err := readOggOpus(tt.in, true)
			if tt.wantErr {
				if !errors.Is(err, errBadOgg) {
					t.Fatalf("err = %v, want errBadOgg", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d packets, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Fatalf("packet %d = %x, want %x", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestOpusPacketDuration(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		p    []byte
		want time.Duration
		ok   bool
	}{
		{"celt fb 20 ms code 0", []byte{0xfc}, 20 * ms, true}, // config 31
		{"celt fb 2.5 ms code 0", []byte{0xe0}, 2500 * time.Microsecond, true},
		{"celt 10 ms code 1", []byte{0xf1}, 20 * ms, true},  // config 30, two frames
		{"silk 60 ms code 2", []byte{0x1a}, 120 * ms, true}, // config 3
		{"hybrid 10 ms", []byte{0x60}, 10 * ms, true},       // config 12
		{"hybrid 20 ms", []byte{0x68}, 20 * ms, true},       // config 13
		{"code 3 three 20 ms frames", []byte{0xfb, 0x03}, 60 * ms, true},
		{"code 3 too long", []byte{0x1b, 0x03}, 0, false}, // 3 × 60 ms
		{"code 3 zero frames", []byte{0xfb, 0x00}, 0, false},
		{"code 3 no count", []byte{0xfb}, 0, false},
		{"empty", nil, 0, false},
	}
	for _, tt := range tests {
		got, ok := opusPacketDuration(tt.p)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: opusPacketDuration(%x) = %v, %v, want %v, %v", tt.name, tt.p, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzReadOggOpus checks that the reader never panics and that every packet
// it returns lies within the input or is a join of its bytes. CRCs are not
// checked so that mutations reach the page and packet logic.
func FuzzReadOggOpus(f *testing.F) {
	f.Add(oggHeaders())
	f.Fuzz(func(t *testing.T, b []byte) {
		_, packets, err := readOggOpus(b, false)
		if err != nil && !errors.Is(err, errBadOgg) {
			t.Fatalf("error %v does not wrap errBadOgg", err)
		}
		total := 0
		for _, p := range packets {
			if len(p) == 0 {
				t.Fatal("empty packet")
			}
			total += len(p)
			_, _ = opusPacketDuration(p)
		}
		if total > len(b) {
			t.Fatalf("packets hold %d bytes, input %d", total, len(b))
		}
		_, _, _ = readOggOpus(b, true)
	})
}
