package rtc

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr of sendmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// sysBatch is a batch as sendmmsg reads it: one header, one iovec and one
// address per datagram, pointing into the batch's own buffers, and with
// GSO a control message per header naming the segment size.
type sysBatch struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for an IPv4 address too
	ctrl  []byte                  // gsoCtrlLen bytes per header
}

// gsoCtrlLen is the space of one UDP_SEGMENT control message (a uint16).
var gsoCtrlLen = unix.CmsgSpace(2)

// UDP GSO limits (linux/udp.h): segments per send, bytes per send.
const (
	gsoMaxSegments = 64
	gsoMaxBytes    = 65000
)

func (s *sysBatch) init(size int) {
	s.hdrs = make([]mmsghdr, size)
	s.iovs = make([]unix.Iovec, size)
	s.names = make([]unix.RawSockaddrInet6, size)
	s.ctrl = make([]byte, size*gsoCtrlLen)
}

// socketGSO reports whether the kernel offers UDP generic segmentation
// offload on the socket.
func socketGSO(raw syscall.RawConn) bool {
	ok := false
	_ = raw.Control(func(fd uintptr) {
		_, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		ok = err == nil
	})
	return ok
}

func socketIsV6(raw syscall.RawConn) (bool, error) {
	var v6 bool
	var serr error
	err := raw.Control(func(fd uintptr) {
		var sa unix.Sockaddr
		sa, serr = unix.Getsockname(int(fd))
		_, v6 = sa.(*unix.SockaddrInet6)
	})
	if err != nil {
		return false, err
	}
	return v6, serr
}

// putName writes addr into name as the socket's family wants it and returns
// its length.
func putName(name *unix.RawSockaddrInet6, addr netip.AddrPort, v6 bool) uint32 {
	ip := addr.Addr()
	if !v6 {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(name))
		sa.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], addr.Port())
		sa.Addr = ip.Unmap().As4()
		return unix.SizeofSockaddrInet4
	}
	name.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&name.Port))[:], addr.Port())
	name.Flowinfo = 0
	name.Addr = ip.As16()
	name.Scope_id = 0
	if z := ip.Zone(); z != "" {
		if n, err := strconv.ParseUint(z, 10, 32); err == nil {
			name.Scope_id = uint32(n)
		} else if ifi, err := net.InterfaceByName(z); err == nil {
			name.Scope_id = uint32(ifi.Index)
		}
	}
	return unix.SizeofSockaddrInet6
}

// send hands q to the kernel in as few sendmmsg calls as it takes and
// returns how many calls it made. With GSO, a run of datagrams to one
// address whose sizes are equal (the last may be shorter, as the FU-A
// fragments of a frame are) goes as one message that the kernel splits. A
// datagram the kernel refuses is dropped and the rest still go; a closed
// socket drops everything left. A GSO message the kernel refuses turns GSO
// off for the socket and goes again without it.
func (c *batchConn) send(q *batch) int {
	s := &q.sys
	for i := range q.n {
		b := q.bufs[i]
		iov := &s.iovs[i]
		iov.Base = unsafe.SliceData(b)
		iov.SetLen(len(b))
	}
	calls := 0
	for first := 0; first < q.n; {
		gso := c.gso.Load()
		msgs, starts := c.build(q, first, gso)
		off := 0
		for off < msgs {
			var sent int
			var errno syscall.Errno
			err := c.raw.Write(func(fd uintptr) bool {
				// A raw system call: the socket is non-blocking, so
				// sendmmsg never sleeps (EAGAIN parks the goroutine in
				// the poller instead); it only spends CPU in the kernel,
				// up to ~0.3 ms for a full batch on loopback. Announced as
				// a system call, the runtime's monitor would hand the P to
				// another thread each time the call passes 20 µs, and the
				// sender would wait for a P to come back: thread wake-ups
				// and sysmon's 20 µs polling for nothing.
				r, _, e := syscall.RawSyscall6(unix.SYS_SENDMMSG, fd,
					uintptr(unsafe.Pointer(&s.hdrs[off])), uintptr(msgs-off), 0, 0, 0)
				if e == unix.EAGAIN {
					return false
				}
				sent, errno = int(r), e
				return true
			})
			calls++
			if err != nil {
				return calls
			}
			if errno == 0 {
				off += sent
				continue
			}
			if gso && s.hdrs[off].hdr.Controllen != 0 {
				c.gso.Store(false) // resend from this message without GSO
				break
			}
			off++ // the first datagram was refused: drop it
		}
		if off >= msgs {
			return calls
		}
		first = starts[off]
	}
	return calls
}

// build lays out the datagrams of q from first on as sendmmsg headers,
// grouped for GSO when gso is set, and returns how many headers it made and
// the index of the first datagram of each (in q.sys scratch space).
func (c *batchConn) build(q *batch, first int, gso bool) (int, []int) {
	s := &q.sys
	starts := q.starts[:0]
	m := 0
	for i := first; i < q.n; {
		j := i + 1
		seg := len(q.bufs[i])
		if gso {
			total := seg
			for j < q.n && j-i < gsoMaxSegments && q.addrs[j] == q.addrs[i] {
				l := len(q.bufs[j])
				if l > seg || total+l > gsoMaxBytes {
					break
				}
				total += l
				j++
				if l < seg {
					break // a shorter datagram ends the run
				}
			}
		}
		h := &s.hdrs[m].hdr
		h.Name = (*byte)(unsafe.Pointer(&s.names[m]))
		h.Namelen = putName(&s.names[m], q.addrs[i], c.v6)
		h.Iov = &s.iovs[i]
		h.SetIovlen(j - i)
		h.Control = nil
		h.Controllen = 0
		h.Flags = 0
		if j-i > 1 {
			ctrl := s.ctrl[m*gsoCtrlLen : (m+1)*gsoCtrlLen]
			cm := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
			cm.Level = unix.IPPROTO_UDP
			cm.Type = unix.UDP_SEGMENT
			cm.SetLen(unix.CmsgLen(2))
			binary.NativeEndian.PutUint16(ctrl[unix.CmsgLen(0):], uint16(seg))
			h.Control = &ctrl[0]
			h.SetControllen(gsoCtrlLen)
		}
		starts = append(starts, i)
		m++
		i = j
	}
	q.starts = starts
	return m, starts
}
