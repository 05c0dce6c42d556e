package httpapi

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"

	"mediasvc/domain"
)

// handleScreenshot answers GET /api/v1/devices/{id}/screenshot with a PNG
// of the device's screen, for anyone who may view it.
func (s *Server) handleScreenshot(w http.ResponseWriter, r *http.Request) {
	dev, err := pathDevice(r, domain.RoleViewer)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	png, err := s.svc.Screenshot(ctx, dev)
	if err != nil {
		if errors.Is(err, domain.ErrUnavailable) && !errors.Is(err, domain.ErrDeviceUnavailable) {
			// Say what is missing without leaking the server's paths;
			// the log has the detail.
			s.log.Warn("screenshot unavailable", "device_id", dev, "err", err)
			err = errorf(http.StatusServiceUnavailable, "unavailable",
				"no screenshot of %.100q: this server cannot decode the device's picture (ffmpeg missing, failing or too slow)", dev)
		}
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(png)))
	_, _ = w.Write(png)
}

// pathDevice is the device named by the path's {id}, when the request's
// principal may open it in role; errors as pathID and CanOpen.
func pathDevice(r *http.Request, role domain.Role) (domain.DeviceID, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return "", err
	}
	if err := principal(r).CanOpen(domain.DeviceID(id), role); err != nil {
		return "", err
	}
	return domain.DeviceID(id), nil
}

// uploadResponse is the body of a successful upload.
type uploadResponse struct {
	Path      string `json:"path,omitempty"`
	Installed bool   `json:"installed,omitempty"`
	Bytes     int64  `json:"bytes"`
}

// handleUpload answers POST /api/v1/devices/{id}/files (apk false) and
// …/apps (apk true): the raw body, streamed to the device as it arrives,
// with its Content-Length (required; at most Config.MaxUploadBytes, else
// 413) and, for files, its name from ?name= or Content-Disposition's
// filename. Only a principal who may control the device may upload.
func (s *Server) handleUpload(apk bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		dev, err := pathDevice(r, domain.RoleController)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		size := r.ContentLength
		switch {
		case size < 0:
			s.writeError(w, r, errorf(http.StatusLengthRequired, "length_required", "an upload needs its Content-Length"))
			return
		case size == 0:
			s.writeError(w, r, badRequest("empty upload"))
			return
		case size > s.cfg.MaxUploadBytes:
			s.writeError(w, r, errorf(http.StatusRequestEntityTooLarge, codeBodyTooLarge, "upload of %d bytes exceeds %d", size, s.cfg.MaxUploadBytes))
			return
		}
		body := http.MaxBytesReader(w, r.Body, size)
		ctx := r.Context() // an upload takes as long as its body does
		if apk {
			err := s.guardUpload(r, dev, domain.AuditInstall, fmt.Sprintf("%d bytes", size), func() error {
				return s.svc.InstallAPK(ctx, dev, body, size)
			})
			if err != nil {
				s.writeError(w, r, uploadError(err))
				return
			}
			writeJSON(w, http.StatusOK, uploadResponse{Installed: true, Bytes: size})
			return
		}
		name := r.URL.Query().Get("name")
		if name == "" {
			if _, params, err := mime.ParseMediaType(r.Header.Get("Content-Disposition")); err == nil {
				name = params["filename"]
			}
		}
		if name == "" {
			s.writeError(w, r, badRequest("a file upload needs a name (?name= or Content-Disposition filename)"))
			return
		}
		var path string
		err = s.guardUpload(r, dev, domain.AuditFilePush, fmt.Sprintf("%q, %d bytes", name, size), func() (err error) {
			path, err = s.svc.PushFile(ctx, dev, name, body, size)
			return err
		})
		if err != nil {
			s.writeError(w, r, uploadError(err))
			return
		}
		writeJSON(w, http.StatusCreated, uploadResponse{Path: path, Bytes: size})
	}
}

// guardUpload runs do, an upload to device d, under the farm's rules
// when there is a farm: a reservation for another subject refuses it
// (423), so does a device somebody else controls (403), and the attempt
// and its outcome go to the audit trail. Without a farm the role check
// already made suffices.
func (s *Server) guardUpload(r *http.Request, d domain.DeviceID, action domain.AuditAction, detail string, do func() error) error {
	if s.cfg.Farm == nil {
		return do()
	}
	return s.cfg.Farm.GuardUse(r.Context(), s.actor(r, d), d, action, detail, func() error { return uploadError(do()) })
}

// uploadError keeps a body that broke off from reading as the device's
// fault.
func uploadError(err error) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return fmt.Errorf("upload longer than its Content-Length: %w", domain.ErrInvalidRequest)
	}
	return err
}
