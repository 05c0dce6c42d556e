package rtc

import (
	"errors"
	"testing"

	"mediasvc/domain"
)

const chromeLikeOffer = "v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n" +
	"a=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\n" +
	"a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"

func TestValidateOffer(t *testing.T) {
	tests := []struct {
		name  string
		offer string
		ok    bool
	}{
		{"chrome-like", chromeLikeOffer, true},
		// Well-formed offers without a usable codec are no longer invalid:
		// they get no_common_codec from the negotiation (negotiate_test.go).
		{"mode 0 only", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 RTP/AVP 102\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=0;profile-level-id=42e01f\r\n", true},
		{"audio only", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n", false},
		{"rejected video", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 102\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n", false},
		{"garbage", "hello", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateOffer(tt.offer)
			if tt.ok && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if !tt.ok && !errors.Is(err, domain.ErrInvalidOffer) {
				t.Fatalf("err = %v, want ErrInvalidOffer", err)
			}
		})
	}
}

// FuzzValidateOffer: validation never panics and every rejection is
// ErrInvalidOffer. Seed corpus in testdata/fuzz/FuzzValidateOffer.
func FuzzValidateOffer(f *testing.F) {
	f.Add(chromeLikeOffer)
	f.Add("v=0\r\n")
	f.Fuzz(func(t *testing.T, offer string) {
		if err := validateOffer(offer); err != nil && !errors.Is(err, domain.ErrInvalidOffer) {
			t.Fatalf("error %v is not ErrInvalidOffer", err)
		}
	})
}

// FuzzNextNAL: the Annex-B iterator terminates, never panics, and yields
// non-empty NAL units that are sub-slices of the input.
func FuzzNextNAL(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce})
	f.Add([]byte{0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		total := 0
		for rest := b; ; {
			var nal []byte
			nal, rest = domain.NextNAL(rest)
			if nal == nil {
				break
			}
			if len(nal) == 0 || nal[len(nal)-1] == 0 {
				t.Fatalf("bad nal %x", nal)
			}
			total += len(nal)
			if total > len(b) {
				t.Fatal("yielded more bytes than the input")
			}
		}
		// The packetizer takes any bytes as an access unit without panicking
		// and never writes a payload over the MTU.
		r := testRing(16)
		p := h264Packetizer{mtu: 100}
		n := p.pushAU(r, b, 0, true)
		buf := make([]byte, slotCap)
		for i := uint64(0); i < uint64(n) && i < 16; i++ {
			if m, ok := r.readAt(r.head-1-i, buf); ok && m.n > 100 {
				t.Fatalf("payload of %d bytes", m.n)
			}
		}
	})
}
