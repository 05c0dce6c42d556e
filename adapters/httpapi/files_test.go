package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"mediasvc/adapters/httpapi/httpapitest"
	"mediasvc/domain"
)

func TestUploadsAndScreenshot(t *testing.T) {
	var pushed, installed string
	fake := &httpapitest.Service{
		PushFileFunc: func(_ context.Context, id domain.DeviceID, name string, r io.Reader, size int64) (string, error) {
			b, err := io.ReadAll(r)
			if err != nil {
				return "", err
			}
			if int64(len(b)) != size {
				return "", fmt.Errorf("read %d of %d: %w", len(b), size, domain.ErrInvalidRequest)
			}
			pushed = string(id) + ":" + name + ":" + string(b)
			return "/sdcard/Download/" + name, nil
		},
		InstallAPKFunc: func(_ context.Context, id domain.DeviceID, r io.Reader, size int64) error {
			b, _ := io.ReadAll(r)
			if string(b) == "bad" {
				return fmt.Errorf("install refused: Failure [INSTALL_PARSE_FAILED_NOT_APK]: %w", domain.ErrInvalidRequest)
			}
			installed = string(b)
			return nil
		},
		ScreenshotFunc: func(_ context.Context, id domain.DeviceID) ([]byte, error) {
			if id == "demo" {
				return nil, fmt.Errorf("no files: %w", domain.ErrForbidden)
			}
			return []byte("\x89PNG\r\n\x1a\nrest"), nil
		},
	}
	_, ts := start(t, Config{MaxUploadBytes: 16}, fake)

	r := do(t, ts, req{method: "POST", path: "/api/v1/devices/dev1/files?name=notes.txt", body: "hello"})
	if r.status != http.StatusCreated || !strings.Contains(string(r.body), `"path":"/sdcard/Download/notes.txt"`) || pushed != "dev1:notes.txt:hello" {
		t.Fatalf("file: %d %s (%q)", r.status, r.body, pushed)
	}
	r = do(t, ts, req{method: "POST", path: "/api/v1/devices/dev1/files", header: map[string]string{"Content-Disposition": `attachment; filename="a b.txt"`}, body: "x"})
	if r.status != http.StatusCreated || pushed != "dev1:a b.txt:x" {
		t.Fatalf("content-disposition: %d %s", r.status, r.body)
	}
	if r := do(t, ts, req{method: "POST", path: "/api/v1/devices/dev1/files", body: "x"}); r.status != http.StatusBadRequest {
		t.Fatalf("no name: %d %s", r.status, r.body)
	}
	if r := do(t, ts, req{method: "POST", path: "/api/v1/devices/dev1/files?name=big", body: strings.Repeat("x", 17)}); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("too big: %d %s", r.status, r.body)
	}
	if r := do(t, ts, req{method: "POST", path: "/api/v1/devices/dev1/apps", body: "apk!"}); r.status != http.StatusOK || installed != "apk!" {
		t.Fatalf("apk: %d %s", r.status, r.body)
	}
	if r := do(t, ts, req{method: "POST", path: "/api/v1/devices/dev1/apps", body: "bad"}); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "INSTALL_PARSE_FAILED_NOT_APK") {
		t.Fatalf("bad apk: %d %s", r.status, r.body)
	}
	// No Content-Length: a chunked body.
	hr, _ := http.NewRequest("POST", ts.URL+"/api/v1/devices/dev1/apps", io.MultiReader(strings.NewReader("ab"), strings.NewReader("c")))
	hr.ContentLength = -1
	res, err := ts.Client().Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusLengthRequired {
		t.Fatalf("chunked: %d", res.StatusCode)
	}
	r = do(t, ts, req{method: "GET", path: "/api/v1/devices/dev1/screenshot"})
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "image/png" || !strings.HasPrefix(string(r.body), "\x89PNG") {
		t.Fatalf("screenshot: %d %v", r.status, r.header)
	}
	if r := do(t, ts, req{method: "GET", path: "/api/v1/devices/demo/screenshot"}); r.status != http.StatusForbidden {
		t.Fatalf("demo screenshot: %d %s", r.status, r.body)
	}
}

// A viewer grant may take screenshots but not upload.
func TestUploadNeedsController(t *testing.T) {
	called := false
	fake := &httpapitest.Service{PushFileFunc: func(context.Context, domain.DeviceID, string, io.Reader, int64) (string, error) {
		called = true
		return "", nil
	}}
	keys := []Key{{Name: "v", Secret: "key-v", Grants: []domain.Grant{{Devices: []string{"dev1"}, Roles: []domain.GrantRole{domain.GrantViewer}}}}}
	_, ts := start(t, Config{Keys: keys}, fake)
	h := map[string]string{"Authorization": "Bearer key-v"}
	if r := do(t, ts, req{method: "POST", path: "/api/v1/devices/dev1/files?name=a", header: h, body: "x"}); r.status != http.StatusForbidden || called {
		t.Fatalf("viewer upload: %d %s", r.status, r.body)
	}
	if r := do(t, ts, req{method: "GET", path: "/api/v1/devices/dev1/screenshot", header: h}); r.status != http.StatusOK {
		t.Fatalf("viewer screenshot: %d %s", r.status, r.body)
	}
	if r := do(t, ts, req{method: "GET", path: "/api/v1/devices/dev2/screenshot", header: h}); r.status != http.StatusNotFound {
		t.Fatalf("unseen device: %d %s", r.status, r.body)
	}
}
