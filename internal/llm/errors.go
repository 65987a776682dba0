package llm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// APIError is a provider failure in a form every layer above the providers
// understands: providers convert their SDK's errors to it so that retries,
// the circuit breaker and fallback treat all vendors alike.
type APIError struct {
	Provider string
	// StatusCode is the HTTP status, or 0 when no response arrived
	// (connection refused or reset, timeout, a broken stream).
	StatusCode int
	// RetryAfter is the server's Retry-After (or retry-after-ms) hint; 0 if none.
	RetryAfter time.Duration
	// Message is the vendor's human message, when it gave one.
	Message string
	// Err is the underlying error.
	Err error
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	} else if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *APIError) Unwrap() error { return e.Err }

// Retryable reports whether trying the same request again may succeed:
// 408, 409, 429, 5xx (529 "overloaded" included) and failures without a
// response (connection reset, timeout). 400/401/403/404 and other 4xx are not.
func (e *APIError) Retryable() bool {
	switch {
	case e.StatusCode == 0:
		return true
	case e.StatusCode == http.StatusRequestTimeout,
		e.StatusCode == http.StatusConflict,
		e.StatusCode == http.StatusTooManyRequests:
		return true
	case e.StatusCode >= 500:
		return true
	}
	return false
}

// IsRetryable reports whether err is worth retrying. Context cancellation
// and deadline errors of the caller's ctx are not: the caller gave up.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Retryable()
	}
	return isTransient(err)
}

// isTransient recognises transport failures that SDKs return unwrapped.
func isTransient(err error) bool {
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return false
}

// TransportError wraps an error that came without an HTTP response into an
// APIError (StatusCode 0). Context errors pass through unchanged so that
// cancellation stays recognisable.
func TransportError(provider string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return err
	}
	return &APIError{Provider: provider, Err: err}
}

// RetryAfter parses the Retry-After family of headers: retry-after-ms
// (OpenAI, Anthropic), Retry-After in seconds or as an HTTP date. It
// returns 0 when none is usable.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	if h == nil {
		return 0
	}
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// SchemaError is returned when a model's answer does not satisfy the
// request's JSON Schema, even after the repair round.
type SchemaError struct {
	// Violation names what is wrong, e.g. "at '/stories/0': missing property 'title'".
	Violation string
}

func (e *SchemaError) Error() string {
	return "llm: answer does not satisfy the schema: " + e.Violation
}
