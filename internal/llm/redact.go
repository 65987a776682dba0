package llm

import (
	"log/slog"
	"strings"

	"github.com/catalyst/catalyst/internal/logging"
)

// redactedMark replaces a secret in errors and logs.
const redactedMark = "[redacted]" // as in internal/logging

// Redactor removes configured secrets (API keys) from text. The zero value
// redacts nothing.
type Redactor struct {
	r       *strings.Replacer
	secrets []string
}

// NewRedactor redacts every non-empty secret of at least 6 characters
// (shorter strings would mangle ordinary text and are not real keys).
func NewRedactor(secrets ...string) Redactor {
	var pairs []string
	seen := map[string]bool{}
	for _, s := range secrets {
		s = strings.TrimSpace(s)
		if len(s) < 6 || seen[s] {
			continue
		}
		seen[s] = true
		pairs = append(pairs, s, redactedMark)
	}
	if len(pairs) == 0 {
		return Redactor{}
	}
	keys := make([]string, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		keys = append(keys, pairs[i])
	}
	return Redactor{r: strings.NewReplacer(pairs...), secrets: keys}
}

// String redacts s.
func (r Redactor) String(s string) string {
	if r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// Error returns err with secrets removed from its message. errors.Is/As
// still see the original chain, whose messages are not redacted: never log
// an unwrapped cause.
func (r Redactor) Error(err error) error {
	if err == nil || r.r == nil {
		return err
	}
	msg := err.Error()
	red := r.r.Replace(msg)
	if red == msg {
		return err
	}
	return &redactedError{msg: red, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

// Unwrap keeps errors.Is / errors.As working (APIError, SchemaError,
// context errors) for the layers above.
func (e *redactedError) Unwrap() error { return e.err }

// RedactLogger returns a logger whose records have secrets removed.
func RedactLogger(l *slog.Logger, r Redactor) *slog.Logger {
	return logging.Wrap(l, r.secrets)
}
