package rtc

import (
	"net"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"mediasvc/ports"
)

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestTCPOnly: with UDP off, the answer carries passive TCP candidates on
// the one TCP port and none over UDP, and a viewer that can only do TCP
// plays over it.
func TestTCPOnly(t *testing.T) {
	port := freeTCPPort(t)
	tp, f := newTestTransport(t, Config{TCPPort: port, NoUDP: true, NoIPv6: true})
	startPump(t, f, 20, true)
	c := newTestClientOn(t, clientH264, []webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	p := connect(t, tp, f, c, ports.PeerOptions{Session: "tcp"})
	answer := p.pc.Load().LocalDescription().SDP
	var tcp int
	for _, line := range strings.Split(answer, "\r\n") {
		if !strings.HasPrefix(line, "a=candidate:") {
			continue
		}
		fields := strings.Fields(line)
		if strings.ToLower(fields[2]) != "tcp" {
			t.Fatalf("a UDP candidate with UDP off: %s", line)
		}
		if fields[5] != itoa(port) || !strings.Contains(line, "tcptype passive") {
			t.Fatalf("a TCP candidate not passive on port %d: %s", port, line)
		}
		tcp++
	}
	if tcp == 0 {
		t.Fatalf("no TCP candidate in the answer:\n%s", answer)
	}
	countAUs(t, c, 30)
	pair, err := c.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("selected pair: %v %v", pair, err)
	}
	if pair.Local.Protocol != webrtc.ICEProtocolTCP {
		t.Fatalf("selected pair is %s", pair.Local.Protocol)
	}
}

func itoa(n int) string {
	var b [8]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

func TestTCPConfigErrors(t *testing.T) {
	if _, err := New(Config{NoUDP: true}, quietLogger()); err == nil {
		t.Fatal("no UDP, no TCP, no TURN accepted")
	}
	if _, err := New(Config{TCPPort: 70000}, quietLogger()); err == nil {
		t.Fatal("tcp port 70000 accepted")
	}
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := New(Config{TCPPort: l.Addr().(*net.TCPAddr).Port, NoUDP: true}, quietLogger()); err == nil {
		t.Fatal("a busy tcp port accepted")
	}
}
