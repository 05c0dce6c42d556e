package adbdevice

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ADB transport commands (system/core/adb/adb.h).
const (
	CmdCNXN uint32 = 0x4e584e43
	CmdAUTH uint32 = 0x48545541
	CmdOPEN uint32 = 0x4e45504f
	CmdOKAY uint32 = 0x59414b4f
	CmdCLSE uint32 = 0x45534c43
	CmdWRTE uint32 = 0x45545257
	CmdSYNC uint32 = 0x434e5953
	CmdSTLS uint32 = 0x534c5453
)

// AUTH message kinds, carried in arg0.
const (
	authToken        uint32 = 1
	authSignature    uint32 = 2
	authRSAPublicKey uint32 = 3
)

// Version is the transport protocol version the device speaks: the one of
// adb 29, which skips the data checksum.
const Version uint32 = 0x01000001

// HeaderSize is the size of a transport message header.
const HeaderSize = 24

// Errors ReadMessage wraps.
var (
	ErrBadMagic = errors.New("adb message: magic does not match command")
	ErrTooLarge = errors.New("adb message: payload larger than the limit")
)

// Message is one ADB transport message: a 24-byte header of six
// little-endian uint32 (command, arg0, arg1, data length, data checksum,
// magic) followed by the payload.
type Message struct {
	Command uint32
	Arg0    uint32
	Arg1    uint32
	Data    []byte
}

// String names the command and its arguments, for logs and test failures.
func (m Message) String() string {
	return fmt.Sprintf("%s(%#x, %#x, %d bytes)", CommandName(m.Command), m.Arg0, m.Arg1, len(m.Data))
}

// CommandName returns the four letters of a transport command, or its hex
// value when they are not printable.
func CommandName(c uint32) string {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], c)
	for _, x := range b {
		if x < 'A' || x > 'Z' {
			return fmt.Sprintf("%#08x", c)
		}
	}
	return string(b[:])
}

// checksum is the sum of the payload bytes that versions before 0x01000001
// check and that later ones ignore.
func checksum(b []byte) uint32 {
	var s uint32
	for _, x := range b {
		s += uint32(x)
	}
	return s
}

// ReadMessage reads one message from r. It returns an error wrapping
// ErrBadMagic when the magic field is not the command's complement,
// ErrTooLarge when the payload length exceeds maxData, io.EOF when r ends
// cleanly before a header, io.ErrUnexpectedEOF when it ends inside one, and
// any read error of r. The checksum is not verified: version 0x01000001
// peers send 0. A message without payload has a nil Data.
func ReadMessage(r io.Reader, maxData uint32) (Message, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Message{}, err
	}
	m := Message{
		Command: binary.LittleEndian.Uint32(h[0:]),
		Arg0:    binary.LittleEndian.Uint32(h[4:]),
		Arg1:    binary.LittleEndian.Uint32(h[8:]),
	}
	n := binary.LittleEndian.Uint32(h[12:])
	if magic := binary.LittleEndian.Uint32(h[20:]); magic != m.Command^0xffffffff {
		return Message{}, fmt.Errorf("read %s: %w", CommandName(m.Command), ErrBadMagic)
	}
	if n > maxData {
		return Message{}, fmt.Errorf("read %s of %d bytes (max %d): %w", CommandName(m.Command), n, maxData, ErrTooLarge)
	}
	if n > 0 {
		m.Data = make([]byte, n)
		if _, err := io.ReadFull(r, m.Data); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Message{}, fmt.Errorf("read %s payload: %w", CommandName(m.Command), err)
		}
	}
	return m, nil
}

// AppendMessage appends the wire form of m to b, with the data checksum
// filled in, and returns the extended slice.
func AppendMessage(b []byte, m Message) []byte {
	b = binary.LittleEndian.AppendUint32(b, m.Command)
	b = binary.LittleEndian.AppendUint32(b, m.Arg0)
	b = binary.LittleEndian.AppendUint32(b, m.Arg1)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Data)))
	b = binary.LittleEndian.AppendUint32(b, checksum(m.Data))
	b = binary.LittleEndian.AppendUint32(b, m.Command^0xffffffff)
	return append(b, m.Data...)
}

// WriteMessage writes m to w in one Write call.
func WriteMessage(w io.Writer, m Message) error {
	_, err := w.Write(AppendMessage(make([]byte, 0, HeaderSize+len(m.Data)), m))
	return err
}
