package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/go-chi/chi/v5"
)

type ctxKey int

const requestIDKey ctxKey = iota

// maxRequestIDLen bounds an incoming X-Request-Id we are willing to echo.
const maxRequestIDLen = 64

// requestID gives each request an id: the client's X-Request-Id when it is
// short and printable, else a random one. It is echoed in the response.
func (s *Server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, &reqInfo{id: id})))
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// reqInfo is what the middleware learns about a request as it goes: its id,
// and the subject authentication found (for the access log).
type reqInfo struct {
	id      string
	subject string
}

// infoOf returns r's reqInfo, nil outside the middleware.
func infoOf(r *http.Request) *reqInfo {
	ri, _ := r.Context().Value(requestIDKey).(*reqInfo)
	return ri
}

// requestID returns r's request id, or "" outside the middleware.
func requestID(r *http.Request) string {
	if ri := infoOf(r); ri != nil {
		return ri.id
	}
	return ""
}

// statusRecorder remembers the status a handler wrote. Unwrap lets
// http.ResponseController and the WebSocket upgrade reach the Hijacker.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush forwards to the underlying writer when it can flush.
func (w *statusRecorder) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap returns the wrapped writer.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe records status and duration, logs the request at debug and calls
// Config.Observe with the chi route pattern.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		dur := time.Since(start)
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil {
			if p := rc.RoutePattern(); p != "" {
				route = p
			}
		}
		s.recordRequest(r.Context(), route, r.Method, status, dur)
		if s.cfg.Observe != nil {
			s.cfg.Observe(route, r.Method, status, dur)
		}
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "http request",
			slog.String("method", r.Method), slog.String("route", route),
			slog.String("path", r.URL.Path), slog.Int("status", status),
			slog.Duration("dur", dur), slog.String("request_id", requestID(r)),
			slog.String("subject", subjectOf(r)), slog.String("remote", r.RemoteAddr))
	})
}

// recoverer turns a panic in a handler into a logged error and a 500 JSON
// reply, so one bad request never takes the server down.
// http.ErrAbortHandler is re-panicked, as net/http expects.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
				panic(v)
			}
			route := ""
			if rc := chi.RouteContext(r.Context()); rc != nil {
				route = rc.RoutePattern()
			}
			s.log.LogAttrs(r.Context(), slog.LevelError, "panic in handler",
				slog.Any("panic", v), slog.String("method", r.Method),
				slog.String("route", route), slog.String("path", r.URL.Path),
				slog.String("request_id", requestID(r)),
				slog.String("stack", string(debug.Stack())))
			if rec.status == 0 {
				writeJSON(rec, http.StatusInternalServerError,
					errorBody{Error: errorDetail{Code: codeInternal, Message: "internal server error"}})
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// subjectOf is the subject authentication found for r, "" if none ran.
func subjectOf(r *http.Request) string {
	if ri := infoOf(r); ri != nil {
		return ri.subject
	}
	return ""
}
