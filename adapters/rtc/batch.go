package rtc

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// Batched egress. Every peer's packets (SRTP, SRTCP, DTLS, STUN) leave
// through a few shared UDP sockets (the ICE UDP mux). A batchConn queues
// what pion writes to such a socket and hands the queue to the kernel in one
// sendmmsg(2) call, so the per-packet system call, the largest cost of the
// fan-out, is paid once per batch.
//
// When to flush: a Fanout that wakes its viewers for a new frame first takes
// a hold on the batchGroup for each of them; a viewer releases its hold when
// it has written everything it had. While holds are out, writes only queue;
// the release that brings the holds to zero flushes. So one frame's packets
// for every viewer leave in a few calls, and the wait added to a packet is
// the time the viewers take to write it plus one system call. A full queue
// flushes at once, and a backstop timer flushes a queue that has waited
// maxBatchDelay (a viewer preempted while holding), so no packet waits
// longer than that for its batch. Writes outside any hold (RTCP, handshakes,
// retransmissions, a joiner's paced catch-up) flush right away.

// Batch defaults.
const (
	// DefaultSendBatch is the number of packets a socket's queue holds and
	// sends in one system call.
	DefaultSendBatch = 64
	maxSendBatch     = 1024 // UIO_MAXIOV, the kernel's limit per sendmmsg
	// maxBatchDelay bounds how long a queued packet waits for its batch.
	maxBatchDelay = 500 * time.Microsecond
	// batchSlotCap is the buffer each queue entry starts with; a larger
	// datagram grows its entry.
	batchSlotCap = 1536
)

// batchGroup is the set of batched sockets of one Transport and the holds
// that defer their flushes.
type batchGroup struct {
	size  int
	gso   bool          // try UDP GSO on the sockets
	delay time.Duration // the backstop: maxBatchDelay (tests lengthen it)
	holds atomic.Int64

	mu    sync.Mutex
	conns []*batchConn

	sent *udpTotals
}

// udpTotals count the batched sockets' system calls and datagrams, for
// metrics and tests.
type udpTotals struct {
	calls, packets atomic.Uint64
}

func newBatchGroup(size int, gso bool, sent *udpTotals) *batchGroup {
	if sent == nil {
		sent = &udpTotals{}
	}
	return &batchGroup{size: size, gso: gso, delay: maxBatchDelay, sent: sent}
}

// hold defers flushes until the matching release.
func (g *batchGroup) hold() { g.holds.Add(1) }

// release ends a hold; the last one flushes every socket with queued data.
func (g *batchGroup) release() {
	if g.holds.Add(-1) != 0 {
		return
	}
	g.mu.Lock()
	conns := g.conns
	g.mu.Unlock()
	for _, c := range conns {
		c.kickIfQueued()
	}
}

func (g *batchGroup) add(c *batchConn) {
	g.mu.Lock()
	g.conns = append(g.conns, c)
	g.mu.Unlock()
}

func (g *batchGroup) remove(c *batchConn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, x := range g.conns {
		if x == c {
			g.conns = append(g.conns[:i:i], g.conns[i+1:]...)
			return
		}
	}
}

// batchedSockets makes the UDP mux's sockets batch their writes, n packets
// per system call at most.
func (t *Transport) batchedSockets(n int, gso bool) (ice.UDPMuxFromPortOption, error) {
	g := newBatchGroup(n, gso, &t.udp)
	bn, err := newBatchNet(g)
	if err != nil {
		return nil, err
	}
	t.batch = g
	return ice.UDPMuxFromPortWithNet(bn), nil
}

// batchNet is the network pion's UDP mux listens on: the standard one,
// except that its UDP sockets batch their writes.
type batchNet struct {
	*stdnet.Net
	g *batchGroup
}

func newBatchNet(g *batchGroup) (*batchNet, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("network interfaces: %w", err)
	}
	return &batchNet{Net: n, g: g}, nil
}

// ListenUDP opens a batched UDP socket.
func (n *batchNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return newBatchConn(c, n.g)
}

// batch is a queue of datagrams laid out for one sendmmsg call.
type batch struct {
	n      int
	bufs   [][]byte
	addrs  []netip.AddrPort
	starts []int    // scratch: first datagram of each message sent
	sys    sysBatch // the kernel's view of the same entries (per OS)
}

func newBatch(size int) *batch {
	b := &batch{bufs: make([][]byte, size), addrs: make([]netip.AddrPort, size), starts: make([]int, 0, size)}
	backing := make([]byte, size*batchSlotCap)
	for i := range b.bufs {
		b.bufs[i] = backing[i*batchSlotCap : i*batchSlotCap : (i+1)*batchSlotCap]
	}
	b.sys.init(size)
	return b
}

// batchConn is a UDP socket whose writes are queued and sent in batches
// (see the comment at the top of this file). Reads go straight to the
// socket. It implements transport.UDPConn for pion's mux and
// ice.AddrPortReaderWriter so that writes carry no net.Addr allocation.
//
// There is no sending goroutine: whoever triggers a flush (the viewer whose
// release ends the holds, a writer outside any hold, a writer that fills
// the queue, the backstop timer) takes the queue and makes the system call
// itself, outside the lock; one sender at a time, so batches leave in
// order. Sparing a goroutine wake-up per batch matters when batches are
// small (a farm of devices with few viewers each).
type batchConn struct {
	*net.UDPConn
	g   *batchGroup
	raw syscall.RawConn
	v6  bool        // an AF_INET6 socket: IPv4 destinations are written v4-mapped
	gso atomic.Bool // send runs of equal-size datagrams as one (UDP GSO)

	mu      sync.Mutex
	cond    sync.Cond // signalled when a sender takes the queue
	cur     *batch    // being filled
	spare   *batch    // the other one; nil while it is being sent
	sending bool      // a goroutine is sending spare's contents
	again   bool      // a flush was asked for while sending
	closed  bool
	armed   bool // the backstop timer is set
	backOff *time.Timer

	closeOnce sync.Once
	closeErr  error
}

func newBatchConn(c *net.UDPConn, g *batchGroup) (*batchConn, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("batched udp socket: %w", err)
	}
	v6, err := socketIsV6(raw)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("batched udp socket: %w", err)
	}
	bc := &batchConn{
		UDPConn: c,
		g:       g,
		raw:     raw,
		v6:      v6,
		cur:     newBatch(g.size),
		spare:   newBatch(g.size),
	}
	bc.gso.Store(g.gso && socketGSO(raw))
	bc.cond.L = &bc.mu
	bc.backOff = time.AfterFunc(time.Hour, bc.onBackstop)
	bc.backOff.Stop()
	g.add(bc)
	return bc, nil
}

var errBatchClosed = errors.New("batched udp socket closed")

// WriteToAddrPort queues b for addr. It returns an error only once the
// socket is closed; a datagram the kernel refuses later is dropped, as a
// lossy network would.
func (c *batchConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	c.mu.Lock()
	for !c.closed && c.cur.n == len(c.cur.bufs) {
		if !c.sending {
			c.flushLocked()
			continue
		}
		c.again = true
		c.cond.Wait()
	}
	if c.closed {
		c.mu.Unlock()
		return 0, errBatchClosed
	}
	q := c.cur
	i := q.n
	q.n++
	if cap(q.bufs[i]) < len(b) {
		q.bufs[i] = make([]byte, 0, len(b))
	}
	q.bufs[i] = append(q.bufs[i][:0], b...)
	q.addrs[i] = addr
	switch {
	case q.n == len(q.bufs) || c.g.holds.Load() == 0:
		c.flushLocked()
	case !c.armed:
		c.armed = true
		c.backOff.Reset(c.g.delay)
	}
	c.mu.Unlock()
	return len(b), nil
}

// WriteTo queues b for addr, which must be a *net.UDPAddr.
func (c *batchConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("batched udp write to %T: not a UDP address", addr)
	}
	return c.WriteToAddrPort(b, ua.AddrPort())
}

// WriteToUDP queues b for addr.
func (c *batchConn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) {
	return c.WriteToAddrPort(b, addr.AddrPort())
}

// WriteToUDPAddrPort queues b for addr.
func (c *batchConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.WriteToAddrPort(b, addr)
}

// WriteMsgUDP queues b for addr; out-of-band data is not supported.
func (c *batchConn) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (int, int, error) {
	if len(oob) > 0 || addr == nil {
		return 0, 0, errors.New("batched udp write: needs an address and no out-of-band data")
	}
	n, err := c.WriteToAddrPort(b, addr.AddrPort())
	return n, 0, err
}

// Write is refused: the socket is not connected.
func (c *batchConn) Write([]byte) (int, error) {
	return 0, errors.New("batched udp write: socket is not connected")
}

// ReadFromAddrPort reads one datagram.
func (c *batchConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.UDPConn.ReadFromUDPAddrPort(b)
}

// kickIfQueued flushes a queue that has data (the last hold was released).
func (c *batchConn) kickIfQueued() {
	c.mu.Lock()
	if c.cur.n > 0 {
		c.flushLocked()
	}
	c.mu.Unlock()
}

func (c *batchConn) onBackstop() {
	c.mu.Lock()
	c.armed = false
	if c.cur.n > 0 {
		c.flushLocked()
	}
	c.mu.Unlock()
}

// flushLocked sends the queue, or, while another goroutine is sending,
// asks it to send again when done. c.mu is held on entry and on return but
// not during the system call.
func (c *batchConn) flushLocked() {
	if c.sending {
		c.again = true
		return
	}
	for c.cur.n > 0 && !c.closed {
		q := c.cur
		c.cur, c.spare = c.spare, nil
		c.sending, c.again = true, false
		if c.armed {
			c.armed = false
			c.backOff.Stop()
		}
		c.cond.Broadcast()
		c.mu.Unlock()

		calls := c.send(q)
		c.g.sent.calls.Add(uint64(calls))
		c.g.sent.packets.Add(uint64(q.n))
		q.n = 0

		c.mu.Lock()
		c.spare = q
		c.sending = false
		c.cond.Broadcast()
		// Go on for what queued meanwhile only if a flush was asked for
		// (a release, an unheld write, a full queue); otherwise it waits
		// for its holds.
		if !c.again && c.cur.n < len(c.cur.bufs) && (c.g.holds.Load() != 0 || c.cur.n == 0) {
			return
		}
	}
}

// Close sends what is queued and closes the socket; later writes fail.
// Safe to call more than once.
func (c *batchConn) Close() error {
	c.closeOnce.Do(func() {
		c.g.remove(c)
		c.mu.Lock()
		for c.sending {
			c.cond.Wait()
		}
		c.flushLocked()
		c.closed = true
		c.backOff.Stop()
		c.cond.Broadcast()
		c.mu.Unlock()
		c.closeErr = c.UDPConn.Close()
	})
	return c.closeErr
}
