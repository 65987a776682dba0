package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/tasks"
	"github.com/catalyst/catalyst/internal/telemetry"
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
	_ = json.NewEncoder(w).Encode(capProblem(newProblem(status, detail)))
}

// An error answer names what was wrong; it never repeats the whole invalid
// input, which may be hundreds of KB (huma puts the offending value, even the
// whole unparseable body, into each error detail).
const (
	maxEchoedValue  = 200  // bytes of an offending value quoted back
	maxProblemText  = 1024 // bytes of a detail, message or location
	maxErrorDetails = 20   // error details listed
)

// clip cuts s after max bytes at a rune boundary and says how long it was.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d bytes, cut)", len(s))
}

// capProblem bounds what a problem body repeats of the request.
func capProblem(m *huma.ErrorModel) *huma.ErrorModel {
	m.Detail = clip(m.Detail, maxProblemText)
	if len(m.Errors) > maxErrorDetails {
		m.Errors = append(m.Errors[:maxErrorDetails:maxErrorDetails], &huma.ErrorDetail{
			Message: fmt.Sprintf("%d more errors not listed", len(m.Errors)-maxErrorDetails),
		})
	}
	for _, d := range m.Errors {
		if d == nil {
			continue
		}
		d.Message = clip(d.Message, maxProblemText)
		d.Location = clip(d.Location, maxProblemText)
		switch v := d.Value.(type) {
		case nil, bool, int, int64, float64:
		case string:
			d.Value = clip(v, maxEchoedValue)
		default:
			b, err := json.Marshal(v)
			if err != nil {
				d.Value = nil
			} else if len(b) > maxEchoedValue {
				d.Value = clip(string(b), maxEchoedValue)
			}
		}
	}
	return m
}

// capProblems is a huma transformer applying capProblem to every error body,
// huma's own (validation, unparseable JSON) included.
func capProblems(_ huma.Context, _ string, v any) (any, error) {
	if m, ok := v.(*huma.ErrorModel); ok {
		return capProblem(m), nil
	}
	return v, nil
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
	case errors.Is(err, domain.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, tasks.ErrQueueFull):
		return http.StatusTooManyRequests
	case errors.Is(err, tasks.ErrBudgetSpent):
		// Not 429: waiting does not help, only a larger budget does.
		return http.StatusPaymentRequired
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
	what = clip(what, maxEchoedValue) // it names the thing by ids from the request
	status := statusOf(err)
	var detail string
	switch status {
	case http.StatusNotFound:
		detail = what + " not found"
	case http.StatusInternalServerError, http.StatusServiceUnavailable:
		s.log.ErrorContext(ctx, "request failed", slog.String("what", what), slog.Any("err", err))
		if status == http.StatusInternalServerError {
			telemetry.ReportError(ctx, what, err)
		}
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
