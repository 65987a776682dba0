package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// modelServer speaks two vendors' wire formats, each with JSON answers and
// SSE streaming as documented: OpenAI Chat Completions (as Ollama, vLLM or
// LiteLLM do; a final usage chunk) and Anthropic Messages (forced tool use,
// input_json_delta events). It answers each agent by the name of the schema
// or tool it asks for. Its coder writes a bug on the first call and fixes it
// once the failing test output comes back.
type modelServer struct {
	mu     sync.Mutex
	calls  map[string]int
	coder  []string // the user messages of each coder call
	auth   []string
	models []string
	cached []bool // Anthropic: the system prompt carried a cache_control marker
}

const sumTest = `const test = require('node:test');
const assert = require('node:assert');
const { sum } = require('./sum.js');
test('sum adds two numbers', () => {
  assert.strictEqual(sum(2, 3), 5, 'sum(2, 3) should be 5');
});
test('sum of nothing is zero', () => {
  assert.strictEqual(sum(0, 0), 0);
});
`

func (f *modelServer) answer(agent string, call int) any {
	switch agent {
	case "planner":
		return map[string]any{"summary": "A sum function for a calculator", "requirements": []string{"sum(a, b) returns a + b"},
			"user_stories": []any{map[string]any{"title": "Add", "story": "As a user I add two numbers", "acceptance_criteria": []string{"sum(2, 3) is 5"}}}}
	case "architect":
		return map[string]any{
			"stack":      map[string]any{"language": "javascript", "runtime": "node", "framework": "none", "test_command": []string{"node", "--test"}},
			"components": []any{map[string]any{"name": "sum", "responsibility": "adds two numbers"}},
			"files": []any{map[string]any{"path": "sum.js", "purpose": "the function"},
				map[string]any{"path": "sum.test.js", "purpose": "its tests"}},
			"interfaces": []any{map[string]any{"name": "sum(a, b)", "description": "returns a + b"}},
		}
	case "tester":
		return map[string]any{"files": []any{}, "notes": "the coder's tests cover the requirement"}
	case "reviewer":
		return map[string]any{"approved": true, "summary": "Small and clear.", "findings": []any{}}
	}
	return map[string]any{}
}

// toolCall is one call the scripted coder makes.
type toolCall struct {
	name string
	args map[string]string
}

// coderTurn scripts the coder's tool loop: the first turn of a round
// writes the files (with the bug unless the round is a fix), the next
// finishes.
func (f *modelServer) coderTurn(messages json.RawMessage, call int) []toolCall {
	var msgs []struct {
		Role string `json:"role"`
	}
	json.Unmarshal(messages, &msgs)
	for _, m := range msgs {
		if m.Role == "assistant" {
			return []toolCall{{"finish", map[string]string{"summary": fmt.Sprintf("call %d", call)}}}
		}
	}
	f.mu.Lock()
	f.coder = append(f.coder, string(messages))
	f.mu.Unlock()
	body := "a - b" // the bug of the first attempt
	if strings.Contains(string(messages), "Fix round") {
		body = "a + b"
	}
	return []toolCall{
		{"write_file", map[string]string{"path": "sum.js", "content": "function sum(a, b) {\n  return " + body + ";\n}\nmodule.exports = { sum };\n"}},
		{"write_file", map[string]string{"path": "sum.test.js", "content": sumTest}},
	}
}

// record notes one call and returns its number for the agent.
func (f *modelServer) record(agent, auth, model string, messages json.RawMessage, cached bool) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[agent]++
	f.auth = append(f.auth, auth)
	f.models = append(f.models, model)
	f.cached = append(f.cached, cached)
	return f.calls[agent]
}

func (f *modelServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model          string          `json:"model"`
		Stream         bool            `json:"stream"`
		Messages       json.RawMessage `json:"messages"`
		System         json.RawMessage `json:"system"`
		ResponseFormat struct {
			JSONSchema struct {
				Name string `json:"name"`
			} `json:"json_schema"`
		} `json:"response_format"`
		ToolChoice struct {
			Name string `json:"name"`
		} `json:"tool_choice"`
		Tools []struct {
			Name     string `json:"name"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		} `json:"tools"`
	}
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &req); err != nil || r.Method != http.MethodPost {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"message":"bad request","type":"invalid_request_error"}}`)
		return
	}
	auth := r.Header.Get("Authorization")
	if k := r.Header.Get("X-Api-Key"); k != "" {
		auth = "Bearer " + k
	}
	// The coder runs a tool loop: its requests offer write_file.
	loop := false
	for _, t := range req.Tools {
		loop = loop || t.Name == "write_file" || t.Function.Name == "write_file"
	}
	switch r.URL.Path {
	case "/v1/chat/completions":
		if loop {
			call := f.record("coder", auth, req.Model, req.Messages, false)
			f.openAI(w, req.Model, req.Stream, nil, f.coderTurn(req.Messages, call))
			return
		}
		agent := req.ResponseFormat.JSONSchema.Name
		call := f.record(agent, auth, req.Model, req.Messages, false)
		f.openAI(w, req.Model, req.Stream, f.answer(agent, call), nil)
	case "/v1/messages":
		cached := strings.Contains(string(req.System), `"cache_control"`)
		if loop {
			call := f.record("coder", auth, req.Model, req.Messages, cached)
			f.anthropic(w, req.Model, req.Stream, "", nil, f.coderTurn(req.Messages, call))
			return
		}
		agent := req.ToolChoice.Name
		call := f.record(agent, auth, req.Model, req.Messages, cached)
		f.anthropic(w, req.Model, req.Stream, agent, f.answer(agent, call), nil)
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"message":"not found","type":"invalid_request_error"}}`)
	}
}

func sse(w http.ResponseWriter, event string, v any) {
	b, _ := json.Marshal(v)
	if event != "" {
		fmt.Fprintf(w, "event: %s\n", event)
	}
	fmt.Fprintf(w, "data: %s\n\n", b)
	w.(http.Flusher).Flush()
}

// pieces cuts s as a model streams it.
func pieces(s string) []string {
	var out []string
	for i := 0; i < len(s); i += 40 {
		out = append(out, s[i:min(i+40, len(s))])
	}
	return out
}

func (f *modelServer) openAI(w http.ResponseWriter, model string, stream bool, answer any, calls []toolCall) {
	content, _ := json.Marshal(answer)
	usage := map[string]int{"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}
	if calls != nil {
		f.openAITools(w, model, stream, calls, usage)
		return
	}
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": "chatcmpl-1", "object": "chat.completion", "created": time.Now().Unix(), "model": model,
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": string(content)}, "finish_reason": "stop"}},
			"usage":   usage})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	chunk := func(v map[string]any) {
		v["id"], v["object"], v["created"], v["model"] = "chatcmpl-1", "chat.completion.chunk", time.Now().Unix(), model
		sse(w, "", v)
	}
	for _, p := range pieces(string(content)) {
		chunk(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": p}, "finish_reason": nil}}})
	}
	chunk(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"}}})
	chunk(map[string]any{"choices": []any{}, "usage": usage})
	fmt.Fprint(w, "data: [DONE]\n\n")
}

// openAITools answers with tool calls: whole, or streamed with each
// call's arguments in pieces by index.
func (f *modelServer) openAITools(w http.ResponseWriter, model string, stream bool, calls []toolCall, usage map[string]int) {
	if !stream {
		var tcs []any
		for i, c := range calls {
			args, _ := json.Marshal(c.args)
			tcs = append(tcs, map[string]any{"id": fmt.Sprintf("call_%d", i), "type": "function", "function": map[string]any{"name": c.name, "arguments": string(args)}})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": "chatcmpl-1", "object": "chat.completion", "created": time.Now().Unix(), "model": model,
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": nil, "tool_calls": tcs}, "finish_reason": "tool_calls"}},
			"usage":   usage})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	chunk := func(v map[string]any) {
		v["id"], v["object"], v["created"], v["model"] = "chatcmpl-1", "chat.completion.chunk", time.Now().Unix(), model
		sse(w, "", v)
	}
	for i, c := range calls {
		chunk(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"tool_calls": []any{map[string]any{
			"index": i, "id": fmt.Sprintf("call_%d", i), "type": "function", "function": map[string]any{"name": c.name, "arguments": ""}}}}, "finish_reason": nil}}})
		args, _ := json.Marshal(c.args)
		for _, p := range pieces(string(args)) {
			chunk(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"tool_calls": []any{map[string]any{
				"index": i, "function": map[string]any{"arguments": p}}}}, "finish_reason": nil}}})
		}
	}
	chunk(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "tool_calls"}}})
	chunk(map[string]any{"choices": []any{}, "usage": usage})
	fmt.Fprint(w, "data: [DONE]\n\n")
}

func (f *modelServer) anthropic(w http.ResponseWriter, model string, stream bool, tool string, answer any, calls []toolCall) {
	usage := map[string]int{"input_tokens": 1200, "output_tokens": 300, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
	type block struct {
		name  string
		input any
	}
	blocks := []block{{tool, answer}}
	if calls != nil {
		blocks = nil
		for _, c := range calls {
			blocks = append(blocks, block{c.name, c.args})
		}
	}
	if !stream {
		var content []any
		for i, b := range blocks {
			content = append(content, map[string]any{"type": "tool_use", "id": fmt.Sprintf("toolu_%d", i), "name": b.name, "input": b.input})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": "msg_1", "type": "message", "role": "assistant", "model": model,
			"content":     content,
			"stop_reason": "tool_use", "stop_sequence": nil, "usage": usage})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	sse(w, "message_start", map[string]any{"type": "message_start", "message": map[string]any{"id": "msg_1", "type": "message", "role": "assistant",
		"model": model, "content": []any{}, "stop_reason": nil, "stop_sequence": nil,
		"usage": map[string]int{"input_tokens": 1200, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}})
	for i, b := range blocks {
		sse(w, "content_block_start", map[string]any{"type": "content_block_start", "index": i,
			"content_block": map[string]any{"type": "tool_use", "id": fmt.Sprintf("toolu_%d", i), "name": b.name, "input": map[string]any{}}})
		input, _ := json.Marshal(b.input)
		for _, p := range pieces(string(input)) {
			sse(w, "content_block_delta", map[string]any{"type": "content_block_delta", "index": i,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": p}})
		}
		sse(w, "content_block_stop", map[string]any{"type": "content_block_stop", "index": i})
	}
	sse(w, "message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "tool_use", "stop_sequence": nil},
		"usage": map[string]int{"output_tokens": 300}})
	sse(w, "message_stop", map[string]any{"type": "message_stop"})
}

// The whole pipeline through the real provider paths (not the offline
// one): Catalyst configured for Anthropic (the default provider) and for an
// OpenAI-compatible server, the way a user points it at Ollama or vLLM. The
// first code fails its tests when really run, the coder gets the failure
// back, fixes it, and the task completes; cost comes from the usage the
// server reported; the key never shows.
func TestServeThroughEachProviderWireFormat(t *testing.T) {
	const key = "sk-compat-test-4f9a1c2e7b"
	for _, tc := range []struct {
		provider, model string
		env             func(url string) []string
		callCost        float64 // 1,200 tokens in, 300 out
	}{
		{"anthropic", "claude-3-7-sonnet-20250219", func(url string) []string {
			return []string{"ANTHROPIC_API_KEY=" + key, "ANTHROPIC_BASE_URL=" + url}
		}, 1200*3e-6 + 300*15e-6},
		{"openai", "gpt-4o", func(url string) []string {
			return []string{"OPENAI_API_KEY=" + key, "OPENAI_BASE_URL=" + url + "/v1/", "DEFAULT_LLM_PROVIDER=openai", "DEFAULT_LLM_MODEL=gpt-4o"}
		}, 1200*2.5e-6 + 300*10e-6},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			fake := &modelServer{}
			api := httptest.NewServer(fake)
			defer api.Close()
			s := startServer(t, t.TempDir(), append(tc.env(api.URL), "LOG_LEVEL=DEBUG")...)
			throughProvider(t, s, fake, key, tc.model, tc.callCost)
		})
	}
}

func throughProvider(t *testing.T, s *server, fake *modelServer, key, model string, callCost float64) {
	tk := s.createTask("Build a sum function for a calculator")
	tk = s.waitTask(tk.ID, 90*time.Second, terminal)
	if tk.Status != "completed" {
		t.Fatalf("task %s: %s\n%s", tk.Status, tk.Error, s.out)
	}
	if tk.Offline || tk.Model != model {
		t.Errorf("served by %+v, want the configured model", tk.Served())
	}

	fake.mu.Lock()
	calls, coder, auth, models, cached := fake.calls, fake.coder, fake.auth, fake.models, fake.cached
	fake.mu.Unlock()
	if calls["planner"] != 1 || calls["architect"] != 1 || calls["coder"] != 4 || len(coder) != 2 || calls["reviewer"] < 1 {
		t.Fatalf("calls per agent %v, %d coder rounds: want one plan, one design, two coder rounds of two turns", calls, len(coder))
	}
	// The fix round carries what really failed: node --test's assertion.
	if !strings.Contains(coder[1], "sum(2, 3) should be 5") || strings.Contains(coder[0], "should be 5") {
		t.Errorf("the coder's fix round did not get the failing test output:\n%.2000s", coder[1])
	}
	for i := range auth {
		if auth[i] != "Bearer "+key || models[i] != model {
			t.Fatalf("request %d: key %q model %q", i, auth[i], models[i])
		}
		if strings.HasPrefix(model, "claude") && !cached[i] {
			t.Errorf("request %d: no cache_control marker on the system prompt", i)
		}
	}

	var full struct {
		Cost         float64            `json:"cost"`
		NodeCosts    map[string]float64 `json:"node_costs"`
		FixIteration int                `json:"fix_iteration"`
	}
	s.do("GET", "/api/tasks/"+tk.ID, nil, &full)
	if full.FixIteration != 1 {
		t.Errorf("fix_iteration %d, want 1", full.FixIteration)
	}
	sum := 0.0
	for _, c := range full.NodeCosts {
		sum += c
	}
	n := 0
	for _, c := range calls {
		n += c
	}
	if want := float64(n) * callCost; full.Cost-sum > 1e-9 || sum-full.Cost > 1e-9 || full.Cost-want > 1e-9 || want-full.Cost > 1e-9 {
		t.Errorf("cost %v, node costs %v: want %d calls × $%v = $%v, equal to their sum", full.Cost, full.NodeCosts, n, callCost, want)
	}

	var arts []struct {
		Node   string `json:"node"`
		Output struct {
			Passed int `json:"passed"`
			Failed int `json:"failed"`
		} `json:"output"`
	}
	s.do("GET", "/api/tasks/"+tk.ID+"/artifacts", nil, &arts)
	var runs []string
	for _, a := range arts {
		if a.Node == "tester" {
			runs = append(runs, fmt.Sprintf("%d/%d", a.Output.Passed, a.Output.Failed))
		}
	}
	t.Logf("calls %v; tester runs %v; cost $%.4f %v", calls, runs, full.Cost, full.NodeCosts)
	if strings.Join(runs, ",") != "1/1,2/0" {
		t.Errorf("tester runs (passed/failed) %v, want the buggy round 1/1 then 2/0", runs)
	}

	var logs []struct {
		Message string `json:"message"`
	}
	s.do("GET", "/api/logs/"+tk.ID+"?limit=1000", nil, &logs)
	all, _ := json.Marshal(logs)
	if strings.Contains(s.out.String(), key) || strings.Contains(string(all), key) {
		t.Error("the API key appears in the server's output or the task's logs")
	}
	if !strings.Contains(string(all), "Fix round 1") {
		t.Errorf("no fix round in the logs: %.1500s", all)
	}
	if code := s.stop(); code != 0 {
		t.Errorf("exit status after SIGTERM: %d", code)
	}
}
