package httpapi

import (
	"strings"

	"mediasvc/domain"
)

// sdpFrag is what a trickle-ice-sdpfrag body (RFC 8840) says.
type sdpFrag struct {
	ufrag, pwd string
	sections   []fragSection
}

// fragSection is one m= section of a fragment (or the session level before
// the first m= line, with index -1).
type fragSection struct {
	index      int
	mid        string
	ufrag, pwd string
	cands      []string // "candidate:…" values
	end        bool     // a=end-of-candidates
}

// candidates returns the fragment's candidates ready for
// Service.AddCandidate: each with the mid and m-line index of its section
// and the ICE ufrag in force there; an end-of-candidates marker becomes a
// candidate with an empty line.
func (f sdpFrag) candidates() []domain.Candidate {
	var out []domain.Candidate
	for _, sec := range f.sections {
		ufrag := sec.ufrag
		if ufrag == "" {
			ufrag = f.ufrag
		}
		mk := func(line string) domain.Candidate {
			c := domain.Candidate{Candidate: line}
			if sec.mid != "" {
				mid := sec.mid
				c.SDPMid = &mid
			}
			if sec.index >= 0 && sec.index <= 0xffff {
				idx := uint16(sec.index)
				c.SDPMLineIndex = &idx
			}
			if ufrag != "" {
				u := ufrag
				c.UsernameFragment = &u
			}
			return c
		}
		for _, l := range sec.cands {
			out = append(out, mk(l))
		}
		if sec.end {
			out = append(out, mk(""))
		}
	}
	return out
}

// parseSDPFrag parses a trickle-ice-sdpfrag body of at most maxLines
// non-empty lines. It keeps a=candidate, a=end-of-candidates, a=mid,
// a=ice-ufrag and a=ice-pwd and the m= structure, ignores other attributes,
// and returns domain.ErrInvalidRequest (wrapped) for a line that is not
// "x=value", too many lines or a fragment with no candidates and no
// end-of-candidates, and domain.ErrInvalidCandidate (wrapped) for a
// malformed candidate.
func parseSDPFrag(body string, maxLines int) (sdpFrag, error) {
	var f sdpFrag
	cur := fragSection{index: -1}
	lines, total := 0, 0
	next := 0
	for _, raw := range strings.Split(body, "\n") {
		line := strings.TrimRight(raw, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		lines++
		if lines > maxLines {
			return sdpFrag{}, badRequest("fragment has more than %d lines", maxLines)
		}
		if len(line) < 2 || line[1] != '=' || line[0] < 'a' || line[0] > 'z' {
			return sdpFrag{}, badRequest("fragment line %d is not an SDP line", lines)
		}
		val := line[2:]
		switch line[0] {
		case 'm':
			f.sections = append(f.sections, cur)
			cur = fragSection{index: next}
			next++
			continue
		case 'a':
		default:
			continue
		}
		name, value, _ := strings.Cut(val, ":")
		switch name {
		case "candidate":
			if err := domain.ValidateCandidate(val, domain.DefaultICELimits.MaxCandidateLen); err != nil {
				return sdpFrag{}, err
			}
			cur.cands = append(cur.cands, val)
			total++
		case "end-of-candidates":
			cur.end = true
			total++
		case "mid":
			cur.mid = value
		case "ice-ufrag":
			if cur.index < 0 {
				f.ufrag = value
			} else {
				cur.ufrag = value
			}
		case "ice-pwd":
			if cur.index < 0 {
				f.pwd = value
			} else {
				cur.pwd = value
			}
		}
	}
	f.sections = append(f.sections, cur)
	if total == 0 {
		return sdpFrag{}, badRequest("fragment has no candidates")
	}
	return f, nil
}
