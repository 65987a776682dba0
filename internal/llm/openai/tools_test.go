package openai_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/llm/llmtest"
)

func coderTools() []llm.Tool {
	return []llm.Tool{
		{Name: "read_file", Description: "Read a file", Parameters: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}`)},
		{Name: "edit_file", Description: "Edit a file", Parameters: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"},"search":{"type":"string"},"replace":{"type":"string"}},"required":["path","search","replace"]}`)},
		{Name: "finish", Description: "Say you are done", Parameters: json.RawMessage(`{"type":"object","properties":{"summary":{"type":"string"}}}`)},
	}
}

func loopRequest() llm.Request {
	return llm.Request{Agent: "coder", System: "You are the coder.", Context: "# Task\nFix the failing test",
		Tools: coderTools(), MaxTokens: 2000,
		Messages: []llm.Message{{Role: llm.RoleUser, Content: "The test TestAdd fails."}}}
}

func jsonEq(a json.RawMessage, b string) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

// Docs: "Function calling" (Chat Completions), parallel tool calls.
const toolCallsReply = `{
  "id": "chatcmpl-2", "object": "chat.completion", "created": 1, "model": "gpt-4.1-2025-04-14",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": null, "annotations": [],
    "tool_calls": [
      {"id": "call_A", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"calc.go\"}"}},
      {"id": "call_B", "type": "function", "function": {"name": "edit_file", "arguments": "{\"path\":\"calc.go\",\"search\":\"a - b\",\"replace\":\"a + b\"}"}}
    ]}, "logprobs": null, "finish_reason": "tool_calls"}],
  "usage": {"prompt_tokens": 3000, "completion_tokens": 40, "total_tokens": 3040, "prompt_tokens_details": {"cached_tokens": 2048}}
}`

const doneReply = `{
  "id": "chatcmpl-3", "object": "chat.completion", "created": 1, "model": "gpt-4.1-2025-04-14",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "Fixed.", "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
  "usage": {"prompt_tokens": 3100, "completion_tokens": 3, "total_tokens": 3103, "prompt_tokens_details": {"cached_tokens": 3000}}
}`

func TestToolLoopNonStreaming(t *testing.T) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.JSON(200, toolCallsReply), llmtest.JSON(200, doneReply)}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	m := newRouter(t, openaiCfg(srv), srv.Client(), nil).For("coder")
	req := loopRequest()
	resp, err := m.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StopReason != llm.StopToolUse || len(resp.ToolCalls) != 2 || resp.ToolCalls[1].ID != "call_B" ||
		!jsonEq(resp.ToolCalls[1].Arguments, `{"path":"calc.go","search":"a - b","replace":"a + b"}`) {
		t.Fatalf("turn 1: %+v", resp)
	}
	// Automatic prompt caching: cached_tokens are cache reads at their price.
	if resp.Usage.CacheReadTokens != 2048 || resp.Usage.InputTokens != 3000-2048 {
		t.Fatalf("usage %+v", resp.Usage)
	}
	want := (952*2.0 + 40*8.0 + 2048*0.5) / 1e6
	if d := resp.Cost - want; d > 1e-12 || d < -1e-12 {
		t.Fatalf("cost %v want %v", resp.Cost, want)
	}
	tools := api.Bodies[0]["tools"].([]any)
	fn := tools[1].(map[string]any)
	if len(tools) != 3 || fn["type"] != "function" || fn["function"].(map[string]any)["name"] != "edit_file" ||
		fn["function"].(map[string]any)["parameters"].(map[string]any)["required"] == nil {
		t.Fatalf("tools %v", tools)
	}
	req.Messages = append(req.Messages,
		llm.Message{Role: llm.RoleAssistant, Content: resp.Text, ToolCalls: resp.ToolCalls},
		llm.Message{Role: llm.RoleUser, ToolResults: []llm.ToolResult{
			{CallID: "call_A", Name: "read_file", Content: "func Add(a, b int) int { return a - b }"},
			{CallID: "call_B", Name: "edit_file", Content: "search text not found", IsError: true},
		}})
	resp, err = m.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StopReason != llm.StopEnd || resp.Text != "Fixed." || resp.Usage.CacheReadTokens != 3000 {
		t.Fatalf("turn 2: %+v", resp)
	}
	msgs := api.Bodies[1]["messages"].([]any)
	if len(msgs) != 5 {
		t.Fatalf("messages %v", msgs)
	}
	asst := msgs[2].(map[string]any)
	calls := asst["tool_calls"].([]any)
	c1 := calls[1].(map[string]any)
	if asst["role"] != "assistant" || len(calls) != 2 || c1["id"] != "call_B" || c1["type"] != "function" ||
		!jsonEq(json.RawMessage(c1["function"].(map[string]any)["arguments"].(string)), `{"path":"calc.go","search":"a - b","replace":"a + b"}`) {
		t.Fatalf("assistant turn %v", asst)
	}
	t0, t1 := msgs[3].(map[string]any), msgs[4].(map[string]any)
	if t0["role"] != "tool" || t0["tool_call_id"] != "call_A" || t1["tool_call_id"] != "call_B" || !strings.HasPrefix(fmt.Sprint(t1["content"]), "Error: ") {
		t.Fatalf("tool messages %v %v", t0, t1)
	}
}

// chunk is one chat.completion.chunk carrying a tool call delta.
func chunk(delta string, finish string) string {
	f := "null"
	if finish != "" {
		f = fmt.Sprintf("%q", finish)
	}
	return fmt.Sprintf(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4.1-2025-04-14","choices":[{"index":0,"delta":%s,"finish_reason":%s}]}`+"\n\n", delta, f)
}

const streamedEdit = `{"path":"calc.go","search":"return a - b","replace":"return a + b // \"fixed\" ünïcode"}`

// toolCallStream interleaves two calls' argument pieces by index, as the
// docs' streaming example does for parallel calls.
func toolCallStream(finish string, n int, args0, args1 string) string {
	var b strings.Builder
	b.WriteString(chunk(`{"role":"assistant","content":"On it."}`, ""))
	b.WriteString(chunk(`{"tool_calls":[{"index":0,"id":"call_S0","type":"function","function":{"name":"edit_file","arguments":""}}]}`, ""))
	b.WriteString(chunk(`{"tool_calls":[{"index":1,"id":"call_S1","type":"function","function":{"name":"read_file","arguments":""}}]}`, ""))
	p0, p1 := llmtest.Pieces(args0, n), llmtest.Pieces(args1, n)
	for i := 0; i < max(len(p0), len(p1)); i++ {
		if i < len(p0) {
			b.WriteString(chunk(`{"tool_calls":[{"index":0,"function":{"arguments":`+llmtest.Quote(p0[i])+`}}]}`, ""))
		}
		if i < len(p1) {
			b.WriteString(chunk(`{"tool_calls":[{"index":1,"function":{"arguments":`+llmtest.Quote(p1[i])+`}}]}`, ""))
		}
	}
	b.WriteString(chunk(`{}`, finish))
	b.WriteString(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4.1-2025-04-14","choices":[],"usage":{"prompt_tokens":500,"completion_tokens":90,"total_tokens":590,"prompt_tokens_details":{"cached_tokens":256}}}` + "\n\ndata: [DONE]\n\n")
	return b.String()
}

func TestToolLoopStreaming(t *testing.T) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{
		llmtest.SSE(toolCallStream("tool_calls", 2, streamedEdit, `{"path":"calc_test.go"}`)),
		llmtest.SSE(chunk(`{"tool_calls":[{"index":0,"id":"call_F","type":"function","function":{"name":"finish","arguments":"{\"summ"}}]}`, "") +
			chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"ary\":\"ok\"}"}}]}`, "") + chunk(`{}`, "tool_calls") + "data: [DONE]\n\n"),
	}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	m := newRouter(t, openaiCfg(srv), srv.Client(), nil).For("coder")
	req := loopRequest()
	var deltas strings.Builder
	req.OnDelta = func(d string) { deltas.WriteString(d) }
	resp, err := m.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StopReason != llm.StopToolUse || len(resp.ToolCalls) != 2 || deltas.String() != "On it." || resp.Text != "On it." {
		t.Fatalf("turn 1: %+v deltas %q", resp, deltas.String())
	}
	if c := resp.ToolCalls[0]; c.ID != "call_S0" || c.Name != "edit_file" || !jsonEq(c.Arguments, streamedEdit) {
		t.Fatalf("call 0 %+v %s", c, c.Arguments)
	}
	if c := resp.ToolCalls[1]; c.ID != "call_S1" || !jsonEq(c.Arguments, `{"path":"calc_test.go"}`) {
		t.Fatalf("call 1 %+v %s", c, c.Arguments)
	}
	if resp.Usage.CacheReadTokens != 256 || resp.Usage.InputTokens != 244 {
		t.Fatalf("usage %+v", resp.Usage)
	}
	req.Messages = append(req.Messages,
		llm.Message{Role: llm.RoleAssistant, Content: resp.Text, ToolCalls: resp.ToolCalls},
		llm.Message{Role: llm.RoleUser, ToolResults: []llm.ToolResult{{CallID: "call_S0", Name: "edit_file", Content: "ok"}, {CallID: "call_S1", Name: "read_file", Content: "..."}}})
	resp, err = m.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ToolCalls) != 1 || resp.ToolCalls[0].Name != "finish" || !jsonEq(resp.ToolCalls[0].Arguments, `{"summary":"ok"}`) {
		t.Fatalf("turn 2: %+v", resp)
	}
	asst := api.Bodies[1]["messages"].([]any)[2].(map[string]any)
	if asst["content"] != "On it." || len(asst["tool_calls"].([]any)) != 2 {
		t.Fatalf("assistant turn sent back: %v", asst)
	}
}

// TestOllamaStopWithToolCalls: compatible servers that say "stop" although
// the answer ends with tool calls (each call whole, all at index 0) still
// give StopToolUse and every call.
func TestOllamaStopWithToolCalls(t *testing.T) {
	body := chunk(`{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"read_file","arguments":"{\"path\":\"a\"}"}}]}`, "") +
		chunk(`{"tool_calls":[{"index":0,"id":"call_2","type":"function","function":{"name":"read_file","arguments":"{\"path\":\"b\"}"}}]}`, "") +
		chunk(`{}`, "stop") + "data: [DONE]\n\n"
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.SSE(body)}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	req := loopRequest()
	req.OnDelta = func(string) {}
	resp, err := newRouter(t, openaiCfg(srv), srv.Client(), nil).For("coder").Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StopReason != llm.StopToolUse || len(resp.ToolCalls) != 2 || !jsonEq(resp.ToolCalls[1].Arguments, `{"path":"b"}`) {
		t.Fatalf("%+v", resp)
	}
}

func TestLengthStops(t *testing.T) {
	lengthReply := func(content string) llmtest.Step {
		return llmtest.JSON(200, `{"id":"x","object":"chat.completion","created":1,"model":"gpt-4.1","choices":[{"index":0,"message":{"role":"assistant","content":`+
			llmtest.Quote(content)+`},"finish_reason":"length"}],"usage":{"prompt_tokens":10,"completion_tokens":500,"total_tokens":510}}`)
	}
	t.Run("plain", func(t *testing.T) {
		api := &llmtest.FakeAPI{Steps: []llmtest.Step{lengthReply("Once upon")}}
		srv := httptest.NewServer(api)
		defer srv.Close()
		resp, err := newRouter(t, openaiCfg(srv), srv.Client(), nil).For("writer").Generate(context.Background(),
			llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: "Tell"}}, MaxTokens: 500})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StopReason != llm.StopLength || resp.ProviderStopReason != "length" || resp.Text != "Once upon" {
			t.Fatalf("%+v", resp)
		}
	})
	t.Run("structured", func(t *testing.T) {
		api := &llmtest.FakeAPI{Steps: []llmtest.Step{lengthReply(`{"title":"Todo app","poi`)}}
		srv := httptest.NewServer(api)
		defer srv.Close()
		_, err := newRouter(t, openaiCfg(srv), srv.Client(), nil).For("planner").Generate(context.Background(), planRequest())
		var te *llm.TruncatedError
		if !errors.Is(err, llm.ErrTruncated) || !errors.As(err, &te) || te.Text != `{"title":"Todo app","poi` {
			t.Fatalf("want ErrTruncated with the partial text, got %v", err)
		}
		// Retried once with gpt-4.1's catalogue limit, then given up.
		if len(api.Bodies) != 2 || api.Bodies[1]["max_tokens"] != 16384.0 || te.Usage.OutputTokens != 1000 {
			t.Fatalf("%d requests, second max_tokens %v, usage %+v", len(api.Bodies), api.Bodies[len(api.Bodies)-1]["max_tokens"], te.Usage)
		}
	})
	t.Run("structured streamed", func(t *testing.T) {
		cut := chunk(`{"role":"assistant","content":"{\"title\":\"To"}`, "") + chunk(`{}`, "length") + "data: [DONE]\n\n"
		api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.SSE(cut)}}
		srv := httptest.NewServer(api)
		defer srv.Close()
		req := planRequest()
		req.MaxTokens = 0 // the catalogue's 16384: no larger retry exists
		req.OnDelta = func(string) {}
		_, err := newRouter(t, openaiCfg(srv), srv.Client(), nil).For("planner").Generate(context.Background(), req)
		if !errors.Is(err, llm.ErrTruncated) || len(api.Bodies) != 1 || api.Bodies[0]["max_tokens"] != 16384.0 {
			t.Fatalf("err %v after %d requests", err, len(api.Bodies))
		}
	})
}

func TestMaxTokensFromCatalogue(t *testing.T) {
	for _, tc := range []struct {
		model, field string
		want         float64
	}{
		{"gpt-4.1", "max_tokens", 16384},
		{"gpt-4o-2024-08-06", "max_tokens", 8192},
		{"gpt-5", "max_completion_tokens", 128000},
		{"o3-mini", "max_completion_tokens", 50000},
		{"some-local-model", "max_tokens", 8192},
	} {
		t.Run(tc.model, func(t *testing.T) {
			api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.JSON(200, doneReply)}}
			srv := httptest.NewServer(api)
			defer srv.Close()
			cfg := openaiCfg(srv)
			cfg.DefaultModel = tc.model
			if _, err := newRouter(t, cfg, srv.Client(), nil).For("coder").Generate(context.Background(),
				llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: "hi"}}}); err != nil {
				t.Fatal(err)
			}
			body := api.Bodies[0]
			other := "max_completion_tokens"
			if tc.field == other {
				other = "max_tokens"
			}
			if body[tc.field] != tc.want || body[other] != nil {
				t.Fatalf("%s=%v %s=%v", tc.field, body[tc.field], other, body[other])
			}
		})
	}
}

// noToolsServer is an Ollama-like server whose model has no tool calling:
// any request with "tools" gets Ollama's 400; others get the answers.
type noToolsServer struct {
	mu       sync.Mutex
	answers  []string
	bodies   []map[string]any
	refusals int
}

func (s *noToolsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if _, ok := body["tools"]; ok {
		s.refusals++
		w.WriteHeader(400)
		io.WriteString(w, `{"error":{"message":"registry.ollama.ai/library/gemma:2b does not support tools","type":"api_error","param":null,"code":null}}`)
		return
	}
	s.bodies = append(s.bodies, body)
	a := s.answers[0]
	s.answers = s.answers[1:]
	fmt.Fprintf(w, `{"id":"x","object":"chat.completion","created":1,"model":"gemma:2b","choices":[{"index":0,"message":{"role":"assistant","content":%s},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}`, llmtest.Quote(a))
}

// TestJSONToolModeFallback: the first tool request is refused with 400; the
// router switches the model to JSON tool mode, remembers it (no more
// refused requests), and the loop runs on plain JSON answers.
func TestJSONToolModeFallback(t *testing.T) {
	s := &noToolsServer{answers: []string{
		"I will read it.\n```json\n{\"tool\": \"read_file\", \"arguments\": {\"path\": \"calc.go\"}}\n```",
		`{"done": "Fixed the sign."}`,
	}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	cfg := config.LLMConfig{DefaultProvider: "openai", DefaultModel: "gemma:2b", OpenAIBaseURL: srv.URL}
	m := newRouter(t, cfg, srv.Client(), nil).For("coder")
	req := loopRequest()
	resp, err := m.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StopReason != llm.StopToolUse || len(resp.ToolCalls) != 1 || resp.ToolCalls[0].Name != "read_file" ||
		!jsonEq(resp.ToolCalls[0].Arguments, `{"path":"calc.go"}`) || resp.ToolCalls[0].ID == "" {
		t.Fatalf("turn 1: %+v", resp)
	}
	sys := fmt.Sprint(s.bodies[0]["messages"].([]any)[0])
	if !strings.Contains(sys, "You are the coder.") || !strings.Contains(sys, "edit_file") || !strings.Contains(sys, `{"done": "<summary>"}`) {
		t.Fatalf("tools not described in the system prompt: %s", sys)
	}
	req.Messages = append(req.Messages,
		llm.Message{Role: llm.RoleAssistant, Content: resp.Text, ToolCalls: resp.ToolCalls},
		llm.Message{Role: llm.RoleUser, ToolResults: []llm.ToolResult{{CallID: resp.ToolCalls[0].ID, Name: "read_file", Content: "return a - b"}}})
	resp, err = m.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if s.refusals != 1 {
		t.Fatalf("the switch was not remembered: %d refused requests", s.refusals)
	}
	if len(resp.ToolCalls) != 1 || resp.ToolCalls[0].Name != "finish" || !jsonEq(resp.ToolCalls[0].Arguments, `{"summary":"Fixed the sign."}`) {
		t.Fatalf("turn 2: %+v", resp)
	}
	msgs := s.bodies[1]["messages"].([]any)
	asst, res := fmt.Sprint(msgs[2]), fmt.Sprint(msgs[3])
	if !strings.Contains(asst, `{"arguments":{"path":"calc.go"},"tool":"read_file"}`) || !strings.Contains(res, "return a - b") || !strings.Contains(res, "read_file") {
		t.Fatalf("transcript as text: %s / %s", asst, res)
	}
}

// TestHostileToolCalls over the wire: invalid JSON, a non-object, an
// unknown name and megabytes of arguments reach the caller as refusable
// calls with object arguments; nothing panics.
func TestHostileToolCalls(t *testing.T) {
	huge := `{"path":"a","content":"` + strings.Repeat("y", 1<<20) + `"}`
	body := chunk(`{"role":"assistant","tool_calls":[{"index":0,"id":"h0","type":"function","function":{"name":"write_file","arguments":`+llmtest.Quote(huge)+`}}]}`, "") +
		chunk(`{"tool_calls":[{"index":1,"id":"h1","type":"function","function":{"name":"edit_file","arguments":"{\"path\": tru"}}]}`, "") +
		chunk(`{"tool_calls":[{"index":2,"id":"h2","type":"function","function":{"name":"../../etc/passwd","arguments":"\"just a string\""}}]}`, "") +
		chunk(`{"tool_calls":[{"index":3,"type":"function","function":{"name":"finish","arguments":""}}]}`, "") +
		chunk(`{}`, "tool_calls") + "data: [DONE]\n\n"
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.SSE(body)}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	req := loopRequest()
	req.OnDelta = func(string) {}
	resp, err := newRouter(t, openaiCfg(srv), srv.Client(), nil).For("coder").Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ToolCalls) != 4 || len(resp.ToolCalls[0].Arguments) != len(huge) {
		t.Fatalf("%d calls", len(resp.ToolCalls))
	}
	if raw, bad := resp.ToolCalls[1].InvalidArguments(); !bad || raw != `{"path": tru` {
		t.Fatalf("invalid: %s", resp.ToolCalls[1].Arguments)
	}
	if raw, bad := resp.ToolCalls[2].InvalidArguments(); !bad || raw != `"just a string"` || resp.ToolCalls[2].Name != "../../etc/passwd" {
		t.Fatalf("string args: %+v", resp.ToolCalls[2])
	}
	if c := resp.ToolCalls[3]; string(c.Arguments) != `{}` || c.ID == "" {
		t.Fatalf("empty args: %+v", c)
	}
}
