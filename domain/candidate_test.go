package domain

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCandidatePolicyCheck(t *testing.T) {
	cand := func(addr string) string { return "candidate:1 1 udp 2130706431 " + addr + " 5000 typ host" }
	for _, tc := range []struct {
		line          string
		want          string // refusal reason outside loopback mode, "" accepted
		wantLoopMode  string // the same in loopback mode
		wantAddress   string
		isMDNS        bool
		skipAddrCheck bool
	}{
		{line: cand("192.0.2.10")},
		{line: cand("203.0.113.7")},
		{line: cand("10.1.2.3")},
		{line: cand("2001:db8::1")},
		{line: "a=" + cand("198.51.100.1")},
		{line: "candidate:842163049 1 udp 1677729535 192.0.2.3 46154 typ srflx raddr 0.0.0.0 rport 0"}, // raddr is not where checks go
		{line: "", skipAddrCheck: true},
		{line: "garbage", skipAddrCheck: true},
		{line: cand("169.254.169.254"), want: CandidateLinkLocal, wantLoopMode: CandidateLinkLocal, wantAddress: "169.254.169.254"},
		{line: cand("169.254.0.1"), want: CandidateLinkLocal, wantLoopMode: CandidateLinkLocal},
		{line: cand("fe80::1"), want: CandidateLinkLocal, wantLoopMode: CandidateLinkLocal},
		{line: cand("fe80::1%eth0"), want: CandidateLinkLocal, wantLoopMode: CandidateLinkLocal},
		{line: cand("FEBF::abcd"), want: CandidateLinkLocal, wantLoopMode: CandidateLinkLocal},
		{line: cand("::ffff:169.254.1.1"), want: CandidateLinkLocal, wantLoopMode: CandidateLinkLocal},
		{line: cand("224.0.0.251"), want: CandidateMulticast, wantLoopMode: CandidateMulticast},
		{line: cand("239.255.255.250"), want: CandidateMulticast, wantLoopMode: CandidateMulticast},
		{line: cand("ff02::fb"), want: CandidateMulticast, wantLoopMode: CandidateMulticast},
		{line: cand("255.255.255.255"), want: CandidateMulticast, wantLoopMode: CandidateMulticast},
		{line: cand("0.0.0.0"), want: CandidateUnspecified, wantLoopMode: CandidateUnspecified},
		{line: cand("0.1.2.3"), want: CandidateUnspecified, wantLoopMode: CandidateUnspecified},
		{line: cand("::"), want: CandidateUnspecified, wantLoopMode: CandidateUnspecified},
		{line: cand("127.0.0.1"), want: CandidateLoopback},
		{line: cand("127.8.9.10"), want: CandidateLoopback},
		{line: cand("::1"), want: CandidateLoopback},
		{line: cand("::ffff:127.0.0.1"), want: CandidateLoopback},
		{line: cand("metadata.google.internal"), want: CandidateHostname, wantLoopMode: CandidateHostname},
		{line: cand("localhost"), want: CandidateHostname, wantLoopMode: CandidateHostname},
		{line: cand("[::1]"), want: CandidateHostname, wantLoopMode: CandidateHostname},
		{line: cand(".local"), want: CandidateHostname, wantLoopMode: CandidateHostname},
		{line: cand("0b3e1f7c-6a43-4c1e-9d3a-3f1c1b9b2a77.local"), isMDNS: true},
		{line: cand("0B3E1F7C-6A43-4C1E-9D3A-3F1C1B9B2A77.LOCAL."), isMDNS: true},
	} {
		for _, loop := range []bool{false, true} {
			want := tc.want
			if loop {
				want = tc.wantLoopMode
			}
			err := CandidatePolicy{AllowLoopback: loop}.Check(tc.line)
			if want == "" {
				if err != nil {
					t.Errorf("loopback=%v %q: %v, want accepted", loop, tc.line, err)
				}
				continue
			}
			var re *CandidateRefusedError
			if !errors.As(err, &re) || re.Reason != want || !errors.Is(err, ErrInvalidCandidate) {
				t.Errorf("loopback=%v %q: %v, want a refusal for %s that is ErrInvalidCandidate", loop, tc.line, err, want)
				continue
			}
			if tc.wantAddress != "" && re.Address != tc.wantAddress {
				t.Errorf("%q: address %q, want %q", tc.line, re.Address, tc.wantAddress)
			}
			if !slices.Contains(CandidateRefusals, re.Reason) {
				t.Errorf("reason %q missing from CandidateRefusals", re.Reason)
			}
		}
		if got := IsMDNSCandidate(tc.line); got != tc.isMDNS {
			t.Errorf("IsMDNSCandidate(%q) = %v, want %v", tc.line, got, tc.isMDNS)
		}
	}
}

func TestCandidatePolicyFilterSDP(t *testing.T) {
	sdp := strings.Join([]string{
		"v=0",
		"o=- 1 2 IN IP4 127.0.0.1",
		"m=video 9 UDP/TLS/RTP/SAVPF 96",
		"a=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host",
		"a=candidate:2 1 udp 2130706431 169.254.3.4 5000 typ host",
		"a=candidate:3 1 udp 2130706431 127.0.0.1 5001 typ host",
		"a=candidate:4 1 udp 2130706431 abc.local 5002 typ host",
		"a=candidate:5 1 udp 2130706431 ff02::1 5003 typ host",
		"a=end-of-candidates",
		"",
	}, "\r\n")
	out, refused, mdns, total := CandidatePolicy{}.FilterSDP(sdp)
	if total != 5 || mdns != 1 || !slices.Equal(refused, []string{CandidateLinkLocal, CandidateLoopback, CandidateMulticast}) {
		t.Fatalf("refused %v, mdns %d, total %d; want link_local, loopback, multicast refused of 5 with 1 mdns", refused, mdns, total)
	}
	for _, gone := range []string{"169.254.3.4", "127.0.0.1 5001", "ff02::1"} {
		if strings.Contains(out, gone) {
			t.Errorf("filtered SDP still has %s:\n%s", gone, out)
		}
	}
	for _, kept := range []string{"o=- 1 2 IN IP4 127.0.0.1\r\n", "a=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\r\n", "abc.local", "a=end-of-candidates\r\n"} {
		if !strings.Contains(out, kept) {
			t.Errorf("filtered SDP lost %q:\n%s", kept, out)
		}
	}
	out, refused, _, _ = CandidatePolicy{AllowLoopback: true}.FilterSDP(sdp)
	if !slices.Equal(refused, []string{CandidateLinkLocal, CandidateMulticast}) || !strings.Contains(out, "127.0.0.1 5001") {
		t.Errorf("loopback mode: refused %v, want link_local and multicast only; loopback kept", refused)
	}
	if out, refused, _, total := (CandidatePolicy{}).FilterSDP("v=0\n"); out != "v=0\n" || refused != nil || total != 0 {
		t.Errorf("no candidates: %q %v %d", out, refused, total)
	}
}

func FuzzCandidatePolicy(f *testing.F) {
	f.Add("candidate:1 1 udp 2130706431 169.254.169.254 5000 typ host")
	f.Add("candidate:1 1 udp 2130706431 abc.local 5000 typ host")
	f.Add("a=candidate:1 1 udp 1 ::ffff:0.0.0.0 9 typ host")
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\r\n") {
			return // one line at a time
		}
		for _, p := range []CandidatePolicy{{}, {AllowLoopback: true}} {
			err := p.Check(line)
			if err != nil && !errors.Is(err, ErrInvalidCandidate) {
				t.Fatalf("%q: %v is not ErrInvalidCandidate", line, err)
			}
			out, refused, _, total := p.FilterSDP("a=candidate:" + strings.TrimPrefix(strings.TrimPrefix(line, "a="), "candidate:") + "\n")
			if len(refused) > total || (err != nil && out != "") {
				t.Fatalf("%q: FilterSDP kept %q, refused %v of %d though Check says %v", line, out, refused, total, err)
			}
		}
	})
}

func TestTURNCredentials(t *testing.T) {
	// The credential computed independently:
	//   python3 -c "import hmac,hashlib,base64; print(base64.b64encode(hmac.new(b'north-sea-secret', b'1700000000:s-abc', hashlib.sha1).digest()))"
	u, c := TURNCredentials("north-sea-secret", "s-abc", time.Unix(1700000000, 900e6))
	if u != "1700000000:s-abc" || c != "oSstI2LJynTyQenULLPpxTpE3mc=" {
		t.Fatalf("TURNCredentials = %q, %q", u, c)
	}
	if _, c2 := TURNCredentials("another-secret", "s-abc", time.Unix(1700000000, 0)); c2 == c {
		t.Fatal("the credential does not depend on the secret")
	}
	servers := []ICEServer{
		{URLs: []string{"stun:stun.example:3478"}},
		{URLs: []string{"turn:turn.example:3478?transport=udp", "turns:turn.example:5349"}, Secret: "north-sea-secret"},
		{URLs: []string{"turn:static.example:3478"}, Username: "u", Credential: "p"},
	}
	got := ICEServersFor(servers, "s-abc", time.Unix(1700000000, 0))
	if len(got) != 3 || got[0].Username != "" || got[1].Username != u || got[1].Credential != c || got[2].Username != "u" || got[2].Credential != "p" {
		t.Fatalf("ICEServersFor = %+v", got)
	}
	for _, s := range got {
		if s.Secret != "" {
			t.Fatalf("a handed-out server carries its secret: %+v", s)
		}
	}
	got[1].URLs[0] = "changed"
	if servers[1].URLs[0] == "changed" {
		t.Fatal("ICEServersFor shares the URL slice with its input")
	}
}
