package openai_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/llm/llmtest"
	"github.com/catalyst/catalyst/internal/llm/openai"
)

const key = "sk-proj-TESTKEY-0123456789abcdef"

func errBody(typ, code, msg string) string {
	return fmt.Sprintf(`{"error":{"message":%q,"type":%q,"param":null,"code":%q}}`, msg, typ, code)
}

const completion = `{
  "id": "chatcmpl-1", "object": "chat.completion", "created": 1741569952, "model": "gpt-4.1-2025-04-14",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "{\"title\":\"Todo app\",\"points\":3}", "refusal": null, "annotations": []},
               "logprobs": null, "finish_reason": "stop"}],
  "usage": {"prompt_tokens": 1200, "completion_tokens": 30, "total_tokens": 1230,
            "prompt_tokens_details": {"cached_tokens": 1000, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
  "service_tier": "default"
}`

var schema = json.RawMessage(`{"type":"object","properties":{"title":{"type":"string"},"points":{"type":"integer"}},"required":["title","points"],"additionalProperties":false}`)

func newRouter(t testing.TB, cfg config.LLMConfig, hc *http.Client, logs io.Writer) *llm.Router {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	cfg.OllamaURL = "off"
	r, err := llm.NewRouter(cfg, llm.RouterOptions{
		Providers:  map[string]llm.Factory{llm.ProviderOpenAI: openai.Factory},
		HTTPClient: hc,
		Logger:     slog.New(slog.NewTextHandler(logs, nil)),
		Retry:      llm.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, MaxRetryAfter: 30 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func openaiCfg(srv *httptest.Server) config.LLMConfig {
	return config.LLMConfig{DefaultProvider: "openai", DefaultModel: "gpt-4.1", OpenAIKey: key, OpenAIBaseURL: srv.URL + "/v1"}
}

func planRequest() llm.Request {
	return llm.Request{System: "You are the planner.", Context: "Task: Build a todo app", SchemaName: "plan", Schema: schema,
		Messages: []llm.Message{{Role: llm.RoleUser, Content: "Plan it."}}, MaxTokens: 500}
}

func TestStructuredOutputWithResponseFormat(t *testing.T) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.JSON(200, completion)}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	resp, err := newRouter(t, openaiCfg(srv), srv.Client(), nil).For("planner").Generate(context.Background(), planRequest())
	if err != nil {
		t.Fatal(err)
	}
	r, body := api.Reqs[0], api.Bodies[0]
	if r.URL.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer "+key {
		t.Fatalf("%s %v", r.URL.Path, r.Header)
	}
	if body["model"] != "gpt-4.1" || body["max_tokens"] != 500.0 {
		t.Fatalf("body %v", body)
	}
	msgs := body["messages"].([]any)
	if sys := msgs[0].(map[string]any); sys["role"] != "system" || !strings.Contains(sys["content"].(string), "Build a todo app") {
		t.Fatalf("messages %v", msgs)
	}
	rf := body["response_format"].(map[string]any)
	js := rf["json_schema"].(map[string]any)
	if rf["type"] != "json_schema" || js["name"] != "plan" || js["strict"] != true ||
		js["schema"].(map[string]any)["properties"].(map[string]any)["points"] == nil {
		t.Fatalf("response_format %v", rf)
	}
	if string(resp.JSON) != `{"title":"Todo app","points":3}` || resp.Model != "gpt-4.1-2025-04-14" || resp.StopReason != llm.StopEnd {
		t.Fatalf("resp %+v", resp)
	}
	// prompt_tokens includes the cached ones.
	if u := resp.Usage; u.InputTokens != 200 || u.CacheReadTokens != 1000 || u.OutputTokens != 30 {
		t.Fatalf("usage %+v", u)
	}
	// gpt-4.1: $2 in, $8 out, $0.50 cached input (catwalk).
	if want := (200*2.0 + 30*8.0 + 1000*0.5) / 1e6; abs(resp.Cost-want) > 1e-12 {
		t.Fatalf("cost %v want %v", resp.Cost, want)
	}
}

func TestStrictOnlyWhenSchemaAllows(t *testing.T) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.JSON(200, completion)}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	loose := json.RawMessage(`{"type":"object","properties":{"title":{"type":"string"},"points":{"type":"integer"}},"required":["title"]}`)
	req := planRequest()
	req.Schema = loose
	if _, err := newRouter(t, openaiCfg(srv), srv.Client(), nil).For("").Generate(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	js := api.Bodies[0]["response_format"].(map[string]any)["json_schema"].(map[string]any)
	if js["strict"] != false {
		t.Fatalf("strict sent for a schema strict mode rejects: %v", js)
	}
}

const streamBody = `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"qwen2.5-coder:7b","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"qwen2.5-coder:7b","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}

data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"qwen2.5-coder:7b","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}

data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"qwen2.5-coder:7b","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}

data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"qwen2.5-coder:7b","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}

data: [DONE]

`

// TestOllamaStreaming: no key, an Ollama-like server answers the probe; the
// router uses it, normalises the bare URL to /v1/, streams and reads usage.
func TestOllamaStreaming(t *testing.T) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.Reply(200, "text/event-stream", streamBody)}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"object":"list","data":[{"id":"qwen2.5-coder:7b","object":"model","created":1,"owned_by":"library"}]}`)
	})
	mux.Handle("POST /v1/chat/completions", api)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	r, err := llm.NewRouter(config.LLMConfig{OllamaURL: srv.URL}, llm.RouterOptions{
		Providers: map[string]llm.Factory{llm.ProviderOpenAI: openai.Factory}, HTTPClient: srv.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	sel := r.Describe("coder")
	if sel.Provider != "ollama" || sel.Model != "qwen2.5-coder:7b" || !strings.Contains(sel.Reason, "qwen2.5-coder:7b") {
		t.Fatalf("selection %+v", sel)
	}
	var deltas []string
	resp, err := r.For("coder").Generate(context.Background(), llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: "hi"}},
		OnDelta: func(d string) { deltas = append(deltas, d) }})
	if err != nil {
		t.Fatal(err)
	}
	body := api.Bodies[0]
	if body["stream"] != true || body["stream_options"].(map[string]any)["include_usage"] != true {
		t.Fatalf("body %v", body)
	}
	if auth := api.Reqs[0].Header.Get("Authorization"); strings.Contains(auth, "sk-") {
		t.Fatalf("a key was sent to a keyless local server: %q", auth)
	}
	if strings.Join(deltas, "|") != "Hel|lo" || resp.Text != "Hello" || resp.StopReason != llm.StopEnd || resp.Provider != "ollama" {
		t.Fatalf("deltas %q resp %+v", deltas, resp)
	}
	if resp.Usage.InputTokens != 12 || resp.Usage.OutputTokens != 2 || resp.Cost != 0 {
		t.Fatalf("usage %+v cost %v", resp.Usage, resp.Cost)
	}
}

func TestEmergentGateway(t *testing.T) {
	const ekey = "sk-emergent-0123456789abcdef"
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.JSON(200, completion)}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	r := newRouter(t, config.LLMConfig{EmergentKey: ekey, EmergentBaseURL: srv.URL + "/llm"}, srv.Client(), nil)
	if sel := r.Describe(""); sel.Provider != "emergent" || sel.Model != "claude-3-7-sonnet-20250219" {
		t.Fatalf("%+v", sel)
	}
	resp, err := r.For("").Generate(context.Background(), planRequest())
	if err != nil {
		t.Fatal(err)
	}
	if api.Reqs[0].URL.Path != "/llm/chat/completions" || api.Reqs[0].Header.Get("Authorization") != "Bearer "+ekey ||
		api.Bodies[0]["model"] != "claude-3-7-sonnet-20250219" || resp.Provider != "emergent" {
		t.Fatalf("%s %v %v", api.Reqs[0].URL.Path, api.Reqs[0].Header, api.Bodies[0]["model"])
	}
}

func TestTransientErrorsRetried(t *testing.T) {
	for name, fail := range map[string]llmtest.Step{
		"503":             llmtest.JSON(503, errBody("server_error", "", "The server is overloaded")),
		"429 retry-after": llmtest.JSON(429, errBody("requests", "rate_limit_exceeded", "Rate limit reached"), "Retry-After", "1000", "retry-after-ms", "5"),
		"408":             llmtest.JSON(408, errBody("timeout", "", "timeout")),
	} {
		t.Run(name, func(t *testing.T) {
			api := &llmtest.FakeAPI{Steps: []llmtest.Step{fail, llmtest.JSON(200, completion)}}
			srv := httptest.NewServer(api)
			defer srv.Close()
			start := time.Now()
			if _, err := newRouter(t, openaiCfg(srv), srv.Client(), nil).For("").Generate(context.Background(), planRequest()); err != nil {
				t.Fatal(err)
			}
			if len(api.Reqs) != 2 || time.Since(start) > 2*time.Second {
				t.Fatalf("%d requests in %v", len(api.Reqs), time.Since(start))
			}
		})
	}
}

func TestConnectionResetRetried(t *testing.T) {
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		if n == 1 {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		llmtest.JSON(200, completion)(w)
	}))
	defer srv.Close()
	if _, err := newRouter(t, openaiCfg(srv), srv.Client(), nil).For("").Generate(context.Background(), planRequest()); err != nil || n != 2 {
		t.Fatalf("err %v after %d requests", err, n)
	}
}

func TestUnauthorizedNotRetriedAndRedacted(t *testing.T) {
	var logs bytes.Buffer
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{
		llmtest.JSON(500, errBody("server_error", "", "upstream saw "+key)),
		llmtest.JSON(401, errBody("invalid_request_error", "invalid_api_key", "Incorrect API key provided: "+key+". You can find your API key at https://platform.openai.com/account/api-keys.")),
	}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	_, err := newRouter(t, openaiCfg(srv), srv.Client(), &logs).For("").Generate(context.Background(), planRequest())
	var ae *llm.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 401 || len(api.Reqs) != 2 {
		t.Fatalf("err %v after %d requests", err, len(api.Reqs))
	}
	if strings.Contains(err.Error(), key) || strings.Contains(logs.String(), key) {
		t.Fatalf("key leaked:\n%v\n%s", err, logs.String())
	}
	if !strings.Contains(err.Error(), "Incorrect API key provided") {
		t.Fatalf("message lost: %v", err)
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
