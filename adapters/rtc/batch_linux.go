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
// address per datagram, pointing into the batch's own buffers.
type sysBatch struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for an IPv4 address too
}

func (s *sysBatch) init(size int) {
	s.hdrs = make([]mmsghdr, size)
	s.iovs = make([]unix.Iovec, size)
	s.names = make([]unix.RawSockaddrInet6, size)
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
// returns how many calls it made. A datagram the kernel refuses is dropped
// and the rest still go; a closed socket drops everything left.
func (c *batchConn) send(q *batch) int {
	s := &q.sys
	for i := range q.n {
		b := q.bufs[i]
		iov := &s.iovs[i]
		iov.Base = unsafe.SliceData(b)
		iov.SetLen(len(b))
		h := &s.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&s.names[i]))
		h.Namelen = putName(&s.names[i], q.addrs[i], c.v6)
		h.Iov = iov
		h.SetIovlen(1)
		h.Control = nil
		h.Controllen = 0
		h.Flags = 0
	}
	calls := 0
	for off := 0; off < q.n; {
		var sent int
		var errno syscall.Errno
		err := c.raw.Write(func(fd uintptr) bool {
			r, _, e := syscall.Syscall6(unix.SYS_SENDMMSG, fd,
				uintptr(unsafe.Pointer(&s.hdrs[off])), uintptr(q.n-off), 0, 0, 0)
			if e == unix.EAGAIN {
				return false
			}
			sent, errno = int(r), e
			return true
		})
		calls++
		switch {
		case err != nil:
			return calls
		case errno != 0:
			off++ // the first datagram was refused: drop it
		default:
			off += sent
		}
	}
	return calls
}
