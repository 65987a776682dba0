package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/catalyst/catalyst/internal/domain"
)

// problemContentType is the RFC 9457 media type of every error response.
const problemContentType = "application/problem+json"

// newProblem returns the RFC 9457 body huma also uses for its own errors
// (validation, malformed JSON, body too large), so every error has one shape.
func newProblem(status int, detail string) *huma.ErrorModel {
	return &huma.ErrorModel{
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
	}
}

// writeProblem writes an RFC 9457 problem response from a plain handler.
func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", problemContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(newProblem(status, detail))
}

// statusOf maps the domain's sentinel errors to HTTP statuses: the one place
// where that mapping lives. Anything else is a server error.
func statusOf(err error) int {
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, domain.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, domain.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, context.Canceled):
		return 499 // client closed request; never seen by the client
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// apiError converts an error of the store or runner into a huma status error.
// what names the thing operated on ("project abc"), for a message that says
// what is wrong; server errors are logged and answered without internals.
func (s *server) apiError(ctx context.Context, what string, err error) error {
	status := statusOf(err)
	var detail string
	switch status {
	case http.StatusNotFound:
		detail = what + " not found"
	case http.StatusInternalServerError, http.StatusServiceUnavailable:
		s.log.ErrorContext(ctx, "request failed", slog.String("what", what), slog.Any("err", err))
		detail = "internal error while handling " + what + "; see the server log"
	default:
		detail = what + ": " + err.Error()
	}
	return newProblem(status, detail)
}

// writeError is apiError for plain handlers.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, what string, err error) {
	var m *huma.ErrorModel
	if !errors.As(s.apiError(r.Context(), what, err), &m) {
		m = newProblem(http.StatusInternalServerError, "internal error")
	}
	writeProblem(w, m.Status, m.Detail)
}
