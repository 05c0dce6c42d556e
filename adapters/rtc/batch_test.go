package rtc

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

// batchPair is a batched sender and a plain receiver on loopback.
func batchPair(t *testing.T, size int, gso bool, network, ip string) (*batchGroup, *batchConn, *net.UDPConn) {
	t.Helper()
	g := newBatchGroup(size, gso, nil)
	g.delay = time.Hour // only holds, full queues and Close flush
	s, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	bc, err := newBatchConn(s, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bc.Close() })
	r, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return g, bc, r
}

func readN(t *testing.T, r *net.UDPConn, n int) [][]byte {
	t.Helper()
	var got [][]byte
	buf := make([]byte, 65536)
	_ = r.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(got) < n {
		k, _, err := r.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(got), n, err)
		}
		got = append(got, bytes.Clone(buf[:k]))
	}
	return got
}

func TestBatchConnHoldsThenSendsInOneCall(t *testing.T) {
	g, bc, r := batchPair(t, 64, false, "udp4", "127.0.0.1")
	to := r.LocalAddr().(*net.UDPAddr).AddrPort()
	g.hold()
	for i := range 20 {
		if _, err := bc.WriteToAddrPort(bytes.Repeat([]byte{byte(i)}, 100+i), to); err != nil {
			t.Fatal(err)
		}
	}
	if c := g.sent.calls.Load(); c != 0 {
		t.Fatalf("%d system calls while held", c)
	}
	g.release()
	got := readN(t, r, 20)
	for i, d := range got {
		if len(d) != 100+i || d[0] != byte(i) {
			t.Fatalf("datagram %d: %d bytes of %d, out of order or cut", i, len(d), d[0])
		}
	}
	// The flusher counts after its call returns: wait for the count.
	for deadline := time.Now().Add(5 * time.Second); g.sent.packets.Load() < 20 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if c, p := g.sent.calls.Load(), g.sent.packets.Load(); c != 1 || p != 20 {
		t.Errorf("%d datagrams in %d calls, want 20 in 1", p, c)
	}
}

func TestBatchConnFullQueueFlushesWhileHeld(t *testing.T) {
	g, bc, r := batchPair(t, 4, false, "udp4", "127.0.0.1")
	to := r.LocalAddr().(*net.UDPAddr).AddrPort()
	g.hold()
	for i := range 10 {
		if _, err := bc.WriteTo([]byte{byte(i)}, net.UDPAddrFromAddrPort(to)); err != nil {
			t.Fatal(err)
		}
	}
	got := readN(t, r, 8) // two full queues went without the release
	g.release()
	got = append(got, readN(t, r, 2)...)
	for i, d := range got {
		if d[0] != byte(i) {
			t.Fatalf("datagram %d carries %d: reordered", i, d[0])
		}
	}
}

func TestBatchConnUnheldWriteGoesAtOnce(t *testing.T) {
	_, bc, r := batchPair(t, 64, false, "udp4", "127.0.0.1")
	if _, err := bc.WriteToUDP([]byte("stun"), r.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, r, 1); string(got[0]) != "stun" {
		t.Fatalf("got %q", got[0])
	}
}

func TestBatchConnIPv6AndLargeDatagram(t *testing.T) {
	_, bc, r := batchPair(t, 8, false, "udp6", "::1")
	big := bytes.Repeat([]byte{7}, 4000) // larger than a queue entry
	if _, err := bc.WriteToUDPAddrPort(big, r.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, r, 1); !bytes.Equal(got[0], big) {
		t.Fatalf("got %d bytes", len(got[0]))
	}
}

func TestBatchConnCloseSendsQueuedThenRefuses(t *testing.T) {
	g, bc, r := batchPair(t, 64, false, "udp4", "127.0.0.1")
	to := r.LocalAddr().(*net.UDPAddr).AddrPort()
	g.hold()
	defer g.release()
	for range 3 {
		if _, err := bc.WriteToAddrPort([]byte("x"), to); err != nil {
			t.Fatal(err)
		}
	}
	if err := bc.Close(); err != nil {
		t.Fatal(err)
	}
	readN(t, r, 3)
	if _, err := bc.WriteToAddrPort([]byte("x"), to); err == nil {
		t.Fatal("write after close succeeded")
	}
	if _, err := bc.Write([]byte("x")); err == nil {
		t.Fatal("Write on an unconnected socket succeeded")
	}
	if _, _, err := bc.WriteMsgUDP([]byte("x"), []byte{1}, nil); err == nil {
		t.Fatal("WriteMsgUDP with oob succeeded")
	}
	if _, err := bc.WriteTo([]byte("x"), &net.IPAddr{}); err == nil {
		t.Fatal("WriteTo a non-UDP address succeeded")
	}
}

// Several viewers of one stream: the fanout's holds make their packets
// leave many per system call (a ratio within one run, no timing).
func TestBatchedEgressFewerCallsThanPackets(t *testing.T) {
	tp, f := newTestTransport(t, Config{})
	if tp.batch == nil {
		t.Fatal("the default transport does not batch")
	}
	startPump(t, f, 50, false)
	const viewers = 6
	var clients []*testClient
	for i := range viewers {
		c := newTestClient(t)
		connect(t, tp, f, c, ports.PeerOptions{Session: domain.SessionID(fmt.Sprintf("s%d", i))})
		clients = append(clients, c)
	}
	for _, c := range clients {
		countAUs(t, c, 3)
	}
	// Media from here on: wait for a few hundred datagrams (the clients
	// drop what they do not read, the pump never waits for them).
	calls0, pkts0 := tp.udp.calls.Load(), tp.udp.packets.Load()
	for deadline := time.Now().Add(30 * time.Second); tp.udp.packets.Load()-pkts0 < 300 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	calls, pkts := tp.udp.calls.Load()-calls0, tp.udp.packets.Load()-pkts0
	t.Logf("%d datagrams in %d sendmmsg calls", pkts, calls)
	if pkts == 0 || calls*2 > pkts {
		t.Errorf("%d datagrams in %d calls: want at least 2 per call with %d viewers", pkts, calls, viewers)
	}
}

func TestEphemeralPortsStream(t *testing.T) {
	tp, f := newTestTransport(t, Config{EphemeralPorts: true, UDPPortMin: 40000, UDPPortMax: 40999})
	if tp.batch != nil || tp.mux != nil {
		t.Fatal("ephemeral ports use the shared sockets")
	}
	startPump(t, f, 30, false)
	c := newTestClient(t)
	connect(t, tp, f, c, ports.PeerOptions{Session: "s1"})
	if types, _ := firstAU(t, c); types[0] != 7 {
		t.Fatalf("first AU %v", types)
	}
	countAUs(t, c, 5)
}

func TestUDPConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{EphemeralPorts: true, UDPPort: 5000},
		{UDPPortMin: 40000, UDPPortMax: 40010},
		{SendBatch: -1},
		{SendBatch: maxSendBatch + 1},
	} {
		if tp, err := New(cfg, quietLogger()); err == nil {
			_ = tp.Close()
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// With GSO, runs of equal-size datagrams to one peer go as one message the
// kernel splits; the receiver still sees every datagram, whole and in
// order, and other peers' datagrams in between are unaffected.
func TestBatchConnGSOKeepsDatagrams(t *testing.T) {
	g, bc, r := batchPair(t, 64, true, "udp4", "127.0.0.1")
	if !bc.gso.Load() {
		t.Skip("no UDP GSO in this kernel")
	}
	r2, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	to, other := r.LocalAddr().(*net.UDPAddr).AddrPort(), r2.LocalAddr().(*net.UDPAddr).AddrPort()
	sizes := []int{1228, 1228, 1228, 1228, 700, 1228, 1228, 1300, 90} // runs: 5, 2, 1, 1
	g.hold()
	for i, n := range sizes {
		if _, err := bc.WriteToAddrPort(bytes.Repeat([]byte{byte(i)}, n), to); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			_, _ = bc.WriteToAddrPort([]byte("other"), other)
		}
	}
	g.release()
	got := readN(t, r, len(sizes))
	for i, d := range got {
		if len(d) != sizes[i] || d[0] != byte(i) || d[len(d)-1] != byte(i) {
			t.Fatalf("datagram %d: %d bytes of %d, want %d of %d", i, len(d), d[0], sizes[i], i)
		}
	}
	if o := readN(t, r2, 1); string(o[0]) != "other" {
		t.Fatalf("other peer got %q", o[0])
	}
	if !bc.gso.Load() {
		t.Error("the kernel refused GSO")
	}
}

func TestNoIPv6GathersIPv4Only(t *testing.T) {
	tp, f := newTestTransport(t, Config{NoIPv6: true})
	startPump(t, f, 30, false)
	c := newTestClient(t)
	p := connect(t, tp, f, c, ports.PeerOptions{Session: "s1"})
	countAUs(t, c, 2)
	sdp := p.pc.Load().LocalDescription().SDP
	for _, l := range strings.Split(sdp, "\n") {
		if strings.HasPrefix(l, "a=candidate:") && strings.Contains(strings.Fields(l)[4], ":") {
			t.Errorf("IPv6 candidate with NoIPv6: %s", l)
		}
	}
	if !strings.Contains(sdp, "a=candidate:") {
		t.Fatal("no candidates")
	}
}
