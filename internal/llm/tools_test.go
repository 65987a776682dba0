package llm

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/domain"
)

func TestNormalizeArguments(t *testing.T) {
	for in, want := range map[string]string{
		"":                 `{}`,
		" null ":           `{}`,
		`{"a":1}`:          `{"a":1}`,
		` {"a": [1,2]} `:   `{"a": [1,2]}`,
		`{"a":`:            `{"_invalid_arguments":"{\"a\":"}`,
		`[1,2]`:            `{"_invalid_arguments":"[1,2]"}`,
		`"text"`:           `{"_invalid_arguments":"\"text\""}`,
		"{\"a\":\"\xff\"}": `{"_invalid_arguments":"{\"a\":\"\ufffd\"}"}`,
	} {
		got := NormalizeArguments(in)
		if string(got) != want {
			t.Errorf("NormalizeArguments(%q) = %s, want %s", in, got, want)
		}
		if !json.Valid(got) {
			t.Errorf("not JSON: %s", got)
		}
	}
	long := NormalizeArguments("{" + strings.Repeat("é", MaxInvalidArguments))
	raw, bad := ToolCall{Arguments: long}.InvalidArguments()
	if !bad || len(raw) > MaxInvalidArguments || !strings.HasPrefix(raw, "{é") || strings.ContainsRune(raw, '\ufffd') {
		t.Fatalf("long invalid arguments: %d bytes, invalid %v", len(raw), bad)
	}
	if _, bad := (ToolCall{Arguments: json.RawMessage(`{"_invalid_arguments":"x","path":"a"}`)}).InvalidArguments(); bad {
		t.Fatal("a real argument of that name beside others is not a wrapper")
	}
}

func TestValidateRequest(t *testing.T) {
	ok := Tool{Name: "read_file", Parameters: json.RawMessage(`{"type":"object"}`)}
	for name, req := range map[string]Request{
		"tools and schema":    {Tools: []Tool{ok}, Schema: json.RawMessage(`{}`)},
		"bad name":            {Tools: []Tool{{Name: "read file"}}},
		"long name":           {Tools: []Tool{{Name: strings.Repeat("a", 65)}}},
		"duplicate":           {Tools: []Tool{ok, ok}},
		"params not object":   {Tools: []Tool{{Name: "x", Parameters: json.RawMessage(`[1]`)}}},
		"user with calls":     {Messages: []Message{{Role: RoleUser, ToolCalls: []ToolCall{{ID: "1"}}}}},
		"assistant w/ result": {Messages: []Message{{Role: RoleAssistant, ToolResults: []ToolResult{{CallID: "1"}}}}},
	} {
		if err := ValidateRequest(req); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := ValidateRequest(Request{Tools: []Tool{ok, {Name: "finish"}}}); err != nil {
		t.Fatal(err)
	}
	// The router refuses before any provider is called.
	f := &fakeModel{fn: okText("x")}
	r := testRouter(t, config.LLMConfig{AnthropicKey: "k-anthropic-123"}, map[string]*fakeModel{ProviderAnthropic: f}, nil)
	if _, err := r.For("coder").Generate(context.Background(), Request{Tools: []Tool{{Name: "a b"}}}); err == nil || f.calls.Load() != 0 {
		t.Fatalf("err %v, %d calls", err, f.calls.Load())
	}
}

func TestOutputLimit(t *testing.T) {
	for model, want := range map[string]int{
		"claude-sonnet-4-5-20250929":    64000,
		"claude-3-7-sonnet-20250219":    64000,
		"claude-3-haiku-20240307":       4096,
		"gpt-4.1":                       16384,
		"gpt-4.1-2025-04-14":            16384, // dated snapshot of the alias
		"gpt-4.1-mini-2025-04-14":       16384,
		"openai/gpt-4o":                 8192, // gateway prefix
		"gpt-3.5-turbo":                 4096,
		"gemini-2.5-flash":              50000,
		"qwen2.5-coder:7b":              DefaultOutputLimit,
		"":                              DefaultOutputLimit,
		"gpt-4-turbo-2024-04-09-custom": 4096,
	} {
		if got := OutputLimit("", model); got != want {
			t.Errorf("OutputLimit(%q) = %d, want %d", model, got, want)
		}
	}
}

// TestTruncatedIsNotRetriedNorFallenBack: a structured answer cut off at
// the limit is retried once with the model's full limit, then returned as
// ErrTruncated with both calls' usage; the fallback model is not asked and
// the breaker does not count it.
func TestTruncatedIsNotRetriedNorFallenBack(t *testing.T) {
	var maxTokens []int
	primary := &fakeModel{fn: func(_ context.Context, _ int, req Request) (*Response, error) {
		maxTokens = append(maxTokens, req.MaxTokens)
		return &Response{Text: `{"title":"a","poi`, StopReason: StopLength, Usage: domain.Usage{InputTokens: 10, OutputTokens: int64(req.MaxTokens)}}, nil
	}}
	backup := &fakeModel{fn: okText(`{"title":"a","points":1}`)}
	cfg := config.LLMConfig{AnthropicKey: "k-anthropic-123", OpenAIKey: "k-openai-456", DefaultModel: "claude-3-5-haiku-20241022",
		Fallback: []config.ModelChoice{{Provider: "openai", Model: "gpt-4.1"}}}
	r := testRouter(t, cfg, map[string]*fakeModel{ProviderAnthropic: primary, ProviderOpenAI: backup}, nil)
	for i := 0; i < 3; i++ {
		_, err := r.For("planner").Generate(context.Background(), Request{Schema: storySchema, MaxTokens: 1000})
		var te *TruncatedError
		if !errors.Is(err, ErrTruncated) || !errors.As(err, &te) || te.Text != `{"title":"a","poi` || te.Usage.OutputTokens != 1000+8192 {
			t.Fatalf("call %d: %v %+v", i, err, te)
		}
	}
	if backup.calls.Load() != 0 || primary.calls.Load() != 6 || maxTokens[0] != 1000 || maxTokens[1] != 8192 {
		t.Fatalf("backup %d primary %d max_tokens %v", backup.calls.Load(), primary.calls.Load(), maxTokens)
	}
	// Without a larger limit to try (MaxTokens 0: already the model's), one call.
	primary.calls.Store(0)
	_, err := r.For("planner").Generate(context.Background(), Request{Schema: storySchema})
	if !errors.Is(err, ErrTruncated) || primary.calls.Load() != 1 {
		t.Fatalf("%v after %d calls", err, primary.calls.Load())
	}
	// A plain answer cut off is an answer: StopLength, no error.
	resp, err := r.For("writer").Generate(context.Background(), Request{})
	if err != nil || resp.StopReason != StopLength {
		t.Fatalf("%+v %v", resp, err)
	}
}

func TestContinue(t *testing.T) {
	parts := []string{"one ", "two ", "three"}
	f := &fakeModel{fn: func(_ context.Context, n int, req Request) (*Response, error) {
		stop := StopLength
		if n == len(parts) {
			stop = StopEnd
		}
		if n > 1 {
			last := req.Messages[len(req.Messages)-1]
			prev := req.Messages[len(req.Messages)-2]
			if last.Content != ContinuePrompt || prev.Role != RoleAssistant || prev.Content != strings.Join(parts[:n-1], "") {
				return nil, errors.New("bad continuation request")
			}
		}
		return &Response{Text: parts[n-1], StopReason: stop, Usage: domain.Usage{OutputTokens: 1}, Cost: 0.5}, nil
	}}
	req := Request{Messages: []Message{{Role: RoleUser, Content: "count"}}}
	first, _ := f.Generate(context.Background(), req)
	got, err := Continue(context.Background(), f, req, first, 5)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != "one two three" || got.StopReason != StopEnd || got.Usage.OutputTokens != 3 || got.Cost != 1.5 {
		t.Fatalf("%+v", got)
	}
	// Bounded by rounds.
	f.calls.Store(0)
	first, _ = f.Generate(context.Background(), req)
	got, _ = Continue(context.Background(), f, req, first, 1)
	if got.Text != "one two " || got.StopReason != StopLength {
		t.Fatalf("%+v", got)
	}
}

func TestParseJSONToolAnswer(t *testing.T) {
	tools := []Tool{{Name: "read_file"}, {Name: "finish"}}
	req := Request{Tools: tools, Messages: []Message{{Role: RoleUser, Content: "go"}}}
	for text, want := range map[string]string{
		`{"tool":"read_file","arguments":{"path":"a"}}`:              `read_file {"path":"a"}`,
		"Sure.\n```json\n{\"tool\":\"read_file\"}\n```":              `read_file {}`,
		`{"tool":"read_file","arguments":"not an object"}`:           `read_file {"_invalid_arguments":"\"not an object\""}`,
		`{"done":"all good"}`:                                        `finish {"summary":"all good"}`,
		`{"done":{"files":2}}`:                                       `finish {"summary":"{\"files\":2}"}`,
		`no json at all`:                                             ``,
		`{"something":"else"}`:                                       ``,
		`{"tool":"` + strings.Repeat("x", 100) + `","arguments":{}}`: strings.Repeat("x", 100) + ` {}`,
	} {
		resp := &Response{Text: text, StopReason: StopEnd}
		parseJSONToolAnswer(req, resp)
		got := ""
		if len(resp.ToolCalls) == 1 {
			got = resp.ToolCalls[0].Name + " " + string(resp.ToolCalls[0].Arguments)
			if resp.StopReason != StopToolUse || resp.ToolCalls[0].ID != "json_1" {
				t.Errorf("%q: stop %q id %q", text, resp.StopReason, resp.ToolCalls[0].ID)
			}
		}
		if got != want {
			t.Errorf("%q: got %q, want %q", text, got, want)
		}
	}
	// Without a finish tool, done is the plain answer.
	resp := &Response{Text: `{"done":"bye"}`}
	parseJSONToolAnswer(Request{Tools: tools[:1]}, resp)
	if resp.Text != "bye" || len(resp.ToolCalls) != 0 {
		t.Fatalf("%+v", resp)
	}
}

func TestToolsUnsupported(t *testing.T) {
	for msg, want := range map[string]bool{
		"registry.ollama.ai/library/gemma:2b does not support tools":         true,
		`"auto" tool choice requires --enable-auto-tool-choice`:              true,
		"litellm.UnsupportedParamsError: does not support parameters: tools": true,
		"model not found":             false,
		"tools: invalid schema":       false,
		"this model does not support": false,
	} {
		if got := toolsUnsupported(&APIError{StatusCode: 400, Message: msg}); got != want {
			t.Errorf("%q: %v", msg, got)
		}
	}
	if toolsUnsupported(&APIError{StatusCode: 500, Message: "does not support tools"}) {
		t.Fatal("a 500 is not a refusal of tools")
	}
}

// TestJSONToolModeRoundTrip: the rewritten request carries the transcript
// as text and no tools; the switch is per model and remembered.
func TestJSONToolModeRoundTrip(t *testing.T) {
	var seen []Request
	f := &fakeModel{fn: func(_ context.Context, n int, req Request) (*Response, error) {
		seen = append(seen, req)
		if len(req.Tools) > 0 {
			return nil, &APIError{Provider: "openai", StatusCode: 400, Message: "model does not support tools"}
		}
		return &Response{Text: `{"tool":"read_file","arguments":{"path":"b"}}`}, nil
	}}
	r := testRouter(t, config.LLMConfig{OpenAIKey: "k-openai-456", DefaultProvider: "openai"}, map[string]*fakeModel{ProviderOpenAI: f}, nil)
	req := Request{System: "sys", Tools: []Tool{{Name: "read_file", Description: "Reads\n a file"}}, Messages: []Message{
		{Role: RoleUser, Content: "go"},
		{Role: RoleAssistant, Content: "reading", ToolCalls: []ToolCall{{ID: "c1", Name: "read_file", Arguments: json.RawMessage(`{"path":"a"}`)}}},
		{Role: RoleUser, ToolResults: []ToolResult{{CallID: "c1", Name: "read_file", Content: "A", IsError: true}}},
	}}
	for i := 0; i < 2; i++ {
		resp, err := r.For("coder").Generate(context.Background(), req)
		if err != nil || len(resp.ToolCalls) != 1 || resp.ToolCalls[0].ID != "json_3" {
			t.Fatalf("%+v %v", resp, err)
		}
	}
	if len(seen) != 3 {
		t.Fatalf("%d calls: the refusal must cost one request, once", len(seen))
	}
	j := seen[1]
	if len(j.Tools) != 0 || !strings.HasPrefix(j.System, "sys\n\n# Tools") || !strings.Contains(j.System, "- read_file: Reads a file") ||
		j.Messages[1].Content != "reading\n{\"arguments\":{\"path\":\"a\"},\"tool\":\"read_file\"}" ||
		!strings.Contains(j.Messages[2].Content, "Tool read_file error (call c1):\nA") {
		t.Fatalf("rewritten request: %q / %+v", j.System, j.Messages)
	}
}
