package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func sentryText(v any) string { return fmt.Sprint(v) }

// noopSpan is what the helpers return while tracing is off.
var noopSpan = trace.SpanFromContext(context.Background())

// StartRequest begins the server span of r, continuing the caller's trace
// (W3C traceparent). Its name is the method until EndRequest knows the
// route; no URL, header or address is recorded.
func StartRequest(r *http.Request) (*http.Request, trace.Span) {
	if !tracing.Load() {
		return r, noopSpan
	}
	ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	m := method(r.Method)
	ctx, span := Tracer().Start(ctx, m, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", m)))
	return r.WithContext(ctx), span
}

// EndRequest names the span after pattern, the route template that served
// the request ("GET /api/tasks/{id}"; "" when none did), and ends it.
func EndRequest(span trace.Span, pattern string, status int) {
	if !span.IsRecording() {
		return
	}
	route := pattern
	if _, p, ok := strings.Cut(pattern, " "); ok {
		route = p
	}
	if route != "" {
		span.SetName(pattern)
		span.SetAttributes(attribute.String("http.route", route))
	}
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// method bounds the method names recorded: clients choose them.
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// StartTask begins the span of one run of a task (until it ends, is
// cancelled or changes hands); its nodes' spans are its children.
func StartTask(ctx context.Context, taskID string) (context.Context, trace.Span) {
	if !tracing.Load() {
		return ctx, noopSpan
	}
	return Tracer().Start(ctx, "task", trace.WithNewRoot(), trace.WithAttributes(attribute.String("catalyst.task.id", taskID)))
}

// StartNode begins the span of one node run of a task.
func StartNode(ctx context.Context, taskID, kind, node, agent string, iteration int) (context.Context, trace.Span) {
	if !tracing.Load() {
		return ctx, noopSpan
	}
	return Tracer().Start(ctx, "node "+node, trace.WithAttributes(
		attribute.String("catalyst.task.id", taskID),
		attribute.String("catalyst.task.kind", kind),
		attribute.String("catalyst.node", node),
		attribute.String("catalyst.agent", agent),
		attribute.Int("catalyst.iteration", iteration),
	))
}

// StartModelCall begins the span of one model call (the whole fallback
// chain) of agent. Prompts and answers are never recorded.
func StartModelCall(ctx context.Context, agent string) (context.Context, trace.Span) {
	if !tracing.Load() {
		return ctx, noopSpan
	}
	return Tracer().Start(ctx, "llm "+agent, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("catalyst.agent", agent)))
}

// ModelResult is what a model-call span records of the answer.
type ModelResult struct {
	Provider, Model           string
	InputTokens, OutputTokens int64
	Cost                      float64
	StopReason                string
	// Failure summarises a failed call without its text ("HTTP 429"):
	// providers' error messages may quote the prompt.
	Failure string
}

// EndModelCall records who answered, tokens and cost, and ends the span.
func EndModelCall(span trace.Span, res ModelResult, err error) {
	if !span.IsRecording() {
		return
	}
	if res.Provider != "" {
		span.SetAttributes(
			attribute.String("gen_ai.system", res.Provider),
			attribute.String("gen_ai.response.model", res.Model),
			attribute.Int64("gen_ai.usage.input_tokens", res.InputTokens),
			attribute.Int64("gen_ai.usage.output_tokens", res.OutputTokens),
			attribute.Float64("catalyst.cost_usd", res.Cost),
		)
		if res.StopReason != "" {
			span.SetAttributes(attribute.StringSlice("gen_ai.response.finish_reasons", []string{res.StopReason}))
		}
	}
	if err != nil && res.Failure != "" {
		span.SetStatus(codes.Error, scrubString(res.Failure))
		span.End()
		return
	}
	End(span, err)
}

// End ends span, marking it failed when err is not nil. The error's text
// is not recorded: a node's or a model's error may quote the prompt or
// generated code, which stay in the task's own events. What is recorded is
// the kind of failure.
func End(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, errorKind(err))
	}
	span.End()
}

func errorKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "failed"
}

// ReportPanic sends a recovered panic of an HTTP handler to Sentry: the
// method, the route template, the path without query string, the trace it
// belongs to and the stack. No header, cookie or body.
func ReportPanic(r *http.Request, pattern string, v any) {
	if !sentryOn.Load() {
		return
	}
	hub := sentry.CurrentHub().Clone()
	hub.WithScope(func(scope *sentry.Scope) {
		scope.SetTag("route", pattern)
		scope.SetLevel(sentry.LevelFatal)
		addTrace(r.Context(), scope)
		u := *r.URL
		u.RawQuery, u.User, u.Fragment = "", nil, ""
		scope.AddEventProcessor(func(ev *sentry.Event, _ *sentry.EventHint) *sentry.Event {
			ev.Request = &sentry.Request{Method: method(r.Method), URL: u.String()}
			return ev
		})
		// An error value makes an exception event with the stack (a
		// string would make a bare message).
		err, ok := v.(error)
		if !ok {
			err = fmt.Errorf("panic: %v", v)
		}
		hub.RecoverWithContext(r.Context(), err)
	})
}

// ReportError sends an error (an internal error answered 500) to Sentry.
func ReportError(ctx context.Context, what string, err error) {
	if !sentryOn.Load() || err == nil {
		return
	}
	hub := sentry.CurrentHub().Clone()
	hub.WithScope(func(scope *sentry.Scope) {
		if what != "" {
			scope.SetTag("what", what)
		}
		addTrace(ctx, scope)
		hub.CaptureException(err)
	})
}

// addTrace links a Sentry event to the OpenTelemetry trace it happened in.
func addTrace(ctx context.Context, scope *sentry.Scope) {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		scope.SetTag("trace_id", sc.TraceID().String())
	}
}
