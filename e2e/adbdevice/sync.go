package adbdevice

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	pathpkg "path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// sync protocol limits (file_sync_protocol.h).
const (
	syncMaxData = 64 * 1024
	syncMaxPath = 1024
)

// syncService serves the sync: protocol: SEND (push), RECV (pull), STAT,
// LIST and QUIT, against the device's in-memory files. Each request is a
// 4-byte id and a u32 LE length, followed by that many bytes.
func (d *Device) syncService(ctx context.Context, s *stream) {
	br := bufio.NewReader(s)
	bw := bufio.NewWriterSize(s, 128*1024)
	for ctx.Err() == nil {
		id, n, err := readSyncHeader(br)
		if err != nil {
			return
		}
		if n > syncMaxPath {
			_ = syncFail(bw, "path too long")
			return
		}
		arg := make([]byte, n)
		if _, err := io.ReadFull(br, arg); err != nil {
			return
		}
		switch id {
		case "QUIT":
			return
		case "SEND":
			err = d.syncReceive(br, bw, string(arg))
		case "RECV":
			err = d.syncSend(bw, string(arg))
		case "STAT":
			err = d.syncStat(bw, string(arg))
		case "LIST":
			err = d.syncList(bw, string(arg))
		default:
			_ = syncFail(bw, "unknown sync request "+strconv.Quote(id))
			return
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			return
		}
	}
}

func readSyncHeader(r io.Reader) (string, uint32, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return "", 0, err
	}
	return string(h[:4]), binary.LittleEndian.Uint32(h[4:]), nil
}

func writeSyncHeader(w io.Writer, id string, n uint32) error {
	var h [8]byte
	copy(h[:4], id)
	binary.LittleEndian.PutUint32(h[4:], n)
	_, err := w.Write(h[:])
	return err
}

func syncFail(w *bufio.Writer, msg string) error {
	if err := writeSyncHeader(w, "FAIL", uint32(len(msg))); err != nil {
		return err
	}
	if _, err := w.WriteString(msg); err != nil {
		return err
	}
	return w.Flush()
}

// syncReceive stores a pushed file: arg is "path,mode", then DATA chunks
// and DONE (whose length field is the mtime); it answers OKAY.
func (d *Device) syncReceive(br io.Reader, bw *bufio.Writer, arg string) error {
	path, modeStr, _ := strings.Cut(arg, ",")
	mode, err := strconv.ParseUint(modeStr, 10, 32)
	if err != nil {
		mode = 0o644
	}
	var data []byte
	for {
		id, n, err := readSyncHeader(br)
		if err != nil {
			return err
		}
		switch id {
		case "DATA":
			if n > syncMaxData {
				return syncFail(bw, fmt.Sprintf("DATA of %d bytes exceeds %d", n, syncMaxData))
			}
			start := len(data)
			data = append(data, make([]byte, n)...)
			if _, err := io.ReadFull(br, data[start:]); err != nil {
				return err
			}
		case "DONE":
			if path == "" || strings.HasSuffix(path, "/") || isDir(path) {
				return syncFail(bw, "couldn't create file: Is a directory")
			}
			if !shellWritable(path) {
				// adbd runs as shell: only its own and the shared storage's
				// trees are writable.
				return syncFail(bw, "couldn't create file: Permission denied")
			}
			d.mu.Lock()
			d.files[path] = &File{Data: data, Mode: os.FileMode(mode & 0o777), MTime: time.Unix(int64(n), 0)}
			d.mu.Unlock()
			return writeSyncHeader(bw, "OKAY", 0)
		default:
			return syncFail(bw, "unexpected "+strconv.Quote(id)+" during SEND")
		}
	}
}

// shellWritable reports whether the shell user may create path: under
// /data/local/tmp or the shared storage (/sdcard, /storage/emulated/0),
// after resolving "..", as the kernel does.
func shellWritable(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	clean := pathpkg.Clean(p)
	for _, dir := range []string{"/data/local/tmp/", "/sdcard/", "/storage/emulated/0/"} {
		if strings.HasPrefix(clean+"/", dir) && clean+"/" != dir {
			return true
		}
	}
	return false
}

// syncSend answers RECV with the file in DATA chunks and DONE, or FAIL.
func (d *Device) syncSend(bw *bufio.Writer, path string) error {
	f, ok := d.file(path)
	if !ok {
		return syncFail(bw, "open failed: No such file or directory")
	}
	for off := 0; off < len(f.Data); off += syncMaxData {
		chunk := f.Data[off:min(off+syncMaxData, len(f.Data))]
		if err := writeSyncHeader(bw, "DATA", uint32(len(chunk))); err != nil {
			return err
		}
		if _, err := bw.Write(chunk); err != nil {
			return err
		}
	}
	return writeSyncHeader(bw, "DONE", 0)
}

// syncStat answers STAT (v1): mode, size, mtime; all zero if missing.
func (d *Device) syncStat(bw *bufio.Writer, path string) error {
	var mode, size, mtime uint32
	if f, ok := d.file(path); ok {
		mode, size, mtime = 0o100000|uint32(f.Mode.Perm()), uint32(len(f.Data)), uint32(f.MTime.Unix())
	} else if isDir(path) {
		mode, mtime = 0o40771, uint32(time.Now().Unix())
	}
	var b [16]byte
	copy(b[:4], "STAT")
	binary.LittleEndian.PutUint32(b[4:], mode)
	binary.LittleEndian.PutUint32(b[8:], size)
	binary.LittleEndian.PutUint32(b[12:], mtime)
	_, err := bw.Write(b[:])
	return err
}

// syncList answers LIST with a DENT per file directly in the directory and
// a final DONE.
func (d *Device) syncList(bw *bufio.Writer, dir string) error {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	files := d.Files()
	names := make([]string, 0, len(files))
	for p := range files {
		if rel, ok := strings.CutPrefix(p, prefix); ok && !strings.Contains(rel, "/") {
			names = append(names, rel)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		f := files[prefix+name]
		var b [20]byte
		copy(b[:4], "DENT")
		binary.LittleEndian.PutUint32(b[4:], 0o100000|uint32(f.Mode.Perm()))
		binary.LittleEndian.PutUint32(b[8:], uint32(len(f.Data)))
		binary.LittleEndian.PutUint32(b[12:], uint32(f.MTime.Unix()))
		binary.LittleEndian.PutUint32(b[16:], uint32(len(name)))
		if _, err := bw.Write(b[:]); err != nil {
			return err
		}
		if _, err := bw.WriteString(name); err != nil {
			return err
		}
	}
	var b [20]byte
	copy(b[:4], "DONE")
	_, err := bw.Write(b[:])
	return err
}
