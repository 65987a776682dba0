// Package logging builds Catalyst's slog logger: level from LOG_LEVEL, and a
// handler that scrubs configured secrets from every message and attribute,
// so an API key never reaches a log line whatever code logs it.
package logging

import (
	"context"
	"io"
	"log/slog"
	"strings"
)

// Level maps the guide's LOG_LEVEL names to slog levels.
func Level(name string) slog.Level {
	switch strings.ToUpper(name) {
	case "DEBUG":
		return slog.LevelDebug
	case "WARNING", "WARN":
		return slog.LevelWarn
	case "ERROR":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// Redactor replaces secret values with "[redacted]" and, when asked, PII.
type Redactor struct {
	r   *strings.Replacer
	pii bool
}

// WithPII returns a copy of r that also redacts PII (ENABLE_PII_REDACTION).
func (r *Redactor) WithPII(on bool) *Redactor {
	c := *r
	c.pii = on
	return &c
}

// NewRedactor returns a redactor for the given secrets; empty and very short
// values are ignored (they would mangle ordinary text).
func NewRedactor(secrets []string) *Redactor {
	var pairs []string
	for _, s := range secrets {
		if len(s) >= 4 {
			pairs = append(pairs, s, "[redacted]")
		}
	}
	if len(pairs) == 0 {
		return &Redactor{}
	}
	return &Redactor{r: strings.NewReplacer(pairs...)}
}

// Redact scrubs s.
func (r *Redactor) Redact(s string) string {
	if r == nil {
		return s
	}
	if r.r != nil {
		s = r.r.Replace(s)
	}
	if r.pii {
		s = RedactPII(s)
	}
	return s
}

func (r *Redactor) active() bool { return r != nil && (r.r != nil || r.pii) }

// New returns a text logger writing to w at level, scrubbing secrets.
func New(w io.Writer, level string, secrets []string) *slog.Logger {
	return NewWith(w, level, NewRedactor(secrets))
}

// NewWith returns a text logger writing to w at level, scrubbing what r does.
func NewWith(w io.Writer, level string, r *Redactor) *slog.Logger {
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: Level(level)})
	return slog.New(&redactingHandler{next: h, r: r})
}

// Wrap returns l with the secrets scrubbed from every record it writes; a
// nil l discards.
func Wrap(l *slog.Logger, secrets []string) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	r := NewRedactor(secrets)
	if r.r == nil {
		return l
	}
	return slog.New(&redactingHandler{next: l.Handler(), r: r})
}

type redactingHandler struct {
	next slog.Handler
	r    *Redactor
}

func (h *redactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *redactingHandler) Handle(ctx context.Context, rec slog.Record) error {
	if !h.r.active() {
		return h.next.Handle(ctx, rec)
	}
	out := slog.NewRecord(rec.Time, rec.Level, h.r.Redact(rec.Message), rec.PC)
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
		return slog.String(a.Key, h.r.Redact(v.String()))
	case slog.KindGroup:
		attrs := v.Group()
		out := make([]any, len(attrs))
		for i, g := range attrs {
			out[i] = h.attr(g)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, h.r.Redact(err.Error()))
		}
		return slog.String(a.Key, h.r.Redact(v.String()))
	}
	return a
}

func (h *redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = h.attr(a)
	}
	return &redactingHandler{next: h.next.WithAttrs(red), r: h.r}
}

func (h *redactingHandler) WithGroup(name string) slog.Handler {
	return &redactingHandler{next: h.next.WithGroup(name), r: h.r}
}
