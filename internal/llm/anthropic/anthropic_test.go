package anthropic_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/llm/anthropic"
	"github.com/catalyst/catalyst/internal/llm/llmtest"
)

const key = "sk-ant-api03-TESTKEY-abcdef0123456789"

var versionRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

const toolUseReply = `{
  "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-3-7-sonnet-20250219",
  "content": [{"type": "tool_use", "id": "toolu_01", "name": "plan", "input": {"title": "Todo app", "points": 3}}],
  "stop_reason": "tool_use", "stop_sequence": null,
  "usage": {"input_tokens": 50, "output_tokens": 20, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 2000}
}`

func errBody(typ, msg string) string {
	return fmt.Sprintf(`{"type":"error","error":{"type":%q,"message":%q},"request_id":"req_test"}`, typ, msg)
}

func router(t testing.TB, srv *httptest.Server, logs io.Writer, limits ...llm.Limits) *llm.Router {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	var lim map[string]llm.Limits
	if len(limits) > 0 {
		lim = map[string]llm.Limits{llm.ProviderAnthropic: limits[0]}
	}
	r, err := llm.NewRouter(config.LLMConfig{AnthropicKey: key, AnthropicBaseURL: srv.URL, OllamaURL: "off"}, llm.RouterOptions{
		Providers:  map[string]llm.Factory{llm.ProviderAnthropic: anthropic.Factory},
		HTTPClient: srv.Client(),
		Logger:     slog.New(slog.NewTextHandler(logs, nil)),
		Retry:      llm.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, MaxRetryAfter: 30 * time.Millisecond},
		Limits:     lim,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var schema = json.RawMessage(`{"type":"object","properties":{"title":{"type":"string"},"points":{"type":"integer"}},"required":["title","points"],"additionalProperties":false}`)

func planRequest() llm.Request {
	return llm.Request{
		System: "You are the planner.", Context: "Task: Build a todo app", SchemaName: "plan", Schema: schema,
		Messages: []llm.Message{{Role: llm.RoleUser, Content: "Plan it."}}, MaxTokens: 1000,
	}
}

func TestStructuredOutputThroughForcedTool(t *testing.T) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.JSON(200, toolUseReply)}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	temp := 0.2
	req := planRequest()
	req.Temperature = &temp
	resp, err := router(t, srv, nil).For("planner").Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	// What the SDK sent.
	r, body := api.Reqs[0], api.Bodies[0]
	// anthropic-sdk-go v2.15 sends the key as "Authorization: Bearer" (v1
	// sent x-api-key) and a dated anthropic-version; accept either carrier.
	keySent := r.Header.Get("X-Api-Key") == key || r.Header.Get("Authorization") == "Bearer "+key
	if r.URL.Path != "/v1/messages" || !keySent || !versionRE.MatchString(r.Header.Get("Anthropic-Version")) {
		t.Fatalf("request %s headers %v", r.URL.Path, r.Header)
	}
	if body["model"] != "claude-3-7-sonnet-20250219" || body["max_tokens"] != 1000.0 || body["temperature"] != 0.2 {
		t.Fatalf("body: %v", body)
	}
	tools := body["tools"].([]any)
	tool := tools[0].(map[string]any)
	in := tool["input_schema"].(map[string]any)
	if tool["name"] != "plan" || in["type"] != "object" || in["additionalProperties"] != false ||
		in["properties"].(map[string]any)["points"] == nil || fmt.Sprint(in["required"]) != "[title points]" {
		t.Fatalf("tool: %v", tool)
	}
	if tc := body["tool_choice"].(map[string]any); tc["type"] != "tool" || tc["name"] != "plan" {
		t.Fatalf("tool_choice: %v", tc)
	}
	// What we parsed.
	if string(resp.JSON) != `{"title": "Todo app", "points": 3}` && string(resp.JSON) != `{"title":"Todo app","points":3}` {
		t.Fatalf("JSON = %s", resp.JSON)
	}
	u := resp.Usage
	if u.InputTokens != 50 || u.OutputTokens != 20 || u.CacheWriteTokens != 1000 || u.CacheReadTokens != 2000 || resp.StopReason != llm.StopEnd {
		t.Fatalf("usage %+v stop %q", u, resp.StopReason)
	}
	want := (50*3.0 + 20*15.0 + 1000*3.75 + 2000*0.30) / 1e6
	if d := resp.Cost - want; d > 1e-12 || d < -1e-12 {
		t.Fatalf("cost = %v, want %v", resp.Cost, want)
	}
}

// TestPromptCacheMarkerIsSent fails if the stable prefix stops carrying
// cache_control: later agents of a task would pay full input price.
func TestPromptCacheMarkerIsSent(t *testing.T) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.JSON(200, toolUseReply)}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	if _, err := router(t, srv, nil).For("planner").Generate(context.Background(), planRequest()); err != nil {
		t.Fatal(err)
	}
	sys, ok := api.Bodies[0]["system"].([]any)
	if !ok || len(sys) != 2 {
		t.Fatalf("system blocks: %v", api.Bodies[0]["system"])
	}
	first, last := sys[0].(map[string]any), sys[1].(map[string]any)
	if first["text"] != "You are the planner." || last["text"] != "Task: Build a todo app" {
		t.Fatalf("stable prefix: %v", sys)
	}
	cc, ok := last["cache_control"].(map[string]any)
	if !ok || cc["type"] != "ephemeral" {
		t.Fatalf("cache_control missing on the end of the stable prefix: %v", last)
	}
	if _, ok := first["cache_control"]; ok {
		t.Fatalf("only one breakpoint expected: %v", first)
	}

	// And it can be turned off.
	m, err := anthropic.New(llm.ProviderConfig{APIKey: key, Model: "claude-3-7-sonnet-20250219", BaseURL: srv.URL}, anthropic.WithoutPromptCache())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Generate(context.Background(), planRequest()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fmt.Sprint(api.Bodies[1]["system"]), "cache_control") {
		t.Fatalf("cache_control sent with WithoutPromptCache: %v", api.Bodies[1]["system"])
	}
}

const streamEvents = `event: message_start
data: {"type":"message_start","message":{"id":"msg_02","type":"message","role":"assistant","content":[],"model":"claude-3-7-sonnet-20250219","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":3000}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", world"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}

event: message_stop
data: {"type":"message_stop"}

`

func TestStreaming(t *testing.T) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.SSE(streamEvents)}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	var deltas []string
	resp, err := router(t, srv, nil).For("coder").Generate(context.Background(), llm.Request{
		System: "s", Messages: []llm.Message{{Role: llm.RoleUser, Content: "hi"}},
		OnDelta: func(d string) { deltas = append(deltas, d) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if api.Bodies[0]["stream"] != true {
		t.Fatalf("not a streaming request: %v", api.Bodies[0])
	}
	if strings.Join(deltas, "|") != "Hello|, world" || resp.Text != "Hello, world" || resp.StopReason != llm.StopEnd || resp.ProviderStopReason != "end_turn" {
		t.Fatalf("deltas %q text %q stop %q", deltas, resp.Text, resp.StopReason)
	}
	if resp.Usage.InputTokens != 25 || resp.Usage.OutputTokens != 15 || resp.Usage.CacheReadTokens != 3000 {
		t.Fatalf("usage %+v", resp.Usage)
	}
}

func TestOverloadedIsRetried(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail llmtest.Step
	}{
		{"529", llmtest.JSON(529, errBody("overloaded_error", "Overloaded"))},
		{"503", llmtest.JSON(503, errBody("api_error", "Service unavailable"))},
		{"429 retry-after capped", llmtest.JSON(429, errBody("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"), "Retry-After", "3600")},
		{"overloaded inside the stream", llmtest.SSE("event: error\ndata: " + errBody("overloaded_error", "Overloaded") + "\n\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &llmtest.FakeAPI{Steps: []llmtest.Step{tc.fail, llmtest.JSON(200, toolUseReply)}}
			srv := httptest.NewServer(api)
			defer srv.Close()
			req := planRequest()
			if strings.Contains(tc.name, "stream") {
				api.Steps[1] = llmtest.SSE(streamEvents)
				req = llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: "hi"}}, OnDelta: func(string) {}}
			}
			start := time.Now()
			resp, err := router(t, srv, nil).For("planner").Generate(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if len(api.Reqs) != 2 || resp.Usage.OutputTokens == 0 {
				t.Fatalf("%d requests, resp %+v", len(api.Reqs), resp)
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("Retry-After not capped: %v", time.Since(start))
			}
		})
	}
}

func TestErrorsClassifiedAndKeyRedacted(t *testing.T) {
	var logs bytes.Buffer
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{
		llmtest.JSON(500, errBody("api_error", "internal error for key "+key)),
		llmtest.JSON(401, errBody("authentication_error", "invalid x-api-key "+key)),
	}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	_, err := router(t, srv, &logs).For("planner").Generate(context.Background(), planRequest())
	if err == nil {
		t.Fatal("want error")
	}
	var ae *llm.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 401 {
		t.Fatalf("err = %v", err)
	}
	if len(api.Reqs) != 2 {
		t.Fatalf("%d requests: 401 must not be retried", len(api.Reqs))
	}
	for name, s := range map[string]string{"error": err.Error(), "logs": logs.String()} {
		if strings.Contains(s, key) || strings.Contains(s, key[8:]) {
			t.Fatalf("API key in %s: %s", name, s)
		}
	}
	if !strings.Contains(err.Error(), "invalid x-api-key") || !strings.Contains(logs.String(), "internal error for key") {
		t.Fatalf("messages lost: %v / %s", err, logs.String())
	}
}

func TestNonObjectSchemaIsWrapped(t *testing.T) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.JSON(200, `{"id":"m","type":"message","role":"assistant","model":"claude-3-7-sonnet-20250219",
	  "content":[{"type":"tool_use","id":"t","name":"answer","input":{"result":["a","b"]}}],"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":1}}`)}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	resp, err := router(t, srv, nil).For("").Generate(context.Background(), llm.Request{MaxTokens: 1024, Schema: json.RawMessage(`{"type":"array","items":{"type":"string"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.JSON) != `["a","b"]` {
		t.Fatalf("JSON = %s", resp.JSON)
	}
	in := api.Bodies[0]["tools"].([]any)[0].(map[string]any)["input_schema"].(map[string]any)
	if in["type"] != "object" || in["properties"].(map[string]any)["result"] == nil {
		t.Fatalf("input_schema: %v", in)
	}
}

// BenchmarkPerCallOverhead compares the raw provider with the full llm
// layer against the same fake server.
func BenchmarkPerCallOverhead(b *testing.B) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.JSON(200, toolUseReply)}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	raw, err := anthropic.New(llm.ProviderConfig{APIKey: key, Model: "claude-3-7-sonnet-20250219", BaseURL: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		b.Fatal(err)
	}
	// No tokens-per-minute pacing here: at the default 200k/min the fake's
	// 1,070 reported tokens a call would be paced to ~3 calls a second.
	routed := router(b, srv, nil, llm.Limits{TokensPerMinute: -1}).For("planner")
	for name, m := range map[string]llm.Model{"raw-sdk": raw, "llm-layer": routed} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				api.Reset()
				if _, err := m.Generate(context.Background(), planRequest()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
