package coding

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/catalyst/catalyst/internal/agent/schemas"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/llm/anthropic"
	"github.com/catalyst/catalyst/internal/sandbox"
	"github.com/catalyst/catalyst/internal/workspace"
)

// TestTokenReport replays two recorded, scripted trajectories through the
// real tool loop and the real Anthropic request builder (an httptest server
// stands in for the Messages API and records each body), and prints the
// tokens each design sends beside the previous design (whole-file JSON
// answers, every file re-sent in a fix round) on the same work:
//
//	go test ./internal/coding -run TestTokenReport -v
//
// Tokens are estimated as bytes/4 of what is sent. Caching follows
// Anthropic's rules as the requests mark them: a request reads from the
// cache the longest prefix (tools, then system, then messages, in that
// order) that an earlier request wrote at one of its cache_control
// breakpoints; it writes its own breakpoint prefixes beyond that; prefixes
// under 1,024 tokens are not cached. Output tokens are bytes/4 of the
// answer's text and tool arguments.
func TestTokenReport(t *testing.T) {
	todo := map[string]string{}
	for _, f := range []string{"app.js", "index.html", "style.css", "todo.js", "todo.test.js"} {
		b, err := os.ReadFile(filepath.Join("..", "llm", "offline", "app", f))
		if err != nil {
			t.Fatal(err)
		}
		todo[f] = string(b)
	}
	repo := smallRepo()
	rows := []reportRow{}
	for _, tj := range []trajectory{
		{name: "fix a failing test", files: repo, fix: fixOf(repo, "lib/calc.js", "return a - b;", "return a + b;", "test/calc.test.js",
			"not ok 1 - add adds\n  AssertionError: expected 5, got -1\n    at test/calc.test.js:6:10\n")},
		{name: "Build a todo app", write: todo, fix: fixOf(todo, "todo.js", "return list.filter((x) => x.id !== id);", "return list.filter((x) => x.id !== id && x.id != null);", "todo.test.js",
			"not ok 3 - toggles an item\n  AssertionError: expected true, got false\n    at todo.test.js:30:5\n")},
	} {
		for _, design := range []string{"tool loop", "whole files"} {
			rows = append(rows, replay(t, tj, design)...)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-20s %-12s %-11s %6s %9s %8s %8s %8s %9s %9s\n", "trajectory", "design", "agent", "calls", "input", "cached", "written", "output", "total", "USD")
	for _, r := range rows {
		// claude-3-7-sonnet per million tokens: input 3, cache write 3.75,
		// cache read 0.30, output 15.
		usd := (float64(r.input)*3 + float64(r.cacheWrite)*3.75 + float64(r.cacheRead)*0.3 + float64(r.output)*15) / 1e6
		fmt.Fprintf(&b, "%-20s %-12s %-11s %6d %9d %8d %8d %8d %9d %9.4f\n", r.trajectory, r.design, r.agent, r.calls, r.input, r.cacheRead, r.cacheWrite, r.output, r.input+r.cacheRead+r.cacheWrite+r.output, usd)
	}
	t.Log(b.String())
	// What the design is for: a fix round on an existing repository sends
	// less than re-sending every file, in fresh (uncached) input.
	byKey := map[string]reportRow{}
	for _, r := range rows {
		byKey[r.trajectory+"/"+r.design+"/"+r.agent] = r
	}
	loop, whole := byKey["fix a failing test/tool loop/coder fix"], byKey["fix a failing test/whole files/coder fix"]
	if loop.input+loop.cacheWrite >= whole.input+whole.cacheWrite {
		t.Errorf("the tool loop's fix round sends %d fresh tokens, the whole-file design %d", loop.input+loop.cacheWrite, whole.input+whole.cacheWrite)
	}
}

type reportRow struct {
	trajectory, design, agent            string
	calls                                int
	input, cacheRead, cacheWrite, output int
}

// trajectory is one recorded piece of work: files written from nothing
// (write) and/or a fix round on existing files (files + fix).
type trajectory struct {
	name  string
	write map[string]string // the first write: these files are created
	files map[string]string // the repository the fix starts from
	fix   fixRound
}

type fixRound struct {
	path, search, replace, test, output string
	after                               map[string]string
}

func fixOf(files map[string]string, path, search, replace, test, output string) fixRound {
	after := map[string]string{}
	for k, v := range files {
		after[k] = v
	}
	f := fixRound{path: path, search: search, replace: replace, test: test, output: output, after: after}
	if !strings.Contains(files[path], search) {
		panic(path + " lacks " + search)
	}
	after[path] = strings.Replace(files[path], search, replace, 1)
	return f
}

func smallRepo() map[string]string {
	var calc strings.Builder
	calc.WriteString("'use strict';\n// calc: small arithmetic helpers used by the CLI and the HTTP handler.\n")
	calc.WriteString("function add(a, b) {\n  return a - b;\n}\n")
	for i := range 30 {
		fmt.Fprintf(&calc, "function op%d(a, b) {\n  // operation %d keeps its own rounding rules\n  return Math.round((a * %d + b) * 100) / 100;\n}\n", i, i, i+2)
	}
	calc.WriteString("module.exports = { add")
	for i := range 30 {
		fmt.Fprintf(&calc, ", op%d", i)
	}
	calc.WriteString(" };\n")
	files := map[string]string{
		"lib/calc.js":       calc.String(),
		"test/calc.test.js": "const test = require('node:test');\nconst assert = require('node:assert/strict');\nconst { add } = require('../lib/calc.js');\n\ntest('add adds', () => {\n  assert.equal(add(2, 3), 5);\n});\n",
		"package.json":      `{"name":"calc","version":"1.4.2","scripts":{"test":"node --test"},"license":"MIT"}` + "\n",
		"README.md":         strings.Repeat("Calc is a small library of arithmetic helpers with consistent rounding. ", 40) + "\n",
	}
	for i := range 6 {
		var m strings.Builder
		fmt.Fprintf(&m, "'use strict';\n// module %d of the HTTP layer\nconst calc = require('./calc.js');\n", i)
		for j := range 25 {
			fmt.Fprintf(&m, "exports.handler%d = (req) => ({ status: 200, body: String(calc.op%d(Number(req.a), Number(req.b))) });\n", j, (i+j)%30)
		}
		files[fmt.Sprintf("lib/http%d.js", i)] = m.String()
	}
	return files
}

const reportContext = "# Task\nThe request, then the plan and the design as the planner and the architect wrote them: requirements, user stories, the stack (node, node --test), components and files.\n"

// replay runs one trajectory in one design and returns a row per coder run.
func replay(t *testing.T, tj trajectory, design string) []reportRow {
	system, err := os.ReadFile(filepath.Join("..", "agent", "prompts", "coder.md"))
	if err != nil {
		t.Fatal(err)
	}
	ctxText := reportContext + strings.Repeat("Design detail that every agent of the task shares. ", 60)
	var rows []reportRow
	run := func(agent string, start map[string]string, replies []string, req func(m llm.Model, ws *workspace.Workspace) error) {
		api := &recordingAPI{replies: replies}
		srv := httptest.NewServer(api)
		defer srv.Close()
		m, err := anthropic.New(llm.ProviderConfig{Model: "claude-3-7-sonnet-20250219", APIKey: "test", BaseURL: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		ws := newWS(t, start)
		if err := req(m, ws); err != nil {
			t.Fatal(err)
		}
		r := api.tally()
		r.trajectory, r.design, r.agent = tj.name, design, agent
		rows = append(rows, r)
	}
	loopRun := func(first string) func(m llm.Model, ws *workspace.Workspace) error {
		return func(m llm.Model, ws *workspace.Workspace) error {
			tr := NewTranscript(first)
			l := &Loop{Model: m, Workspace: ws, Agent: "coder", System: string(system), Context: ctxText,
				Sandbox: fakeTests(tj.fix.output)}
			if err := l.Run(context.Background(), tr); err != nil {
				return err
			}
			if tr.End != EndFinish {
				return fmt.Errorf("ended %s: %s", tr.End, tr.Reason)
			}
			return nil
		}
	}
	askOnce := func(msg string) func(m llm.Model, ws *workspace.Workspace) error {
		return func(m llm.Model, ws *workspace.Workspace) error {
			_, err := m.Generate(context.Background(), llm.Request{Agent: "coder", System: string(system), Context: ctxText,
				Messages: []llm.Message{{Role: llm.RoleUser, Content: msg}}, Schema: schemas.Get("coder"), SchemaName: "coder"})
			return err
		}
	}
	if tj.write != nil {
		if design == "tool loop" {
			var writes []any
			for _, p := range sortedKeys(tj.write) {
				writes = append(writes, toolUse(ToolWriteFile, map[string]any{"path": p, "content": tj.write[p]}))
			}
			run("coder write", nil, []string{reply(writes...), reply(toolUse(ToolRun, map[string]any{"command": "node --test"})),
				reply(toolUse(ToolFinish, map[string]any{"summary": "wrote the app"}))},
				loopRun("Write the project described by the request, the plan and the design above."))
		} else {
			run("coder write", nil, []string{reply(structured(tj.write))}, askOnce("Write all the files of the design above."))
		}
	}
	files := tj.files
	if files == nil {
		files = tj.write
	}
	fixMsg := "Fix round 1. The checks sent the work back:\n\n## tester\n- " + firstLineOf(tj.fix.output) + "\n\nTest output (trimmed):\n" + tj.fix.output
	if design == "tool loop" {
		// What the coder sends: the failure, the test it names and the
		// file that test imports; the model reads the rest if it needs to.
		msg := fixMsg + "\nFiles named in the failures:\n\n=== FILE: " + tj.fix.test + " ===\n" + files[tj.fix.test] +
			"=== FILE: " + tj.fix.path + " ===\n" + files[tj.fix.path] + "\nFiles in the workspace:\n" + strings.Join(sortedKeys(files), "\n")
		run("coder fix", files, []string{
			reply(toolUse(ToolEditFile, map[string]any{"path": tj.fix.path, "search": tj.fix.search, "replace": tj.fix.replace})),
			reply(toolUse(ToolRun, map[string]any{"command": "node --test"})),
			reply(toolUse(ToolFinish, map[string]any{"summary": "fixed"})),
		}, loopRun(msg))
	} else {
		var quoted strings.Builder
		for _, p := range sortedKeys(files) {
			quoted.WriteString("=== FILE: " + p + " ===\n" + files[p])
		}
		run("coder fix", files, []string{reply(structured(map[string]string{tj.fix.path: tj.fix.after[tj.fix.path]}))},
			askOnce(fixMsg+"\nCurrent files:\n\n"+quoted.String()))
	}
	total := reportRow{trajectory: tj.name, design: design, agent: "total"}
	for _, r := range rows {
		total.calls += r.calls
		total.input += r.input
		total.cacheRead += r.cacheRead
		total.cacheWrite += r.cacheWrite
		total.output += r.output
	}
	return append(rows, total)
}

func firstLineOf(s string) string { return strings.SplitN(s, "\n", 2)[0] }

func sortedKeys(m map[string]string) []string {
	var k []string
	for p := range m {
		k = append(k, p)
	}
	sort.Strings(k)
	return k
}

// fakeTests answers run with the recorded test output: the trajectory is a
// replay, not a new run.
func fakeTests(output string) Sandbox {
	return func(ctx context.Context, spec sandbox.Spec) (sandbox.Result, error) {
		return sandbox.Result{Command: strings.Join(spec.Command, " "), Stdout: "TAP version 13\n# tests 12\n# pass 12\n# fail 0\n"}, nil
	}
}

func toolUse(name string, input any) map[string]any {
	callSeq++
	return map[string]any{"type": "tool_use", "id": fmt.Sprintf("toolu_%d", callSeq), "name": name, "input": input}
}

func reply(blocks ...any) string {
	b, _ := json.Marshal(map[string]any{"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-7-sonnet-20250219",
		"content": blocks, "stop_reason": "tool_use", "stop_sequence": nil, "usage": map[string]any{"input_tokens": 1, "output_tokens": 1}})
	return string(b)
}

// structured is a whole-file answer as the previous design got it: the
// forced "coder" tool's input.
func structured(files map[string]string) map[string]any {
	var fs []map[string]string
	for _, p := range sortedKeys(files) {
		fs = append(fs, map[string]string{"path": p, "content": files[p]})
	}
	return map[string]any{"type": "tool_use", "id": "toolu_answer", "name": "coder", "input": map[string]any{"files": fs, "delete": []string{}, "notes": "done"}}
}

// recordingAPI is the Messages API stand-in: it answers the scripted
// replies in order and keeps each request body.
type recordingAPI struct {
	mu      sync.Mutex
	replies []string
	bodies  [][]byte
	outputs []int
}

func (a *recordingAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.bodies = append(a.bodies, b)
	rep := `{"type":"error","error":{"type":"invalid_request_error","message":"script over"}}`
	status := 400
	if len(a.replies) > 0 {
		rep, a.replies, status = a.replies[0], a.replies[1:], 200
	}
	a.outputs = append(a.outputs, answerBytes(rep))
	a.mu.Unlock()
	var req struct {
		Stream bool `json:"stream"`
	}
	json.Unmarshal(b, &req)
	if !req.Stream || status != 200 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, rep)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	for _, ev := range sseOf(rep) {
		io.WriteString(w, ev)
	}
}

// sseOf spells a Messages reply as the stream the API sends for it, tool
// inputs in pieces.
func sseOf(rep string) []string {
	var m struct {
		Content    []map[string]any `json:"content"`
		StopReason string           `json:"stop_reason"`
	}
	json.Unmarshal([]byte(rep), &m)
	ev := func(name string, v any) string {
		b, _ := json.Marshal(v)
		return "event: " + name + "\ndata: " + string(b) + "\n\n"
	}
	out := []string{ev("message_start", map[string]any{"type": "message_start", "message": map[string]any{"id": "msg_1", "type": "message", "role": "assistant",
		"model": "claude-3-7-sonnet-20250219", "content": []any{}, "stop_reason": nil, "usage": map[string]any{"input_tokens": 1, "output_tokens": 1}}})}
	for i, c := range m.Content {
		input, _ := json.Marshal(c["input"])
		start := map[string]any{"type": c["type"], "id": c["id"], "name": c["name"], "input": map[string]any{}}
		out = append(out, ev("content_block_start", map[string]any{"type": "content_block_start", "index": i, "content_block": start}))
		for s := string(input); s != ""; {
			n := min(len(s), 40)
			out = append(out, ev("content_block_delta", map[string]any{"type": "content_block_delta", "index": i,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": s[:n]}}))
			s = s[n:]
		}
		out = append(out, ev("content_block_stop", map[string]any{"type": "content_block_stop", "index": i}))
	}
	out = append(out, ev("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": m.StopReason}, "usage": map[string]any{"output_tokens": 1}}),
		ev("message_stop", map[string]any{"type": "message_stop"}))
	return out
}

// answerBytes is the size of what the model produced: text and tool inputs.
func answerBytes(rep string) int {
	var m struct {
		Content []struct {
			Text  string          `json:"text"`
			Input json.RawMessage `json:"input"`
		} `json:"content"`
	}
	json.Unmarshal([]byte(rep), &m)
	n := 0
	for _, c := range m.Content {
		n += len(c.Text) + len(c.Input)
	}
	return n
}

const minCacheBytes = 1024 * 4

// tally estimates the tokens of the recorded requests (see TestTokenReport).
func (a *recordingAPI) tally() reportRow {
	a.mu.Lock()
	defer a.mu.Unlock()
	var r reportRow
	var written []string // prefixes in the cache
	for i, body := range a.bodies {
		canon, breaks := canonical(body)
		read := 0
		for _, w := range written {
			if len(w) > read && strings.HasPrefix(canon, w) {
				read = len(w)
			}
		}
		write := 0
		for _, b := range breaks {
			if b >= minCacheBytes && b > read {
				written = append(written, canon[:b])
				write = b - read
			}
		}
		r.calls++
		r.cacheRead += read / 4
		r.cacheWrite += write / 4
		r.input += (len(canon) - read - write) / 4
		r.output += a.outputs[i] / 4
	}
	return r
}

// canonical lays a Messages request out in cache order (tools, system,
// messages, block by block) and returns the end offsets of the blocks that
// carry cache_control.
func canonical(body []byte) (string, []int) {
	var req struct {
		Tools    []json.RawMessage `json:"tools"`
		System   []json.RawMessage `json:"system"`
		Messages []struct {
			Role    string            `json:"role"`
			Content []json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	json.Unmarshal(body, &req)
	var b strings.Builder
	var breaks []int
	// The cache compares content: a block that carried the marker in one
	// request and not in the next is the same block.
	add := func(raw json.RawMessage) {
		var v map[string]any
		json.Unmarshal(raw, &v)
		_, marked := v["cache_control"]
		delete(v, "cache_control")
		clean, _ := json.Marshal(v)
		b.Write(clean)
		if marked {
			breaks = append(breaks, b.Len())
		}
	}
	for _, t := range req.Tools {
		add(t)
	}
	for _, s := range req.System {
		add(s)
	}
	for _, m := range req.Messages {
		b.WriteString(m.Role)
		for _, c := range m.Content {
			add(c)
		}
	}
	return b.String(), breaks
}
