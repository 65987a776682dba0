// Package telemetry is Catalyst's observability beyond logs and /metrics:
// OpenTelemetry tracing of HTTP requests, task nodes and model calls
// (ENABLE_PERFORMANCE_MONITORING, exported by OTLP as the standard OTEL_*
// variables say) and Sentry error reporting (SENTRY_DSN).
//
// Both leave the process, so both are scrubbed here, whatever the caller
// put in: configured secrets, bearer tokens, passwords, API keys and
// e-mail addresses are replaced before a span or an event is exported, and
// request bodies, cookies, headers and query strings are never sent.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.32.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Options say what to turn on; app maps the configuration to them.
type Options struct {
	// Tracing turns OpenTelemetry on (ENABLE_PERFORMANCE_MONITORING).
	Tracing bool
	// SentryDSN turns Sentry on (SENTRY_DSN).
	SentryDSN string
	// Version and Environment label spans and events.
	Version, Environment string
	// Redact scrubs configured secrets (and PII) from a string: the
	// logging package's Redactor. The scrubber of this package runs after
	// it in any case.
	Redact func(string) string
	Logger *slog.Logger
	// SentryTransport replaces Sentry's HTTP transport (tests).
	SentryTransport sentry.Transport
}

// Telemetry is what Setup turned on; Shutdown flushes and stops it. A nil
// *Telemetry is valid and does nothing.
type Telemetry struct {
	tp     *sdktrace.TracerProvider
	sentry bool
	scrub  *scrubber
}

// tracing is read on every request: when off, no span is even started.
var tracing atomic.Bool

// sentryOn says whether Report* send anything.
var sentryOn atomic.Bool

// activeScrubber scrubs what this package's helpers record.
var activeScrubber atomic.Pointer[scrubber]

// Setup turns tracing and Sentry on as o says. Tracing installs the global
// OpenTelemetry tracer provider, so that the instrumentation of every
// package (see StartSpan) is exported.
func Setup(ctx context.Context, o Options) (*Telemetry, error) {
	t := &Telemetry{scrub: newScrubber(o.Redact)}
	activeScrubber.Store(t.scrub)
	if o.Tracing {
		if err := checkProtocol(); err != nil {
			return nil, err
		}
		// The exporter reads OTEL_EXPORTER_OTLP_{,TRACES_}ENDPOINT,
		// _HEADERS, _TIMEOUT, _COMPRESSION and the TLS variables itself.
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("OpenTelemetry OTLP exporter: %w", err)
		}
		res, err := resource.New(ctx,
			resource.WithAttributes(semconv.ServiceName("catalyst"), semconv.ServiceVersion(o.Version),
				semconv.DeploymentEnvironmentName(o.Environment)),
			// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
			resource.WithFromEnv(),
			resource.WithTelemetrySDK(),
		)
		if err != nil && res == nil {
			return nil, fmt.Errorf("OpenTelemetry resource: %w", err)
		}
		// OTEL_TRACES_SAMPLER(_ARG) are read by the SDK itself.
		t.tp = sdktrace.NewTracerProvider(
			sdktrace.WithBatcher(scrubbingExporter{next: exp, s: t.scrub}),
			sdktrace.WithResource(res),
		)
		otel.SetTracerProvider(t.tp)
		otel.SetTextMapPropagator(propagation.TraceContext{})
		tracing.Store(true)
	}
	if o.SentryDSN != "" {
		err := sentry.Init(sentry.ClientOptions{
			Dsn:              o.SentryDSN,
			Release:          o.Version,
			Environment:      o.Environment,
			AttachStacktrace: true,
			SendDefaultPII:   false,
			BeforeSend:       t.scrub.sentryEvent,
			BeforeBreadcrumb: t.scrub.breadcrumb,
			Transport:        o.SentryTransport,
			// No source lines read from disk in the middle of a panic.
			Integrations: func(in []sentry.Integration) []sentry.Integration {
				out := in[:0]
				for _, i := range in {
					if i.Name() != "ContextifyFrames" {
						out = append(out, i)
					}
				}
				return out
			},
		})
		if err != nil {
			// The DSN is a secret: name the variable, never the value.
			t.Shutdown(ctx)
			return nil, errors.New("SENTRY_DSN is not a valid Sentry DSN (https://<key>@<host>/<project>)")
		}
		t.sentry = true
		sentryOn.Store(true)
	}
	return t, nil
}

// checkProtocol refuses an OTLP protocol this binary does not speak rather
// than exporting nothing in silence.
func checkProtocol() error {
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		v := strings.TrimSpace(os.Getenv(name))
		if v == "" {
			continue
		}
		if v != "http/protobuf" {
			return fmt.Errorf("%s=%s is not supported: Catalyst exports traces over OTLP/HTTP (http/protobuf, port 4318)", name, v)
		}
		return nil
	}
	return nil
}

// Tracing reports whether spans are exported.
func (t *Telemetry) Tracing() bool { return t != nil && t.tp != nil }

// Sentry reports whether errors are sent to Sentry.
func (t *Telemetry) Sentry() bool { return t != nil && t.sentry }

// Shutdown exports what is buffered and turns everything off.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var err error
	if t.tp != nil {
		tracing.Store(false)
		err = t.tp.Shutdown(ctx)
		otel.SetTracerProvider(noop.NewTracerProvider())
		t.tp = nil
	}
	if t.sentry {
		sentryOn.Store(false)
		timeout := 5 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		sentry.Flush(timeout)
		sentry.CurrentHub().BindClient(nil)
		t.sentry = false
	}
	return err
}

// Tracer is Catalyst's tracer (a no-op one unless tracing is on).
func Tracer() trace.Tracer {
	return otel.Tracer("github.com/catalyst/catalyst")
}
