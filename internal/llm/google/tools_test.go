package google_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

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

// Docs: "Function calling with the Gemini API" (parallel calls; Gemini 3
// thought signatures on the first call part).
const callsReply = `{
  "candidates": [{"content": {"role": "model", "parts": [
    {"text": "Looking."},
    {"functionCall": {"id": "fc-1", "name": "read_file", "args": {"path": "calc.go"}}, "thoughtSignature": "c2lnbmF0dXJlLTE="},
    {"functionCall": {"name": "edit_file", "args": {"path": "calc.go", "search": "a - b", "replace": "a + b"}}}
  ]}, "finishReason": "STOP", "index": 0}],
  "usageMetadata": {"promptTokenCount": 2000, "candidatesTokenCount": 30, "cachedContentTokenCount": 1500, "totalTokenCount": 2030},
  "modelVersion": "gemini-2.5-flash"
}`

const doneReply = `{
  "candidates": [{"content": {"role": "model", "parts": [{"text": "Fixed."}]}, "finishReason": "STOP", "index": 0}],
  "usageMetadata": {"promptTokenCount": 2100, "candidatesTokenCount": 2, "cachedContentTokenCount": 2000, "totalTokenCount": 2102},
  "modelVersion": "gemini-2.5-flash"
}`

func TestToolLoopNonStreaming(t *testing.T) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.JSON(200, callsReply), llmtest.JSON(200, doneReply)}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	m := newRouter(t, srv, nil).For("coder")
	req := loopRequest()
	resp, err := m.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StopReason != llm.StopToolUse || resp.ProviderStopReason != "STOP" || resp.Text != "Looking." || len(resp.ToolCalls) != 2 {
		t.Fatalf("turn 1: %+v", resp)
	}
	c0, c1 := resp.ToolCalls[0], resp.ToolCalls[1]
	if c0.ID != "fc-1" || string(c0.Signature) != "signature-1" || !jsonEq(c0.Arguments, `{"path":"calc.go"}`) ||
		c1.ID != "call_1_1" || c1.Name != "edit_file" || !jsonEq(c1.Arguments, `{"path":"calc.go","search":"a - b","replace":"a + b"}`) {
		t.Fatalf("calls %+v / %+v", c0, c1)
	}
	if resp.Usage.CacheReadTokens != 1500 || resp.Usage.InputTokens != 500 {
		t.Fatalf("usage %+v", resp.Usage)
	}
	decl := api.Bodies[0]["tools"].([]any)[0].(map[string]any)["functionDeclarations"].([]any)
	d1 := decl[1].(map[string]any)
	if len(decl) != 3 || d1["name"] != "edit_file" || d1["parametersJsonSchema"].(map[string]any)["required"] == nil {
		t.Fatalf("declarations %v", decl)
	}
	req.Messages = append(req.Messages,
		llm.Message{Role: llm.RoleAssistant, Content: resp.Text, ToolCalls: resp.ToolCalls},
		llm.Message{Role: llm.RoleUser, ToolResults: []llm.ToolResult{
			{CallID: c0.ID, Name: "read_file", Content: "return a - b"},
			{CallID: c1.ID, Name: "edit_file", Content: "search text not found", IsError: true},
		}})
	resp, err = m.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StopReason != llm.StopEnd || resp.Text != "Fixed." || resp.Usage.CacheReadTokens != 2000 {
		t.Fatalf("turn 2: %+v", resp)
	}
	contents := api.Bodies[1]["contents"].([]any)
	model := contents[1].(map[string]any)
	parts := model["parts"].([]any)
	fc := parts[1].(map[string]any)
	if model["role"] != "model" || fc["thoughtSignature"] != "c2lnbmF0dXJlLTE=" || fc["functionCall"].(map[string]any)["id"] != "fc-1" ||
		fc["functionCall"].(map[string]any)["args"].(map[string]any)["path"] != "calc.go" {
		t.Fatalf("model turn sent back %v", model)
	}
	user := contents[2].(map[string]any)["parts"].([]any)
	r0 := user[0].(map[string]any)["functionResponse"].(map[string]any)
	r1 := user[1].(map[string]any)["functionResponse"].(map[string]any)
	if r0["name"] != "read_file" || r0["id"] != "fc-1" || r0["response"].(map[string]any)["output"] != "return a - b" ||
		r1["response"].(map[string]any)["error"] != "search text not found" {
		t.Fatalf("function responses %v", user)
	}
}

func sseChunk(parts string, finish string) string {
	f := ""
	if finish != "" {
		f = fmt.Sprintf(`,"finishReason":%q`, finish)
	}
	return `data: {"candidates":[{"content":{"role":"model","parts":[` + parts + `]}` + f + `,"index":0}],"modelVersion":"gemini-2.5-flash"}` + "\r\n\r\n"
}

// TestToolLoopStreaming: calls spread over chunks (Gemini API), and one
// call's arguments streamed as partialArgs with willContinue (Vertex AI),
// a string split in many pieces.
func TestToolLoopStreaming(t *testing.T) {
	const replace = `return a + b // "fixed" ünïcode`
	var b strings.Builder
	b.WriteString(sseChunk(`{"text":"Step "}`, ""))
	b.WriteString(sseChunk(`{"text":"one."},{"functionCall":{"name":"read_file","args":{"path":"calc.go"}},"thoughtSignature":"c2lnLUE="}`, ""))
	b.WriteString(sseChunk(`{"functionCall":{"id":"p1","name":"edit_file","partialArgs":[{"jsonPath":"$.path","stringValue":"calc.go"},{"jsonPath":"$.search","stringValue":"return a - b"}],"willContinue":true}}`, ""))
	for _, p := range llmtest.Pieces(replace, 3) {
		b.WriteString(sseChunk(`{"functionCall":{"partialArgs":[{"jsonPath":"$.replace","stringValue":`+llmtest.Quote(p)+`,"willContinue":true}],"willContinue":true}}`, ""))
	}
	b.WriteString(sseChunk(`{"functionCall":{"partialArgs":[{"jsonPath":"$.opts.lines[0]","numberValue":3}],"willContinue":false}}`, ""))
	b.WriteString(`data: {"candidates":[{"content":{"role":"model","parts":[{"text":""}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":900,"candidatesTokenCount":40,"cachedContentTokenCount":800,"totalTokenCount":940},"modelVersion":"gemini-2.5-flash"}` + "\r\n\r\n")
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.Reply(200, "text/event-stream", b.String())}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	req := loopRequest()
	var deltas []string
	req.OnDelta = func(d string) { deltas = append(deltas, d) }
	resp, err := newRouter(t, srv, nil).For("coder").Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(deltas, "|") != "Step |one." || resp.StopReason != llm.StopToolUse || len(resp.ToolCalls) != 2 {
		t.Fatalf("%+v deltas %q", resp, deltas)
	}
	if c := resp.ToolCalls[0]; c.Name != "read_file" || string(c.Signature) != "sig-A" || !jsonEq(c.Arguments, `{"path":"calc.go"}`) {
		t.Fatalf("call 0 %+v", c)
	}
	want, _ := json.Marshal(map[string]any{"path": "calc.go", "search": "return a - b", "replace": replace, "opts": map[string]any{"lines": []any{3}}})
	if c := resp.ToolCalls[1]; c.ID != "p1" || c.Name != "edit_file" || !jsonEq(c.Arguments, string(want)) {
		t.Fatalf("assembled partial call %+v %s", c, c.Arguments)
	}
	if resp.Usage.CacheReadTokens != 800 || resp.Usage.InputTokens != 100 {
		t.Fatalf("usage %+v", resp.Usage)
	}
}

func TestLengthStops(t *testing.T) {
	cut := func(text string) llmtest.Step {
		return llmtest.JSON(200, `{"candidates":[{"content":{"role":"model","parts":[{"text":`+llmtest.Quote(text)+`}]},"finishReason":"MAX_TOKENS","index":0}],
		  "usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":400,"totalTokenCount":410},"modelVersion":"gemini-2.5-flash"}`)
	}
	t.Run("plain", func(t *testing.T) {
		api := &llmtest.FakeAPI{Steps: []llmtest.Step{cut("It was a dark")}}
		srv := httptest.NewServer(api)
		defer srv.Close()
		resp, err := newRouter(t, srv, nil).For("writer").Generate(context.Background(), llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: "Tell"}}, MaxTokens: 400})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StopReason != llm.StopLength || resp.ProviderStopReason != "MAX_TOKENS" || resp.Text != "It was a dark" {
			t.Fatalf("%+v", resp)
		}
	})
	t.Run("structured", func(t *testing.T) {
		api := &llmtest.FakeAPI{Steps: []llmtest.Step{cut(`{"title": "Todo`)}}
		srv := httptest.NewServer(api)
		defer srv.Close()
		_, err := newRouter(t, srv, nil).For("planner").Generate(context.Background(), planRequest())
		var te *llm.TruncatedError
		if !errors.As(err, &te) || !errors.Is(err, llm.ErrTruncated) {
			t.Fatalf("want ErrTruncated, got %v", err)
		}
		gc := api.Bodies[1]["generationConfig"].(map[string]any)
		if len(api.Bodies) != 2 || gc["maxOutputTokens"] != 50000.0 || te.Usage.OutputTokens != 800 {
			t.Fatalf("%d requests, retry config %v, usage %+v", len(api.Bodies), gc, te.Usage)
		}
	})
}

func TestMaxTokensFromCatalogue(t *testing.T) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.JSON(200, doneReply)}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	if _, err := newRouter(t, srv, nil).For("coder").Generate(context.Background(), llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: "hi"}}}); err != nil {
		t.Fatal(err)
	}
	if gc := api.Bodies[0]["generationConfig"].(map[string]any); gc["maxOutputTokens"] != 50000.0 {
		t.Fatalf("generationConfig %v", gc)
	}
}

// TestHostileToolCalls: unknown names, empty and nested arguments, and a
// partial path that cannot be applied; every call keeps object arguments.
func TestHostileToolCalls(t *testing.T) {
	body := sseChunk(`{"functionCall":{"name":"rm -rf /","args":{"x":1}}},{"functionCall":{"name":"finish"}}`, "") +
		sseChunk(`{"functionCall":{"id":"bad","name":"edit_file","partialArgs":[{"jsonPath":"$.a","stringValue":"x"},{"jsonPath":"$.a[0]","stringValue":"y"},{"jsonPath":"nonsense","stringValue":"z"}]}}`, "STOP")
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.Reply(200, "text/event-stream", body)}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	req := loopRequest()
	req.OnDelta = func(string) {}
	resp, err := newRouter(t, srv, nil).For("coder").Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ToolCalls) != 3 || resp.ToolCalls[0].Name != "rm -rf /" || string(resp.ToolCalls[1].Arguments) != "{}" {
		t.Fatalf("%+v", resp.ToolCalls)
	}
	if _, bad := resp.ToolCalls[2].InvalidArguments(); !bad {
		t.Fatalf("unusable partial arguments not flagged: %s", resp.ToolCalls[2].Arguments)
	}
	ids := map[string]bool{}
	for _, c := range resp.ToolCalls {
		if c.ID == "" || ids[c.ID] {
			t.Fatalf("ids %+v", resp.ToolCalls)
		}
		ids[c.ID] = true
	}
}
