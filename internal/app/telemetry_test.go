package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/telemetry/telemetrytest"
)

// TestTraceOfARealTaskReachesAnOTLPCollector runs Catalyst as `serve` does
// with ENABLE_PERFORMANCE_MONITORING=true and the OTLP endpoint of an
// in-process collector: a submitted task leaves spans for the HTTP
// requests, the task run, each node and each model call, and none of them
// carries the API token, a provider key or the prompt.
func TestTraceOfARealTaskReachesAnOTLPCollector(t *testing.T) {
	const (
		token       = "apitoken-TRACETEST-0123456789abcdef"
		providerKey = "sk-ant-api03-TRACEKEY-0123456789abcdef"
		marker      = "PROMPTMARKER-7f3a"
	)
	col := telemetrytest.NewCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
	t.Setenv("OTEL_SERVICE_NAME", "catalyst-trace-test")
	overloaded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		io.WriteString(w, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`)
	}))
	defer overloaded.Close()

	env := []string{"CATALYST_DATA_DIR=" + t.TempDir(), "CATALYST_OLLAMA_URL=off", "CATALYST_API_TOKEN=" + token,
		"ENABLE_PERFORMANCE_MONITORING=true", "MAX_FIX_ITERATIONS=0"}
	cfg, err := config.Load(config.Sources{YAMLFile: os.DevNull, DotEnvFile: os.DevNull, Environ: func() []string { return env }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			a.Close(ctx)
		}
	}()
	if err := a.Start(ctx, true); err != nil {
		t.Fatal(err)
	}
	h, err := a.Handler()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	call := func(method, path string, body any, out any) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, srv.URL+path, rd)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
	}
	var project, task struct{ ID, Status string }
	call("POST", "/api/projects", map[string]string{"name": "p", "description": "d"}, &project)
	call("POST", "/api/tasks", map[string]string{"project_id": project.ID, "prompt": "Build a todo app " + marker}, &task)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for task.Status != "completed" && task.Status != "failed" {
		if wctx.Err() != nil {
			t.Fatalf("task still %s", task.Status)
		}
		time.Sleep(100 * time.Millisecond)
		call("GET", "/api/tasks/"+task.ID, nil, &task)
	}

	// A provider call with a key, the prompt, and an error answer.
	keyed := *cfg
	keyed.LLM.AnthropicKey, keyed.LLM.AnthropicBaseURL, keyed.LLM.Retry.MaxAttempts = providerKey, overloaded.URL, 1
	r, err := NewRouter(&keyed, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.For("reviewer").Generate(ctx, llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: marker + " " + providerKey}}}); err == nil {
		t.Fatal("the failing provider answered")
	}
	closed = true
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}

	spans := col.Spans()
	byID := map[string]telemetrytest.Span{}
	count := map[string]int{}
	for _, s := range spans {
		byID[s.SpanID] = s
		count[s.Name]++
	}
	for _, want := range []string{"POST /api/projects", "POST /api/tasks", "GET /api/tasks/{id}", "task", "node planner", "node coder", "llm planner", "llm reviewer"} {
		if count[want] == 0 {
			t.Errorf("no %q span; spans: %v", want, count)
		}
	}
	var sawOffline, sawKeyed bool
	for _, s := range spans {
		if !strings.HasPrefix(s.Name, "llm ") {
			continue
		}
		if s.Resource["service.name"] != "catalyst-trace-test" {
			t.Errorf("resource %v", s.Resource)
		}
		switch s.Attrs["gen_ai.system"] {
		case "offline":
			sawOffline = true
			parent := byID[s.ParentSpanID]
			if !strings.HasPrefix(parent.Name, "node ") || parent.Attrs["catalyst.task.id"] != task.ID {
				t.Errorf("model call %s under %+v, want a node of the task", s.Name, parent)
			}
			if task := byID[parent.ParentSpanID]; task.Name != "task" {
				t.Errorf("node %s under %q, want the task span", parent.Name, task.Name)
			}
		case "":
			if s.Name == "llm reviewer" && s.StatusCode == "STATUS_CODE_ERROR" && s.StatusText == "HTTP 401" {
				sawKeyed = true
			}
		}
	}
	if !sawOffline || !sawKeyed {
		t.Errorf("model-call spans: offline %v, failed keyed call %v", sawOffline, sawKeyed)
	}
	raw := col.Raw()
	for _, bad := range []string{token, providerKey, marker, "TRACEKEY", "TRACETEST"} {
		if bytes.Contains(raw, []byte(bad)) {
			t.Errorf("the OTLP export carries %q", bad)
		}
	}
	if bytes.Contains(raw, []byte(task.ID+"/")) || bytes.Contains(raw, []byte("/api/tasks/"+task.ID)) {
		t.Error("a raw URL with an id was exported")
	}
}
