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

// compatServer speaks the OpenAI Chat Completions wire format (JSON and
// SSE streaming with a final usage chunk), as Ollama, vLLM or LiteLLM do,
// and answers each agent by the name of the JSON schema it asks for. Its
// coder writes a bug on the first call and fixes it once the failing test
// output comes back.
type compatServer struct {
	mu     sync.Mutex
	calls  map[string]int
	coder  []string // the user messages of each coder call
	auth   []string
	models []string
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

func (f *compatServer) answer(agent string, call int) any {
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
	case "coder":
		body := "a - b" // the bug of the first attempt
		if call > 1 {
			body = "a + b"
		}
		return map[string]any{"files": []any{
			map[string]any{"path": "sum.js", "content": "function sum(a, b) {\n  return " + body + ";\n}\nmodule.exports = { sum };\n"},
			map[string]any{"path": "sum.test.js", "content": sumTest},
		}, "delete": []string{}, "notes": fmt.Sprintf("attempt %d", call)}
	case "tester":
		return map[string]any{"files": []any{}, "notes": "the coder's tests cover the requirement"}
	case "reviewer":
		return map[string]any{"approved": true, "summary": "Small and clear.", "findings": []any{}}
	}
	return map[string]any{}
}

func (f *compatServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"message":"not found","type":"invalid_request_error"}}`)
		return
	}
	var req struct {
		Model    string `json:"model"`
		Stream   bool   `json:"stream"`
		Messages []struct {
			Role    string `json:"role"`
			Content any    `json:"content"`
		} `json:"messages"`
		ResponseFormat struct {
			JSONSchema struct {
				Name string `json:"name"`
			} `json:"json_schema"`
		} `json:"response_format"`
	}
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &req); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":{"message":%q,"type":"invalid_request_error"}}`, err.Error())
		return
	}
	agent := req.ResponseFormat.JSONSchema.Name
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[agent]++
	call := f.calls[agent]
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.models = append(f.models, req.Model)
	if agent == "coder" {
		var user strings.Builder
		for _, m := range req.Messages {
			if m.Role == "user" {
				fmt.Fprint(&user, m.Content)
			}
		}
		f.coder = append(f.coder, user.String())
	}
	f.mu.Unlock()

	content, _ := json.Marshal(f.answer(agent, call))
	usage := map[string]int{"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": "chatcmpl-1", "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": string(content)}, "finish_reason": "stop"}},
			"usage":   usage})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	chunk := func(v map[string]any) {
		v["id"], v["object"], v["created"], v["model"] = "chatcmpl-1", "chat.completion.chunk", time.Now().Unix(), req.Model
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
		w.(http.Flusher).Flush()
	}
	text := string(content)
	for i := 0; i < len(text); i += 40 {
		piece := text[i:min(i+40, len(text))]
		chunk(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": piece}, "finish_reason": nil}}})
	}
	chunk(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"}}})
	chunk(map[string]any{"choices": []any{}, "usage": usage})
	fmt.Fprint(w, "data: [DONE]\n\n")
}

// The whole pipeline through a real provider path (not the offline one):
// Catalyst configured for an OpenAI-compatible server, the way a user points
// it at Ollama or vLLM. The first code fails its tests when really run, the
// coder gets the failure back, fixes it, and the task completes; cost comes
// from the usage the server reported; the key never shows.
func TestServeWithAnOpenAICompatibleServer(t *testing.T) {
	fake := &compatServer{}
	api := httptest.NewServer(fake)
	defer api.Close()
	const key = "sk-compat-test-4f9a1c2e7b"
	s := startServer(t, t.TempDir(),
		"OPENAI_API_KEY="+key, "OPENAI_BASE_URL="+api.URL+"/v1/",
		"DEFAULT_LLM_PROVIDER=openai", "DEFAULT_LLM_MODEL=gpt-4o", "LOG_LEVEL=DEBUG")

	tk := s.createTask("Build a sum function for a calculator")
	tk = s.waitTask(tk.ID, 90*time.Second, terminal)
	if tk.Status != "completed" {
		t.Fatalf("task %s: %s\n%s", tk.Status, tk.Error, s.out)
	}
	if strings.Contains(tk.Provider, "offline") || !strings.Contains(tk.Provider, "gpt-4o") {
		t.Errorf("provider %q, want the configured openai model", tk.Provider)
	}

	fake.mu.Lock()
	calls, coder, auth, models := fake.calls, fake.coder, fake.auth, fake.models
	fake.mu.Unlock()
	if calls["planner"] != 1 || calls["architect"] != 1 || calls["coder"] != 2 || calls["reviewer"] < 1 {
		t.Fatalf("calls per agent %v: want one plan, one design, two coder rounds", calls)
	}
	// The fix round carries what really failed: node --test's assertion.
	if !strings.Contains(coder[1], "sum(2, 3) should be 5") || strings.Contains(coder[0], "should be 5") {
		t.Errorf("the coder's fix round did not get the failing test output:\n%.2000s", coder[1])
	}
	for i := range auth {
		if auth[i] != "Bearer "+key || models[i] != "gpt-4o" {
			t.Fatalf("request %d: Authorization %q model %q", i, auth[i], models[i])
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
	if full.Cost <= 0 || full.Cost-sum > 1e-9 || sum-full.Cost > 1e-9 {
		t.Errorf("cost %v, node costs %v: want a priced total equal to their sum", full.Cost, full.NodeCosts)
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
