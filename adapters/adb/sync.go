package adb

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// syncChunk is the largest DATA payload of the sync protocol.
const syncChunk = 64 << 10

// appendSyncHeader appends a sync request: a four-letter id and a
// little-endian u32.
func appendSyncHeader(dst []byte, id string, n uint32) []byte {
	dst = append(dst, id...)
	return binary.LittleEndian.AppendUint32(dst, n)
}

// Push copies r to path on the device with mode (permission bits) and
// mtime, over "sync:" (SEND, DATA chunks of at most 64 KiB, DONE), through
// the command pool. The device's FAIL reason comes back as a *FailError.
func (c *Client) Push(ctx context.Context, serial string, r io.Reader, path string, mode os.FileMode, mtime time.Time) error {
	cn, err := c.open(ctx, serial, "sync:", true)
	if err != nil {
		return err
	}
	defer cn.Close()
	spec := path + "," + strconv.FormatUint(uint64(0o100000|mode.Perm()), 10)
	if len(spec) > 1024 {
		return fmt.Errorf("push to %q: path too long: %w", path, ErrProtocol)
	}
	buf := appendSyncHeader(make([]byte, 0, 8+syncChunk), "SEND", uint32(len(spec)))
	buf = append(buf, spec...)
	if _, err := cn.Write(buf); err != nil {
		return fmt.Errorf("push %s: %w", path, ctxErr(ctx, err))
	}
	data := make([]byte, syncChunk)
	for {
		n, rerr := io.ReadFull(r, data)
		if n > 0 {
			buf = appendSyncHeader(buf[:0], "DATA", uint32(n))
			buf = append(buf, data[:n]...)
			if _, err := cn.Write(buf); err != nil {
				return fmt.Errorf("push %s: %w", path, ctxErr(ctx, err))
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("push %s: read source: %w", path, rerr)
		}
	}
	if _, err := cn.Write(appendSyncHeader(nil, "DONE", uint32(mtime.Unix()))); err != nil {
		return fmt.Errorf("push %s: %w", path, ctxErr(ctx, err))
	}
	if err := readSyncStatus(cn); err != nil {
		return fmt.Errorf("push %s to %s: %w", path, serial, ctxErr(ctx, err))
	}
	_, _ = cn.Write(appendSyncHeader(nil, "QUIT", 0))
	return nil
}

// readSyncStatus reads the sync reply to DONE: OKAY, or FAIL and a reason.
func readSyncStatus(r io.Reader) error {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return noEOF(err)
	}
	n := binary.LittleEndian.Uint32(hdr[4:])
	switch string(hdr[:4]) {
	case "OKAY":
		return nil
	case "FAIL":
		if n > maxPayload {
			return fmt.Errorf("sync FAIL of %d bytes: %w", n, ErrProtocol)
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(r, msg); err != nil {
			return noEOF(err)
		}
		return &FailError{Reason: string(msg)}
	}
	return fmt.Errorf("sync status %q: %w", hdr[:4], ErrProtocol)
}
