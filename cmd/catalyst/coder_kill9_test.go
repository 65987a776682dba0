package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// loopModel speaks the OpenAI wire format: the other agents answer as
// modelServer's do; the coder's tool loop follows a script by turn (the
// assistant turns already in the request), and its fourth turn is held
// until the process asking is killed.
type loopModel struct {
	*modelServer
	mu      sync.Mutex
	turns   map[int]int // coder turn -> requests that asked for it
	held    chan struct{}
	holdOne sync.Once
}

const versionLine = "module.exports.version = 2;\n"

func (f *loopModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var req struct {
		Model    string `json:"model"`
		Stream   bool   `json:"stream"`
		Messages []struct {
			Role string `json:"role"`
		} `json:"messages"`
		Tools []struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		} `json:"tools"`
	}
	json.Unmarshal(b, &req)
	loop := false
	for _, t := range req.Tools {
		loop = loop || t.Function.Name == "write_file"
	}
	if !loop {
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		f.modelServer.ServeHTTP(w, r)
		return
	}
	turn := 0
	for _, m := range req.Messages {
		if m.Role == "assistant" {
			turn++
		}
	}
	f.mu.Lock()
	f.turns[turn]++
	f.mu.Unlock()
	sum := "function sum(a, b) {\n  return a + b;\n}\nmodule.exports = { sum };\n"
	var calls []toolCall
	switch turn {
	case 0:
		calls = []toolCall{{"write_file", map[string]string{"path": "sum.js", "content": sum}}, {"write_file", map[string]string{"path": "sum.test.js", "content": sumTest}}}
	case 1:
		// Applied twice, this edit would leave two version lines: its search
		// text is still there, once, after it.
		calls = []toolCall{{"edit_file", map[string]string{"path": "sum.js", "search": "module.exports = { sum };\n", "replace": "module.exports = { sum };\n" + versionLine}}}
	case 2:
		calls = []toolCall{{"read_file", map[string]string{"path": "sum.js"}}}
	case 3:
		first := false
		f.holdOne.Do(func() { first = true })
		if first {
			close(f.held)
			<-r.Context().Done() // the process is killed while it waits
			return
		}
		calls = []toolCall{{"finish", map[string]string{"summary": "sum with a version"}}}
	default:
		calls = []toolCall{{"finish", map[string]string{"summary": "again"}}}
	}
	f.record("coder", r.Header.Get("Authorization"), req.Model, nil, false)
	f.openAITools(w, req.Model, req.Stream, calls, map[string]int{"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500})
}

// kill -9 in the middle of the coder's tool loop (files written, an edit
// applied, the model asked for the next turn): a restarted server resumes
// the loop from the stored transcript, asks the model only for the turns
// that were left, and applies no edit twice.
func TestKill9MidToolLoopResumes(t *testing.T) {
	data := t.TempDir()
	fake := &loopModel{modelServer: &modelServer{}, turns: map[int]int{}, held: make(chan struct{})}
	api := httptest.NewServer(fake)
	defer api.Close()
	env := []string{"OPENAI_API_KEY=sk-kill9", "OPENAI_BASE_URL=" + api.URL + "/v1/", "DEFAULT_LLM_PROVIDER=openai",
		"DEFAULT_LLM_MODEL=gpt-4o", "CATALYST_LEASE_TTL=2s"}
	s := startServer(t, data, env...)
	tk := s.createTask("Build a sum function for a calculator")
	select {
	case <-fake.held:
	case <-time.After(90 * time.Second):
		t.Fatalf("the coder never reached its fourth turn:\n%s", s.out)
	}
	s.cmd.Process.Kill()
	<-s.exited

	s2 := startServer(t, data, env...)
	final := s2.waitTask(tk.ID, 90*time.Second, terminal)
	if final.Status != "completed" {
		t.Fatalf("after restart: %s %s\n%s", final.Status, final.Error, s2.out)
	}
	fake.mu.Lock()
	turns := fake.turns
	fake.mu.Unlock()
	// Turns 0-2 were answered once; turn 3 was asked before the kill and
	// once more after it.
	if turns[0] != 1 || turns[1] != 1 || turns[2] != 1 || turns[3] != 2 || turns[4] != 0 {
		t.Fatalf("coder turns asked %v: the resumed loop redid work", turns)
	}
	got, err := os.ReadFile(filepath.Join(data, "tasks", tk.ID, "workspace", "sum.js"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(got), versionLine); n != 1 {
		var lg []struct{ Message string }
		s2.do("GET", "/api/logs/"+tk.ID+"?limit=1000", nil, &lg)
		t.Fatalf("sum.js has the edit %d times:\n%s\n%+v", n, got, lg)
	}
	var logs []struct {
		Type    string         `json:"type"`
		Message string         `json:"message"`
		Data    map[string]any `json:"data"`
	}
	s2.do("GET", "/api/logs/"+tk.ID+"?limit=1000", nil, &logs)
	edits, resumed := 0, false
	for _, l := range logs {
		if l.Type == "tool_call" && l.Data["tool"] == "edit_file" {
			edits++
		}
		resumed = resumed || strings.Contains(l.Message, "Resuming the coder's tool loop")
	}
	if edits != 1 || !resumed {
		t.Fatalf("edit_file events %d, resume logged %v", edits, resumed)
	}
	var arts []struct {
		Node   string `json:"node"`
		Output struct {
			Notes      string `json:"notes"`
			Transcript struct {
				Resumes int `json:"resumes"`
				State   string
			} `json:"transcript"`
		} `json:"output"`
	}
	s2.do("GET", "/api/tasks/"+tk.ID+"/artifacts", nil, &arts)
	for _, a := range arts {
		if a.Node == "coder" && (a.Output.Transcript.Resumes != 1 || a.Output.Notes != "sum with a version") {
			t.Fatalf("coder artifact: %+v", a.Output)
		}
	}
	s2.stop()
}
