package offline_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/agent/schemas"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/llm/offline"
)

func ask(t *testing.T, m *offline.Model, agent, prompt string, msgs ...string) *llm.Response {
	t.Helper()
	req := llm.Request{Agent: agent, Context: "# Task\n" + prompt + "\n\n# Plan\n...", Schema: schemas.Get(agent), SchemaName: agent}
	for _, s := range msgs {
		req.Messages = append(req.Messages, llm.Message{Role: llm.RoleUser, Content: s})
	}
	var streamed strings.Builder
	req.OnDelta = func(d string) { streamed.WriteString(d) }
	resp, err := m.Generate(context.Background(), req)
	if err != nil {
		t.Fatalf("%s: %v", agent, err)
	}
	if err := schemas.Validate(agent, resp.JSON); err != nil {
		t.Fatalf("%s answer is not schema-valid: %v\n%s", agent, err, resp.JSON)
	}
	if streamed.String() != resp.Text {
		t.Fatalf("%s: streamed text differs from the answer", agent)
	}
	if resp.Provider != "offline" || resp.Model != "offline" || resp.Cost != 0 {
		t.Fatalf("%s: provider %q model %q cost %v", agent, resp.Provider, resp.Model, resp.Cost)
	}
	return resp
}

type codeAnswer struct {
	Files []struct{ Path, Content string }
}

// writeAndTest writes the coder's files to a directory and runs node --test there.
func writeAndTest(t *testing.T, resp *llm.Response) (dir string, pass, fail int) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is required for this test: ", err)
	}
	var a codeAnswer
	if err := json.Unmarshal(resp.JSON, &a); err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	for _, f := range a.Files {
		if err := os.WriteFile(filepath.Join(dir, f.Path), []byte(f.Content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("node", "--test", "--test-reporter=tap")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test failed: %v\n%s", err, out)
	}
	count := func(name string) int {
		m := regexp.MustCompile(`(?m)^# ` + name + ` (\d+)$`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("no %q in\n%s", name, out)
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	return dir, count("pass"), count("fail")
}

func TestTodoAppPassesItsOwnTests(t *testing.T) {
	m := offline.New(0)
	for _, agent := range []string{"planner", "architect"} {
		ask(t, m, agent, "Build a todo app")
	}
	resp := ask(t, m, "coder", "Build a todo app")
	// The streamed JSON reads like a model's: "<html>", not "\u003chtml\u003e".
	if strings.Contains(resp.Text, `\u003c`) || !strings.Contains(resp.Text, "<") {
		t.Fatalf("the coder's JSON escapes HTML: %.200s", resp.Text)
	}
	dir, pass, fail := writeAndTest(t, resp)
	if pass < 5 || fail != 0 {
		t.Fatalf("pass %d fail %d", pass, fail)
	}
	for _, f := range []string{"index.html", "app.js", "todo.js", "todo.test.js"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	app, _ := os.ReadFile(filepath.Join(dir, "app.js"))
	// A CSP sandbox without same-origin makes localStorage throw: every access must be guarded.
	if n, guarded := strings.Count(string(app), "localStorage."), strings.Count(string(app), "try {"); n == 0 || guarded < n {
		t.Fatalf("localStorage used %d times with %d try blocks", n, guarded)
	}
	html, _ := os.ReadFile(filepath.Join(dir, "index.html"))
	for _, want := range []string{`src="todo.js"`, `src="app.js"`, `id="new-todo"`} {
		if !strings.Contains(string(html), want) {
			t.Fatalf("index.html lacks %s", want)
		}
	}
}

func TestOtherPromptsGetAMinimalAppThatSaysWhatItIs(t *testing.T) {
	m := offline.New(0)
	prompt := `Build a weather dashboard for "Zürich" <script>`
	resp := ask(t, m, "coder", prompt)
	dir, pass, fail := writeAndTest(t, resp)
	if pass < 1 || fail != 0 {
		t.Fatalf("pass %d fail %d", pass, fail)
	}
	html, _ := os.ReadFile(filepath.Join(dir, "index.html"))
	if !strings.Contains(string(html), "Weather dashboard for &#34;Zürich&#34; &lt;script&gt;") {
		t.Fatalf("index.html does not quote the escaped request:\n%s", html)
	}
	if strings.Contains(string(html), "todo") {
		t.Fatal("a non-todo prompt got the todo app")
	}
}

func TestReviewerFindingsComeFromTheFiles(t *testing.T) {
	m := offline.New(0)
	msg := "Review these files.\n=== FILE: todo.js ===\nfunction a() {}\nfunction b() {}\n=== FILE: todo.test.js ===\ntest\n"
	resp := ask(t, m, "reviewer", "Build a todo app", msg)
	var r struct {
		Approved bool
		Findings []struct {
			Severity, File, Message string
			Line                    int
		}
	}
	if err := json.Unmarshal(resp.JSON, &r); err != nil {
		t.Fatal(err)
	}
	if !r.Approved || len(r.Findings) != 2 {
		t.Fatalf("%+v", r)
	}
	if r.Findings[0].File != "todo.js" || r.Findings[0].Severity != "info" || !strings.Contains(r.Findings[0].Message, "2 lines, 2 functions") {
		t.Fatalf("%+v", r.Findings[0])
	}
}

func TestTesterAddsARunnableSmokeTest(t *testing.T) {
	m := offline.New(0)
	resp := ask(t, m, "tester", "Build a thing", "=== FILE: index.html ===\n<html></html>\n")
	var a codeAnswer
	if err := json.Unmarshal(resp.JSON, &a); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<html></html>"), 0o644)
	os.WriteFile(filepath.Join(dir, a.Files[0].Path), []byte(a.Files[0].Content), 0o644)
	cmd := exec.Command("node", "--test")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// and it really checks: without the file it fails
	os.Remove(filepath.Join(dir, "index.html"))
	cmd = exec.Command("node", "--test")
	cmd.Dir = dir
	if err := cmd.Run(); err == nil {
		t.Fatal("smoke test passed without the file it checks")
	}
}

func TestDeterministic(t *testing.T) {
	a := ask(t, offline.New(0), "planner", "Build a todo app")
	b := ask(t, offline.New(0), "planner", "Build a todo app")
	if a.Text != b.Text {
		t.Fatal("answers differ")
	}
}

func TestLatencyAndCancel(t *testing.T) {
	m := offline.New(300 * time.Millisecond)
	start := time.Now()
	var deltas int
	_, err := m.Generate(context.Background(), llm.Request{Agent: "planner", Context: "# Task\nBuild a todo app", OnDelta: func(string) { deltas++ }})
	if err != nil || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
	if deltas < 2 {
		t.Fatalf("streamed in %d deltas", deltas)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	start = time.Now()
	_, err = offline.New(10*time.Second).Generate(ctx, llm.Request{Agent: "planner"})
	if !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}

func TestUnknownAgentWithSchemaIsAnError(t *testing.T) {
	_, err := offline.New(0).Generate(context.Background(), llm.Request{Agent: "nobody", Schema: json.RawMessage(`{}`)})
	if err == nil {
		t.Fatal("no error")
	}
}
