package domain

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateCandidate(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{"candidate:842163049 1 udp 1677729535 192.0.2.3 46154 typ srflx raddr 10.0.0.1 rport 46154 generation 0", true},
		{"candidate:1 1 UDP 2130706431 127.0.0.1 5000 typ host", true},
		{"a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", true},
		{"1 1 udp 2130706431 127.0.0.1 5000 typ host", true},
		{"candidate:1 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active", true},
		{"candidate:abc+/ 2 udp 1 abcd.local 5000 typ host", true},
		{"candidate:1 1 udp 1 ::1 5000 typ relay raddr ::1 rport 1", true},
		{"", true}, // end of candidates
		{"garbage", false},
		{"candidate:1 1 udp 1 127.0.0.1 5000 typ", false},
		{"candidate:1 0 udp 1 127.0.0.1 5000 typ host", false},
		{"candidate:1 1 sctp 1 127.0.0.1 5000 typ host", false},
		{"candidate:1 1 udp x 127.0.0.1 5000 typ host", false},
		{"candidate:1 1 udp 1 127.0.0.1 70000 typ host", false},
		{"candidate:1 1 udp 1 127.0.0.1 0 typ host", false},
		{"candidate:1 1 udp 1 127.0.0.1 5000 type host", false},
		{"candidate:1 1 udp 1 127.0.0.1 5000 typ nat", false},
		{"candidate:a-b 1 udp 1 127.0.0.1 5000 typ host", false},
		{"candidate:1 1 udp 1 127.0.0.1 5000 typ host " + strings.Repeat("x", 1100), false},
	} {
		err := ValidateCandidate(tc.line, 1024)
		if tc.ok && err != nil {
			t.Errorf("%q: %v", tc.line, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidCandidate) {
			t.Errorf("%q: err %v, want ErrInvalidCandidate", tc.line, err)
		}
	}
}

func FuzzValidateCandidate(f *testing.F) {
	f.Add("candidate:842163049 1 udp 1677729535 192.0.2.3 46154 typ srflx raddr 10.0.0.1 rport 46154")
	f.Add("candidate:1 1 tcp 1 h 9 typ host tcptype passive")
	f.Add("")
	f.Add("a=candidate:")
	f.Fuzz(func(t *testing.T, line string) {
		err := ValidateCandidate(line, 1024)
		if err != nil && !errors.Is(err, ErrInvalidCandidate) {
			t.Fatalf("error %v is not ErrInvalidCandidate", err)
		}
		if err == nil && len(line) > 1024 {
			t.Fatalf("accepted %d bytes", len(line))
		}
	})
}
