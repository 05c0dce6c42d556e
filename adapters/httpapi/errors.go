package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"mediasvc/domain"
)

// Error codes that do not come from a domain error.
const (
	codeBodyTooLarge     = "body_too_large"
	codeUnsupportedMedia = "unsupported_media_type"
	codeInternal         = "internal"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeNotImplemented   = "not_implemented"
	codePrecondition     = "precondition_failed"
	// codeBusy: a WebSocket message found the socket's queue full.
	codeBusy = "busy"
)

// errorMapping is one row of the error table.
type errorMapping struct {
	err    error
	status int
	code   string
}

// errorTable maps domain errors to HTTP statuses and error codes. It is the
// one place where that decision is made; the first row whose error matches
// (errors.Is) wins. Choices worth stating:
//
//   - ErrTooManyCandidates is 400: retrying the same request can never
//     succeed, so it is not a 429.
//   - ErrLimitExceeded (a session quota: total, per device or per owner) is
//     429 without Retry-After: the client may try again once one of its
//     sessions ends.
//   - ErrSessionClosed is 409: the session exists but is over.
//   - ErrInputBusy is 429 input_busy: the device's input queue is full;
//     it drains as the phone runs the queued commands.
//   - ErrReserved is 423 Locked: the device is booked for someone else;
//     the body names who ("subject") and until when ("until").
//   - ErrStorageFull is 507: the recordings directory holds its maximum;
//     a new recording waits until someone deletes old ones.
//   - ErrNoCommonCodec is 406: the offer is well formed, but nothing it
//     decodes is what the device sends or a rendition this service makes;
//     the message names both.
//   - context.DeadlineExceeded (the service's own time limit on a request
//     ran out: building an answer under load, a slow store) is 503
//     "timeout" with Retry-After (timeoutRetryAfter), last, so a domain
//     error wrapped beside it wins: the request may well succeed later,
//     it is not a fault of the service.
var errorTable = []errorMapping{
	{domain.ErrSessionNotFound, http.StatusNotFound, "session_not_found"},
	{domain.ErrDeviceNotFound, http.StatusNotFound, "device_not_found"},
	{domain.ErrReservationNotFound, http.StatusNotFound, "reservation_not_found"},
	{domain.ErrRecordingNotFound, http.StatusNotFound, "recording_not_found"},
	{domain.ErrStorageFull, http.StatusInsufficientStorage, "storage_full"},
	{domain.ErrReserved, http.StatusLocked, "reserved"},
	{domain.ErrInvalidRequest, http.StatusBadRequest, "invalid_request"},
	{domain.ErrInvalidOffer, http.StatusBadRequest, "invalid_offer"},
	{domain.ErrNoCommonCodec, http.StatusNotAcceptable, "no_common_codec"},
	{domain.ErrInvalidCandidate, http.StatusBadRequest, "invalid_candidate"},
	{domain.ErrInvalidInput, http.StatusBadRequest, "invalid_input"},
	{domain.ErrTooManyCandidates, http.StatusBadRequest, "too_many_candidates"},
	{domain.ErrTokenMalformed, http.StatusUnauthorized, "token_malformed"},
	{domain.ErrTokenExpired, http.StatusUnauthorized, "token_expired"},
	{domain.ErrTokenNotYetValid, http.StatusUnauthorized, "token_not_yet_valid"},
	{domain.ErrTokenAudience, http.StatusUnauthorized, "token_wrong_audience"},
	{domain.ErrTokenIssuer, http.StatusUnauthorized, "token_wrong_issuer"},
	{domain.ErrTokenAlgorithm, http.StatusUnauthorized, "token_wrong_algorithm"},
	{domain.ErrTokenSignature, http.StatusUnauthorized, "token_invalid_signature"},
	{domain.ErrTokenUnknownKey, http.StatusUnauthorized, "token_unknown_key"},
	{domain.ErrTokenClaims, http.StatusUnauthorized, "token_invalid_claims"},
	{domain.ErrKeyExpired, http.StatusUnauthorized, "key_expired"},
	{domain.ErrUnauthorized, http.StatusUnauthorized, "unauthorized"},
	{domain.ErrForbidden, http.StatusForbidden, "forbidden"},
	{domain.ErrConflict, http.StatusConflict, "conflict"},
	{domain.ErrSessionExists, http.StatusConflict, "session_exists"},
	{domain.ErrInvalidTransition, http.StatusConflict, "invalid_transition"},
	{domain.ErrSessionClosed, http.StatusConflict, "session_closed"},
	{domain.ErrInputBusy, http.StatusTooManyRequests, "input_busy"},
	{domain.ErrRateLimited, http.StatusTooManyRequests, "rate_limited"},
	{domain.ErrLimitExceeded, http.StatusTooManyRequests, "limit_exceeded"},
	{domain.ErrDraining, http.StatusServiceUnavailable, "draining"},
	{domain.ErrUnavailable, http.StatusServiceUnavailable, "unavailable"},
	{domain.ErrDeviceUnavailable, http.StatusServiceUnavailable, "device_unavailable"},
	{context.DeadlineExceeded, http.StatusServiceUnavailable, codeTimeout},
}

// A request that ran out of its time: its code, the message the client
// gets and the Retry-After it carries.
const (
	codeTimeout       = "timeout"
	timeoutMessage    = "the service did not finish the request in time; try again"
	timeoutRetryAfter = 2 * time.Second
)

// apiError is an error the adapter itself raises with a status and code
// (bad content type, body too large); it is not a domain error.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

// errorf returns an *apiError.
func errorf(status int, code, format string, args ...any) error {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// badRequest wraps domain.ErrInvalidRequest with a message for the client.
func badRequest(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), domain.ErrInvalidRequest)
}

// classify returns the status, code and client-facing message for err. For
// 4xx the message is err's text (it describes what the client did wrong);
// for 5xx it is the matched sentinel's text or a generic one, so internal
// details never leak.
func classify(err error) (status int, code, message string) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status, ae.code, ae.message
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, codeBodyTooLarge,
			fmt.Sprintf("request body exceeds %d bytes", mbe.Limit)
	}
	for _, m := range errorTable {
		if errors.Is(err, m.err) {
			if m.err == context.DeadlineExceeded {
				return m.status, m.code, timeoutMessage
			}
			if m.status >= 500 {
				return m.status, m.code, m.err.Error()
			}
			return m.status, m.code, err.Error()
		}
	}
	return http.StatusInternalServerError, codeInternal, "internal server error"
}

// retryAfter returns the Retry-After seconds for err, rounded up and at
// least 1, and whether err carries one.
func retryAfter(err error) (int, bool) {
	var rl *domain.RateLimitError
	var d time.Duration
	switch {
	case errors.As(err, &rl):
		d = rl.RetryAfter
	case errors.Is(err, context.DeadlineExceeded):
		if st, _, _ := classify(err); st != http.StatusServiceUnavailable {
			return 0, false // a domain error beside it decided the status
		}
		d = timeoutRetryAfter
	default:
		return 0, false
	}
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s, true
}

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Subject and Until say who holds a reservation and until when (423).
	Subject string     `json:"subject,omitempty"`
	Until   *time.Time `json:"until,omitempty"`
}

// writeError replies with err mapped through the error table. 5xx errors
// are logged here (and only here); 4xx are the client's business.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := classify(err)
	if sec, ok := retryAfter(err); ok {
		w.Header().Set("Retry-After", strconv.Itoa(sec))
	}
	if status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mediasvc"`)
	}
	if status >= 500 {
		s.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.String("request_id", requestID(r)), slog.Int("status", status),
			slog.Any("err", err))
	}
	detail := errorDetail{Code: code, Message: msg}
	fillReserved(&detail, err)
	writeJSON(w, status, errorBody{Error: detail})
}

// writeJSON writes v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client may have gone; nothing to do about it
}

// requireContentType checks that r's media type is want (parameters such as
// charset are allowed) and returns a 415 *apiError otherwise.
func requireContentType(r *http.Request, want string) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || !strings.EqualFold(mt, want) {
		if ct == "" {
			ct = "none"
		}
		return errorf(http.StatusUnsupportedMediaType, codeUnsupportedMedia,
			"content type must be %s, got %s", want, ct)
	}
	return nil
}

// decodeJSON decodes exactly one JSON object from r's body (at most limit
// bytes) into v. Unknown fields, trailing data, a wrong content type and an
// oversized body are errors (400, 400, 415, 413).
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if err := requireContentType(r, "application/json"); err != nil {
		return err
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("request body must hold a single JSON object")
	}
	return nil
}

// jsonError turns a json decoding error into a client-facing one.
func jsonError(err error) error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, io.EOF):
		return badRequest("request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: unexpected end of input")
	case errors.As(err, &se):
		return badRequest("malformed JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		if te.Field != "" {
			return badRequest("field %q must be %s", te.Field, te.Type)
		}
		return badRequest("body must be a JSON %s", te.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return badRequest("malformed JSON: %v", err)
}
