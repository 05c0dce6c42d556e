package adb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"mediasvc/domain"
)

// DownloadDir is where pushed files land on the device: the shared
// storage's Download folder, which every file manager shows.
const DownloadDir = "/sdcard/Download/"

// maxFileName bounds a pushed file's name in bytes (most file systems'
// limit).
const maxFileName = 255

// SafeFileName returns name as a file name that stays inside a directory:
// its last path element (either slash), without control characters or
// leading dots, at most 255 bytes of UTF-8. It returns
// domain.ErrInvalidRequest when nothing usable is left.
func SafeFileName(name string) (string, error) {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == utf8.RuneError, unicode.IsControl(r), r == 0x7f:
			continue
		case strings.ContainsRune(`:*?"<>|'`+"`$", r):
			// Not valid on FAT-backed storage, or special to a shell.
			b.WriteRune('_')
		default:
			b.WriteRune(r)
		}
	}
	out := strings.TrimLeft(strings.TrimSpace(b.String()), ".")
	for len(out) > maxFileName {
		_, size := utf8.DecodeLastRuneInString(out)
		out = out[:len(out)-size]
	}
	if out == "" {
		return "", fmt.Errorf("file name %q has nothing usable: %w", truncate(name, 60), domain.ErrInvalidRequest)
	}
	return out, nil
}

// countingReader counts what is read through it and refuses to go past
// limit.
type countingReader struct {
	r     io.Reader
	n     int64
	limit int64
}

var errTooLarge = errors.New("larger than its declared size")

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.limit {
		return n, fmt.Errorf("upload %w (%d bytes): %w", errTooLarge, c.limit, domain.ErrInvalidRequest)
	}
	return n, err
}

// PushFile streams r (size bytes; never held whole in memory) to
// DownloadDir on device id under SafeFileName(name), and returns the path
// written. A body longer or shorter than size is domain.ErrInvalidRequest
// (a short one leaves no file behind: the push is not completed). It
// returns domain.ErrDeviceNotFound / ErrDeviceUnavailable as Input does;
// a device that refuses (full storage, permissions) comes back as
// ErrDeviceUnavailable with its reason.
func (s *Source) PushFile(ctx context.Context, id domain.DeviceID, name string, r io.Reader, size int64) (string, error) {
	safe, err := SafeFileName(name)
	if err != nil {
		return "", err
	}
	if size < 0 {
		return "", fmt.Errorf("push %s: negative size: %w", safe, domain.ErrInvalidRequest)
	}
	if _, _, err := s.online(id); err != nil {
		return "", err
	}
	path := DownloadDir + safe
	cr := &countingReader{r: r, limit: size}
	var bodyErr error
	err = s.breaker(string(id)).Do(func() error {
		err := s.client.Push(ctx, string(id), &exactReader{cr: cr}, path, 0o660, time.Now())
		if errors.Is(err, domain.ErrInvalidRequest) {
			bodyErr = err // the caller's body, not the device, failed
			return nil
		}
		return err
	})
	switch {
	case bodyErr != nil:
		return "", fmt.Errorf("push %s: %w", safe, bodyErr)
	case err != nil:
		if errors.Is(err, domain.ErrDeviceUnavailable) || errors.Is(err, domain.ErrDeviceNotFound) || ctx.Err() != nil {
			return "", fmt.Errorf("push %s to %s: %w", safe, id, err)
		}
		return "", fmt.Errorf("push %s to %s: %w: %w", safe, id, domain.ErrDeviceUnavailable, err)
	}
	return path, nil
}

// exactReader ends the push with an error, not a clean EOF, when the body
// is shorter than declared, so the device never completes a truncated
// file.
type exactReader struct{ cr *countingReader }

func (e *exactReader) Read(p []byte) (int, error) {
	n, err := e.cr.Read(p)
	if errors.Is(err, io.EOF) && e.cr.n < e.cr.limit {
		return n, fmt.Errorf("upload ended after %d of %d bytes: %w", e.cr.n, e.cr.limit, domain.ErrInvalidRequest)
	}
	return n, err
}

// maxInstallOutput bounds what `cmd package install` may print.
const maxInstallOutput = 64 << 10

// InstallAPK streams r (size bytes) to `cmd package install -r -S SIZE`
// over exec: (adb install's streamed form, Android 7+) and returns the
// package manager's verdict: nil on "Success"; a "Failure [CODE: …]" is
// domain.ErrInvalidRequest carrying it. Errors otherwise as PushFile.
func (s *Source) InstallAPK(ctx context.Context, id domain.DeviceID, r io.Reader, size int64) error {
	if size <= 0 {
		return fmt.Errorf("install: empty APK: %w", domain.ErrInvalidRequest)
	}
	if _, _, err := s.online(id); err != nil {
		return err
	}
	var verdict error
	err := s.breaker(string(id)).Do(func() error {
		rc, err := s.client.Exec(ctx, string(id), "cmd package install -r -S "+strconv.FormatInt(size, 10))
		if err != nil {
			return err
		}
		defer rc.Close()
		n, err := io.Copy(rc, &markedReader{io.LimitReader(r, size)})
		if err != nil {
			// Reading the body failed (the client went away) or the
			// device did: the former is not the device's fault.
			var re *readError
			if errors.As(err, &re) {
				verdict = fmt.Errorf("install: read upload: %w: %w", re.err, domain.ErrInvalidRequest)
				return nil
			}
			return fmt.Errorf("stream APK: %w", ctxErr(ctx, err))
		}
		if n < size {
			verdict = fmt.Errorf("install: body of %d bytes, declared %d: %w", n, size, domain.ErrInvalidRequest)
			return nil // closing makes the device's read fail
		}
		out, err := io.ReadAll(io.LimitReader(rc, maxInstallOutput))
		if err != nil {
			return fmt.Errorf("install output: %w", ctxErr(ctx, err))
		}
		verdict = installVerdict(out)
		return nil
	})
	if err != nil {
		if errors.Is(err, domain.ErrDeviceUnavailable) || errors.Is(err, domain.ErrDeviceNotFound) || ctx.Err() != nil {
			return fmt.Errorf("install on %s: %w", id, err)
		}
		return fmt.Errorf("install on %s: %w: %w", id, domain.ErrDeviceUnavailable, err)
	}
	return verdict
}

// markedReader wraps its reader's errors in a readError.
type markedReader struct{ r io.Reader }

func (m *markedReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if err != nil && err != io.EOF {
		err = &readError{err}
	}
	return n, err
}

// readError marks a failure reading the caller's body.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }

// installVerdict reads the package manager's output.
func installVerdict(out []byte) error {
	s := strings.TrimSpace(string(out))
	if s == "Success" || strings.HasSuffix(s, "\nSuccess") {
		return nil
	}
	if i := strings.Index(s, "Failure ["); i >= 0 {
		msg := s[i:]
		if j := strings.IndexByte(msg, ']'); j >= 0 {
			msg = msg[:j+1]
		}
		return fmt.Errorf("install refused: %s: %w", truncate(msg, 300), domain.ErrInvalidRequest)
	}
	if s == "" {
		s = "no output"
	}
	return fmt.Errorf("install: the package manager said %q: %w", truncate(s, 300), domain.ErrInvalidRequest)
}

// maxScreenshot bounds a PNG screenshot (a 4K screen's PNG is ~10 MB).
const maxScreenshot = 64 << 20

var pngSignature = []byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}

// Screenshot returns a PNG of device id's screen (`screencap -p` over
// exec:, binary-safe). Errors as Input; output that is not a PNG (the
// device printed an error) is ErrDeviceUnavailable with what it said.
func (s *Source) Screenshot(ctx context.Context, id domain.DeviceID) ([]byte, error) {
	if _, _, err := s.online(id); err != nil {
		return nil, err
	}
	var png []byte
	err := s.breaker(string(id)).Do(func() error {
		cctx, cancel := context.WithTimeout(ctx, s.opts.CommandTimeout)
		defer cancel()
		rc, err := s.client.Exec(cctx, string(id), "screencap -p")
		if err != nil {
			return err
		}
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(bufio.NewReader(rc), maxScreenshot+1))
		if err != nil {
			return fmt.Errorf("screencap: %w", ctxErr(cctx, err))
		}
		if len(b) > maxScreenshot {
			return fmt.Errorf("screencap: more than %d bytes: %w", maxScreenshot, ErrProtocol)
		}
		if !bytes.HasPrefix(b, pngSignature) {
			return fmt.Errorf("screencap said %q: %w", truncate(string(bytes.TrimSpace(b)), 120), ErrProtocol)
		}
		png = b
		return nil
	})
	if err != nil {
		if errors.Is(err, domain.ErrDeviceUnavailable) || errors.Is(err, domain.ErrDeviceNotFound) || ctx.Err() != nil {
			return nil, fmt.Errorf("screenshot of %s: %w", id, err)
		}
		return nil, fmt.Errorf("screenshot of %s: %w: %w", id, domain.ErrDeviceUnavailable, err)
	}
	return png, nil
}
