package httpapi

import (
	"context"
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"

	"mediasvc/domain"
)

// Recordings is what the HTTP adapter needs for MP4 recordings of
// device streams (app.Recorder).
type Recordings interface {
	// Start starts recording a device: domain.ErrConflict when it
	// records already, ErrLimitExceeded at the concurrency limit,
	// ErrStorageFull when the directory is full.
	Start(ctx context.Context, device domain.DeviceID, owner string) (domain.Recording, error)
	// Stop ends the device's running recording and returns it:
	// domain.ErrRecordingNotFound when it is not recording.
	Stop(ctx context.Context, device domain.DeviceID) (domain.Recording, error)
	// List returns every recording, oldest first.
	List(ctx context.Context) ([]domain.Recording, error)
	// Get returns one recording or domain.ErrRecordingNotFound.
	Get(ctx context.Context, id domain.RecordingID) (domain.Recording, error)
	// Open returns the recording's bytes, to be closed by the caller.
	Open(ctx context.Context, id domain.RecordingID) (io.ReadSeekCloser, domain.Recording, error)
	// Delete removes a recording that is not running (ErrConflict while
	// it is).
	Delete(ctx context.Context, id domain.RecordingID) error
}

func (s *Server) recordingRoutes(r chi.Router) {
	r.Post("/devices/{id}/recordings", s.handleStartRecording)
	r.Delete("/devices/{id}/recordings", s.handleStopRecording)
	r.Get("/devices/{id}/recordings", s.handleListRecordings)
	r.Get("/recordings", s.handleListRecordings)
	r.Get("/recordings/{rid}", s.handleGetRecording)
	r.Get("/recordings/{rid}/file", s.handleDownloadRecording)
	r.Delete("/recordings/{rid}", s.handleDeleteRecording)
}

// recordingJSON is a recording as the API shows it.
type recordingJSON struct {
	domain.Recording
	DurationSeconds float64 `json:"duration_seconds"`
	URL             string  `json:"url"`
	FileURL         string  `json:"file_url"`
}

func toRecordingJSON(r domain.Recording) recordingJSON {
	base := "/api/v1/recordings/" + string(r.ID)
	return recordingJSON{Recording: r, DurationSeconds: r.Duration.Seconds(), URL: base, FileURL: base + "/file"}
}

// recordingID reads {rid}: 16 lower-case hex digits or a 400, so no
// client string ever reaches a file name.
func recordingID(r *http.Request) (domain.RecordingID, error) {
	id := domain.RecordingID(chi.URLParam(r, "rid"))
	if !id.Valid() {
		return "", badRequest("bad recording id in path (16 lower-case hex digits)")
	}
	return id, nil
}

// handleStartRecording answers POST /api/v1/devices/{id}/recordings for
// a principal who may control the device: 201 with the recording.
func (s *Server) handleStartRecording(w http.ResponseWriter, r *http.Request) {
	dev, err := pathDevice(r, domain.RoleController)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	rec, err := s.cfg.Recordings.Start(ctx, dev, principal(r).Subject)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := toRecordingJSON(rec)
	w.Header().Set("Location", out.URL)
	writeJSON(w, http.StatusCreated, out)
}

// handleStopRecording answers DELETE /api/v1/devices/{id}/recordings:
// the device's running recording ends and is returned.
func (s *Server) handleStopRecording(w http.ResponseWriter, r *http.Request) {
	dev, err := pathDevice(r, domain.RoleController)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	rec, err := s.cfg.Recordings.Stop(ctx, dev)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toRecordingJSON(rec))
}

// handleListRecordings answers GET /api/v1/recordings (every recording
// of a device the principal may see) and GET
// /api/v1/devices/{id}/recordings (one device's).
func (s *Server) handleListRecordings(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	var only domain.DeviceID
	if chi.URLParam(r, "id") != "" {
		dev, err := pathDevice(r, domain.RoleViewer)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		only = dev
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	recs, err := s.cfg.Recordings.List(ctx)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]recordingJSON, 0, len(recs))
	for _, rec := range recs {
		if (only == "" || rec.Device == only) && p.CanSee(rec.Device) {
			out = append(out, toRecordingJSON(rec))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"recordings": out})
}

// visibleRecording returns the recording named in the path if the
// principal may see its device; otherwise ErrRecordingNotFound, so a
// foreign recording's existence does not leak.
func (s *Server) visibleRecording(r *http.Request) (domain.Recording, error) {
	id, err := recordingID(r)
	if err != nil {
		return domain.Recording{}, err
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	rec, err := s.cfg.Recordings.Get(ctx, id)
	if err != nil {
		return domain.Recording{}, err
	}
	if !principal(r).CanSee(rec.Device) {
		return domain.Recording{}, domain.ErrRecordingNotFound
	}
	return rec, nil
}

func (s *Server) handleGetRecording(w http.ResponseWriter, r *http.Request) {
	rec, err := s.visibleRecording(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toRecordingJSON(rec))
}

// handleDownloadRecording answers GET /api/v1/recordings/{rid}/file with
// the MP4, honouring Range and If-Range (http.ServeContent): 206 for a
// satisfiable range, 416 for one past the end. A running recording is
// served up to its last complete fragment.
func (s *Server) handleDownloadRecording(w http.ResponseWriter, r *http.Request) {
	if _, err := s.visibleRecording(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	id, _ := recordingID(r)
	f, rec, err := s.cfg.Recordings.Open(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer func() { _ = f.Close() }()
	mod := rec.EndedAt // zero while it grows: no Last-Modified then
	w.Header().Set("Content-Type", "video/mp4")
	w.Header().Set("Content-Disposition", `attachment; filename="`+string(rec.ID)+`.mp4"`)
	w.Header().Set("Cache-Control", "no-store")
	http.ServeContent(w, r, "", mod, f)
}

// handleDeleteRecording answers DELETE /api/v1/recordings/{rid} for a
// principal who may control the recording's device: 204.
func (s *Server) handleDeleteRecording(w http.ResponseWriter, r *http.Request) {
	rec, err := s.visibleRecording(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := principal(r).CanOpen(rec.Device, domain.RoleController); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	if err := s.cfg.Recordings.Delete(ctx, rec.ID); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
