package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"mediasvc/domain"
)

// FuzzDecodeMessage checks that any client WebSocket message either decodes
// into a message that survives a round trip or fails with a client error;
// it never panics. Seeds live in testdata/fuzz/FuzzDecodeMessage.
func FuzzDecodeMessage(f *testing.F) {
	f.Add([]byte(`{"type":"keyframe"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMessage(data)
		if err != nil {
			if !errors.Is(err, domain.ErrInvalidRequest) && !errors.Is(err, errUnknownType) {
				t.Fatalf("error %v is neither a bad request nor an unknown type", err)
			}
			return
		}
		switch m.Type {
		case msgOffer, msgCandidate, msgInput, msgKeyframe, msgBye:
		default:
			t.Fatalf("accepted type %q", m.Type)
		}
		b1, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := decodeMessage(b1)
		if err != nil {
			t.Fatalf("re-decode %s: %v", b1, err)
		}
		b2, err := json.Marshal(m2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("round trip changed the message:\n%s\n%s", b1, b2)
		}
	})
}

// FuzzParseSDPFrag checks that the trickle-ice-sdpfrag parser never panics,
// never returns more candidates than lines, and returns only valid
// candidates. Seeds live in testdata/fuzz/FuzzParseSDPFrag.
func FuzzParseSDPFrag(f *testing.F) {
	f.Add(fragOK)
	f.Fuzz(func(t *testing.T, body string) {
		const maxLines = 20
		frag, err := parseSDPFrag(body, maxLines)
		if err != nil {
			if !errors.Is(err, domain.ErrInvalidRequest) && !errors.Is(err, domain.ErrInvalidCandidate) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		cands := frag.candidates()
		if len(cands) == 0 || len(cands) > maxLines {
			t.Fatalf("%d candidates from at most %d lines", len(cands), maxLines)
		}
		for _, c := range cands {
			if err := domain.ValidateCandidate(c.Candidate, domain.DefaultICELimits.MaxCandidateLen); err != nil {
				t.Fatalf("invalid candidate %q passed: %v", c.Candidate, err)
			}
		}
	})
}
