package rtc

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"

	"mediasvc/domain"
)

// MaxOfferSize is the largest SDP offer accepted, in bytes.
const MaxOfferSize = 64 << 10

// offerCodec is one video codec of an offer's video m-line.
type offerCodec struct {
	pt    uint8
	name  string // encoding name, upper case: H264, VP8, VP9, AV1, RTX, …
	clock int
	mode  string // H.264 packetization-mode ("0" when absent)
	plid  string // H.264 profile-level-id, lower case, "" when absent
	asym  bool   // H.264 level-asymmetry-allowed=1
}

// label is how the codec is named in a no_common_codec message.
func (c offerCodec) label() string {
	if c.name != "H264" {
		return c.name
	}
	s := "H264"
	if c.plid != "" {
		s += " " + c.plid
	} else {
		s += " without profile-level-id"
	}
	if c.mode != "1" {
		s += " packetization-mode=" + c.mode
	}
	return s
}

// media reports whether the codec carries pictures (not rtx, red, FEC).
func (c offerCodec) media() bool {
	switch c.name {
	case "RTX", "RED", "ULPFEC", "FLEXFEC-03", "FLEXFEC":
		return false
	}
	return true
}

// parseOffer checks an SDP offer before pion sees it — its size, that it
// parses and that it has an active video m-line — and returns the codecs
// of its first active video m-line in the offer's order. It returns
// domain.ErrInvalidOffer (wrapped, saying what is wrong) otherwise.
func parseOffer(offer string) ([]offerCodec, error) {
	if len(offer) == 0 {
		return nil, fmt.Errorf("empty offer: %w", domain.ErrInvalidOffer)
	}
	if len(offer) > MaxOfferSize {
		return nil, fmt.Errorf("offer of %d bytes exceeds %d: %w", len(offer), MaxOfferSize, domain.ErrInvalidOffer)
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		return nil, fmt.Errorf("parse offer: %v: %w", err, domain.ErrInvalidOffer)
	}
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "video" {
			continue
		}
		if m.MediaName.Port.Value == 0 && !hasAttr(m, "bundle-only") {
			continue // rejected m-line
		}
		return videoCodecs(m), nil
	}
	return nil, fmt.Errorf("offer has no video m-line: %w", domain.ErrInvalidOffer)
}

// validateOffer is parseOffer without the codecs.
func validateOffer(offer string) error {
	_, err := parseOffer(offer)
	return err
}

func hasAttr(m *sdp.MediaDescription, key string) bool {
	_, ok := m.Attribute(key)
	return ok
}

// videoCodecs lists m's codecs in the order of its format list.
func videoCodecs(m *sdp.MediaDescription) []offerCodec {
	byPT := map[string]*offerCodec{}
	for _, a := range m.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		pt, enc, ok := strings.Cut(a.Value, " ")
		n, err := strconv.ParseUint(pt, 10, 7)
		if !ok || err != nil {
			continue
		}
		name, rate, _ := strings.Cut(enc, "/")
		clock, _ := strconv.Atoi(strings.SplitN(rate, "/", 2)[0])
		byPT[pt] = &offerCodec{pt: uint8(n), name: strings.ToUpper(strings.TrimSpace(name)), clock: clock, mode: "0"}
	}
	for _, a := range m.Attributes {
		if a.Key != "fmtp" {
			continue
		}
		pt, params, ok := strings.Cut(a.Value, " ")
		c := byPT[pt]
		if !ok || c == nil {
			continue
		}
		for _, kv := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
			switch strings.ToLower(k) {
			case "packetization-mode":
				c.mode = v
			case "profile-level-id":
				c.plid = strings.ToLower(v)
			case "level-asymmetry-allowed":
				c.asym = v == "1"
			}
		}
	}
	var out []offerCodec
	seen := map[string]bool{}
	for _, pt := range m.MediaName.Formats {
		if c := byPT[pt]; c != nil && !seen[pt] {
			seen[pt] = true
			out = append(out, *c)
		}
	}
	return out
}

// videoChoice is the video codec a peer sends: which offered entry it
// answers and what it declares.
type videoChoice struct {
	rendition domain.Rendition
	offered   offerCodec
	// codec is the encoding sent: CodecH264 or CodecVP8.
	codec domain.Codec
	// plid is the stream's profile-level-id, "" for VP8.
	plid string
	// answerPLID is the profile-level-id the answer declares: the stream's
	// own when the offered entry has the stream's profile, else "" (the
	// offered one stays).
	answerPLID string
}

// sent is what the choice sends.
func (v videoChoice) sent() streamCodec { return streamCodec{codec: v.codec, plid: v.plid} }

func newChoice(r domain.Rendition, c offerCodec, same bool, s streamCodec) videoChoice {
	v := videoChoice{rendition: r, offered: c, codec: s.codec, plid: s.plid}
	if same && s.codec == domain.CodecH264 {
		v.answerPLID = s.plid
	}
	return v
}

// mimeType is the pion MIME type of the choice's codec.
func (v videoChoice) mimeType() string {
	if v.codec == domain.CodecVP8 {
		return "video/VP8"
	}
	return "video/H264"
}

// registeredFmtp is the fmtp line registered in the peer's MediaEngine so
// that pion matches exactly the chosen offered entry (pion compares the
// profile_idc and constraint bytes literally).
func (v videoChoice) registeredFmtp() string {
	if v.codec != domain.CodecH264 {
		return ""
	}
	return "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + v.offered.plid
}

// streamCodec is what one fanout sends: its codec and, for H.264, the
// profile-level-id of its current SPS.
type streamCodec struct {
	codec domain.Codec
	plid  string
}

// describe names the stream in a no_common_codec message.
func (s streamCodec) describe() string {
	if s.codec != domain.CodecH264 {
		return string(s.codec)
	}
	pl, err := domain.ParseProfileLevelID(s.plid)
	if err != nil {
		return "H264 (profile unknown)"
	}
	return "H264 " + pl.String()
}

// offerTakes returns the entry of codecs that carries s best, and false
// when none can. H.264 needs packetization-mode=1 and a profile-level-id
// whose profile decodes the stream's, at a level that is enough or with
// level asymmetry allowed. An entry of the stream's own profile wins
// (same reports true then: the answer may declare the stream's
// profile-level-id); else the first entry, in the offer's order (the
// browser's preference), of a profile that includes it (the answer then
// keeps the offered profile: browsers match answered H.264 codecs to their
// offer by profile). A stream whose profile-level-id is unknown is treated
// as Constrained Baseline 3.1, what every H.264 decoder takes.
func offerTakes(codecs []offerCodec, s streamCodec) (c offerCodec, same, ok bool) {
	if s.codec == domain.CodecVP8 {
		for _, c := range codecs {
			if c.name == "VP8" && c.clock == videoClock {
				return c, true, true
			}
		}
		return offerCodec{}, false, false
	}
	if s.codec != domain.CodecH264 {
		return offerCodec{}, false, false
	}
	send, err := domain.ParseProfileLevelID(s.plid)
	if err != nil {
		send, _ = domain.ParseProfileLevelID(domain.BaselineProfileLevelID)
	}
	var super *offerCodec
	for i, c := range codecs {
		if c.name != "H264" || c.clock != videoClock || c.mode != "1" {
			continue
		}
		recv, err := domain.ParseProfileLevelID(c.plid)
		if err != nil || !recv.Accepts(send, c.asym) {
			continue
		}
		if recv.Profile == send.Profile {
			return c, true, true
		}
		if super == nil {
			super = &codecs[i]
		}
	}
	if super != nil {
		return *super, false, true
	}
	return offerCodec{}, false, false
}

// chooseVideo picks what a peer of a stream s sends to the offer's video
// codecs: the stream itself when the offer takes it, else the first of
// renditions the offer takes (a rendition's stream is VP8, or Constrained
// Baseline 3.1). It returns a *domain.NoCommonCodecError naming the offered
// codecs and what the device sends when nothing fits.
func chooseVideo(codecs []offerCodec, s streamCodec, renditions []domain.Rendition) (videoChoice, error) {
	if c, same, ok := offerTakes(codecs, s); ok {
		return newChoice(domain.RenditionOriginal, c, same, s), nil
	}
	for _, r := range renditions {
		rs := renditionStream(r)
		if rs.codec == domain.CodecNone {
			continue
		}
		if c, same, ok := offerTakes(codecs, rs); ok {
			return newChoice(r, c, same, rs), nil
		}
	}
	e := &domain.NoCommonCodecError{Sends: s.describe()}
	for _, c := range codecs {
		if c.media() {
			e.Offered = append(e.Offered, c.label())
		}
	}
	for _, r := range renditions {
		e.Renditions = append(e.Renditions, string(r))
	}
	return videoChoice{}, e
}

// renditionStream is what rendition r sends.
func renditionStream(r domain.Rendition) streamCodec {
	switch r {
	case domain.RenditionVP8:
		return streamCodec{codec: domain.CodecVP8}
	case domain.RenditionBaseline:
		return streamCodec{codec: domain.CodecH264, plid: domain.BaselineProfileLevelID}
	}
	return streamCodec{}
}

// setAnswerProfile rewrites the profile-level-id of every H.264 payload
// type in the answer's fmtp lines to plid, so the answer declares the
// profile the stream really has (pion echoes the offer's). The offered
// entries it negotiated all decode that profile: chooseVideo made sure.
func setAnswerProfile(answer, plid string) string {
	if plid == "" {
		return answer
	}
	h264 := map[string]bool{}
	for _, line := range strings.Split(answer, "\n") {
		line = strings.TrimRight(line, "\r")
		if v, ok := strings.CutPrefix(line, "a=rtpmap:"); ok {
			pt, enc, _ := strings.Cut(v, " ")
			if strings.HasPrefix(strings.ToUpper(enc), "H264/") {
				h264[pt] = true
			}
		}
	}
	var b strings.Builder
	b.Grow(len(answer))
	rest := answer
	for len(rest) > 0 {
		line, tail, found := strings.Cut(rest, "\n")
		rest = tail
		if v, ok := strings.CutPrefix(line, "a=fmtp:"); ok {
			pt, params, _ := strings.Cut(v, " ")
			if h264[pt] {
				cr := strings.HasSuffix(params, "\r")
				params = strings.TrimSuffix(params, "\r")
				kvs := strings.Split(params, ";")
				for i, kv := range kvs {
					if k, _, _ := strings.Cut(kv, "="); strings.EqualFold(strings.TrimSpace(k), "profile-level-id") {
						kvs[i] = "profile-level-id=" + plid
					}
				}
				line = "a=fmtp:" + pt + " " + strings.Join(kvs, ";")
				if cr {
					line += "\r"
				}
			}
		}
		b.WriteString(line)
		if found {
			b.WriteByte('\n')
		}
	}
	return b.String()
}
