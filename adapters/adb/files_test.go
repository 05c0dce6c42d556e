package adb

import (
	"errors"
	"strings"
	"testing"

	"mediasvc/domain"
)

func TestSafeFileName(t *testing.T) {
	for in, want := range map[string]string{
		"photo.jpg":              "photo.jpg",
		"../../system/bin/sh":    "sh",
		`C:\Users\me\notes.txt`:  "notes.txt",
		"..hidden":               "hidden",
		"a\x00b\nc.txt":          "abc.txt",
		"rock'n'roll $(id).mp3":  "rock_n_roll _(id).mp3",
		"résumé 履歴書.pdf":         "résumé 履歴書.pdf",
		"  spaced  ":             "spaced",
		strings.Repeat("é", 200): strings.Repeat("é", 127),
	} {
		got, err := SafeFileName(in)
		if err != nil || got != want {
			t.Errorf("SafeFileName(%q) = %q, %v; want %q", in, got, err, want)
		}
		if strings.ContainsAny(got, "/\\") || strings.HasPrefix(got, ".") || len(got) > maxFileName {
			t.Errorf("SafeFileName(%q) = %q escapes", in, got)
		}
	}
	for _, bad := range []string{"", "..", "/", "dir/", "...", "\x00\x01"} {
		if got, err := SafeFileName(bad); !errors.Is(err, domain.ErrInvalidRequest) {
			t.Errorf("SafeFileName(%q) = %q, %v; want ErrInvalidRequest", bad, got, err)
		}
	}
}

// FuzzSafeFileName: whatever the name, the result stays in its directory.
func FuzzSafeFileName(f *testing.F) {
	f.Add("../../etc/passwd")
	f.Add("a/b\\c")
	f.Add("\xff\xfe.apk")
	f.Fuzz(func(t *testing.T, name string) {
		got, err := SafeFileName(name)
		if err != nil {
			return
		}
		if got == "" || strings.ContainsAny(got, "/\\\x00") || strings.HasPrefix(got, ".") || len(got) > maxFileName {
			t.Fatalf("SafeFileName(%q) = %q", name, got)
		}
	})
}

func TestInstallVerdict(t *testing.T) {
	if err := installVerdict([]byte("Performing Streamed Install\nSuccess\n")); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{"Failure [INSTALL_PARSE_FAILED_NOT_APK: Failed to parse]\n", "", "Error: something\n"} {
		err := installVerdict([]byte(out))
		if !errors.Is(err, domain.ErrInvalidRequest) {
			t.Errorf("%q: %v", out, err)
		}
		if strings.HasPrefix(out, "Failure") && !strings.Contains(err.Error(), "INSTALL_PARSE_FAILED_NOT_APK") {
			t.Errorf("verdict lost the code: %v", err)
		}
	}
}

func TestParseDisplayCur(t *testing.T) {
	out := "WINDOW MANAGER DISPLAY CONTENTS (dumpsys window displays)\n  Display: mDisplayId=0\n    init=1080x2400 420dpi cur=2400x1080 app=2400x1017 rng=1080x1017-2400x2337\n"
	if w, h, ok := parseDisplayCur(out); !ok || w != 2400 || h != 1080 {
		t.Fatalf("%dx%d %v", w, h, ok)
	}
	for _, bad := range []string{"", "cur=x", "cur=0x100", "cur=99999999x1"} {
		if _, _, ok := parseDisplayCur(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
