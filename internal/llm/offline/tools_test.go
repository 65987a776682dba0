package offline_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/llm/offline"
)

// coderTools are the coder loop's tools, by the names both sides agreed.
func coderTools() []llm.Tool {
	obj := json.RawMessage(`{"type":"object"}`)
	var out []llm.Tool
	for _, n := range []string{"list_files", "read_file", "search", "write_file", "edit_file", "delete_file", "run", "finish"} {
		out = append(out, llm.Tool{Name: n, Description: n, Parameters: obj})
	}
	return out
}

// runLoop plays the coder's tool loop against the offline provider, through
// the router, applying write_file into dir, until finish.
func runLoop(t *testing.T, prompt, dir string) (summary string, turns int) {
	t.Helper()
	r, err := llm.NewRouter(config.LLMConfig{OllamaURL: "off"}, llm.RouterOptions{Offline: offline.New(0)})
	if err != nil {
		t.Fatal(err)
	}
	req := llm.Request{Agent: "coder", Context: "# Task\n" + prompt + "\n\n# Plan\n...", Tools: coderTools(),
		Messages: []llm.Message{{Role: llm.RoleUser, Content: "Write the code."}}}
	var streamed strings.Builder
	req.OnDelta = func(d string) { streamed.WriteString(d) }
	for turns = 1; turns <= 5; turns++ {
		resp, err := r.For("coder").Generate(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StopReason != llm.StopToolUse || len(resp.ToolCalls) == 0 || resp.Provider != "offline" || resp.Cost != 0 {
			t.Fatalf("turn %d: %+v", turns, resp)
		}
		var results []llm.ToolResult
		for _, c := range resp.ToolCalls {
			var a struct{ Path, Content, Summary string }
			if err := json.Unmarshal(c.Arguments, &a); err != nil {
				t.Fatal(err)
			}
			switch c.Name {
			case "write_file":
				if err := os.WriteFile(filepath.Join(dir, filepath.Base(a.Path)), []byte(a.Content), 0o644); err != nil {
					t.Fatal(err)
				}
				results = append(results, llm.ToolResult{CallID: c.ID, Name: c.Name, Content: "written"})
			case "finish":
				if !strings.Contains(streamed.String(), "Writing") {
					t.Fatalf("nothing streamed: %q", streamed.String())
				}
				return a.Summary, turns
			default:
				t.Fatalf("unexpected tool %s", c.Name)
			}
		}
		req.Messages = append(req.Messages, llm.Message{Role: llm.RoleAssistant, Content: resp.Text, ToolCalls: resp.ToolCalls},
			llm.Message{Role: llm.RoleUser, ToolResults: results})
	}
	t.Fatal("the script never finished")
	return "", 0
}

// TestToolLoopWritesTheSameTodoApp: with tools the offline coder writes the
// files of its one-document answer, one write_file each, then finishes; the
// app passes its own tests.
func TestToolLoopWritesTheSameTodoApp(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is required for this test: ", err)
	}
	dir := t.TempDir()
	summary, turns := runLoop(t, "Build a todo app", dir)
	if turns != 2 || !strings.Contains(summary, "Todo app") {
		t.Fatalf("%d turns, summary %q", turns, summary)
	}
	var doc codeAnswer
	if err := json.Unmarshal(ask(t, offline.New(0), "coder", "Build a todo app").JSON, &doc); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(doc.Files) {
		t.Fatalf("%d files written, the document has %d", len(entries), len(doc.Files))
	}
	for _, f := range doc.Files {
		b, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil || string(b) != f.Content {
			t.Fatalf("%s differs from the one-document answer (%v)", f.Path, err)
		}
	}
	cmd := exec.Command("node", "--test")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
}

func TestToolScriptRefusals(t *testing.T) {
	m := offline.New(0)
	for name, req := range map[string]llm.Request{
		"other agent":   {Agent: "reviewer", Tools: coderTools()},
		"no write_file": {Agent: "coder", Tools: coderTools()[:3]},
		"no finish":     {Agent: "coder", Tools: coderTools()[:7]},
	} {
		if _, err := m.Generate(context.Background(), req); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A resumed loop (one tool turn already in the transcript) finishes.
	resp, err := m.Generate(context.Background(), llm.Request{Agent: "coder", Tools: coderTools(), Messages: []llm.Message{
		{Role: llm.RoleUser, Content: "go"},
		{Role: llm.RoleAssistant, ToolCalls: []llm.ToolCall{{ID: "a", Name: "write_file", Arguments: json.RawMessage(`{}`)}}},
		{Role: llm.RoleUser, ToolResults: []llm.ToolResult{{CallID: "a", Name: "write_file", Content: "refused", IsError: true}}},
	}})
	if err != nil || len(resp.ToolCalls) != 1 || resp.ToolCalls[0].Name != "finish" || !strings.Contains(string(resp.ToolCalls[0].Arguments), "1 tool calls failed") {
		t.Fatalf("%+v %v", resp, err)
	}
}
