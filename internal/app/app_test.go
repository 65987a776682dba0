package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/llm"
)

// TestConfiguredRetryAndBreakerReachTheRouter goes from config.yaml to HTTP
// requests: a fault-injecting Anthropic server that is always overloaded
// sees exactly llm.retry.max_attempts requests per call, and after
// llm.breaker.failures failed calls the circuit is open and the next call
// does not reach it. The built-in defaults (4 attempts, 3 failures) would
// give other counts.
func TestConfiguredRetryAndBreakerReachTheRouter(t *testing.T) {
	const key = "sk-ant-api03-APPTEST-0123456789"
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(529)
		io.WriteString(w, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
	}))
	defer srv.Close()

	yamlPath := filepath.Join(t.TempDir(), "config.yaml")
	yaml := "llm:\n" +
		"  retry: {max_attempts: 2, base_delay: 1ms, max_delay: 2ms, max_retry_after: 5ms}\n" +
		"  breaker: {failures: 1, cooldown: 1h}\n"
	if err := os.WriteFile(yamlPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Sources{YAMLFile: yamlPath, DotEnvFile: os.DevNull, Environ: func() []string {
		return []string{"ANTHROPIC_API_KEY=" + key, "ANTHROPIC_BASE_URL=" + srv.URL, "CATALYST_OLLAMA_URL=off"}
	}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRouter(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if sel := r.Describe(""); sel.Provider != llm.ProviderAnthropic {
		t.Fatalf("selection %+v", sel)
	}
	req := llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: "hi"}}}

	_, err = r.For("").Generate(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "529") || strings.Contains(err.Error(), key) {
		t.Fatalf("first call: %v", err)
	}
	if got := requests.Load(); got != 2 {
		t.Fatalf("first call made %d requests, want llm.retry.max_attempts = 2", got)
	}

	_, err = r.For("").Generate(context.Background(), req)
	if !errors.Is(err, llm.ErrAllProvidersDown) {
		t.Fatalf("second call: %v, want the circuit open after llm.breaker.failures = 1", err)
	}
	if got := requests.Load(); got != 2 {
		t.Fatalf("the open circuit let %d more requests through", got-2)
	}
}
