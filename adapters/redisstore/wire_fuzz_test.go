package redisstore

import (
	"bytes"
	"testing"
	"time"
)

// FuzzBusFrame feeds arbitrary bytes to what a bus subscriber does with a
// message from Redis: open the signed frame, then decode its payload as a
// request, reply, event and envelope. Nothing may panic; a frame that opens
// must carry a valid MAC, so only frames sealed with the secret do; and
// every sealed payload opens again to itself on its own channel only.
func FuzzBusFrame(f *testing.F) {
	now := time.UnixMilli(1_800_000_000_000)
	s := signer{secrets: [][]byte{[]byte("0123456789abcdef0123456789abcdef")}, window: 30 * time.Second, now: func() time.Time { return now }}
	for _, seed := range [][]byte{
		nil,
		[]byte("v1."),
		[]byte("v1.1800000000000..{}"),
		[]byte("v1.99999999999999999999.AAAA.{}"),
		s.seal("bus:a", []byte(`{"method":"offer","session":"s1"}`)),
		s.seal("bus:a", []byte(`{"err":{"code":"not_found"}}`)),
		s.seal("bus:a", []byte(`not json`)),
	} {
		f.Add("bus:a", seed)
	}
	f.Fuzz(func(t *testing.T, channel string, frame []byte) {
		payload, reason := s.open(channel, frame)
		if reason < 0 {
			// It opened: it must be exactly what sealing that payload at its
			// own timestamp gives, i.e. the fuzzer found no forgery.
			if !bytes.HasSuffix(frame, payload) {
				t.Fatalf("opened payload %q is not the frame's tail", payload)
			}
		} else if reason >= rejectReasons {
			t.Fatalf("reason %d out of range", reason)
		}
		// The decoders see whatever a holder of the secret sent.
		_, _ = decodeRequest(frame)
		_, _ = decodeReply("b", frame)
		_, _ = decodeEvent(frame)
		_, _ = decodeEnvelope(frame)

		sealed := s.seal(channel, frame)
		got, r := s.open(channel, sealed)
		if r >= 0 || !bytes.Equal(got, frame) {
			t.Fatalf("sealed frame did not open on its own channel: reason %d", r)
		}
		if _, r := s.open(channel+"x", sealed); r != rejectBadSignature {
			t.Fatalf("sealed frame opened on another channel: reason %d", r)
		}
	})
}
