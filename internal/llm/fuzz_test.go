package llm

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/catalyst/catalyst/internal/config"
)

// FuzzStructuredOutput feeds arbitrary model output through extraction and
// validation, directly and through the repair path: nothing may panic, an
// accepted document must be valid JSON satisfying the schema, and a rejected
// one must fail with a SchemaError.
func FuzzStructuredOutput(f *testing.F) {
	for _, s := range []string{
		`{"title":"a","points":2}`, "```json\n{\"title\":\"a\",\"points\":2}\n```", `prose {"title":"a","points":0} more`,
		`[{"title":1}]`, `{"title":"a","points":2,"extra":true}`, "```\n{\n```", `{"a":`, "\x00{[", `{"title":"\ud800","points":1e400}`,
	} {
		f.Add(s)
	}
	schema, err := CompileSchema(storySchema)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		doc, err := ExtractJSON(text)
		if err == nil {
			if !json.Valid(doc) {
				t.Fatalf("ExtractJSON returned invalid JSON %q", doc)
			}
			if ValidateJSON(schema, doc) == "" {
				var v struct {
					Title  *string      `json:"title"`
					Points *json.Number `json:"points"`
				}
				// points may exceed int64 (1e400 is an integer to JSON Schema).
				if json.Unmarshal(doc, &v) != nil || v.Title == nil || v.Points == nil || strings.HasPrefix(string(*v.Points), "-") || *v.Points == "0" {
					t.Fatalf("accepted a document that breaks the schema: %s", doc)
				}
			}
		}
		m := &fakeModel{fn: okText(text)}
		r, err := NewRouter(config.LLMConfig{OllamaURL: "off"}, RouterOptions{Offline: m, Retry: RetryPolicy{MaxAttempts: 1, BaseDelay: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := r.For("").Generate(context.Background(), Request{Schema: storySchema})
		var se *SchemaError
		switch {
		case err == nil:
			if ValidateJSON(schema, resp.JSON) != "" {
				t.Fatalf("returned an invalid document %s", resp.JSON)
			}
		case !errors.As(err, &se) || se.Violation == "":
			t.Fatalf("want a SchemaError naming the violation, got %v", err)
		}
	})
}

// FuzzToolCalls feeds hostile tool calls through what every provider and
// the JSON tool mode do with them: arguments of any shape and size, names
// that were never offered, JSON-mode answers of any text. Nothing may
// panic; every call leaves with an ID and arguments that are a JSON object
// in valid UTF-8 (so it can be sent back to any vendor), and unusable
// arguments are flagged for the caller.
func FuzzToolCalls(f *testing.F) {
	for _, s := range []string{
		`{"path":"a.go"}`, `{"path":`, `[1,2]`, `"str"`, ``, `null`, `{"_invalid_arguments":"x"}`, "{\"a\":\"\xff\"}",
		`{"tool":"read_file","arguments":{"path":"x"}}`, `{"done":"ok"}`, `{"tool":null}`, `{"tool":"../../x","arguments":[` + strings.Repeat("[", 5000),
		"```json\n{\"tool\":\"finish\",\"arguments\":{\"summary\":1e999}}\n```", strings.Repeat(`{"a":`, 10000),
	} {
		f.Add(s, "read_file")
	}
	tools := []Tool{{Name: "read_file"}, {Name: "finish"}}
	check := func(t *testing.T, c ToolCall) {
		var obj map[string]json.RawMessage
		if c.ID == "" || !utf8.Valid(c.Arguments) || json.Unmarshal(c.Arguments, &obj) != nil {
			t.Fatalf("call %q id %q has arguments that are no JSON object: %.200q", c.Name, c.ID, c.Arguments)
		}
		if raw, bad := c.InvalidArguments(); bad && len(raw) > MaxInvalidArguments {
			t.Fatalf("kept %d bytes of invalid arguments", len(raw))
		}
	}
	f.Fuzz(func(t *testing.T, args, name string) {
		calls := FinishToolCalls([]ToolCall{{Name: name, Arguments: json.RawMessage(args)}, {ID: "x", Arguments: json.RawMessage(args)}, {ID: "x"}}, 3)
		ids := map[string]bool{}
		for _, c := range calls {
			check(t, c)
			if ids[c.ID] {
				t.Fatalf("duplicate id %q", c.ID)
			}
			ids[c.ID] = true
		}
		if strings.TrimSpace(args) != "" && json.Valid([]byte(args)) && strings.HasPrefix(strings.TrimSpace(args), "{") && utf8.ValidString(args) {
			if _, bad := calls[0].InvalidArguments(); bad && !strings.Contains(args, InvalidArgumentsKey) {
				t.Fatalf("a valid object was flagged: %q", args)
			}
		}
		_ = ArgumentsMap(json.RawMessage(args))
		resp := &Response{Text: args}
		parseJSONToolAnswer(Request{Tools: tools}, resp)
		for _, c := range resp.ToolCalls {
			check(t, c)
		}
		// The JSON-mode rendering of a transcript with this call.
		_ = jsonToolRequest(Request{Tools: tools, Messages: []Message{
			{Role: RoleAssistant, ToolCalls: calls},
			{Role: RoleUser, ToolResults: []ToolResult{{CallID: "x", Name: name, Content: args}}},
		}})
	})
}
