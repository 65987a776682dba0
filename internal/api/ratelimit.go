package api

import (
	"log/slog"
	"net/http"

	"github.com/catalyst/catalyst/internal/ratelimit"
	"github.com/catalyst/catalyst/internal/tasks"
)

// rateLimitUser keys the per-user limit: signed-in accounts only. The
// server token and the local user are one operator, limited per client.
func rateLimitUser(r *http.Request) string {
	if a := actor(r.Context()); a.Kind == tasks.ActorUser && a.ID != "" {
		return a.ID
	}
	return ""
}

// rateLimited records a refused request: a warning in the log (scrubbed of
// PII by the logger), a metric by scope, and the audit hook.
func (s *server) rateLimited(r *http.Request, ev ratelimit.Event) {
	s.metrics.rateLimited(ev.Scope)
	attrs := []slog.Attr{
		slog.String("scope", ev.Scope),
		slog.String("route", ev.Route),
		slog.String("client", ev.Client),
		slog.Duration("retry_after", ev.RetryAfter),
	}
	if ev.User != "" {
		attrs = append(attrs, slog.String("user", ev.User))
	}
	if ev.Email != "" {
		attrs = append(attrs, slog.String("email", ev.Email), slog.Int("failures", ev.Failures))
	}
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "rate limited", attrs...)
	if s.limited != nil {
		s.limited(r, ev)
	}
}
