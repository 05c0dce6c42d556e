package rtc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"mediasvc/ports"
)

// With NAT 1:1 IPs, the answer's IPv4 host candidates carry the public
// address instead of the local ones.
func TestNAT1To1IPsRewriteHostCandidates(t *testing.T) {
	const public = "203.0.113.7"
	tp, f := newTestTransport(t, Config{NAT1To1IPs: []string{public}})
	c := newTestClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := tp.newPeer(ctx, f, ports.PeerOptions{Session: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	answer, err := p.Answer(ctx, c.pc.LocalDescription().SDP)
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, line := range strings.Split(answer, "\n") {
		// An IPv4 public address stands for the IPv4 host candidates.
		if strings.HasPrefix(line, "a=candidate:") && strings.Contains(line, "typ host") && strings.Contains(line, " udp ") &&
			!strings.Contains(strings.Fields(line)[4], ":") {
			hosts = append(hosts, strings.TrimSpace(line))
		}
	}
	if len(hosts) == 0 {
		t.Fatalf("no host candidate in the answer:\n%s", answer)
	}
	for _, h := range hosts {
		if strings.Fields(h)[4] != public {
			t.Fatalf("host candidate %q does not carry %s", h, public)
		}
	}
}
