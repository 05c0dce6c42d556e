package adbdevice

import (
	"errors"
	"reflect"
	"testing"
)

func TestSplitCommandLine(t *testing.T) {
	tests := []struct {
		in   string
		want []SimpleCommand
		err  bool
	}{
		{in: "", want: nil},
		{in: "   \t ", want: nil},
		{in: "echo hi", want: []SimpleCommand{{Words: []string{"echo", "hi"}}}},
		{in: "  input   tap 10  20 ", want: []SimpleCommand{{Words: []string{"input", "tap", "10", "20"}}}},
		{in: `echo 'a b' "c d" e\ f`, want: []SimpleCommand{{Words: []string{"echo", "a b", "c d", "e f"}}}},
		{in: `echo ''`, want: []SimpleCommand{{Words: []string{"echo", ""}}}},
		{in: `echo a""b`, want: []SimpleCommand{{Words: []string{"echo", "ab"}}}},
		{in: `echo "a\"b\\c\$d\e"`, want: []SimpleCommand{{Words: []string{"echo", `a"b\c$d\e`}}}},
		{in: `echo 'a\b'`, want: []SimpleCommand{{Words: []string{"echo", `a\b`}}}},
		{in: "echo a\\\nb", want: []SimpleCommand{{Words: []string{"echo", "ab"}}}},
		{in: "echo a # comment; b", want: []SimpleCommand{{Words: []string{"echo", "a"}}}},
		{in: "echo a#b", want: []SimpleCommand{{Words: []string{"echo", "a#b"}}}},
		{in: "a; b", want: []SimpleCommand{{Words: []string{"a"}, Op: ";"}, {Words: []string{"b"}}}},
		{in: "a;", want: []SimpleCommand{{Words: []string{"a"}}}},
		{in: "a && b || c", want: []SimpleCommand{{Words: []string{"a"}, Op: "&&"}, {Words: []string{"b"}, Op: "||"}, {Words: []string{"c"}}}},
		{in: "a\nb", want: []SimpleCommand{{Words: []string{"a"}, Op: ";"}, {Words: []string{"b"}}}},
		{in: "echo 'x;y' \"&&\"", want: []SimpleCommand{{Words: []string{"echo", "x;y", "&&"}}}},
		{in: "CLASSPATH=/data/local/tmp/s.jar app_process / Server", want: []SimpleCommand{{Words: []string{"CLASSPATH=/data/local/tmp/s.jar", "app_process", "/", "Server"}}}},
		{in: "echo 'unterminated", err: true},
		{in: `echo "unterminated`, err: true},
		{in: `echo \`, err: true},
		{in: "a | b", err: true},
		{in: "a > f", err: true},
		{in: "a &", err: true},
		{in: "&& a", err: true},
		{in: "a &&", err: true},
		{in: "(a)", err: true},
	}
	for _, tt := range tests {
		got, err := SplitCommandLine(tt.in)
		if tt.err {
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("SplitCommandLine(%q) = %q, %v; want ErrSyntax", tt.in, got, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitCommandLine(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestSplitWordsRejectsLists(t *testing.T) {
	if _, err := SplitWords("a; b"); !errors.Is(err, ErrSyntax) {
		t.Fatalf("SplitWords of a list: %v", err)
	}
	got, err := SplitWords(`screenrecord --output-format=h264 --size "1280x720" -`)
	if want := []string{"screenrecord", "--output-format=h264", "--size", "1280x720", "-"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, %v", got, err)
	}
}

// FuzzSplitWords checks the splitter never panics, only fails with
// ErrSyntax, and that Quote round-trips whatever it splits.
func FuzzSplitWords(f *testing.F) {
	for _, s := range []string{"echo hi", `a 'b c' "d\"e" f\ g`, "a && b || c; d", "# c", "x=1 y", "'", `"\`, "a\\\nb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cmds, err := SplitCommandLine(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v does not wrap ErrSyntax", err)
			}
			return
		}
		for _, c := range cmds {
			if len(c.Words) == 0 {
				t.Fatalf("empty command in %q", cmds)
			}
			back, err := SplitWords(Quote(c.Words))
			if err != nil || !reflect.DeepEqual(back, c.Words) {
				t.Fatalf("Quote(%q) = %q splits to %q, %v", c.Words, Quote(c.Words), back, err)
			}
		}
	})
}
