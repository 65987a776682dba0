package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store/storetest/teststore"
)

// These tests run the real binary as a user would: built once, started as a
// process, spoken to over HTTP, stopped with signals.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "catalyst-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "catalyst")
	// -race: the served binary is checked for data races too (a race makes
	// it exit 66, failing the SIGTERM test), and the build reuses the
	// packages `go test -race` has just compiled instead of compiling every
	// dependency a second time (minutes on a fresh CI machine).
	out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building catalyst: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type server struct {
	t      *testing.T
	cmd    *exec.Cmd
	URL    string
	out    *syncBuffer
	exited chan error
	// Token is the API token, read from the sign-in link the server printed.
	Token string
}

type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }
func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}
func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

// isolatedEnv is a minimal environment: no keys of the developer's machine,
// no Ollama probe, a private data dir, any free port.
func isolatedEnv(dataDir string, extra ...string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"CATALYST_DATA_DIR=" + dataDir,
		"BACKEND_PORT=0",
		"CATALYST_OLLAMA_URL=off",
		"LOG_LEVEL=WARNING",
	}
	return append(env, extra...)
}

// storeEnv points a process at the store of dataDir: nothing for SQLite in
// it, or the MongoDB database of the dir with CATALYST_TEST_STORE=mongo.
func storeEnv(t *testing.T, dataDir string) []string {
	t.Helper()
	_, env := teststore.OpenURL(t, dataDir)
	return env
}

func startServer(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	cmd := exec.Command(binary, "serve")
	cmd.Dir = t.TempDir() // no config.yaml or .env of the repository
	cmd.Env = isolatedEnv(dataDir, append(storeEnv(t, dataDir), extra...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, out: newSyncBuffer(), exited: make(chan error, 1)}
	cmd.Stderr = s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urlCh, tokenCh := make(chan string, 1), make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`listening on (http://\S+)`)
		signIn := regexp.MustCompile(`sign in: (http://\S+)/\?token=(\S+)`)
		for sc.Scan() {
			s.out.Write([]byte(sc.Text() + "\n"))
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				urlCh <- m[1]
			}
			if m := signIn.FindStringSubmatch(sc.Text()); m != nil {
				tokenCh <- m[2]
			}
		}
	}()
	go func() { s.exited <- cmd.Wait() }()
	select {
	case s.URL = <-urlCh:
		select {
		case s.Token = <-tokenCh:
		case <-time.After(10 * time.Second):
			t.Fatalf("server printed no sign-in link:\n%s", s.out)
		}
	case err := <-s.exited:
		t.Fatalf("server exited at start: %v\n%s", err, s.out)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("server did not start:\n%s", s.out)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-s.exited
		}
	})
	return s
}

func (s *server) do(method, path string, body any, into any) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if into != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, into); err != nil {
			s.t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

type task struct {
	ID         string            `json:"id"`
	Status     string            `json:"status"`
	GraphState map[string]string `json:"graph_state"`
	Cost       float64           `json:"cost"`
	Error      string            `json:"error"`
	Provider   string            `json:"provider"`
	Model      string            `json:"model"`
	Offline    bool              `json:"offline"`
}

func (t task) Served() domain.Served {
	return domain.Served{Provider: t.Provider, Model: t.Model, Offline: t.Offline}
}

func (s *server) createTask(prompt string) task {
	s.t.Helper()
	var p struct{ ID string }
	if code := s.do("POST", "/api/projects", map[string]string{"name": "My Project", "description": "A test project"}, &p); code != 200 && code != 201 {
		s.t.Fatalf("create project: %d", code)
	}
	var tk task
	if code := s.do("POST", "/api/tasks", map[string]string{"project_id": p.ID, "prompt": prompt}, &tk); code != 200 && code != 201 {
		s.t.Fatalf("create task: %d", code)
	}
	return tk
}

func (s *server) waitTask(id string, timeout time.Duration, done func(task) bool) task {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	var tk task
	for time.Now().Before(deadline) {
		s.do("GET", "/api/tasks/"+id, nil, &tk)
		if done(tk) {
			return tk
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("task %s not done in %v: %+v\n%s", id, timeout, tk, s.out)
	return tk
}

func terminal(t task) bool {
	return t.Status == "completed" || t.Status == "failed" || t.Status == "cancelled"
}

func (s *server) stop() (exitCode int) {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(40 * time.Second):
		s.t.Fatalf("server ignored SIGTERM:\n%s", s.out)
	}
	return s.cmd.ProcessState.ExitCode()
}

func TestServeBuildsATodoAppEndToEnd(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data)

	var info map[string]any
	if code := s.do("GET", "/api/", nil, &info); code != 200 {
		t.Fatalf("GET /api/: %d", code)
	}
	checkLockdown(t, s, data)
	tk := s.createTask("Build a todo app")
	// The executor may pick the task up before the response is written; a
	// new task is never reported further along than running.
	if tk.Status != "pending" && tk.Status != "running" {
		t.Errorf("new task status %q, want pending or running", tk.Status)
	}
	tk = s.waitTask(tk.ID, 90*time.Second, terminal)
	if tk.Status != "completed" {
		t.Fatalf("task %s: %s\n%s", tk.Status, tk.Error, s.out)
	}
	for node, state := range tk.GraphState {
		if state != "completed" {
			t.Errorf("node %s is %s", node, state)
		}
	}
	if !tk.Offline || tk.Provider != "offline" {
		t.Errorf("task served by %+v, not marked as the offline provider", tk.Served())
	}

	var dep struct {
		URL       string `json:"url"`
		CommitSHA string `json:"commit_sha"`
		Report    string `json:"report"`
	}
	if code := s.do("GET", "/api/deployments/"+tk.ID, nil, &dep); code != 200 {
		t.Fatalf("deployment: %d", code)
	}
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(dep.CommitSHA) {
		t.Fatalf("commit_sha %q", dep.CommitSHA)
	}
	ws := filepath.Join(data, "tasks", tk.ID, "workspace")
	out, err := exec.Command("git", "-C", ws, "log", "--format=%H").Output()
	if err != nil || !strings.Contains(string(out), dep.CommitSHA) {
		t.Fatalf("git log in %s does not show %s: %v %s", ws, dep.CommitSHA, err, out)
	}

	var tester []struct {
		Node   string `json:"node"`
		Output struct {
			Passed   int `json:"passed"`
			Failed   int `json:"failed"`
			ExitCode int `json:"exit_code"`
		} `json:"output"`
	}
	s.do("GET", "/api/tasks/"+tk.ID+"/artifacts", nil, &tester)
	ran := false
	for _, a := range tester {
		if a.Node == "tester" {
			ran = a.Output.Passed > 0 && a.Output.Failed == 0 && a.Output.ExitCode == 0
		}
	}
	if !ran {
		t.Errorf("no passing tester report in artifacts: %+v", tester)
	}

	// The preview is on its own origin, opened with a grant for the reader;
	// the API's origin only redirects there, minting one.
	if strings.HasPrefix(dep.URL, s.URL+"/") {
		t.Errorf("deployment URL %s is on the API's origin %s", dep.URL, s.URL)
	}
	previewBase, _, _ := strings.Cut(dep.URL, "/apps/")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", s.URL+"/apps/"+tk.ID+"/", nil)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	if resp, err := noRedirect.Do(req); err != nil || resp.StatusCode != 302 || !strings.HasPrefix(resp.Header.Get("Location"), previewBase+"/apps/"+tk.ID+"/g1.") {
		t.Errorf("API origin /apps/: %v %+v", err, resp)
	} else {
		resp.Body.Close()
	}
	resp, err := http.Get(dep.URL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(strings.ToLower(string(page)), "todo") {
		t.Errorf("preview %s: %d %.200s", dep.URL, resp.StatusCode, page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
		t.Errorf("preview not sandboxed: CSP %q", csp)
	}

	if code := s.stop(); code != 0 {
		t.Errorf("exit status after SIGTERM: %d\n%s", code, s.out)
	}
}

// printedToken waits for the sign-in link a server prints just after it
// listens, and returns its token.
func printedToken(t *testing.T, s *server) string {
	t.Helper()
	re := regexp.MustCompile(`sign in: http://\S+/\?token=(\S+)`)
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(s.out.String()); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no sign-in link printed:\n%s", s.out)
	return ""
}

// checkLockdown: the token was generated into the data directory (0600),
// the API refuses requests without it, the sign-in link gives a session
// cookie, and the token never reaches the log.
func checkLockdown(t *testing.T, s *server, data string) {
	t.Helper()
	fi, err := os.Stat(filepath.Join(data, "api_token"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "api_token")); strings.TrimSpace(string(b)) != s.Token {
		t.Fatalf("the printed token is not the one in the data directory")
	}
	for _, p := range []string{"/api/", "/api/tasks", "/ws/x", "/api/tasks/x/events"} {
		resp, err := http.Get(s.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("GET %s without the token: %d", p, resp.StatusCode)
		}
	}
	resp, err := http.Post(s.URL+"/api/projects", "text/plain", strings.NewReader(`{"name":"csrf"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("anonymous text/plain POST: %d", resp.StatusCode)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.Get(s.URL + "/?token=" + s.Token)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 || len(resp.Cookies()) != 1 || !resp.Cookies()[0].HttpOnly {
		t.Fatalf("sign-in link: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ := http.NewRequest("GET", s.URL+"/api/tasks", nil)
	req.AddCookie(resp.Cookies()[0])
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("with the session cookie: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	// A DNS-rebinding host name gets nothing.
	req, _ = http.NewRequest("GET", s.URL+"/api/tasks", nil)
	req.Host = "rebind.evil.test"
	req.Header.Set("Authorization", "Bearer "+s.Token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 421 {
		t.Fatalf("foreign Host: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	if strings.Contains(stderrOf(s), s.Token) {
		t.Fatalf("the token reached the log")
	}
}

// stderrOf is what the server logged (stdout lines excluded: the sign-in
// link is printed there on purpose).
func stderrOf(s *server) string {
	var out []string
	for _, l := range strings.Split(s.out.String(), "\n") {
		if !strings.Contains(l, "sign in: ") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A task killed with SIGKILL mid-graph resumes after a restart on the same
// data directory, without rerunning finished nodes or duplicating logs.
func TestKill9MidGraphResumes(t *testing.T) {
	data := t.TempDir()
	slow := "CATALYST_OFFLINE_LATENCY=500ms"
	// The killed process's lease must expire before the restarted one (a
	// new owner) takes the task over.
	s := startServer(t, data, slow, "CATALYST_LEASE_TTL=2s")
	tk := s.createTask("Build a todo app")
	s.waitTask(tk.ID, 60*time.Second, func(t task) bool { return t.GraphState["architect"] == "completed" })
	s.cmd.Process.Kill()
	<-s.exited

	s2 := startServer(t, data, slow, "CATALYST_LEASE_TTL=2s")
	final := s2.waitTask(tk.ID, 90*time.Second, terminal)
	if final.Status != "completed" {
		t.Fatalf("after restart: %s %s\n%s", final.Status, final.Error, s2.out)
	}
	var arts []struct {
		Node      string  `json:"node"`
		Iteration int     `json:"iteration"`
		Cost      float64 `json:"cost"`
	}
	s2.do("GET", "/api/tasks/"+tk.ID+"/artifacts", nil, &arts)
	runs := map[string]int{}
	for _, a := range arts {
		runs[a.Node]++
	}
	if runs["planner"] != 1 || runs["architect"] != 1 {
		t.Errorf("finished nodes ran again: %v", runs)
	}
	var logs []struct {
		ID  string `json:"id"`
		Seq int64  `json:"seq"`
	}
	s2.do("GET", "/api/logs/"+tk.ID+"?limit=500", nil, &logs)
	seen := map[string]bool{}
	for i, l := range logs {
		if seen[l.ID] {
			t.Errorf("duplicate log id %s", l.ID)
		}
		seen[l.ID] = true
		if l.Seq != int64(i+1) {
			t.Errorf("log %d has seq %d: gap or duplicate", i, l.Seq)
			break
		}
	}
	if len(logs) < 10 {
		t.Errorf("only %d logs", len(logs))
	}
	s2.stop()
}

func TestInvalidConfigurationStopsStartup(t *testing.T) {
	cmd := exec.Command(binary, "serve")
	cmd.Dir = t.TempDir()
	cmd.Env = isolatedEnv(t.TempDir(), "MAX_CONCURRENT_TASKS=abc", "LOG_LEVEL=loud", "ANTHROPIC_API_KEY=sk-ant-do-not-print")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("started with invalid configuration:\n%s", out)
	}
	for _, want := range []string{"MAX_CONCURRENT_TASKS", "LOG_LEVEL", "DEBUG, INFO, WARNING, ERROR"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("message lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "sk-ant-do-not-print") {
		t.Errorf("secret printed:\n%s", out)
	}
}

func TestPrintConfigRedactsSecrets(t *testing.T) {
	cmd := exec.Command(binary, "config", "print")
	cmd.Dir = t.TempDir()
	cmd.Env = isolatedEnv(t.TempDir(), "ANTHROPIC_API_KEY=sk-ant-do-not-print", "MONGO_URL=mongodb://u:hunter2@h:27017")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Contains(string(out), "sk-ant-do-not-print") || strings.Contains(string(out), "hunter2") {
		t.Fatalf("secret printed:\n%s", out)
	}
	if !strings.Contains(string(out), "ANTHROPIC_API_KEY=<redacted>") || !strings.Contains(string(out), "BACKEND_PORT=0") {
		t.Fatalf("unexpected output:\n%s", out)
	}
}

func TestConfigEnvGeneratesThreeFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("EMERGENT_LLM_KEY: sk-emergent-1\n"), 0o600)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(binary, append([]string{"config", "env"}, args...)...)
		cmd.Dir = dir
		cmd.Env = isolatedEnv(t.TempDir())
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, f := range []string{".env", "backend/.env", "frontend/.env"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, err, st)
		}
	}
	if out, err := run(); err == nil || !strings.Contains(out, "--force") {
		t.Errorf("second run without --force: %v %s", err, out)
	}
	if out, err := run("--force"); err != nil {
		t.Errorf("--force: %v %s", err, out)
	}
}
