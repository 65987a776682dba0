package coding

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/sandbox"
	"github.com/catalyst/catalyst/internal/workspace"
)

// script is a model that answers turn by turn; past its end it finishes.
type script struct {
	mu    sync.Mutex
	turns []func(req llm.Request) *llm.Response
	reqs  []llm.Request
}

func (s *script) Generate(ctx context.Context, req llm.Request) (*llm.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := req
	cp.Messages = append([]llm.Message(nil), req.Messages...)
	s.reqs = append(s.reqs, cp)
	n := len(s.reqs) - 1
	var r *llm.Response
	if n < len(s.turns) {
		r = s.turns[n](req)
	} else {
		r = calls(tc(ToolFinish, map[string]any{"summary": "done"}))
	}
	if r.Provider == "" {
		r.Provider, r.Model = "test", "scripted"
	}
	if r.Usage == (domain.Usage{}) {
		r.Usage = domain.Usage{InputTokens: 100, OutputTokens: 10}
	}
	return r, nil
}

var callSeq int

func tc(name string, args any) llm.ToolCall {
	callSeq++
	var raw json.RawMessage
	switch a := args.(type) {
	case string:
		raw = json.RawMessage(a)
	default:
		raw, _ = json.Marshal(a)
	}
	return llm.ToolCall{ID: fmt.Sprintf("c%d", callSeq), Name: name, Arguments: raw}
}

func calls(c ...llm.ToolCall) *llm.Response {
	return &llm.Response{StopReason: llm.StopToolUse, ToolCalls: c}
}

func turn(c ...llm.ToolCall) func(llm.Request) *llm.Response {
	return func(llm.Request) *llm.Response { return calls(c...) }
}

func newWS(t *testing.T, files map[string]string) *workspace.Workspace {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ws")
	ws, err := workspace.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for p, c := range files {
		if err := ws.WriteFile(p, []byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	return ws
}

// lastResults are the tool results the model saw in its latest request.
func lastResults(req llm.Request) []llm.ToolResult {
	m := req.Messages[len(req.Messages)-1]
	return m.ToolResults
}

func read(t *testing.T, ws *workspace.Workspace, p string) string {
	t.Helper()
	b, err := ws.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const calc = "function add(a, b) {\n  return a - b;\n}\nfunction sub(a, b) {\n  return a - b;\n}\nmodule.exports = { add, sub };\n"

// The model reads, searches, makes a non-unique edit that is refused with
// where the matches are, recovers with more context, and finishes.
func TestLoopReadsSearchesAndEditsExactly(t *testing.T) {
	ws := newWS(t, map[string]string{"calc.js": calc, "README.md": "calc\n"})
	var events []Event
	m := &script{turns: []func(llm.Request) *llm.Response{
		turn(tc(ToolListFiles, `{}`), tc(ToolSearch, map[string]any{"pattern": `return a \- b`})),
		turn(tc(ToolReadFile, map[string]any{"path": "calc.js", "start_line": 1, "end_line": 3})),
		turn(tc(ToolEditFile, map[string]any{"path": "calc.js", "search": "return a - b;", "replace": "return a + b;"})),
		turn(tc(ToolEditFile, map[string]any{"path": "calc.js", "search": "function add(a, b) {\n  return a - b;", "replace": "function add(a, b) {\n  return a + b;"})),
		turn(tc(ToolFinish, map[string]any{"summary": "add adds"})),
	}}
	tr := NewTranscript("fix add")
	l := &Loop{Model: m, Workspace: ws, Agent: "coder", Emit: func(e Event) { events = append(events, e) }}
	if err := l.Run(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	if tr.End != EndFinish || tr.Summary != "add adds" || tr.State != StateFinished {
		t.Fatalf("end %q summary %q state %q", tr.End, tr.Summary, tr.State)
	}
	if got := read(t, ws, "calc.js"); got != strings.Replace(calc, "return a - b", "return a + b", 1) {
		t.Fatalf("calc.js:\n%s", got)
	}
	r := lastResults(m.reqs[1])
	if !strings.Contains(r[0].Content, "calc.js (") || !strings.Contains(r[1].Content, "calc.js:2: ") || !strings.Contains(r[1].Content, "calc.js:5: ") {
		t.Fatalf("list/search results: %+v", r)
	}
	if got := lastResults(m.reqs[2])[0].Content; !strings.HasPrefix(got, "calc.js lines 1-3 of 7\nfunction add") || strings.Contains(got, "sub") {
		t.Fatalf("read range: %q", got)
	}
	refused := lastResults(m.reqs[3])[0]
	if !refused.IsError || !strings.Contains(refused.Content, "found 2 times") || !strings.Contains(refused.Content, "lines 2, 5") {
		t.Fatalf("non-unique edit: %+v", refused)
	}
	if len(events) != 6 || events[3].OK || !events[4].OK || events[4].Tool != ToolEditFile || events[4].Step != 4 {
		t.Fatalf("events: %+v", events)
	}
	if len(tr.Effects) != 1 || !tr.Effects[0].Applied || tr.Effects[0].Before == tr.Effects[0].After {
		t.Fatalf("effects: %+v", tr.Effects)
	}
	// The stable prefix is the same on every turn, the tools included.
	for _, r := range m.reqs {
		if len(r.Tools) != 8 || r.Agent != "coder" {
			t.Fatalf("request tools %d agent %q", len(r.Tools), r.Agent)
		}
	}
}

// Hostile calls: parent paths, .git, absolute paths, huge arguments and
// unknown tools are refused with a reason; nothing leaves the workspace.
func TestLoopRefusesHostileCalls(t *testing.T) {
	ws := newWS(t, map[string]string{"a.txt": "a\n"})
	outside := filepath.Join(filepath.Dir(ws.Root()), "escaped.txt")
	huge := `{"path":"big.txt","content":"` + strings.Repeat("x", 10<<20) + `"}`
	m := &script{turns: []func(llm.Request) *llm.Response{
		turn(
			tc(ToolWriteFile, map[string]any{"path": "../escaped.txt", "content": "x"}),
			tc(ToolEditFile, map[string]any{"path": ".git/config", "search": "[core]", "replace": "[core]\n\tsshCommand = evil"}),
			tc(ToolWriteFile, map[string]any{"path": ".GIT/hooks/pre-commit", "content": "#!/bin/sh\nevil"}),
			tc(ToolReadFile, map[string]any{"path": "/etc/passwd"}),
			tc(ToolWriteFile, huge),
			tc("rm_rf", `{}`),
			tc(ToolReadFile, `not json`),
			tc(ToolSearch, map[string]any{"pattern": "(a+)+$", "path": "../"}),
		),
	}}
	tr := NewTranscript("go")
	var saved []byte
	l := &Loop{Model: m, Workspace: ws, Save: func(_ context.Context, t *Transcript) error {
		b, err := json.Marshal(t)
		saved = b
		return err
	}}
	if err := l.Run(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	res := lastResults(m.reqs[1])
	want := []string{"parent directory", "inside .git", "inside .git", "absolute", "over the", "unknown tool", "JSON object", "parent directory"}
	for i, w := range want {
		if !res[i].IsError || !strings.Contains(res[i].Content, w) {
			t.Errorf("call %d: want an error with %q, got %+v", i, w, res[i])
		}
	}
	if _, err := os.Stat(outside); err == nil {
		t.Error("a file was written outside the workspace")
	}
	if b, _ := os.ReadFile(filepath.Join(ws.Root(), ".git", "config")); strings.Contains(string(b), "evil") {
		t.Error(".git/config was edited")
	}
	if len(saved) > 1<<20 {
		t.Errorf("the transcript kept the 10 MB arguments: %d bytes", len(saved))
	}
	if len(tr.Refused) != 5 {
		t.Errorf("refused paths: %+v", tr.Refused)
	}
}

// A model that repeats the same failing edit is stopped with the reason.
func TestLoopStopsARepeatedFailingCall(t *testing.T) {
	ws := newWS(t, map[string]string{"a.txt": "hello\n"})
	bad := map[string]any{"path": "a.txt", "search": "absent", "replace": "x"}
	m := &script{}
	for range 10 {
		m.turns = append(m.turns, turn(tc(ToolEditFile, bad)))
	}
	tr := NewTranscript("go")
	if err := (&Loop{Model: m, Workspace: ws}).Run(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	if tr.End != EndRepetition || len(m.reqs) != 3 || !strings.Contains(tr.Reason, "same failing call 3 times") || !strings.Contains(tr.Reason, "search text not found") {
		t.Fatalf("end %q after %d turns: %s", tr.End, len(m.reqs), tr.Reason)
	}
}

// Steps, tokens and cost each end the loop with a reason naming the bound.
func TestLoopBounds(t *testing.T) {
	loopForever := func() *script {
		m := &script{}
		for i := range 50 {
			m.turns = append(m.turns, turn(tc(ToolReadFile, map[string]any{"path": "a.txt", "start_line": i + 1})))
		}
		return m
	}
	for _, c := range []struct {
		lim  Limits
		end  string
		want string
		n    int
	}{
		{Limits{MaxSteps: 4}, EndMaxSteps, "CODER_MAX_STEPS", 4},
		{Limits{MaxTokens: 1000}, EndMaxTokens, "CODER_MAX_TOKENS", 10},
		{Limits{MaxCost: 0.05}, EndMaxCost, "CODER_MAX_COST_USD", 5},
	} {
		ws := newWS(t, map[string]string{"a.txt": strings.Repeat("line\n", 100)})
		m := loopForever()
		for i := range m.turns {
			f := m.turns[i]
			m.turns[i] = func(r llm.Request) *llm.Response { x := f(r); x.Cost = 0.01; return x }
		}
		tr := NewTranscript("go")
		if err := (&Loop{Model: m, Workspace: ws, Limits: c.lim}).Run(context.Background(), tr); err != nil {
			t.Fatal(err)
		}
		if tr.End != c.end || len(m.reqs) != c.n || !strings.Contains(tr.Reason, c.want) {
			t.Errorf("%+v: end %q after %d turns: %s", c.lim, tr.End, len(m.reqs), tr.Reason)
		}
	}
}

// An answer cut by the output limit is never executed: its calls may be
// half-written. The model is asked for a smaller step; after repeated cuts
// the loop ends.
func TestLoopRetriesALengthStoppedAnswer(t *testing.T) {
	ws := newWS(t, nil)
	cut := func(llm.Request) *llm.Response {
		r := calls(tc(ToolWriteFile, `{"path":"half.js","content":"function(){"}`))
		r.StopReason = llm.StopLength
		return r
	}
	m := &script{turns: []func(llm.Request) *llm.Response{cut,
		turn(tc(ToolWriteFile, map[string]any{"path": "small.js", "content": "1\n"})),
		turn(tc(ToolFinish, map[string]any{"summary": "ok"})),
	}}
	tr := NewTranscript("go")
	if err := (&Loop{Model: m, Workspace: ws}).Run(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.ReadFile("half.js"); err == nil {
		t.Fatal("a length-stopped answer was executed")
	}
	if tr.End != EndFinish || !strings.Contains(m.reqs[1].Messages[0].Content, "cut off by the output limit") {
		t.Fatalf("end %q, retry request %q", tr.End, m.reqs[1].Messages[0].Content)
	}
	m2 := &script{turns: []func(llm.Request) *llm.Response{cut, cut, cut, cut}}
	tr = NewTranscript("go")
	if err := (&Loop{Model: m2, Workspace: ws}).Run(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	if tr.End != EndLength || len(m2.reqs) != 3 {
		t.Fatalf("end %q after %d turns", tr.End, len(m2.reqs))
	}
}

// A crash between recording an edit and the next step resumes without
// applying the edit twice, whether the workspace kept the edit, lost it
// (restored from the previous node's snapshot) or crashed before applying.
func TestLoopResumesWithoutApplyingAnEditTwice(t *testing.T) {
	const orig = "x = 1\n"
	edit := tc(ToolEditFile, map[string]any{"path": "conf.py", "search": "x = 1\n", "replace": "x = 1\ny = 2\n"})
	write := tc(ToolWriteFile, map[string]any{"path": "new.py", "content": "z = 3\n"})
	want := "x = 1\ny = 2\n"
	for _, mode := range []string{"kept", "restored", "before-apply"} {
		t.Run(mode, func(t *testing.T) {
			ws := newWS(t, map[string]string{"conf.py": orig})
			// The first process: it crashes (the save after the second
			// effect's intent fails like a killed process) mid-step.
			var snaps [][]byte
			crash := fmt.Errorf("killed")
			m1 := &script{turns: []func(llm.Request) *llm.Response{turn(edit, write)}}
			tr := NewTranscript("go")
			l1 := &Loop{Model: m1, Workspace: ws, Save: func(_ context.Context, t *Transcript) error {
				b, _ := json.Marshal(t)
				snaps = append(snaps, b)
				if len(t.Effects) == 2 {
					return crash
				}
				return nil
			}}
			if err := l1.Run(context.Background(), tr); err == nil {
				t.Fatal("the first run did not stop")
			}
			// What was stored last before the kill: the loop's state with
			// the edit recorded and applied, the write recorded.
			var stored Transcript
			var last []byte
			for _, s := range snaps {
				var x Transcript
				json.Unmarshal(s, &x)
				if x.State == StateRunning && len(x.Effects) >= 1 {
					last = s
				}
			}
			if err := json.Unmarshal(last, &stored); err != nil {
				t.Fatal(err)
			}
			switch mode {
			case "restored":
				os.WriteFile(filepath.Join(ws.Root(), "conf.py"), []byte(orig), 0o644)
				os.Remove(filepath.Join(ws.Root(), "new.py"))
			case "before-apply":
				// The crash came after the edit's intent was saved but
				// before the file was written.
				os.WriteFile(filepath.Join(ws.Root(), "conf.py"), []byte(orig), 0o644)
				stored.Effects = stored.Effects[:1]
				stored.Effects[0].Applied = false
				stored.Pending = nil
			}
			m2 := &script{turns: []func(llm.Request) *llm.Response{turn(tc(ToolFinish, map[string]any{"summary": "resumed"}))}}
			l2 := &Loop{Model: m2, Workspace: ws}
			if err := l2.Run(context.Background(), &stored); err != nil {
				t.Fatal(err)
			}
			if got := read(t, ws, "conf.py"); got != want {
				t.Fatalf("conf.py after resume:\n%s", got)
			}
			if got := read(t, ws, "new.py"); got != "z = 3\n" {
				t.Fatalf("new.py after resume: %q", got)
			}
			if stored.End != EndFinish || stored.Resumes != 1 || len(m2.reqs) != 1 {
				t.Fatalf("end %q resumes %d turns %d", stored.End, stored.Resumes, len(m2.reqs))
			}
			// The resumed model sees one result per call of the interrupted
			// turn, and the edit is reported as done, not redone.
			res := lastResults(m2.reqs[0])
			if len(res) != 2 || res[0].IsError || res[1].IsError {
				t.Fatalf("results after resume: %+v", res)
			}
			if mode != "before-apply" && !strings.Contains(res[1].Content, "applied before an interruption") {
				t.Fatalf("write result %q", res[1].Content)
			}
		})
	}
}

// Commands run only in the sandbox: a hostile command sees no host secrets,
// a fork bomb is bounded, and the loop goes on.
func TestLoopRunsCommandsInTheSandbox(t *testing.T) {
	ws := newWS(t, map[string]string{"ok.sh": "echo fine\n"})
	m := &script{turns: []func(llm.Request) *llm.Response{
		turn(tc(ToolRun, map[string]any{"command": "sh ok.sh; echo made > made.txt"})),
		turn(tc(ToolRun, map[string]any{"command": "cat /etc/shadow; id -u"})),
		turn(tc(ToolRun, map[string]any{"command": "b(){ b|b& }; b"})),
		turn(tc(ToolRun, map[string]any{"command": "yes | head -c 5000000"})),
	}}
	tr := NewTranscript("go")
	start := time.Now()
	l := &Loop{Model: m, Workspace: ws, Sandbox: sandbox.Run, Limits: Limits{RunTimeout: 5 * time.Second}}
	if err := l.Run(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	first := lastResults(m.reqs[1])[0]
	if first.IsError || !strings.Contains(first.Content, "fine") || !strings.Contains(first.Content, "exit code 0") {
		t.Fatalf("run: %+v", first)
	}
	if _, err := ws.ReadFile("made.txt"); err == nil {
		t.Error("a command's file reached the workspace (it runs on a copy)")
	}
	shadow := lastResults(m.reqs[2])[0].Content
	if strings.Contains(shadow, "root:") {
		t.Fatalf("the sandbox let the command read /etc/shadow: %s", shadow)
	}
	// The fork bomb's processes die with its run: the next command runs.
	if bomb := lastResults(m.reqs[3])[0]; !strings.Contains(bomb.Content, "exit code") {
		t.Fatalf("fork bomb: %+v", bomb)
	}
	big := lastResults(m.reqs[4])[0].Content
	if len(big) > maxResultBytes+200 || !strings.Contains(big, "cut") {
		t.Fatalf("output not bounded: %d bytes", len(big))
	}
	if time.Since(start) > 60*time.Second {
		t.Fatalf("took %s", time.Since(start))
	}
}

// Some servers number tool calls per turn (call_0 every turn): effects are
// still matched to the right call, on a resume too.
func TestLoopMakesCallIDsUnique(t *testing.T) {
	ws := newWS(t, nil)
	same := func(name string, args any) llm.ToolCall { c := tc(name, args); c.ID = "call_0"; return c }
	m := &script{turns: []func(llm.Request) *llm.Response{
		turn(same(ToolWriteFile, map[string]any{"path": "a.txt", "content": "one\n"})),
		turn(same(ToolEditFile, map[string]any{"path": "a.txt", "search": "one\n", "replace": "one\ntwo\n"})),
		turn(same(ToolFinish, map[string]any{"summary": "ok"})),
	}}
	var saved []byte
	tr := NewTranscript("go")
	l := &Loop{Model: m, Workspace: ws, Save: func(_ context.Context, t *Transcript) error {
		if len(t.Effects) == 2 && saved == nil {
			saved, _ = json.Marshal(t) // the edit recorded, not yet applied
		}
		return nil
	}}
	if err := l.Run(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, msg := range tr.Messages {
		for _, c := range msg.ToolCalls {
			if ids[c.ID] {
				t.Fatalf("id %s used twice", c.ID)
			}
			ids[c.ID] = true
		}
	}
	if tr.Effects[0].CallID == tr.Effects[1].CallID {
		t.Fatalf("effects share a call id: %+v", tr.Effects)
	}
	// Resume from the moment the edit was recorded, with the file as the
	// write left it: the edit is applied once.
	var again Transcript
	json.Unmarshal(saved, &again)
	os.WriteFile(filepath.Join(ws.Root(), "a.txt"), []byte("one\n"), 0o644)
	if err := (&Loop{Model: &script{}, Workspace: ws}).Run(context.Background(), &again); err != nil {
		t.Fatal(err)
	}
	if got := read(t, ws, "a.txt"); got != "one\ntwo\n" {
		t.Fatalf("a.txt %q", got)
	}
}
