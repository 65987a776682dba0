package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/llm/offline"
	"github.com/catalyst/catalyst/internal/sandbox"
	"github.com/catalyst/catalyst/internal/store/sqlite"
	"github.com/catalyst/catalyst/internal/workspace"
)

// runIn runs a command in dir and returns its combined output (failing runs included).
func runIn(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is required: %v", name, err)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, _ := cmd.CombinedOutput()
	return string(out)
}

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The parsers are checked against what the real runners print.
func TestParseRealRunnerOutput(t *testing.T) {
	t.Run("node", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, map[string]string{"a.test.js": `const test = require('node:test'); const assert = require('node:assert/strict');
test('good', () => assert.equal(1, 1));
test('bad one', () => assert.equal(1, 2));
test('also good', () => {});`})
		out := runIn(t, dir, nil, "node", "--test", "--test-reporter=tap", "a.test.js")
		p, f, fs := parseResults("node", out)
		if p != 2 || f != 1 || len(fs) != 1 || fs[0].Name != "bad one" || !strings.Contains(fs[0].Message, "Expected values to be strictly equal") {
			t.Fatalf("pass %d fail %d %+v\n%s", p, f, fs, out)
		}
	})
	t.Run("unittest", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, map[string]string{"test_a.py": `import unittest
class T(unittest.TestCase):
    def test_good(self): self.assertEqual(1, 1)
    def test_bad(self): self.assertEqual(1, 2)
    def test_error(self): raise ValueError("boom")
    @unittest.skip("later")
    def test_skip(self): pass
`})
		out := runIn(t, dir, nil, "python3", "-m", "unittest", "discover", "-v", "-s", ".", "-p", "*test*.py")
		p, f, fs := parseResults("unittest", out)
		if p != 1 || f != 2 || len(fs) != 2 {
			t.Fatalf("pass %d fail %d %+v\n%s", p, f, fs, out)
		}
		msgs := fs[0].Name + fs[0].Message + fs[1].Name + fs[1].Message
		if !strings.Contains(msgs, "test_bad") || !strings.Contains(msgs, "AssertionError: 1 != 2") || !strings.Contains(msgs, "ValueError: boom") {
			t.Fatalf("%+v", fs)
		}
	})
	t.Run("go", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, map[string]string{"go.mod": "module x\n\ngo 1.21\n", "x_test.go": `package x
import "testing"
func TestGood(t *testing.T) {}
func TestBad(t *testing.T) { t.Errorf("want 3, got %d", 4) }
`})
		env := []string{"GOFLAGS=-mod=mod", "GOPROXY=off", "GOTOOLCHAIN=local"}
		out := runIn(t, dir, env, "go", "test", "-v", "./...")
		p, f, fs := parseResults("go", out)
		if p != 1 || f != 1 || fs[0].Name != "TestBad" || !strings.Contains(fs[0].Message, "want 3, got 4") {
			t.Fatalf("pass %d fail %d %+v\n%s", p, f, fs, out)
		}
		write(t, dir, map[string]string{"x_test.go": "package x\nfunc broken( {"})
		out = runIn(t, dir, env, "go", "test", "-v", "./...")
		if _, f, fs := parseResults("go", out); f != 1 || !strings.Contains(fs[0].Message, "failed: ") {
			t.Fatalf("build failure: %d %+v\n%s", f, fs, out)
		}
	})
	t.Run("pytest", func(t *testing.T) {
		// At default verbosity (a project's addopts = -v), the summary is
		// framed by "="; tester_python_test.go runs the real pytest.
		out := "F.\n=========================== short test summary info ============================\nFAILED test_a.py::test_bad - assert 1 == 2\n========================= 1 failed, 1 passed in 0.03s ==========================\n"
		p, f, fs := parseResults("pytest", out)
		if p != 1 || f != 1 || fs[0].Name != "test_a.py::test_bad" || fs[0].Message != "assert 1 == 2" {
			t.Fatalf("pass %d fail %d %+v", p, f, fs)
		}
	})
}

func TestTestCommandChoice(t *testing.T) {
	files := func(p ...string) []workspace.File {
		var fs []workspace.File
		for _, x := range p {
			fs = append(fs, workspace.File{Path: x})
		}
		return fs
	}
	unittestFile := "import unittest\nclass T(unittest.TestCase):\n    def test_a(self): pass\n"
	pytestCmd := "python3 -m pytest --verbosity=-1 -rfE"
	unittestCmd := "python3 -m unittest discover -v -s . -p *test*.py"
	cases := []struct {
		files   []string
		lang    string
		want    string
		content map[string]string // of the files that have content
	}{
		{[]string{"index.html", "todo.js", "todo.test.js"}, "javascript", "node --test --test-reporter=tap todo.test.js", nil},
		{[]string{"app.py", "test_app.py"}, "python", unittestCmd, map[string]string{"test_app.py": unittestFile}},
		{[]string{"app.py", "tests/test_app.py", "conftest.py"}, "python", pytestCmd, nil},
		{[]string{"app.py", "pytest.ini", "test_app.py"}, "python", pytestCmd, map[string]string{"test_app.py": unittestFile}},
		{[]string{"app.py", "pyproject.toml", "tests/test_app.py"}, "python", pytestCmd,
			map[string]string{"pyproject.toml": "[project]\nname = 'x'\n\n[tool.pytest.ini_options]\ntestpaths = ['tests']\n", "tests/test_app.py": unittestFile}},
		{[]string{"app.py", "pyproject.toml", "test_app.py"}, "python", unittestCmd,
			map[string]string{"pyproject.toml": "[project]\nname = 'x'\n", "test_app.py": unittestFile}},
		{[]string{"app.py", "setup.cfg", "test_app.py"}, "python", pytestCmd, map[string]string{"setup.cfg": "[tool:pytest]\naddopts = -ra\n", "test_app.py": unittestFile}},
		{[]string{"app.py", "tox.ini", "test_app.py"}, "python", pytestCmd, map[string]string{"tox.ini": "[tox]\n[pytest]\n", "test_app.py": unittestFile}},
		// Written for pytest without configuring it: unittest would find nothing.
		{[]string{"app.py", "test_app.py"}, "python", pytestCmd, map[string]string{"test_app.py": "import pytest\nfrom app import add\n"}},
		{[]string{"app.py", "test_app.py"}, "python", pytestCmd, map[string]string{"test_app.py": "from app import add\n\ndef test_add():\n    assert add(1, 2) == 3\n"}},
		{[]string{"go.mod", "main.go", "main_test.go"}, "go", "go test -v ./...", nil},
		{[]string{"main_test.go", "a.test.js"}, "go", "go test -v ./...", nil},
		{[]string{"index.html", "app.js"}, "javascript", "", nil},
	}
	for _, c := range cases {
		cmd, _ := testCommand(files(c.files...), c.lang, func(p string) []byte { return []byte(c.content[p]) })
		if got := strings.Join(cmd, " "); got != c.want {
			t.Errorf("%v %q: %q, want %q", c.files, c.content, got, c.want)
		}
	}
}

// fixed answers every agent with the same document.
type fixed struct{ doc any }

func (f fixed) For(string) llm.Model { return f }
func (f fixed) Generate(ctx context.Context, req llm.Request) (*llm.Response, error) {
	b, _ := json.Marshal(f.doc)
	return &llm.Response{Text: string(b), JSON: b, Provider: "test", Model: "fixed", Cost: 0.02}, nil
}

type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) log(level, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, level+": "+msg)
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func TestCoderRefusesUnsafePaths(t *testing.T) {
	dir := t.TempDir()
	wsDir := filepath.Join(dir, "ws")
	os.MkdirAll(wsDir, 0o755)
	os.Symlink(dir, filepath.Join(wsDir, "link"))
	ans := map[string]any{"notes": "", "delete": []string{"../outside.txt"}, "files": []map[string]string{
		{"path": "ok.js", "content": "ok"},
		{"path": "sub/dir/ok.js", "content": "ok"},
		{"path": "../escape.js", "content": "x"},
		{"path": "/etc/catalyst-owned", "content": "x"},
		{"path": ".git/config", "content": "x"},
		{"path": "link/through-symlink.js", "content": "x"},
		{"path": "big.bin", "content": strings.Repeat("x", workspace.MaxFileSize+1)},
	}}
	os.WriteFile(filepath.Join(dir, "outside.txt"), []byte("keep"), 0o644)
	c := &Coder{Deps{Models: fixed{ans}, WorkspaceDir: func(string) string { return wsDir }}}
	var l logs
	out, err := c.Run(context.Background(), Input{Task: domain.Task{ID: "t", Prompt: "p"}, Node: "coder", Iteration: 1, Log: l.log})
	if err != nil {
		t.Fatal(err)
	}
	var co CodeOutput
	json.Unmarshal(out.Artifact, &co)
	if len(co.Files) != 2 || co.Files[0].Action != "created" || len(co.Refused) != 6 {
		t.Fatalf("%+v", co)
	}
	for _, p := range []string{filepath.Join(dir, "escape.js"), "/etc/catalyst-owned", filepath.Join(dir, "through-symlink.js")} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s was written", p)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "outside.txt")); string(b) != "keep" {
		t.Fatal("a file outside the workspace was deleted")
	}
	if !strings.Contains(l.String(), `warn: Refused to write "../escape.js"`) {
		t.Fatalf("refusals not logged:\n%s", l.String())
	}
	if out.Cost != 0.02 || out.Served != (domain.Served{Provider: "test", Model: "fixed"}) {
		t.Fatalf("usage %+v", out)
	}
}

func TestTesterReportsAMissingToolchainAsAFailure(t *testing.T) {
	wsDir := t.TempDir()
	write(t, wsDir, map[string]string{"main.go": "package main", "main_test.go": "package main"})
	tr := &Tester{Deps{WorkspaceDir: func(string) string { return wsDir },
		Sandbox: func(ctx context.Context, s sandbox.Spec) (sandbox.Result, error) {
			return sandbox.Result{}, fmt.Errorf("%w: go", sandbox.ErrToolMissing)
		}}}
	var l logs
	out, err := tr.Run(context.Background(), Input{Task: domain.Task{ID: "t"}, Node: "tester", Iteration: 1, Log: l.log})
	if err != nil {
		t.Fatal(err)
	}
	var to TestOutput
	json.Unmarshal(out.Artifact, &to)
	if !to.ToolMissing || to.Passed != 0 || to.Command != "go test -v ./..." {
		t.Fatalf("%+v", to)
	}
	if pass, f := TestVerdict(out.Artifact); pass || !strings.Contains(f[0], "not installed") {
		t.Fatalf("a missing toolchain passed: %v %v", pass, f)
	}
}

func TestTesterAddsTestsWhenThereAreNoneAndRunsThemInTheSandbox(t *testing.T) {
	wsDir := t.TempDir()
	write(t, wsDir, map[string]string{"index.html": "<html></html>", "app.js": "console.log(1)"})
	tr := &Tester{Deps{Models: models{offline.New(0)}, WorkspaceDir: func(string) string { return wsDir }}}
	var l logs
	out, err := tr.Run(context.Background(), Input{Task: domain.Task{ID: "t", Prompt: "Build a page"}, Node: "tester", Iteration: 1, Log: l.log})
	if err != nil {
		t.Fatal(err)
	}
	var to TestOutput
	json.Unmarshal(out.Artifact, &to)
	if len(to.TestsAdded) != 1 || to.Passed != 1 || to.Failed != 0 || to.ExitCode != 0 || len(to.Sandbox.Isolation) == 0 {
		t.Fatalf("%+v\n%s", to, l.String())
	}
	if pass, _ := TestVerdict(out.Artifact); !pass {
		t.Fatal("verdict")
	}
}

type models struct{ m llm.Model }

func (m models) For(string) llm.Model { return m.m }

// fakeGitHub records pull requests.
type fakeGitHub struct {
	mu      sync.Mutex
	prs     map[string]string
	created int
}

func (f *fakeGitHub) DefaultBranch(ctx context.Context, repo string) (string, error) {
	return "main", nil
}
func (f *fakeGitHub) FindPullRequest(ctx context.Context, repo, head string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.prs[repo+":"+head], nil
}
func (f *fakeGitHub) CreatePullRequest(ctx context.Context, repo, head, base, title, body string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created++
	url := "https://github.com/" + repo + "/pull/1"
	f.prs[repo+":"+head] = url
	return url, nil
}

func TestDeployerIsIdempotentAndPublishesWithMockOff(t *testing.T) {
	dir, ctx := t.TempDir(), context.Background()
	st, task := deployFixture(t, dir, "acme/app", domain.Task{ID: "11111111-2222-3333-4444-555555555555", Prompt: "Build a todo app"})
	remote := filepath.Join(dir, "remote.git")
	runIn(t, dir, nil, "git", "init", "--bare", "-q", remote)
	wsDir := filepath.Join(dir, "ws")
	write(t, wsDir, map[string]string{"index.html": "<html></html>"})
	gh := &fakeGitHub{prs: map[string]string{}}
	d := &Deployer{Deps{Store: st, WorkspaceDir: func(string) string { return wsDir }, GitHub: gh,
		Config:    config.Config{MockDeployment: false, GitHubToken: "ghp_test", PublicURL: "http://h:1/"},
		RemoteURL: func(repo string) string { return remote }}}
	var outs []DeployOutput
	for i := 0; i < 2; i++ { // the second run is a deployer resumed after a crash
		var l logs
		out, err := d.Run(ctx, Input{Task: task, Node: "deployer", Iteration: 1, Log: l.log})
		if err != nil {
			t.Fatal(err)
		}
		var o DeployOutput
		json.Unmarshal(out.Artifact, &o)
		outs = append(outs, o)
	}
	if outs[0].CommitSHA != outs[1].CommitSHA || len(outs[0].CommitSHA) != 40 || gh.created != 1 {
		t.Fatalf("not idempotent: %+v, %d pull requests opened", outs, gh.created)
	}
	o := outs[1]
	if o.Mock || o.Branch != "catalyst/task-"+task.ID || o.PullRequestURL != "https://github.com/acme/app/pull/1" || o.URL != "http://h:1/apps/"+task.ID+"/" {
		t.Fatalf("%+v", o)
	}
	pushed := strings.TrimSpace(runIn(t, dir, nil, "git", "--git-dir", remote, "rev-parse", "refs/heads/"+o.Branch))
	if pushed != o.CommitSHA {
		t.Fatalf("remote branch at %q, commit %s", pushed, o.CommitSHA)
	}
	dep, err := st.GetDeployment(ctx, task.ID)
	if err != nil || dep.CommitSHA != o.CommitSHA || dep.PullRequestURL != o.PullRequestURL || !strings.Contains(dep.Report, "pull request https://github.com/acme/app/pull/1") {
		t.Fatalf("%+v %v", dep, err)
	}
}

func TestDeployerMockReportsSimulation(t *testing.T) {
	dir, ctx := t.TempDir(), context.Background()
	st, task := deployFixture(t, dir, "", domain.Task{ID: "t1", Prompt: "x", Provider: "offline", Offline: true})
	wsDir := filepath.Join(dir, "ws")
	write(t, wsDir, map[string]string{"index.html": "<html></html>"})
	d := &Deployer{Deps{Store: st, WorkspaceDir: func(string) string { return wsDir }, Config: config.Config{MockDeployment: true, PublicURL: "http://h"}}}
	var l logs
	if _, err := d.Run(ctx, Input{Task: task, Node: "deployer", Iteration: 1, Log: l.log,
		Artifacts: map[string]domain.Artifact{"tester": {Output: json.RawMessage(`{"command":"node --test","passed":3,"failed":0}`)}}}); err != nil {
		t.Fatal(err)
	}
	dep, _ := st.GetDeployment(ctx, task.ID)
	for _, want := range []string{"External publishing simulated (MOCK_DEPLOYMENT=true)", "Tests: node --test: 3 passed, 0 failed", llm.OfflineLabel, dep.CommitSHA, "http://h/apps/t1/"} {
		if !strings.Contains(dep.Report, want) {
			t.Fatalf("report lacks %q:\n%s", want, dep.Report)
		}
	}
}

// deployFixture opens a store in dir with a project (linked to repo) and a running task.
func deployFixture(t *testing.T, dir, repo string, task domain.Task) (*sqlite.Store, domain.Task) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now().UTC()
	if err := st.CreateProject(ctx, domain.Project{ID: "p", Name: "p", Status: domain.ProjectActive, GitHubRepo: repo, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	task.ProjectID, task.Status, task.CreatedAt, task.UpdatedAt = "p", domain.TaskRunning, now, now
	task.GraphState = domain.NewGraphState([]string{domain.NodePlanner, domain.NodeArchitect, domain.NodeCoder, domain.NodeTester, domain.NodeReviewer, domain.NodeDeployer})
	if err := st.CreateTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	return st, task
}
