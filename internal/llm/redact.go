package llm

import (
	"context"
	"log/slog"
	"strings"
)

// redactedMark replaces a secret in errors and logs.
const redactedMark = "[REDACTED]"

// Redactor removes configured secrets (API keys) from text. The zero value
// redacts nothing.
type Redactor struct {
	r *strings.Replacer
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
	return Redactor{r: strings.NewReplacer(pairs...)}
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

// redactingHandler is a slog.Handler that removes secrets from the message
// and from every string-valued attribute (errors included) before passing
// records on.
type redactingHandler struct {
	next slog.Handler
	r    Redactor
}

// RedactLogger returns a logger whose records have secrets removed.
func RedactLogger(l *slog.Logger, r Redactor) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	if r.r == nil {
		return l
	}
	return slog.New(&redactingHandler{next: l.Handler(), r: r})
}

func (h *redactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *redactingHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *redactingHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.r.String(v.String()))
	case slog.KindGroup:
		g := v.Group()
		as := make([]any, 0, len(g))
		for _, x := range g {
			as = append(as, h.attr(x))
		}
		return slog.Group(a.Key, as...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, h.r.String(err.Error()))
		}
		return slog.String(a.Key, h.r.String(v.String()))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (h *redactingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = h.attr(a)
	}
	return &redactingHandler{next: h.next.WithAttrs(red), r: h.r}
}

func (h *redactingHandler) WithGroup(name string) slog.Handler {
	return &redactingHandler{next: h.next.WithGroup(name), r: h.r}
}
