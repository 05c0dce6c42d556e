package rtc

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"mediasvc/domain"
)

func readOffer(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/offers/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n", "\r\n")
}

// withoutPayloadTypes removes payload types from an offer's m-lines and
// their attribute lines, as a browser that lacks a codec leaves it out.
func withoutPayloadTypes(offer string, pts ...string) string {
	drop := map[string]bool{}
	for _, pt := range pts {
		drop[pt] = true
	}
	attr := regexp.MustCompile(`^a=(rtpmap|fmtp|rtcp-fb):(\d+)[ \r]`)
	var out []string
	for _, line := range strings.Split(offer, "\r\n") {
		if m := attr.FindStringSubmatch(line); m != nil && drop[m[2]] {
			continue
		}
		if strings.HasPrefix(line, "m=") {
			f := strings.Fields(line)
			kept := f[:3]
			for _, pt := range f[3:] {
				if !drop[pt] {
					kept = append(kept, pt)
				}
			}
			line = strings.Join(kept, " ")
		}
		out = append(out, line)
	}
	return strings.Join(out, "\r\n")
}

// loadgenOffer is what the e2e load generator's pion viewer offers.
func loadgenOffer(t *testing.T) string {
	c := newTestClient(t)
	o, err := c.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return o.SDP
}

// TestNegotiateRealOffers: which encoding each real browser's offer gets
// for streams of several profiles, with and without a transcoder, and the
// profile-level-id its answer declares.
func TestNegotiateRealOffers(t *testing.T) {
	firefox := readOffer(t, "firefox99-openh264.sdp")
	safari := readOffer(t, "safari-macos.sdp")
	offers := map[string]string{
		"chromium":         readOffer(t, "chromium156.sdp"),
		"firefox+openh264": firefox,
		"firefox":          withoutPayloadTypes(firefox, "126", "127", "97", "98"),
		"firefox-esr":      readOffer(t, "firefox153esr-no-openh264.sdp"),
		"safari-macos":     safari,
		"safari-ios":       strings.ReplaceAll(safari, "a=sendrecv", "a=recvonly"),
		"loadgen":          loadgenOffer(t),
	}
	all := []domain.Rendition{domain.RenditionBaseline, domain.RenditionVP8}
	const (
		cb   = "42e01f" // the demo clip, most phones' screenrecord
		high = "640028" // High 4.0, many phones' encoders
		main = "4d0028" // Main 4.0
		base = "42801f" // Baseline with constraint_set0 (Android MediaCodec)
	)
	tests := []struct {
		offer      string
		plid       string
		renditions []domain.Rendition
		want       domain.Rendition // "-" = no common codec
		pt         uint8
		answer     string // profile-level-id the answer declares ("" = the offer's)
	}{
		{"chromium", cb, nil, domain.RenditionOriginal, 108, cb},
		{"chromium", high, nil, domain.RenditionOriginal, 41, ""}, // f4001f decodes High
		{"chromium", main, nil, domain.RenditionOriginal, 116, main},
		{"chromium", base, nil, domain.RenditionOriginal, 102, base},
		{"firefox+openh264", cb, nil, domain.RenditionOriginal, 126, cb},
		{"firefox+openh264", high, nil, "-", 0, ""},
		{"firefox+openh264", high, all, domain.RenditionBaseline, 126, cb},
		{"firefox+openh264", high, []domain.Rendition{domain.RenditionVP8}, domain.RenditionVP8, 120, ""},
		{"firefox", cb, nil, "-", 0, ""},
		{"firefox", cb, all, domain.RenditionVP8, 120, ""},
		{"firefox", high, all, domain.RenditionVP8, 120, ""},
		{"firefox-esr", cb, nil, "-", 0, ""},
		{"firefox-esr", cb, all, domain.RenditionVP8, 120, ""},
		{"firefox-esr", high, all, domain.RenditionVP8, 120, ""},
		{"firefox-esr", base, []domain.Rendition{domain.RenditionBaseline}, "-", 0, ""},
		{"safari-macos", cb, nil, domain.RenditionOriginal, 98, cb},
		{"safari-macos", high, nil, "-", 0, ""}, // Constrained High does not decode High
		{"safari-macos", high, all, domain.RenditionBaseline, 98, cb},
		{"safari-macos", main, []domain.Rendition{domain.RenditionVP8}, domain.RenditionVP8, 100, ""},
		{"safari-ios", cb, nil, domain.RenditionOriginal, 98, cb},
		{"safari-ios", high, all, domain.RenditionBaseline, 98, cb},
		{"loadgen", cb, nil, domain.RenditionOriginal, 102, cb},
		{"loadgen", high, nil, "-", 0, ""},
		{"loadgen", high, []domain.Rendition{domain.RenditionVP8}, "-", 0, ""},
	}
	for _, tt := range tests {
		name := tt.offer + "/" + tt.plid
		if len(tt.renditions) > 0 {
			name += "/with-transcoder"
		}
		t.Run(name, func(t *testing.T) {
			codecs, err := parseOffer(offers[tt.offer])
			if err != nil {
				t.Fatal(err)
			}
			c, err := chooseVideo(codecs, streamCodec{codec: domain.CodecH264, plid: tt.plid}, tt.renditions)
			if tt.want == "-" {
				var nc *domain.NoCommonCodecError
				if !errors.As(err, &nc) || !errors.Is(err, domain.ErrNoCommonCodec) {
					t.Fatalf("err = %v, want a NoCommonCodecError", err)
				}
				if !strings.Contains(err.Error(), tt.plid) || len(nc.Offered) == 0 {
					t.Errorf("message %q does not say what was offered and what is sent", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.rendition != tt.want || c.offered.pt != tt.pt || c.answerPLID != tt.answer {
				t.Errorf("got rendition %q pt %d answer %q, want %q pt %d answer %q", c.rendition, c.offered.pt, c.answerPLID, tt.want, tt.pt, tt.answer)
			}
		})
	}
}

func TestNoCommonCodecMessage(t *testing.T) {
	firefox := withoutPayloadTypes(readOffer(t, "firefox99-openh264.sdp"), "126", "127", "97", "98")
	codecs, err := parseOffer(firefox)
	if err != nil {
		t.Fatal(err)
	}
	_, err = chooseVideo(codecs, streamCodec{codec: domain.CodecH264, plid: "640028"}, nil)
	want := "the offer has VP8, VP9; the device sends H264 High 4 (640028) and no transcoder is available: no common codec"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestSetAnswerProfile(t *testing.T) {
	in := "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 108 96\r\na=rtpmap:108 H264/90000\r\n" +
		"a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n" +
		"a=rtpmap:96 VP8/90000\r\na=fmtp:96 max-fs=12288\r\na=fmtp:109 apt=108\r\n"
	got := setAnswerProfile(in, "640028")
	want := strings.Replace(in, "profile-level-id=42e01f", "profile-level-id=640028", 1)
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if setAnswerProfile(in, "") != in {
		t.Fatal("empty plid changed the answer")
	}
}
