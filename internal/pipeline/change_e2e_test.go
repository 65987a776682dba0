package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/api"
	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/connector/github"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/graph"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/llm/providers"
	"github.com/catalyst/catalyst/internal/workspace/gitservertest"
)

// The repository of the end-to-end change test: add is wrong, its test
// fails; sub is right. "return a - b;" appears twice, so an edit that
// searches for it alone is refused.
var changeRepo = map[string]string{
	"math.js": "function add(a, b) {\n  return a - b;\n}\n\nfunction sub(a, b) {\n  return a - b;\n}\n\nmodule.exports = { add, sub };\n",
	"math.test.js": "const test = require('node:test');\nconst assert = require('node:assert');\nconst { add, sub } = require('./math.js');\n\n" +
		"test('add', () => { assert.strictEqual(add(2, 3), 5); });\ntest('sub', () => { assert.strictEqual(sub(5, 3), 2); });\n",
	"README.md": "# math\n",
}

// fixDiff is exactly the change the task must deliver.
const fixDiff = `diff --git a/math.js b/math.js
--- a/math.js
+++ b/math.js
@@ -1,5 +1,5 @@
 function add(a, b) {
-  return a - b;
+  return a + b;
 }
 
 function sub(a, b) {
`

const (
	repoSecret   = "repo_tok_SECRET_5f2a9c"
	githubSecret = "ghp_FAKEgithubTOKEN_77"
)

// coderScript is what the scripted developer does, one model turn each:
// look around, read, edit with a search that is not unique (refused), edit
// again with enough context, run the tests, finish.
var coderScript = [][][2]string{
	{{"search", `{"pattern":"function add"}`}, {"list_files", `{}`}},
	{{"read_file", `{"path":"math.js"}`}},
	{{"edit_file", `{"path":"math.js","search":"  return a - b;","replace":"  return a + b;"}`}},
	{{"edit_file", `{"path":"math.js","search":"function add(a, b) {\n  return a - b;","replace":"function add(a, b) {\n  return a + b;"}`}},
	{{"run", `{"command":"node --test"}`}},
	{{"finish", `{"summary":"add subtracted; it now adds."}`}},
}

// scriptedLLM answers over the OpenAI chat-completions and Anthropic
// Messages wire formats (streamed, tool arguments in pieces): the planner
// and reviewer with their JSON, the coder with coderScript by turn.
type scriptedLLM struct {
	t  *testing.T
	mu sync.Mutex
	// bodies by agent ("planner", "reviewer", "coder").
	bodies map[string][]map[string]any
	raw    map[string][]string
}

func (s *scriptedLLM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		http.Error(w, "bad json", 400)
		return
	}
	anthropic := strings.HasSuffix(r.URL.Path, "/messages")
	agentName := "coder"
	if rf, ok := body["response_format"].(map[string]any); ok {
		agentName, _ = rf["json_schema"].(map[string]any)["name"].(string)
	}
	if tc, ok := body["tool_choice"].(map[string]any); ok && tc["type"] == "tool" {
		agentName, _ = tc["name"].(string)
	}
	turn := 0
	for _, m := range body["messages"].([]any) {
		if m.(map[string]any)["role"] == "assistant" {
			turn++
		}
	}
	s.mu.Lock()
	s.bodies[agentName] = append(s.bodies[agentName], body)
	s.raw[agentName] = append(s.raw[agentName], string(b))
	s.mu.Unlock()
	var calls [][2]string
	var text string
	switch agentName {
	case "planner":
		text = `{"summary":"Fix add","requirements":["add returns the sum"],"user_stories":[{"title":"Sum","story":"As a caller I get a+b","acceptance_criteria":["add(2,3) is 5"]}]}`
	case "reviewer":
		text = `{"approved":true,"summary":"The fix is minimal and right.","findings":[]}`
	case "coder":
		calls = coderScript[min(turn, len(coderScript)-1)]
		text = "Working."
	default:
		http.Error(w, "unexpected request for "+agentName, 400)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	if anthropic {
		io.WriteString(w, anthropicStream(agentName, turn, text, calls))
	} else {
		io.WriteString(w, openaiStream(turn, text, calls))
	}
}

func pieces(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func openaiStream(turn int, text string, calls [][2]string) string {
	var b strings.Builder
	chunk := func(delta, finish string) {
		f := "null"
		if finish != "" {
			f = quote(finish)
		}
		fmt.Fprintf(&b, "data: {\"id\":\"c%d\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4.1\",\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":%s}]}\n\n", turn, delta, f)
	}
	chunk(`{"role":"assistant","content":""}`, "")
	if len(calls) == 0 {
		for _, p := range pieces(text, 7) {
			chunk(`{"content":`+quote(p)+`}`, "")
		}
		chunk(`{}`, "stop")
	} else {
		chunk(`{"content":`+quote(text)+`}`, "")
		for i, c := range calls {
			chunk(fmt.Sprintf(`{"tool_calls":[{"index":%d,"id":"call_%d_%d","type":"function","function":{"name":%q,"arguments":""}}]}`, i, turn, i, c[0]), "")
			for _, p := range pieces(c[1], 5) {
				chunk(fmt.Sprintf(`{"tool_calls":[{"index":%d,"function":{"arguments":%s}}]}`, i, quote(p)), "")
			}
		}
		chunk(`{}`, "tool_calls")
	}
	fmt.Fprintf(&b, "data: {\"id\":\"c%d\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4.1\",\"choices\":[],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":20,\"total_tokens\":120}}\n\n", turn)
	b.WriteString("data: [DONE]\n\n")
	return b.String()
}

func anthropicStream(agentName string, turn int, text string, calls [][2]string) string {
	var b strings.Builder
	ev := func(typ, data string) { fmt.Fprintf(&b, "event: %s\ndata: %s\n\n", typ, data) }
	ev("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-3-7-sonnet-20250219","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":100,"output_tokens":1}}}`)
	idx := 0
	stop := "end_turn"
	if agentName != "coder" {
		// Structured answers come as the forced tool's input.
		calls, text, stop = [][2]string{{agentName, text}}, "", "tool_use"
	}
	if text != "" {
		ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
		ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`+quote(text)+`}}`)
		ev("content_block_stop", `{"type":"content_block_stop","index":0}`)
		idx++
	}
	for i, c := range calls {
		ev("content_block_start", fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":{"type":"tool_use","id":"toolu_%d_%d","name":%q,"input":{}}}`, idx, turn, i, c[0]))
		for _, p := range pieces(c[1], 6) {
			ev("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"input_json_delta","partial_json":%s}}`, idx, quote(p)))
		}
		ev("content_block_stop", fmt.Sprintf(`{"type":"content_block_stop","index":%d}`, idx))
		idx++
		stop = "tool_use"
	}
	ev("message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":%q,"stop_sequence":null},"usage":{"output_tokens":20}}`, stop))
	ev("message_stop", `{"type":"message_stop"}`)
	return b.String()
}

// fakeGitHub answers the REST calls the deployer makes, in GitHub's shapes.
type fakeGitHub struct {
	mu    sync.Mutex
	auth  []string
	pulls []map[string]any
}

func (g *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.auth = append(g.auth, r.Header.Get("Authorization"))
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/repos/acme/math":
		io.WriteString(w, `{"id":1,"name":"math","full_name":"acme/math","default_branch":"main","private":true,"html_url":"https://github.com/acme/math"}`)
	case r.Method == http.MethodGet && r.URL.Path == "/repos/acme/math/pulls":
		io.WriteString(w, `[]`)
	case r.Method == http.MethodPost && r.URL.Path == "/repos/acme/math/pulls":
		var in map[string]any
		json.NewDecoder(r.Body).Decode(&in)
		g.pulls = append(g.pulls, in)
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":7,"number":7,"state":"open","title":%s,"html_url":"https://github.com/acme/math/pull/7","head":{"ref":%s},"base":{"ref":%s}}`,
			quote(fmt.Sprint(in["title"])), quote(fmt.Sprint(in["head"])), quote(fmt.Sprint(in["base"])))
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}`)
	}
}

func TestChangeTaskEndToEnd(t *testing.T) {
	for _, provider := range []string{"openai", "anthropic"} {
		t.Run(provider, func(t *testing.T) {
			t.Parallel()
			testChangeTask(t, provider)
		})
	}
}

func testChangeTask(t *testing.T, provider string) {
	gitSrv := gitservertest.New(t, t.TempDir(), repoSecret)
	repoURL := gitSrv.Publish(t, "math", changeRepo)
	bare := filepath.Join(gitSrv.Root, "math.git")
	base := strings.TrimSpace(gitservertest.Git(t, bare, "rev-parse", "refs/heads/main"))

	brain := &scriptedLLM{t: t, bodies: map[string][]map[string]any{}, raw: map[string][]string{}}
	llmSrv := httptest.NewServer(brain)
	defer llmSrv.Close()
	gh := &fakeGitHub{}
	ghSrv := httptest.NewServer(gh)
	defer ghSrv.Close()

	cfg := config.LLMConfig{OllamaURL: "off"}
	if provider == "openai" {
		cfg.DefaultProvider, cfg.DefaultModel, cfg.OpenAIKey, cfg.OpenAIBaseURL = "openai", "gpt-4.1", "sk-test", llmSrv.URL+"/v1"
	} else {
		cfg.DefaultProvider, cfg.DefaultModel, cfg.AnthropicKey, cfg.AnthropicBaseURL = "anthropic", "claude-3-7-sonnet-20250219", "sk-ant-test", llmSrv.URL
	}
	router, err := llm.NewRouter(cfg, llm.RouterOptions{Providers: providers.Factories(), Retry: llm.RetryPolicy{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	client, err := github.New(githubSecret, github.WithBaseURL(ghSrv.URL))
	if err != nil {
		t.Fatal(err)
	}

	e := newEnv(t, "")
	e.cfg.MockDeployment = false
	deps := agent.Deps{
		Models: router, Store: e.store, WorkspaceDir: e.workspaceDir, MockDeployment: false,
		GitHubToken: githubSecret, GitHub: github.NewPublisher(client), AgentTimeout: time.Minute,
		Getenv: func(name string) string {
			if name == "CATALYST_REPO_TOKEN_MATH" {
				return repoSecret
			}
			return ""
		},
	}
	e.start(router, &testGraph{g: graph.Change(), steps: agent.ChangeSteps(deps)})

	h, err := api.New(api.Options{
		Settings: api.Settings{APIToken: "api-token-123456", PreviewURL: "http://127.0.0.1:1", CORSOrigins: []string{"*"},
			MaxBodyBytes: 1 << 20, WebSocketPingInterval: time.Minute},
		Store: e.store, Broker: e.broker, Tasks: e.svc, WorkspaceDir: e.workspaceDir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	apiSrv := httptest.NewServer(h)
	defer apiSrv.Close()
	call := func(method, path string, body any) (*http.Response, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, apiSrv.URL+path, rd)
		req.Header.Set("Authorization", "Bearer api-token-123456")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp, out
	}

	// A project without a repository takes no change task; one naming a
	// server secret as its credential is refused.
	resp, out := call("POST", "/api/projects", map[string]any{"name": "math"})
	var proj domain.Project
	json.Unmarshal(out, &proj)
	if resp, out := call("POST", "/api/tasks", map[string]any{"project_id": proj.ID, "prompt": "Fix add", "kind": "change"}); resp.StatusCode != 400 || !strings.Contains(string(out), "repo_url") {
		t.Fatalf("change task without repo_url: %d %s", resp.StatusCode, out)
	}
	if resp, _ := call("PATCH", "/api/projects/"+proj.ID, map[string]any{"repo_url": repoURL, "repo_credential": "ANTHROPIC_API_KEY"}); resp.StatusCode != 422 {
		t.Fatalf("credential naming a server secret: %d", resp.StatusCode)
	}
	resp, out = call("PATCH", "/api/projects/"+proj.ID, map[string]any{"repo_url": repoURL, "repo_credential": "CATALYST_REPO_TOKEN_MATH", "github_repo": "acme/math"})
	if resp.StatusCode != 200 || strings.Contains(string(out), "CATALYST_REPO_TOKEN") || !strings.Contains(string(out), repoURL) {
		t.Fatalf("link repository: %d %s", resp.StatusCode, out)
	}
	resp, out = call("POST", "/api/tasks", map[string]any{"project_id": proj.ID, "prompt": "Fix the failing test of add", "kind": "change"})
	if resp.StatusCode != 200 {
		t.Fatalf("submit: %d %s", resp.StatusCode, out)
	}
	var task domain.Task
	json.Unmarshal(out, &task)
	final := e.wait(task.ID, 60*time.Second)
	if final.Status != domain.TaskCompleted {
		for _, l := range e.logs(task.ID) {
			t.Log(l.AgentName, l.Message)
		}
		t.Fatalf("status %s: %s", final.Status, final.Error)
	}
	branch := "catalyst/task-" + task.ID
	for _, l := range e.logs(task.ID) {
		if l.Type == domain.EventNodeState && strings.Contains(l.Message, " in ") {
			t.Log(l.Message)
		}
	}

	// The branch on the server: one commit on the base, by Catalyst, whose
	// diff is exactly the fix.
	head := strings.TrimSpace(gitservertest.Git(t, bare, "rev-parse", "refs/heads/"+branch))
	if parent := strings.TrimSpace(gitservertest.Git(t, bare, "rev-parse", head+"^")); parent != base {
		t.Fatalf("branch commit's parent %s, want the base %s", parent, base)
	}
	if a := strings.TrimSpace(gitservertest.Git(t, bare, "log", "-1", "--format=%an <%ae>", head)); a != "Catalyst <catalyst@localhost>" {
		t.Fatalf("author %q", a)
	}
	if diff := gitservertest.Git(t, bare, "diff", "--no-color", base, head); stripIndex(diff) != fixDiff {
		t.Fatalf("the branch's diff is not exactly the fix:\n%s", diff)
	}

	// Baseline: add failed and sub passed before; after, both pass.
	arts := e.artifacts(task.ID)
	var before, after agent.TestOutput
	json.Unmarshal(arts[agent.NodeBaseline][0].Output, &before)
	json.Unmarshal(arts[domain.NodeTester][len(arts[domain.NodeTester])-1].Output, &after)
	if !slices.Contains(before.Results, agent.TestResult{Name: "add", Status: "failed"}) || !slices.Contains(before.Results, agent.TestResult{Name: "sub", Status: "passed"}) {
		t.Fatalf("baseline results %+v (%s)", before.Results, before.Output)
	}
	if after.Baseline == nil || !slices.Equal(after.Baseline.Fixed, []string{"add"}) || len(after.Baseline.NewFailures) != 0 || len(after.Baseline.PreExisting) != 0 {
		t.Fatalf("comparison %+v", after.Baseline)
	}
	if !slices.Contains(after.Baseline.Tests, agent.TestComparison{Name: "add", Before: "failed", After: "passed"}) {
		t.Fatalf("comparison tests %+v", after.Baseline.Tests)
	}

	// The coder's steps: the non-unique edit refused, then recovered from.
	var edits []map[string]any
	for _, l := range e.logs(task.ID) {
		if l.Type != domain.EventToolCall {
			continue
		}
		var d map[string]any
		json.Unmarshal(l.Data, &d)
		if d["tool"] == "edit_file" {
			edits = append(edits, d)
		}
	}
	if len(edits) != 2 || edits[0]["ok"] != false || !strings.Contains(fmt.Sprint(edits[0]["result"]), "found 2 times") || edits[1]["ok"] != true {
		t.Fatalf("edit events %v", edits)
	}
	// The refusal reached the model, which then sent the unique search.
	if raw := brain.raw["coder"]; len(raw) < 4 || !strings.Contains(raw[3], "found 2 times") {
		t.Fatalf("the refusal was not sent back to the model")
	}
	// The reviewer read the diff with its function, not the whole tree.
	rev := brain.raw["reviewer"]
	if len(rev) != 1 || !strings.Contains(rev[0], `+  return a + b;`) || !strings.Contains(rev[0], "function add(a, b)") || strings.Contains(rev[0], "require('node:test')") {
		t.Fatalf("review request: %v", rev)
	}

	// Published: the pull request against main from the branch, with the
	// GitHub token; the git server saw only the repository's own token.
	if len(gh.pulls) != 1 || gh.pulls[0]["head"] != branch || gh.pulls[0]["base"] != "main" {
		t.Fatalf("pull requests %v", gh.pulls)
	}
	for _, a := range gh.auth {
		if !strings.Contains(a, githubSecret) {
			t.Fatalf("GitHub call without its token: %q", a)
		}
	}
	for _, p := range gitSrv.Passwords() {
		if p != repoSecret {
			t.Fatalf("the git server was sent %q", p)
		}
	}
	dep, err := e.store.GetDeployment(context.Background(), task.ID)
	if err != nil || dep.PullRequestURL != "https://github.com/acme/math/pull/7" || dep.Branch != branch || dep.CommitSHA != head {
		t.Fatalf("deployment %+v %v", dep, err)
	}

	// The patch endpoint serves the same commit.
	resp, out = call("GET", "/api/tasks/"+task.ID+"/patch", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/x-patch") ||
		!strings.HasPrefix(string(out), "From "+head) || !strings.Contains(string(out), "-  return a - b;\n+  return a + b;\n") {
		t.Fatalf("patch: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), out)
	}

	// No secret reached an event, an artifact or the workspace's git config.
	var all strings.Builder
	for _, l := range e.logs(task.ID) {
		all.WriteString(l.Message)
		all.Write(l.Data)
	}
	for _, list := range arts {
		for _, a := range list {
			all.Write(a.Output)
		}
	}
	cfgFile, _ := os.ReadFile(filepath.Join(e.workspaceDir(task.ID), ".git", "config"))
	all.Write(cfgFile)
	for _, s := range []string{repoSecret, githubSecret} {
		if strings.Contains(all.String(), s) {
			t.Fatalf("secret %q leaked into events, artifacts or .git/config", s)
		}
	}
}

// stripIndex drops git's "index abc..def 100644" lines, which name blobs.
func stripIndex(diff string) string {
	var out []string
	for _, l := range strings.SplitAfter(diff, "\n") {
		if !strings.HasPrefix(l, "index ") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}
