package rtc

import (
	"fmt"
	"strings"

	"github.com/pion/sdp/v3"

	"mediasvc/domain"
)

// MaxOfferSize is the largest SDP offer accepted, in bytes.
const MaxOfferSize = 64 << 10

// validateOffer checks an SDP offer before pion sees it: its size, that it
// parses, and that a video m-line offers H.264 with packetization-mode=1 in
// a (constrained) baseline profile. It returns domain.ErrInvalidOffer
// (wrapped, saying what is wrong) otherwise.
func validateOffer(offer string) error {
	if len(offer) == 0 {
		return fmt.Errorf("empty offer: %w", domain.ErrInvalidOffer)
	}
	if len(offer) > MaxOfferSize {
		return fmt.Errorf("offer of %d bytes exceeds %d: %w", len(offer), MaxOfferSize, domain.ErrInvalidOffer)
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		return fmt.Errorf("parse offer: %v: %w", err, domain.ErrInvalidOffer)
	}
	sawVideo := false
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "video" {
			continue
		}
		sawVideo = true
		if m.MediaName.Port.Value == 0 && !hasAttr(m, "bundle-only") {
			continue // rejected m-line
		}
		if offersH264(m) {
			return nil
		}
	}
	if !sawVideo {
		return fmt.Errorf("offer has no video m-line: %w", domain.ErrInvalidOffer)
	}
	return fmt.Errorf("offer has no H264 packetization-mode=1 baseline codec: %w", domain.ErrInvalidOffer)
}

func hasAttr(m *sdp.MediaDescription, key string) bool {
	_, ok := m.Attribute(key)
	return ok
}

// offersH264 reports whether m carries an H264/90000 rtpmap whose fmtp says
// packetization-mode=1 with a profile-level-id starting 42e0 (constrained
// baseline) or 4200 (baseline): the codecs the MediaEngine registers, matched
// as pion matches them (profile_idc and constraint flags).
func offersH264(m *sdp.MediaDescription) bool {
	fmtps := map[string]string{}
	var pts []string
	for _, a := range m.Attributes {
		switch a.Key {
		case "rtpmap":
			pt, enc, ok := strings.Cut(a.Value, " ")
			if ok && strings.HasPrefix(strings.ToUpper(enc), "H264/90000") {
				pts = append(pts, pt)
			}
		case "fmtp":
			pt, params, ok := strings.Cut(a.Value, " ")
			if ok {
				fmtps[pt] = params
			}
		}
	}
	for _, pt := range pts {
		params := fmtps[pt]
		mode, plid := "0", ""
		for _, kv := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
			switch strings.ToLower(k) {
			case "packetization-mode":
				mode = v
			case "profile-level-id":
				plid = strings.ToLower(v)
			}
		}
		if mode != "1" || len(plid) != 6 {
			continue
		}
		if p := plid[:4]; p == "42e0" || p == "4200" {
			return true
		}
	}
	return false
}
