package adbdevice

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range []Message{
		{Command: CmdCNXN, Arg0: Version, Arg1: 256 * 1024, Data: []byte("host::features=shell_v2")},
		{Command: CmdOKAY, Arg0: 1, Arg1: 2},
		{Command: CmdWRTE, Arg0: 7, Arg1: 9, Data: bytes.Repeat([]byte{0xff}, 1000)},
	} {
		b := AppendMessage(nil, m)
		got, err := ReadMessage(bytes.NewReader(b), 4096)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("round trip of %v: %v, %v", m, got, err)
		}
	}
}

func TestReadMessageErrors(t *testing.T) {
	good := AppendMessage(nil, Message{Command: CmdWRTE, Arg0: 1, Arg1: 2, Data: []byte("hello")})
	badMagic := append([]byte(nil), good...)
	badMagic[20] ^= 1
	tests := []struct {
		name string
		in   []byte
		max  uint32
		want error
	}{
		{"empty", nil, 100, io.EOF},
		{"short header", good[:10], 100, io.ErrUnexpectedEOF},
		{"short payload", good[:len(good)-1], 100, io.ErrUnexpectedEOF},
		{"bad magic", badMagic, 100, ErrBadMagic},
		{"too large", good, 4, ErrTooLarge},
	}
	for _, tt := range tests {
		if _, err := ReadMessage(bytes.NewReader(tt.in), tt.max); !errors.Is(err, tt.want) {
			t.Errorf("%s: err %v, want %v", tt.name, err, tt.want)
		}
	}
}

// FuzzReadMessage checks the reader never panics, never returns a payload
// over the limit, and that what it accepts writes back to the same bytes
// (except the checksum, which it ignores).
func FuzzReadMessage(f *testing.F) {
	f.Add(AppendMessage(nil, Message{Command: CmdCNXN, Arg0: Version, Arg1: 4096, Data: []byte("device::features=shell_v2")}))
	f.Add(AppendMessage(nil, Message{Command: CmdOPEN, Arg0: 1, Data: []byte("shell,v2,raw:echo hi\x00")}))
	f.Add(AppendMessage(nil, Message{Command: CmdOKAY, Arg0: 1, Arg1: 2}))
	f.Add([]byte("CNXN"))
	f.Fuzz(func(t *testing.T, b []byte) {
		const max = 4096
		m, err := ReadMessage(bytes.NewReader(b), max)
		if err != nil {
			return
		}
		if len(m.Data) > max {
			t.Fatalf("payload of %d bytes over the limit", len(m.Data))
		}
		out := AppendMessage(nil, m)
		want := append([]byte(nil), b[:len(out)]...)
		copy(want[16:20], out[16:20]) // checksum
		if !bytes.Equal(out, want) {
			t.Fatalf("rewrote %x as %x", want, out)
		}
	})
}
