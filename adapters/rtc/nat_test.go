package rtc

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
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

// TestLoopbackOnly: with LoopbackOnly every host candidate of the answer,
// UDP and TCP, is a loopback address and the shared sockets and the
// ICE-TCP listener are bound to loopback; without it the host's other
// addresses are gathered too (the control that shows the test can fail).
func TestLoopbackOnly(t *testing.T) {
	if !hasNonLoopbackAddr() {
		t.Log("this host has no non-loopback address: the control cases cannot tell the difference")
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"shared udp port and ice-tcp", Config{TCPPort: freeTCPPort(t)}},
		{"ephemeral ports", Config{EphemeralPorts: true}},
	} {
		for _, loop := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/loopback_only=%v", tc.name, loop), func(t *testing.T) {
				cfg := tc.cfg
				cfg.LoopbackOnly = loop
				tp, f := newTestTransport(t, cfg)
				if tp.mux != nil {
					for _, a := range tp.mux.GetListenAddresses() {
						if ip := a.(*net.UDPAddr).IP; loop && !ip.IsLoopback() {
							t.Errorf("shared UDP socket on %s", a)
						}
					}
				}
				c := newTestClientOn(t, clientH264, []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
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
				var loopbacks, others []string
				tcp := 0
				for _, line := range strings.Split(answer, "\n") {
					if !strings.HasPrefix(line, "a=candidate:") {
						continue
					}
					f := strings.Fields(line)
					if strings.EqualFold(f[2], "tcp") {
						tcp++
					}
					if ip := net.ParseIP(f[4]); ip != nil && ip.IsLoopback() {
						loopbacks = append(loopbacks, f[4])
					} else {
						others = append(others, f[4])
					}
				}
				if len(loopbacks) == 0 {
					t.Fatalf("no loopback candidate in the answer:\n%s", answer)
				}
				if tc.cfg.TCPPort != 0 && tcp == 0 {
					t.Errorf("no ICE-TCP candidate in the answer:\n%s", answer)
				}
				if loop && len(others) > 0 {
					t.Errorf("loopback only, yet the answer has candidates on %v", others)
				}
				if !loop && len(others) == 0 && hasNonLoopbackAddr() {
					t.Errorf("without loopback only the answer has loopback candidates only: %v", loopbacks)
				}
			})
		}
	}
	// The ICE-TCP listener of a loopback-only transport is on 127.0.0.1:
	// nothing else of the machine answers on its port.
	port := freeTCPPort(t)
	tp, err := New(Config{TCPPort: port, LoopbackOnly: true}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	if addr, ok := tp.tcpMux.(*ice.TCPMuxDefault); !ok || !addr.LocalAddr().(*net.TCPAddr).IP.IsLoopback() {
		t.Fatalf("ICE-TCP listener %v, want one on loopback", tp.tcpMux)
	}
	if _, err := New(Config{LoopbackOnly: true, Interfaces: []string{"eth0"}}, quietLogger()); err == nil {
		t.Error("loopback only with interfaces accepted")
	}
}

func hasNonLoopbackAddr() bool {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() && n.IP.To4() != nil {
			return true
		}
	}
	return false
}
