package telemetry

import (
	"context"
	"net/url"
	"regexp"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/catalyst/catalyst/internal/logging"
)

// Credentials that are not in the configuration (users' passwords, API
// keys and session tokens; a provider key pasted into a prompt) still have
// recognisable shapes. These patterns replace the value and keep the name,
// so that a reader knows what was there.
var (
	bearerPattern = regexp.MustCompile(`(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}`)
	assignPattern = regexp.MustCompile(`(?i)\b((?:access|refresh|session|id|auth|api|bearer)[_-]?(?:token|key)|password|passwd|secret|client[_-]?secret|apikey|api[_-]?key|authorization|cookie|dsn)(["']?\s*[:=]\s*["']?)[^\s"'&,;}]+`)
	keyPattern    = regexp.MustCompile(`\b(sk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{30,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|xox[abpr]-[A-Za-z0-9-]{10,})`)
	userinfoURL   = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+(:[^/\s@]*)?@`)
)

type scrubber struct {
	redact func(string) string
}

func newScrubber(redact func(string) string) *scrubber { return &scrubber{redact: redact} }

// String scrubs one string: configured secrets (the caller's Redactor),
// then credential shapes and PII, whatever ENABLE_PII_REDACTION says (it
// governs the local logs; nothing personal leaves the process).
func (s *scrubber) String(v string) string {
	if v == "" {
		return v
	}
	if s != nil && s.redact != nil {
		v = s.redact(v)
	}
	v = bearerPattern.ReplaceAllString(v, "$1 [redacted]")
	v = assignPattern.ReplaceAllString(v, "$1$2[redacted]")
	v = keyPattern.ReplaceAllString(v, "[redacted]")
	v = userinfoURL.ReplaceAllString(v, "$1[redacted]@")
	return logging.RedactPII(v)
}

func scrubString(v string) string { return activeScrubber.Load().String(v) }

// scrubbingExporter scrubs every span on its way out: names, attributes,
// status messages, events and links. Spans are built by our own helpers,
// which record no request data; this is the net under them.
type scrubbingExporter struct {
	next sdktrace.SpanExporter
	s    *scrubber
}

func (e scrubbingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, sp := range spans {
		stub := tracetest.SpanStubFromReadOnlySpan(sp)
		stub.Name = e.s.String(stub.Name)
		stub.Attributes = e.attrs(stub.Attributes)
		stub.Status.Description = e.s.String(stub.Status.Description)
		for j := range stub.Events {
			stub.Events[j].Name = e.s.String(stub.Events[j].Name)
			stub.Events[j].Attributes = e.attrs(stub.Events[j].Attributes)
		}
		for j := range stub.Links {
			stub.Links[j].Attributes = e.attrs(stub.Links[j].Attributes)
		}
		out[i] = stub.Snapshot()
	}
	return e.next.ExportSpans(ctx, out)
}

func (e scrubbingExporter) attrs(in []attribute.KeyValue) []attribute.KeyValue {
	out := make([]attribute.KeyValue, len(in))
	for i, kv := range in {
		switch kv.Value.Type() {
		case attribute.STRING:
			out[i] = attribute.String(string(kv.Key), e.s.String(kv.Value.AsString()))
		case attribute.STRINGSLICE:
			vs := kv.Value.AsStringSlice()
			for j := range vs {
				vs[j] = e.s.String(vs[j])
			}
			out[i] = attribute.StringSlice(string(kv.Key), vs)
		default:
			out[i] = kv
		}
	}
	return out
}

func (e scrubbingExporter) Shutdown(ctx context.Context) error { return e.next.Shutdown(ctx) }

// sentryEvent is Sentry's BeforeSend: what a Sentry server receives. The
// request keeps its method and URL without query string; bodies, cookies,
// headers and the environment go; the user keeps only an opaque id; every
// text left is scrubbed.
func (s *scrubber) sentryEvent(ev *sentry.Event, _ *sentry.EventHint) *sentry.Event {
	if ev == nil {
		return nil
	}
	if ev.Request != nil {
		r := &sentry.Request{Method: ev.Request.Method}
		if u, err := url.Parse(ev.Request.URL); err == nil {
			u.RawQuery, u.Fragment, u.User = "", "", nil
			r.URL = s.String(u.String())
		}
		ev.Request = r
	}
	ev.User = sentry.User{ID: s.String(ev.User.ID)}
	ev.Message = s.String(ev.Message)
	ev.Transaction = s.String(ev.Transaction)
	ev.ServerName = s.String(ev.ServerName)
	for i := range ev.Exception {
		ev.Exception[i].Value = s.String(ev.Exception[i].Value)
		ev.Exception[i].Type = s.String(ev.Exception[i].Type)
	}
	for i := range ev.Threads {
		ev.Threads[i].Name = s.String(ev.Threads[i].Name)
	}
	for k, v := range ev.Tags {
		ev.Tags[k] = s.String(v)
	}
	for name, c := range ev.Contexts {
		for k, v := range c {
			c[k] = s.any(v)
		}
		ev.Contexts[name] = c
	}
	var crumbs []*sentry.Breadcrumb
	for _, b := range ev.Breadcrumbs {
		if b = s.breadcrumb(b, nil); b != nil {
			crumbs = append(crumbs, b)
		}
	}
	ev.Breadcrumbs = crumbs
	if ev.Logger != "" {
		ev.Logger = s.String(ev.Logger)
	}
	return ev
}

// breadcrumb is Sentry's BeforeBreadcrumb: messages scrubbed, data dropped
// (HTTP breadcrumbs carry URLs with query strings).
func (s *scrubber) breadcrumb(b *sentry.Breadcrumb, _ *sentry.BreadcrumbHint) *sentry.Breadcrumb {
	if b == nil {
		return nil
	}
	b.Message = s.String(b.Message)
	b.Data = nil
	return b
}

// any scrubs strings; anything else is reduced to its scrubbed text form,
// since a struct could hold a secret in any field.
func (s *scrubber) any(v any) any {
	switch x := v.(type) {
	case nil, bool, int, int64, float64, uint64:
		return x
	case string:
		return s.String(x)
	default:
		return s.String(sentryText(x))
	}
}
