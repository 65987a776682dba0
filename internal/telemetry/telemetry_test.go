package telemetry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/logging"
	"github.com/catalyst/catalyst/internal/telemetry"
	"github.com/catalyst/catalyst/internal/telemetry/telemetrytest"
)

const (
	apiToken    = "tok-SERVERTOKEN-5f2d9c0b7e"
	providerKey = "sk-ant-api03-PROVIDERKEY0123456789abcdef"
	email       = "alice.victim@example.com"
	password    = "hunter2-PASSWORD"
	prompt      = "PROMPT-MARKER build a todo app"
)

var secrets = []string{apiToken, providerKey, email, password, prompt, "PASSWORD", "PROVIDERKEY", "SERVERTOKEN"}

func assertClean(t *testing.T, what string, raw []byte) {
	t.Helper()
	if len(raw) == 0 {
		t.Fatalf("%s: nothing received", what)
	}
	for _, s := range secrets {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("%s carries %q", what, s)
		}
	}
}

func setup(t *testing.T, o telemetry.Options) *telemetry.Telemetry {
	t.Helper()
	o.Redact = logging.NewRedactor([]string{apiToken, providerKey}).Redact
	o.Version, o.Environment = "test-version", "test"
	tel, err := telemetry.Setup(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	return tel
}

func TestTraceExportedByOTLPWithoutSecrets(t *testing.T) {
	col := telemetrytest.NewCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
	t.Setenv("OTEL_SERVICE_NAME", "catalyst-under-test")
	tel := setup(t, telemetry.Options{Tracing: true})

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, span := telemetry.StartRequest(r)
		ctx, node := telemetry.StartNode(r.Context(), "task-1", "build", "planner", "planner", 0)
		_, call := telemetry.StartModelCall(ctx, "planner")
		telemetry.EndModelCall(call, telemetry.ModelResult{Provider: "anthropic", Model: "claude-x", InputTokens: 12, OutputTokens: 34, Cost: 0.5, StopReason: "end_turn", Failure: "HTTP 401"},
			fmt.Errorf("provider said: invalid x-api-key %s for %s (prompt %q, password=%s)", providerKey, email, prompt, password))
		telemetry.End(node, errors.New("Authorization: Bearer "+apiToken))
		w.WriteHeader(http.StatusTeapot)
		telemetry.EndRequest(span, "GET /api/tasks/{id}", http.StatusTeapot)
	}))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/api/tasks/abc-123-RAWID?access_token="+apiToken, nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Cookie", "session="+apiToken)
	req.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	spans := col.Spans()
	by := map[string]telemetrytest.Span{}
	for _, s := range spans {
		by[s.Name] = s
	}
	h, n, m := by["GET /api/tasks/{id}"], by["node planner"], by["llm planner"]
	if h.Name == "" || n.Name == "" || m.Name == "" {
		t.Fatalf("spans %+v", spans)
	}
	if h.TraceID != "0af7651916cd43dd8448eb211c80319c" || h.Kind != "SPAN_KIND_SERVER" ||
		h.Attrs["http.route"] != "/api/tasks/{id}" || h.Attrs["http.response.status_code"] != "418" ||
		h.Resource["service.name"] != "catalyst-under-test" || h.Resource["service.version"] != "test-version" {
		t.Fatalf("HTTP span %+v", h)
	}
	if n.ParentSpanID != h.SpanID || m.ParentSpanID != n.SpanID || n.TraceID != h.TraceID {
		t.Fatalf("spans are not nested request > node > model call: %+v %+v %+v", h, n, m)
	}
	if m.Attrs["gen_ai.system"] != "anthropic" || m.Attrs["gen_ai.usage.input_tokens"] != "12" ||
		m.Attrs["gen_ai.usage.output_tokens"] != "34" || m.Attrs["catalyst.cost_usd"] != "0.5" || m.StatusCode != "STATUS_CODE_ERROR" {
		t.Fatalf("model span %+v", m)
	}
	if m.StatusText != "HTTP 401" || n.StatusText != "failed" {
		t.Fatalf("status texts: %q / %q", m.StatusText, n.StatusText)
	}
	raw := col.Raw()
	assertClean(t, "the OTLP export", raw)
	if bytes.Contains(raw, []byte("RAWID")) {
		t.Error("the raw URL (with its id) was exported")
	}
}

func TestUnsupportedOTLPProtocolIsRefused(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	_, err := telemetry.Setup(context.Background(), telemetry.Options{Tracing: true})
	if err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_PROTOCOL=grpc") {
		t.Fatalf("got %v", err)
	}
}

func TestBadSentryDSNIsRefusedWithoutEchoingIt(t *testing.T) {
	_, err := telemetry.Setup(context.Background(), telemetry.Options{SentryDSN: "nonsense-SECRETDSN"})
	if err == nil || strings.Contains(err.Error(), "SECRETDSN") || !strings.Contains(err.Error(), "SENTRY_DSN") {
		t.Fatalf("got %v", err)
	}
}

func TestSentryPanicEventIsScrubbed(t *testing.T) {
	sentrySrv := telemetrytest.NewSentry(t)
	tel := setup(t, telemetry.Options{SentryDSN: sentrySrv.DSN()})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				telemetry.ReportPanic(r, "POST /api/auth/login", v)
				w.WriteHeader(500)
			}
		}()
		body, _ := io.ReadAll(r.Body)
		panic(fmt.Sprintf("boom for %s with key %s, token %s, body %s", email, providerKey, apiToken, body))
	}))
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/api/auth/login?access_token="+apiToken,
		strings.NewReader(`{"email":"`+email+`","password":"`+password+`"}`))
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Cookie", "catalyst_session="+apiToken)
	req.Header.Set("X-Api-Key", providerKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	telemetry.ReportError(context.Background(), "listing projects", errors.New("store: password="+password))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tel.Shutdown(ctx)

	evs := sentrySrv.Events()
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	ev := evs[0]
	exc := fmt.Sprint(ev["exception"])
	if !strings.Contains(exc, "boom for [email] with key [redacted]") {
		t.Fatalf("exception %s", exc)
	}
	rq, _ := ev["request"].(map[string]any)
	if rq["method"] != "POST" || rq["url"] != "/api/auth/login" || len(rq) != 2 {
		t.Fatalf("request %v", rq)
	}
	if tags := fmt.Sprint(ev["tags"]); !strings.Contains(tags, "POST /api/auth/login") {
		t.Fatalf("tags %s", tags)
	}
	assertClean(t, "the Sentry envelopes", sentrySrv.Raw())
}

func TestScrubbedShapes(t *testing.T) {
	col := telemetrytest.NewCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
	tel := setup(t, telemetry.Options{Tracing: true})
	for _, in := range []string{
		"Authorization: Bearer abcdefghijklmnop0123",
		`{"password": "correct horse battery"}`,
		"api_key=abcdef0123456789 next",
		"GITHUB ghp_abcdefghijklmnopqrstuvwxyz0123456789",
		"AIzaSyA-abcdefghijklmnopqrstuvwxyz01234",
		"mongodb://admin:s3cr3t@db:27017/x",
		"contact bob@example.org",
	} {
		_, sp := telemetry.StartModelCall(context.Background(), "x")
		telemetry.EndModelCall(sp, telemetry.ModelResult{Failure: in}, errors.New(in))
	}
	tel.Shutdown(context.Background())
	for _, bad := range []string{"abcdefghijklmnop0123", "correct horse", "abcdef0123456789", "ghp_", "AIzaSy", "s3cr3t", "bob@"} {
		if bytes.Contains(col.Raw(), []byte(bad)) {
			t.Errorf("%q was exported", bad)
		}
	}
	if len(col.Spans()) != 7 {
		t.Fatalf("%d spans", len(col.Spans()))
	}
}
