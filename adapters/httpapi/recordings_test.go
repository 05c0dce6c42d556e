package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"mediasvc/domain"
)

// fakeRecordings keeps recordings in memory, their bytes a fixed string.
type fakeRecordings struct {
	mu   sync.Mutex
	recs map[domain.RecordingID]domain.Recording
}

const recBody = "0123456789abcdefghij" // 20 bytes

func (f *fakeRecordings) Start(_ context.Context, d domain.DeviceID, owner string) (domain.Recording, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.recs {
		if r.Device == d && r.State == domain.RecordingActive {
			return domain.Recording{}, fmt.Errorf("recording: %w", domain.ErrConflict)
		}
	}
	if len(f.recs) >= 3 {
		return domain.Recording{}, fmt.Errorf("too many: %w", domain.ErrLimitExceeded)
	}
	r := domain.Recording{ID: domain.RecordingID(fmt.Sprintf("%016x", len(f.recs)+1)), Device: d, Owner: owner, State: domain.RecordingActive, StartedAt: testNow}
	f.recs[r.ID] = r
	return r, nil
}

func (f *fakeRecordings) Stop(_ context.Context, d domain.DeviceID) (domain.Recording, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, r := range f.recs {
		if r.Device == d && r.State == domain.RecordingActive {
			r.State, r.Bytes, r.Duration, r.EndedAt = domain.RecordingDone, int64(len(recBody)), 3*time.Second, testNow.Add(3*time.Second)
			f.recs[id] = r
			return r, nil
		}
	}
	return domain.Recording{}, domain.ErrRecordingNotFound
}

func (f *fakeRecordings) List(context.Context) ([]domain.Recording, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []domain.Recording
	for _, r := range f.recs {
		out = append(out, r)
	}
	return out, nil
}

func (f *fakeRecordings) Get(_ context.Context, id domain.RecordingID) (domain.Recording, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.recs[id]; ok {
		return r, nil
	}
	return domain.Recording{}, domain.ErrRecordingNotFound
}

type nopSeekCloser struct{ *bytes.Reader }

func (nopSeekCloser) Close() error { return nil }

func (f *fakeRecordings) Open(ctx context.Context, id domain.RecordingID) (io.ReadSeekCloser, domain.Recording, error) {
	r, err := f.Get(ctx, id)
	if err != nil {
		return nil, r, err
	}
	return nopSeekCloser{bytes.NewReader([]byte(recBody))}, r, nil
}

func (f *fakeRecordings) Delete(_ context.Context, id domain.RecordingID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.recs[id]
	switch {
	case !ok:
		return domain.ErrRecordingNotFound
	case r.State == domain.RecordingActive:
		return domain.ErrConflict
	}
	delete(f.recs, id)
	return nil
}

func TestRecordingsAPI(t *testing.T) {
	recs := &fakeRecordings{recs: map[domain.RecordingID]domain.Recording{
		"00000000000000aa": {ID: "00000000000000aa", Device: "other", State: domain.RecordingDone},
	}}
	bearer := func(k string) map[string]string { return map[string]string{"Authorization": "Bearer " + k} }
	ctl, view := bearer("ctl-key-0123456789"), bearer("view-key-0123456789")
	_, ts := start(t, Config{Recordings: recs, Keys: []Key{
		{Name: "ctl", Secret: "ctl-key-0123456789", Grants: []domain.Grant{{Devices: []string{"dev1"}, Roles: []domain.GrantRole{domain.GrantController}}}},
		{Name: "view", Secret: "view-key-0123456789", Grants: []domain.Grant{{Devices: []string{"dev1"}, Roles: []domain.GrantRole{domain.GrantViewer}}}},
	}}, newFake(&calls{}, "ctl"))

	if r := do(t, ts, req{method: "POST", path: "/api/v1/devices/dev1/recordings", header: view}); r.status != http.StatusForbidden {
		t.Fatalf("viewer starts: %d %s", r.status, r.body)
	}
	r := do(t, ts, req{method: "POST", path: "/api/v1/devices/dev1/recordings", header: ctl})
	var started recordingJSON
	if err := json.Unmarshal(r.body, &started); r.status != http.StatusCreated || err != nil || started.Owner != "ctl" ||
		r.header.Get("Location") != "/api/v1/recordings/"+string(started.ID) {
		t.Fatalf("start: %d %s %v", r.status, r.body, r.header)
	}
	if r := do(t, ts, req{method: "POST", path: "/api/v1/devices/dev1/recordings", header: ctl}); r.status != http.StatusConflict {
		t.Fatalf("second start: %d %s", r.status, r.body)
	}
	if r := do(t, ts, req{method: "DELETE", path: started.URL, header: ctl}); r.status != http.StatusConflict {
		t.Fatalf("delete while running: %d %s", r.status, r.body)
	}
	r = do(t, ts, req{method: "DELETE", path: "/api/v1/devices/dev1/recordings", header: ctl})
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"duration_seconds":3`) || !strings.Contains(string(r.body), `"state":"done"`) {
		t.Fatalf("stop: %d %s", r.status, r.body)
	}
	// The viewer lists and downloads dev1's, never sees "other"'s.
	r = do(t, ts, req{method: "GET", path: "/api/v1/recordings", header: view})
	if r.status != http.StatusOK || !strings.Contains(string(r.body), string(started.ID)) || strings.Contains(string(r.body), "00000000000000aa") {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	if r := do(t, ts, req{method: "GET", path: "/api/v1/recordings/00000000000000aa/file", header: view}); r.status != http.StatusNotFound {
		t.Fatalf("foreign download: %d %s", r.status, r.body)
	}
	r = do(t, ts, req{method: "GET", path: started.FileURL, header: view})
	if r.status != http.StatusOK || string(r.body) != recBody || r.header.Get("Content-Type") != "video/mp4" || r.header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("download: %d %q %v", r.status, r.body, r.header)
	}
	r = do(t, ts, req{method: "GET", path: started.FileURL, header: map[string]string{"Authorization": view["Authorization"], "Range": "bytes=10-14"}})
	if r.status != http.StatusPartialContent || string(r.body) != "abcde" || r.header.Get("Content-Range") != "bytes 10-14/20" {
		t.Fatalf("range: %d %q %v", r.status, r.body, r.header)
	}
	r = do(t, ts, req{method: "GET", path: started.FileURL, header: map[string]string{"Authorization": view["Authorization"], "Range": "bytes=20-"}})
	if r.status != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("range past the end: %d %q", r.status, r.body)
	}
	if r := do(t, ts, req{method: "DELETE", path: started.URL, header: view}); r.status != http.StatusForbidden {
		t.Fatalf("viewer deletes: %d %s", r.status, r.body)
	}
	if r := do(t, ts, req{method: "DELETE", path: started.URL, header: ctl}); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := do(t, ts, req{method: "GET", path: started.FileURL, header: ctl}); r.status != http.StatusNotFound || errCode(t, r.body) != "recording_not_found" {
		t.Fatalf("after delete: %d %s", r.status, r.body)
	}
}

func TestRecordingIDsFromThePathAreRefused(t *testing.T) {
	recs := &fakeRecordings{recs: map[domain.RecordingID]domain.Recording{}}
	_, ts := start(t, Config{Recordings: recs}, newFake(&calls{}, "x"))
	for _, p := range []string{
		"/api/v1/recordings/..%2F..%2Fetc%2Fpasswd/file",
		"/api/v1/recordings/%2e%2e/file",
		"/api/v1/recordings/0123456789ABCDEF",
		"/api/v1/recordings/0123456789abcdef0/file",
		"/api/v1/recordings/abc",
	} {
		if r := do(t, ts, req{method: "GET", path: p}); r.status != http.StatusBadRequest || errCode(t, r.body) != "invalid_request" {
			t.Errorf("GET %s: %d %s, want 400", p, r.status, r.body)
		}
	}
	if r := do(t, ts, req{method: "DELETE", path: "/api/v1/recordings/..%2Fx"}); r.status != http.StatusBadRequest {
		t.Errorf("DELETE traversal: %d %s", r.status, r.body)
	}
}
