//go:build !linux

package rtc

import "syscall"

// sysBatch is empty where there is no sendmmsg: batches go one write each.
type sysBatch struct{}

func (s *sysBatch) init(int) {}

func socketIsV6(syscall.RawConn) (bool, error) { return false, nil }

func socketGSO(syscall.RawConn) bool { return false }

// send writes q one datagram at a time and returns how many calls it made.
func (c *batchConn) send(q *batch) int {
	for i := range q.n {
		_, _ = c.UDPConn.WriteToUDPAddrPort(q.bufs[i], q.addrs[i])
	}
	return q.n
}
