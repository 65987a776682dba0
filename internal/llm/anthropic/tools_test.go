package anthropic_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/llm/anthropic"
	"github.com/catalyst/catalyst/internal/llm/llmtest"
)

func coderTools() []llm.Tool {
	return []llm.Tool{
		{Name: "read_file", Description: "Read a file", Parameters: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"},"start_line":{"type":"integer"}},"required":["path"]}`)},
		{Name: "edit_file", Description: "Edit a file", Parameters: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"},"search":{"type":"string"},"replace":{"type":"string"}},"required":["path","search","replace"]}`)},
		{Name: "finish", Description: "Say you are done", Parameters: json.RawMessage(`{"type":"object","properties":{"summary":{"type":"string"}}}`)},
	}
}

// toolTurnReply is a non-streamed answer with text and two tool_use blocks
// (docs: "Tool use with Claude", parallel tool use).
const toolTurnReply = `{
  "id": "msg_10", "type": "message", "role": "assistant", "model": "claude-3-7-sonnet-20250219",
  "content": [
    {"type": "text", "text": "Let me look at the failing test."},
    {"type": "tool_use", "id": "toolu_A", "name": "read_file", "input": {"path": "calc.go", "start_line": 3}},
    {"type": "tool_use", "id": "toolu_B", "name": "read_file", "input": {"path": "calc_test.go"}}
  ],
  "stop_reason": "tool_use", "stop_sequence": null,
  "usage": {"input_tokens": 900, "output_tokens": 60, "cache_creation_input_tokens": 1500, "cache_read_input_tokens": 0}
}`

const finalReply = `{
  "id": "msg_11", "type": "message", "role": "assistant", "model": "claude-3-7-sonnet-20250219",
  "content": [{"type": "text", "text": "Fixed."}],
  "stop_reason": "end_turn", "stop_sequence": null,
  "usage": {"input_tokens": 120, "output_tokens": 5, "cache_creation_input_tokens": 300, "cache_read_input_tokens": 1500}
}`

func toolRouter(t *testing.T, srv *httptest.Server, cfg config.LLMConfig) *llm.Router {
	t.Helper()
	cfg.AnthropicKey, cfg.AnthropicBaseURL, cfg.OllamaURL = key, srv.URL, "off"
	r, err := llm.NewRouter(cfg, llm.RouterOptions{
		Providers:  map[string]llm.Factory{llm.ProviderAnthropic: anthropic.Factory},
		HTTPClient: srv.Client(),
		Retry:      llm.RetryPolicy{MaxAttempts: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func loopRequest() llm.Request {
	return llm.Request{Agent: "coder", System: "You are the coder.", Context: "# Task\nFix the failing test",
		Tools: coderTools(), MaxTokens: 2000,
		Messages: []llm.Message{{Role: llm.RoleUser, Content: "The test TestAdd fails."}}}
}

// TestToolLoopNonStreaming runs two turns: the model calls two tools, the
// results go back as tool_result blocks, the model finishes.
func TestToolLoopNonStreaming(t *testing.T) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.JSON(200, toolTurnReply), llmtest.JSON(200, finalReply)}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	m := toolRouter(t, srv, config.LLMConfig{}).For("coder")
	req := loopRequest()
	resp, err := m.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StopReason != llm.StopToolUse || resp.Text != "Let me look at the failing test." || len(resp.ToolCalls) != 2 {
		t.Fatalf("turn 1: %+v", resp)
	}
	c := resp.ToolCalls[0]
	if c.ID != "toolu_A" || c.Name != "read_file" || !jsonEq(c.Arguments, `{"path":"calc.go","start_line":3}`) {
		t.Fatalf("call 0: %+v %s", c, c.Arguments)
	}
	if resp.Usage.CacheWriteTokens != 1500 {
		t.Fatalf("usage %+v", resp.Usage)
	}
	body := api.Bodies[0]
	tools := body["tools"].([]any)
	if len(tools) != 3 || tools[0].(map[string]any)["name"] != "read_file" ||
		tools[1].(map[string]any)["input_schema"].(map[string]any)["required"] == nil || body["tool_choice"] != nil {
		t.Fatalf("tools: %v / tool_choice %v", tools, body["tool_choice"])
	}
	sys := body["system"].([]any)
	if sys[len(sys)-1].(map[string]any)["cache_control"] == nil {
		t.Fatalf("the stable prefix is not cacheable: %v", sys)
	}

	req.Messages = append(req.Messages,
		llm.Message{Role: llm.RoleAssistant, Content: resp.Text, ToolCalls: resp.ToolCalls},
		llm.Message{Role: llm.RoleUser, ToolResults: []llm.ToolResult{
			{CallID: "toolu_A", Name: "read_file", Content: "func Add(a, b int) int { return a - b }"},
			{CallID: "toolu_B", Name: "read_file", Content: "no such file", IsError: true},
		}})
	resp, err = m.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StopReason != llm.StopEnd || resp.Text != "Fixed." || len(resp.ToolCalls) != 0 || resp.Usage.CacheReadTokens != 1500 {
		t.Fatalf("turn 2: %+v", resp)
	}
	msgs := api.Bodies[1]["messages"].([]any)
	if len(msgs) != 3 {
		t.Fatalf("messages: %v", msgs)
	}
	asst := msgs[1].(map[string]any)["content"].([]any)
	if asst[0].(map[string]any)["type"] != "text" || asst[1].(map[string]any)["type"] != "tool_use" ||
		asst[1].(map[string]any)["id"] != "toolu_A" || asst[2].(map[string]any)["input"].(map[string]any)["path"] != "calc_test.go" {
		t.Fatalf("assistant turn: %v", asst)
	}
	results := msgs[2].(map[string]any)["content"].([]any)
	r0, r1 := results[0].(map[string]any), results[1].(map[string]any)
	if r0["type"] != "tool_result" || r0["tool_use_id"] != "toolu_A" || r1["is_error"] != true ||
		!strings.Contains(fmt.Sprint(r0["content"]), "return a - b") {
		t.Fatalf("tool results: %v", results)
	}
	// The loop's last turn is marked so the next turn reads it from cache.
	if r1["cache_control"] == nil || r0["cache_control"] != nil {
		t.Fatalf("cache mark on the last block only: %v", results)
	}
	// Cost counts cache reads and writes at their prices.
	want := (120*3.0 + 5*15.0 + 300*3.75 + 1500*0.30) / 1e6
	if d := resp.Cost - want; d > 1e-12 || d < -1e-12 {
		t.Fatalf("cost %v, want %v", resp.Cost, want)
	}
}

func jsonEq(a json.RawMessage, b string) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

// sse builds an Anthropic event stream: events are (type, data) pairs.
func sse(events ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(events); i += 2 {
		fmt.Fprintf(&b, "event: %s\ndata: %s\n\n", events[i], events[i+1])
	}
	return b.String()
}

// toolStream streams a text block and one tool_use block per (id, name,
// input) triple with input split into n-byte input_json_delta pieces.
func toolStream(stop string, n int, calls ...string) string {
	ev := []string{
		"message_start", `{"type":"message_start","message":{"id":"msg_s","type":"message","role":"assistant","content":[],"model":"claude-3-7-sonnet-20250219","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":40,"output_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":2000}}}`,
		"content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
		"content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Editing."}}`,
		"content_block_stop", `{"type":"content_block_stop","index":0}`,
	}
	for i := 0; i+2 < len(calls); i += 3 {
		idx := i/3 + 1
		ev = append(ev, "content_block_start", fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":{"type":"tool_use","id":%q,"name":%q,"input":{}}}`, idx, calls[i], calls[i+1]))
		ev = append(ev, "content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"input_json_delta","partial_json":""}}`, idx))
		for _, p := range llmtest.Pieces(calls[i+2], n) {
			ev = append(ev, "content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"input_json_delta","partial_json":%s}}`, idx, llmtest.Quote(p)))
		}
		ev = append(ev, "content_block_stop", fmt.Sprintf(`{"type":"content_block_stop","index":%d}`, idx))
	}
	ev = append(ev,
		"message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":%q,"stop_sequence":null},"usage":{"output_tokens":77}}`, stop),
		"message_stop", `{"type":"message_stop"}`)
	return sse(ev...)
}

const editArgs = `{"path":"calc.go","search":"return a - b","replace":"return a + b // \"fixed\" \\o/ ünïcode"}`

func TestToolLoopStreaming(t *testing.T) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{
		llmtest.SSE(toolStream("tool_use", 3, "toolu_E", "edit_file", editArgs, "toolu_F", "read_file", `{"path":"calc.go"}`)),
		llmtest.SSE(toolStream("tool_use", 1, "toolu_G", "finish", `{"summary":"done"}`)),
	}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	m := toolRouter(t, srv, config.LLMConfig{}).For("coder")
	req := loopRequest()
	var deltas strings.Builder
	req.OnDelta = func(d string) { deltas.WriteString(d) }
	resp, err := m.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if api.Bodies[0]["stream"] != true || resp.StopReason != llm.StopToolUse || len(resp.ToolCalls) != 2 || deltas.String() != "Editing." {
		t.Fatalf("turn 1: %+v, deltas %q", resp, deltas.String())
	}
	if c := resp.ToolCalls[0]; c.ID != "toolu_E" || c.Name != "edit_file" || !jsonEq(c.Arguments, editArgs) {
		t.Fatalf("assembled call %+v %s", c, c.Arguments)
	}
	if resp.Usage.CacheReadTokens != 2000 || resp.Usage.OutputTokens != 77 {
		t.Fatalf("usage %+v", resp.Usage)
	}
	req.Messages = append(req.Messages,
		llm.Message{Role: llm.RoleAssistant, Content: resp.Text, ToolCalls: resp.ToolCalls},
		llm.Message{Role: llm.RoleUser, ToolResults: []llm.ToolResult{{CallID: "toolu_E", Name: "edit_file", Content: "ok"}, {CallID: "toolu_F", Name: "read_file", Content: "..."}}})
	resp, err = m.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ToolCalls) != 1 || resp.ToolCalls[0].Name != "finish" || !jsonEq(resp.ToolCalls[0].Arguments, `{"summary":"done"}`) {
		t.Fatalf("turn 2: %+v", resp)
	}
	sent := api.Bodies[1]["messages"].([]any)[1].(map[string]any)["content"].([]any)[1].(map[string]any)
	if sent["type"] != "tool_use" || sent["input"].(map[string]any)["replace"] != "return a + b // \"fixed\" \\o/ ünïcode" {
		t.Fatalf("the call went back changed: %v", sent)
	}
}

// TestToolArgumentsCutOffByLength: the stream stops at max_tokens in the
// middle of a tool's input. The answer says StopLength and the call keeps
// the raw text, flagged, instead of the SDK's silent {}.
func TestToolArgumentsCutOffByLength(t *testing.T) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.SSE(toolStream("max_tokens", 4, "toolu_W", "edit_file", `{"path":"calc.go","search":"ret`))}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	req := loopRequest()
	req.OnDelta = func(string) {}
	resp, err := toolRouter(t, srv, config.LLMConfig{}).For("coder").Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StopReason != llm.StopLength || resp.ProviderStopReason != "max_tokens" || len(resp.ToolCalls) != 1 {
		t.Fatalf("%+v", resp)
	}
	raw, bad := resp.ToolCalls[0].InvalidArguments()
	if !bad || raw != `{"path":"calc.go","search":"ret` || !json.Valid(resp.ToolCalls[0].Arguments) {
		t.Fatalf("arguments %s (raw %q, invalid %v)", resp.ToolCalls[0].Arguments, raw, bad)
	}
}

// TestLengthStops: a plain answer stopped by max_tokens says StopLength
// (and Continue completes it); a structured one is retried once with the
// model's output limit and then fails with ErrTruncated, never parsed.
func TestLengthStops(t *testing.T) {
	cut := func(text string) llmtest.Step {
		return llmtest.JSON(200, `{"id":"m","type":"message","role":"assistant","model":"claude-3-7-sonnet-20250219",
		  "content":[{"type":"text","text":`+llmtest.Quote(text)+`}],"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":100}}`)
	}
	t.Run("plain", func(t *testing.T) {
		api := &llmtest.FakeAPI{Steps: []llmtest.Step{cut("The first half, "), llmtest.JSON(200, finalReply)}}
		srv := httptest.NewServer(api)
		defer srv.Close()
		m := toolRouter(t, srv, config.LLMConfig{}).For("writer")
		req := llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: "Write."}}, MaxTokens: 100}
		resp, err := m.Generate(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StopReason != llm.StopLength || resp.Text != "The first half, " {
			t.Fatalf("%+v", resp)
		}
		full, err := llm.Continue(context.Background(), m, req, resp, 2)
		if err != nil {
			t.Fatal(err)
		}
		if full.Text != "The first half, Fixed." || full.StopReason != llm.StopEnd || full.Usage.OutputTokens != 105 {
			t.Fatalf("continued: %+v", full)
		}
		last := api.Bodies[1]["messages"].([]any)
		if len(last) != 3 || !strings.Contains(fmt.Sprint(last[2]), "cut off") {
			t.Fatalf("continuation request: %v", last)
		}
	})
	t.Run("structured", func(t *testing.T) {
		cutTool := llmtest.JSON(200, `{"id":"m","type":"message","role":"assistant","model":"claude-3-7-sonnet-20250219",
		  "content":[{"type":"tool_use","id":"t","name":"plan","input":{"title":"Todo"}}],"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1000}}`)
		api := &llmtest.FakeAPI{Steps: []llmtest.Step{cutTool, llmtest.SSE(toolStream("max_tokens", 5, "t2", "plan", `{"title":"To`))}}
		srv := httptest.NewServer(api)
		defer srv.Close()
		_, err := toolRouter(t, srv, config.LLMConfig{}).For("planner").Generate(context.Background(), planRequest())
		var te *llm.TruncatedError
		if !errors.Is(err, llm.ErrTruncated) || !errors.As(err, &te) {
			t.Fatalf("want ErrTruncated, got %v", err)
		}
		// One retry with the catalogue's limit (64000 for Claude 3.7
		// Sonnet: streamed, the SDK refuses such a request unstreamed).
		if len(api.Bodies) != 2 || api.Bodies[0]["max_tokens"] != 1000.0 || api.Bodies[1]["max_tokens"] != 64000.0 || api.Bodies[1]["stream"] != true {
			t.Fatalf("%d requests: %v / %v", len(api.Bodies), api.Bodies[0]["max_tokens"], api.Bodies[1]["max_tokens"])
		}
		if te.MaxTokens != 64000 || te.Usage.OutputTokens != 1077 || te.Usage.InputTokens != 50 || te.Cost <= 0 {
			t.Fatalf("truncated error %+v", te)
		}
	})
}

// TestMaxTokensFromCatalogueAndConfig: with MaxTokens 0 the request
// carries the model's catalogue value, else the configured override.
func TestMaxTokensFromCatalogueAndConfig(t *testing.T) {
	stream := llmtest.SSE(toolStream("end_turn", 8))
	for _, tc := range []struct {
		name  string
		cfg   config.LLMConfig
		agent string
		want  float64
	}{
		{"catalogue sonnet 4.5", config.LLMConfig{DefaultModel: "claude-sonnet-4-5-20250929"}, "coder", 64000},
		{"catalogue 3.5 haiku", config.LLMConfig{DefaultModel: "claude-3-5-haiku-20241022"}, "coder", 8192},
		{"unknown model", config.LLMConfig{DefaultModel: "claude-next-preview"}, "coder", 8192},
		{"LLM_MAX_OUTPUT_TOKENS", config.LLMConfig{DefaultModel: "claude-sonnet-4-5-20250929", MaxOutputTokens: 3000}, "coder", 3000},
		{"per-agent override", config.LLMConfig{DefaultModel: "claude-sonnet-4-5-20250929", MaxOutputTokens: 3000,
			Agents: map[string]config.ModelChoice{"coder": {MaxOutputTokens: 1234}}}, "coder", 1234},
		{"other agent keeps the global", config.LLMConfig{DefaultModel: "claude-sonnet-4-5-20250929", MaxOutputTokens: 3000,
			Agents: map[string]config.ModelChoice{"coder": {MaxOutputTokens: 1234}}}, "planner", 3000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &llmtest.FakeAPI{Steps: []llmtest.Step{stream}}
			srv := httptest.NewServer(api)
			defer srv.Close()
			r := toolRouter(t, srv, tc.cfg)
			if got := r.Describe(tc.agent).MaxTokens; float64(got) != tc.want {
				t.Fatalf("Describe says %d", got)
			}
			_, err := r.For(tc.agent).Generate(context.Background(), llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: "hi"}}, OnDelta: func(string) {}})
			if err != nil {
				t.Fatal(err)
			}
			if got := api.Bodies[0]["max_tokens"]; got != tc.want || api.Bodies[0]["model"] != tc.cfg.DefaultModel {
				t.Fatalf("max_tokens %v model %v", got, api.Bodies[0]["model"])
			}
		})
	}
}

// TestCacheMarkOnToolsWithoutSystem: with no system prompt the last tool
// definition ends the stable prefix.
func TestCacheMarkOnToolsWithoutSystem(t *testing.T) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.JSON(200, finalReply)}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	req := loopRequest()
	req.System, req.Context = "", ""
	if _, err := toolRouter(t, srv, config.LLMConfig{}).For("coder").Generate(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	tools := api.Bodies[0]["tools"].([]any)
	if tools[len(tools)-1].(map[string]any)["cache_control"] == nil || tools[0].(map[string]any)["cache_control"] != nil {
		t.Fatalf("tools: %v", tools)
	}
	if _, ok := api.Bodies[0]["system"]; ok {
		t.Fatalf("empty system sent: %v", api.Bodies[0]["system"])
	}
}

// TestHostileToolCalls: huge arguments, invalid JSON, a non-object and an
// unknown tool name come back as calls the caller can refuse; no panic.
func TestHostileToolCalls(t *testing.T) {
	huge := `{"path":"a","content":"` + strings.Repeat("x", 1<<20) + `"}`
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.SSE(toolStream("tool_use", 64<<10,
		"t1", "write_file", huge, "t2", "edit_file", `{"path": nope}`, "t3", "rm_rf_everything", `{"x":1}`, "t4", "read_file", `["a"]`, "", "", `{}`))}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	req := loopRequest()
	req.OnDelta = func(string) {}
	resp, err := toolRouter(t, srv, config.LLMConfig{}).For("coder").Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ToolCalls) != 5 {
		t.Fatalf("%d calls", len(resp.ToolCalls))
	}
	if len(resp.ToolCalls[0].Arguments) != len(huge) {
		t.Fatalf("huge arguments changed: %d bytes", len(resp.ToolCalls[0].Arguments))
	}
	if raw, bad := resp.ToolCalls[1].InvalidArguments(); !bad || raw != `{"path": nope}` {
		t.Fatalf("invalid JSON: %s", resp.ToolCalls[1].Arguments)
	}
	if resp.ToolCalls[2].Name != "rm_rf_everything" {
		t.Fatalf("unknown name must reach the caller as is: %+v", resp.ToolCalls[2])
	}
	if _, bad := resp.ToolCalls[3].InvalidArguments(); !bad {
		t.Fatalf("array arguments: %s", resp.ToolCalls[3].Arguments)
	}
	if resp.ToolCalls[4].ID == "" {
		t.Fatalf("a call without id got none: %+v", resp.ToolCalls[4])
	}
	for _, c := range resp.ToolCalls {
		var obj map[string]any
		if json.Unmarshal(c.Arguments, &obj) != nil {
			t.Fatalf("arguments not an object: %.80s", c.Arguments)
		}
	}
}
