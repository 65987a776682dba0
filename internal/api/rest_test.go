package api

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

func TestInfoAndHealth(t *testing.T) {
	e := newEnv(t)
	var info map[string]any
	e.must(200, "GET", "/api/", nil).json(t, &info)
	for k, want := range map[string]any{"name": "Catalyst", "version": "test", "docs": "/docs", "redoc": "/redoc", "openapi": "/openapi.json"} {
		if info[k] != want {
			t.Errorf("info[%q] = %v, want %v", k, info[k], want)
		}
	}
	var h map[string]any
	e.must(200, "GET", "/api/health", nil).json(t, &h)
	if h["status"] != "ok" || h["store"] != "ok" {
		t.Fatalf("health = %v", h)
	}

	e.store.Close()
	r := e.must(503, "GET", "/api/health", nil)
	if p := r.problem(t); !strings.Contains(p["detail"].(string), "store unavailable") {
		t.Fatalf("503 detail does not give the reason: %v", p)
	}
}

// The guide's curl examples, bodies unchanged.
func TestGuideCurlExamples(t *testing.T) {
	e := newEnv(t)
	var p map[string]any
	e.must(200, "POST", "/api/projects", `{
    "name": "My Project",
    "description": "A test project"
  }`).json(t, &p)
	if p["name"] != "My Project" || p["description"] != "A test project" || p["status"] != "active" {
		t.Fatalf("project = %v", p)
	}
	if !regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(p["id"].(string)) {
		t.Fatalf("id %v is not a UUID", p["id"])
	}
	if _, ok := p["created_at"].(string); !ok {
		t.Fatalf("created_at missing: %v", p)
	}
	if _, ok := p["$schema"]; ok {
		t.Fatalf("huma's $schema leaked into the body: %v", p)
	}
	e.must(200, "POST", "/api/projects", `{"name":"Test","description":"Testing"}`)

	var list []map[string]any
	e.must(200, "GET", "/api/projects", nil).json(t, &list)
	if len(list) != 2 || list[0]["name"] != "Test" {
		t.Fatalf("projects list (newest first) = %v", list)
	}
	var got map[string]any
	e.must(200, "GET", "/api/projects/"+p["id"].(string), nil).json(t, &got)
	if got["name"] != "My Project" {
		t.Fatalf("get project = %v", got)
	}

	// The guide's task example with a real project id.
	var task domain.Task
	r := e.must(200, "POST", "/api/tasks", `{
    "project_id": "`+p["id"].(string)+`",
    "prompt": "Build a todo app"
  }`)
	r.json(t, &task)
	if task.Status != domain.TaskPending || task.Cost != 0 || task.Prompt != "Build a todo app" {
		t.Fatalf("task = %+v", task)
	}
	if len(task.GraphState) != len(buildNodes()) {
		t.Fatalf("graph_state = %v", task.GraphState)
	}
	for _, n := range buildNodes() {
		if task.GraphState[n] != domain.NodePending {
			t.Fatalf("node %s = %q, want pending", n, task.GraphState[n])
		}
	}
	if q := e.runner.enqueued(); !slices.Equal(q, []string{task.ID}) {
		t.Fatalf("runner queue = %v", q)
	}
	if strings.Contains(string(r.body), "$schema") || r.Header.Get("Link") != "" {
		t.Fatalf("huma's $schema / Link describedby leaked: %s %v", r.body, r.Header)
	}

	var scan map[string]any
	e.must(200, "POST", "/api/explorer/scan", `{
    "system_name": "SailPoint IdentityIQ",
    "repo_url": "https://github.com/sailpoint/identityiq",
    "jira_project": "SAILPOINT-IIQ"
  }`).json(t, &scan)
	if scan["status"] != "pending" || !strings.HasPrefix(scan["brief"].(string), "Scan queued") ||
		scan["jira_project"] != "SAILPOINT-IIQ" || scan["repo_url"] != "https://github.com/sailpoint/identityiq" {
		t.Fatalf("scan = %v", scan)
	}
	if risks, ok := scan["risks"].([]any); !ok || len(risks) != 0 {
		t.Fatalf("risks must be an empty array, got %v", scan["risks"])
	}
	var scans []map[string]any
	e.must(200, "GET", "/api/explorer/scans", nil).json(t, &scans)
	if len(scans) != 1 || scans[0]["id"] != scan["id"] {
		t.Fatalf("scans = %v", scans)
	}
	e.must(200, "GET", "/api/explorer/scans/"+scan["id"].(string), nil)
}

func TestTaskWithoutProjectGoesToDefaultProject(t *testing.T) {
	e := newEnv(t)
	var a, b domain.Task
	e.must(200, "POST", "/api/tasks", `{"prompt": "Build a todo app"}`).json(t, &a)
	e.must(200, "POST", "/api/tasks", `{"prompt": "Build a chat app"}`).json(t, &b)
	if a.ProjectID == "" || a.ProjectID != b.ProjectID {
		t.Fatalf("default project ids %q %q", a.ProjectID, b.ProjectID)
	}
	var p domain.Project
	e.must(200, "GET", "/api/projects/"+a.ProjectID, nil).json(t, &p)
	if p.Name != "Default" {
		t.Fatalf("default project = %+v", p)
	}
}

func TestBadInputIsRejectedAndNothingWritten(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Settings) { c.MaxBodyBytes = 4096 }))
	proj := e.createProject("p")
	archived := e.createProject("old")
	e.must(200, "DELETE", "/api/projects/"+archived.ID, nil)
	before := e.counts()

	big := `{"name": "` + strings.Repeat("x", 5000) + `"}`
	cases := []struct {
		name, method, path, body string
		status                   int
		detail                   string // a fragment the problem must contain
	}{
		{"malformed json", "POST", "/api/projects", `{"name": "x"`, 400, "unexpected end of JSON"},
		{"not an object", "POST", "/api/projects", `[1,2]`, 422, "expected object"},
		{"operator injection", "POST", "/api/projects", `{"name": {"$gt": ""}}`, 422, "expected string"},
		{"wrong type description", "POST", "/api/projects", `{"name": "a", "description": 5}`, 422, "expected string"},
		{"missing name", "POST", "/api/projects", `{"description": "x"}`, 422, "name"},
		{"blank name", "POST", "/api/projects", `{"name": "   "}`, 422, "name must not be blank"},
		{"empty body", "POST", "/api/projects", ``, 400, "body"},
		{"body over limit", "POST", "/api/projects", big, 413, "too large"},
		{"bad github_repo", "POST", "/api/projects", `{"name": "a", "github_repo": "not a repo"}`, 422, "github_repo"},
		{"unknown project", "POST", "/api/tasks", `{"project_id": "abc-123", "prompt": "Build a todo app"}`, 404, "project abc-123 not found"},
		{"archived project", "POST", "/api/tasks", `{"project_id": "` + archived.ID + `", "prompt": "x"}`, 409, "archived"},
		{"empty prompt", "POST", "/api/tasks", `{"project_id": "` + proj.ID + `", "prompt": ""}`, 422, "prompt"},
		{"blank prompt", "POST", "/api/tasks", `{"project_id": "` + proj.ID + `", "prompt": " \n\t "}`, 422, "prompt must not be blank"},
		{"missing prompt", "POST", "/api/tasks", `{"project_id": "` + proj.ID + `"}`, 422, "prompt"},
		{"prompt too long", "POST", "/api/tasks", `{"project_id": "` + proj.ID + `", "prompt": "` + strings.Repeat("é", 3000) + `"}`, 413, "too large"},
		{"prompt wrong type", "POST", "/api/tasks", `{"project_id": "` + proj.ID + `", "prompt": ["a"]}`, 422, "expected string"},
		{"scan without system_name", "POST", "/api/explorer/scan", `{"repo_url": "https://github.com/a/b"}`, 422, "system_name"},
		{"scan bad repo_url", "POST", "/api/explorer/scan", `{"system_name": "x", "repo_url": "file:///etc"}`, 422, "repo_url"},
		{"scan repo_url not a url", "POST", "/api/explorer/scan", `{"system_name": "x", "repo_url": "rm -rf /"}`, 422, "repo_url"},
		{"patch bad status", "PATCH", "/api/projects/" + proj.ID, `{"status": "deleted"}`, 422, "status"},
		{"patch blank name", "PATCH", "/api/projects/" + proj.ID, `{"name": ""}`, 422, "name"},
		{"limit zero", "GET", "/api/projects?limit=0", "", 422, "limit"},
		{"limit too big", "GET", "/api/projects?limit=100000", "", 422, "limit"},
		{"limit not a number", "GET", "/api/tasks?limit=ten", "", 422, "limit"},
		{"unknown status filter", "GET", "/api/tasks?status=done", "", 422, "unknown status"},
		{"bad cursor", "GET", "/api/projects?cursor=%25%25garbage", "", 400, "cursor"},
		{"negative after", "GET", "/api/logs/x?after=-1", "", 422, "after"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			r := e.do(c.method, c.path, body, "Content-Type", "application/json")
			if r.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", r.StatusCode, c.status, r.body)
			}
			p := r.problem(t)
			all := strings.ToLower(string(r.body))
			if !strings.Contains(all, strings.ToLower(c.detail)) {
				t.Fatalf("problem does not say %q: %v", c.detail, p)
			}
		})
	}
	if after := e.counts(); after != before {
		t.Fatalf("bad input wrote something: before %s, after %s", before, after)
	}
	// The archived project and the valid one are unchanged.
	var p domain.Project
	e.must(200, "GET", "/api/projects/"+proj.ID, nil).json(t, &p)
	if p.Name != "p" || p.Status != domain.ProjectActive {
		t.Fatalf("project changed by rejected patches: %+v", p)
	}
}

// Unknown request fields are ignored, as the original FastAPI backend did, so
// its clients keep working; they are not stored or echoed.
func TestUnknownFieldsAreIgnored(t *testing.T) {
	e := newEnv(t)
	r := e.must(200, "POST", "/api/projects", `{"name": "x", "description": "y", "owner": "bob", "status": "archived", "id": "mine"}`)
	var p domain.Project
	r.json(t, &p)
	if strings.Contains(string(r.body), "bob") || p.ID == "mine" || p.Status != domain.ProjectActive {
		t.Fatalf("unknown or server-owned fields were taken from the request: %s", r.body)
	}
	proj := e.createProject("p")
	e.must(200, "POST", "/api/tasks", `{"project_id": "`+proj.ID+`", "prompt": "x", "priority": 9, "status": "completed"}`).json(t, &struct{}{})
	var task domain.Task
	e.must(200, "POST", "/api/tasks", `{"project_id": "`+proj.ID+`", "prompt": "x", "cost": 5}`).json(t, &task)
	if task.Status != domain.TaskPending || task.Cost != 0 {
		t.Fatalf("client-set status/cost accepted: %+v", task)
	}
}

func TestUnknownIDsAre404(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/projects/nope", ""},
		{"PATCH", "/api/projects/nope", `{"name": "x"}`},
		{"DELETE", "/api/projects/nope", ""},
		{"GET", "/api/tasks/nope", ""},
		{"POST", "/api/tasks/nope/cancel", ""},
		{"POST", "/api/tasks/nope/retry", ""},
		{"GET", "/api/tasks/nope/artifacts", ""},
		{"GET", "/api/tasks/nope/files", ""},
		{"GET", "/api/tasks/nope/files/a.txt", ""},
		{"GET", "/api/tasks/nope/archive.zip", ""},
		{"GET", "/api/tasks/nope/events", ""},
		{"GET", "/api/logs/nope", ""},
		{"GET", "/api/deployments/nope", ""},
		{"GET", "/api/explorer/scans/nope", ""},
		{"GET", "/apps/nope/", ""},
		{"GET", "/api/no-such-endpoint", ""},
		{"GET", "/api/projects/a/b/c", ""},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		r := e.do(c.method, c.path, body)
		if r.StatusCode != 404 {
			t.Errorf("%s %s: %d, want 404: %s", c.method, c.path, r.StatusCode, r.body)
			continue
		}
		r.problem(t)
	}
	// Wrong method on a known path: 405 problem with Allow.
	r := e.do("PUT", "/api/projects", nil)
	if r.StatusCode != 405 || r.Header.Get("Allow") == "" {
		t.Fatalf("PUT /api/projects: %d %v", r.StatusCode, r.Header)
	}
	r.problem(t)
}

func TestProjectPatchAndArchive(t *testing.T) {
	e := newEnv(t)
	p := e.createProject("first")
	var got domain.Project
	e.must(200, "PATCH", "/api/projects/"+p.ID, `{"name": "renamed", "github_repo": "acme/app"}`).json(t, &got)
	if got.Name != "renamed" || got.Description != "d" || got.GitHubRepo != "acme/app" || got.Status != domain.ProjectActive {
		t.Fatalf("patched = %+v", got)
	}
	e.must(200, "DELETE", "/api/projects/"+p.ID, nil).json(t, &got)
	if got.Status != domain.ProjectArchived || got.Name != "renamed" {
		t.Fatalf("archived = %+v", got)
	}
	e.must(200, "GET", "/api/projects/"+p.ID, nil).json(t, &got)
	if got.Status != domain.ProjectArchived {
		t.Fatalf("archive not stored: %+v", got)
	}
	e.must(409, "POST", "/api/tasks", map[string]any{"project_id": p.ID, "prompt": "x"}).problem(t)
	e.must(200, "PATCH", "/api/projects/"+p.ID, `{"status": "active"}`).json(t, &got)
	e.createTask(p.ID, "now it takes tasks")
}

// listAll follows Link rel="next" from path and returns every page.
func listAll[T any](e *env, path string) (pages [][]T) {
	e.t.Helper()
	next := path
	for next != "" {
		var page []T
		r := e.must(200, "GET", next, nil)
		r.json(e.t, &page)
		pages = append(pages, page)
		next = ""
		if link := r.Header.Get("Link"); link != "" {
			m := regexp.MustCompile(`^<([^>]+)>; rel="next"$`).FindStringSubmatch(link)
			if m == nil {
				e.t.Fatalf("malformed Link header %q", link)
			}
			if !strings.HasPrefix(m[1], e.srv.URL+"/") {
				e.t.Fatalf("Link %q is not an absolute URL of this server", m[1])
			}
			next = m[1]
		}
		if len(pages) > 100 {
			e.t.Fatal("pagination does not end")
		}
	}
	return pages
}

func TestPaginationWithLinkHeader(t *testing.T) {
	e := newEnv(t)
	var want []string
	for i := range 7 {
		want = append([]string{e.createProject("p" + string(rune('a'+i))).ID}, want...) // newest first
	}
	pages := listAll[domain.Project](e, "/api/projects?limit=3")
	if len(pages) != 3 || len(pages[0]) != 3 || len(pages[2]) != 1 {
		t.Fatalf("page sizes: %d pages %v", len(pages), pages)
	}
	var got []string
	for _, pg := range pages {
		for _, p := range pg {
			got = append(got, p.ID)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged ids\n got %v\nwant %v", got, want)
	}

	// Filters survive into the next link; tasks of another project never show.
	a, b := e.createProject("a"), e.createProject("b")
	var wantTasks []string
	for range 5 {
		wantTasks = append([]string{e.createTask(a.ID, "x").ID}, wantTasks...)
		e.createTask(b.ID, "y")
	}
	var gotTasks []string
	for _, pg := range listAll[domain.Task](e, "/api/tasks?project_id="+a.ID+"&limit=2&status=pending") {
		for _, task := range pg {
			if task.ProjectID != a.ID {
				t.Fatalf("task of project %s in filtered list", task.ProjectID)
			}
			gotTasks = append(gotTasks, task.ID)
		}
	}
	if !slices.Equal(gotTasks, wantTasks) {
		t.Fatalf("paged tasks\n got %v\nwant %v", gotTasks, wantTasks)
	}
	e.setStatus(wantTasks[0], domain.TaskFailed)
	var failed []domain.Task
	e.must(200, "GET", "/api/tasks?status=failed,cancelled", nil).json(t, &failed)
	if len(failed) != 1 || failed[0].ID != wantTasks[0] {
		t.Fatalf("status filter: %+v", failed)
	}
	// Scans paginate the same way.
	for range 3 {
		e.must(200, "POST", "/api/explorer/scan", `{"system_name": "s"}`)
	}
	if pages := listAll[domain.ExplorerScan](e, "/api/explorer/scans?limit=2"); len(pages) != 2 {
		t.Fatalf("scan pages = %d", len(pages))
	}
	// An empty list is [], not null.
	r := e.must(200, "GET", "/api/tasks?project_id=none", nil)
	if strings.TrimSpace(string(r.body)) != "[]" {
		t.Fatalf("empty list body %q", r.body)
	}
}

func TestCancelAndRetryTransitions(t *testing.T) {
	for _, runner := range []string{"executor", "no runner"} {
		t.Run(runner, func(t *testing.T) {
			var e *env
			if runner == "executor" {
				e = newEnv(t)
			} else {
				e = newEnv(t, withoutRunner())
			}
			p := e.createProject("p")
			task := e.createTask(p.ID, "x")
			e.must(409, "POST", "/api/tasks/"+task.ID+"/retry", nil).problem(t) // pending: cannot retry
			var got domain.Task
			e.must(200, "POST", "/api/tasks/"+task.ID+"/cancel", nil).json(t, &got)
			if got.Status != domain.TaskCancelled {
				t.Fatalf("cancelled = %+v", got)
			}
			r := e.must(409, "POST", "/api/tasks/"+task.ID+"/cancel", nil)
			if !strings.Contains(r.problem(t)["detail"].(string), "cancelled") {
				t.Fatalf("409 does not say why: %s", r.body)
			}
			e.must(200, "POST", "/api/tasks/"+task.ID+"/retry", nil).json(t, &got)
			if got.Status != domain.TaskPending {
				t.Fatalf("retried = %+v", got)
			}
			e.setStatus(task.ID, domain.TaskCompleted)
			e.must(409, "POST", "/api/tasks/"+task.ID+"/cancel", nil).problem(t)
			e.must(409, "POST", "/api/tasks/"+task.ID+"/retry", nil).problem(t)
			e.setStatus(task.ID, domain.TaskFailed)
			e.must(200, "POST", "/api/tasks/"+task.ID+"/retry", nil)
		})
	}
}

func TestEnqueueFailureIsReportedHonestly(t *testing.T) {
	e := newEnv(t)
	e.runner.fail = errors.New("executor stopped")
	p := e.createProject("p")
	r := e.must(503, "POST", "/api/tasks", map[string]any{"project_id": p.ID, "prompt": "x"})
	if !strings.Contains(r.problem(t)["detail"].(string), "executor stopped") {
		t.Fatalf("detail: %s", r.body)
	}
	ts, _, err := e.store.ListTasks(context.Background(), store.TaskFilter{Scope: store.All()}, store.Page{})
	if err != nil || len(ts) != 1 || ts[0].Status != domain.TaskFailed {
		t.Fatalf("unqueued task must be stored as failed: %+v %v", ts, err)
	}
}

func TestLogsDeploymentAndArtifacts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	task := e.createTask(e.createProject("p").ID, "x")
	for i := range 5 {
		if _, err := e.store.AppendLog(ctx, domain.AgentLog{TaskID: task.ID, Type: domain.EventLog, AgentName: "Planner", Message: "line " + string(rune('0'+i))}); err != nil {
			t.Fatal(err)
		}
	}
	var all []domain.AgentLog
	e.must(200, "GET", "/api/logs/"+task.ID, nil).json(t, &all)
	if len(all) != 5 || all[0].Seq != 1 || all[4].Message != "line 4" || all[0].AgentName != "Planner" || all[0].ID == "" {
		t.Fatalf("logs = %+v", all)
	}
	var seqs []int64
	for _, pg := range listAll[domain.AgentLog](e, "/api/logs/"+task.ID+"?after=1&limit=2") {
		for _, l := range pg {
			seqs = append(seqs, l.Seq)
		}
	}
	if !slices.Equal(seqs, []int64{2, 3, 4, 5}) {
		t.Fatalf("paged log seqs = %v", seqs)
	}

	e.must(404, "GET", "/api/deployments/"+task.ID, nil).problem(t)
	dep := domain.Deployment{ID: "d1", TaskID: task.ID, URL: "http://localhost:8001/apps/" + task.ID + "/", CommitSHA: strings.Repeat("a", 40), Cost: 0.25, Report: "deployed", Mock: true}
	if err := e.store.PutDeployment(ctx, dep); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	e.must(200, "GET", "/api/deployments/"+task.ID, nil).json(t, &got)
	for _, k := range []string{"id", "task_id", "url", "commit_sha", "cost", "report", "created_at"} {
		if _, ok := got[k]; !ok {
			t.Errorf("deployment lacks %q: %v", k, got)
		}
	}

	var arts []domain.Artifact
	e.must(200, "GET", "/api/tasks/"+task.ID+"/artifacts", nil).json(t, &arts)
	if len(arts) != 0 {
		t.Fatalf("artifacts = %v", arts)
	}
	if err := e.store.PutArtifact(ctx, domain.Artifact{TaskID: task.ID, Node: "tester", Iteration: 1, Output: []byte(`{"passed":3,"failed":0}`), Cost: 0.01}); err != nil {
		t.Fatal(err)
	}
	e.must(200, "GET", "/api/tasks/"+task.ID+"/artifacts", nil).json(t, &arts)
	if len(arts) != 1 || arts[0].Node != "tester" || string(arts[0].Output) != `{"passed":3,"failed":0}` {
		t.Fatalf("artifacts = %+v", arts)
	}
}

func TestCORS(t *testing.T) {
	t.Run("wildcard", func(t *testing.T) {
		e := newEnv(t)
		r := e.must(204, "OPTIONS", "/api/projects", nil,
			"Origin", "http://localhost:3000", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
		if r.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(strings.ToLower(r.Header.Get("Access-Control-Allow-Headers")), "content-type") {
			t.Fatalf("preflight headers %v", r.Header)
		}
		r = e.must(200, "GET", "/api/projects", nil, "Origin", "http://anything.example")
		if r.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "Link") {
			t.Fatalf("simple request headers %v", r.Header)
		}
	})
	t.Run("exact list", func(t *testing.T) {
		e := newEnv(t, withConfig(func(c *Settings) {
			c.CORSOrigins = []string{"https://catalyst.example.com", "http://localhost:3000"}
		}))
		r := e.must(204, "OPTIONS", "/api/tasks", nil, "Origin", "http://localhost:3000", "Access-Control-Request-Method", "POST")
		if r.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" || !strings.Contains(r.Header.Get("Vary"), "Origin") {
			t.Fatalf("allowed preflight %v", r.Header)
		}
		r = e.must(403, "OPTIONS", "/api/tasks", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
		r.problem(t)
		if r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("refused origin got CORS headers: %v", r.Header)
		}
		// A refused origin's request is not executed at all, token or not
		// (hiding the response from the page is not enough).
		r = e.must(403, "GET", "/api/projects", nil, "Origin", "https://evil.example")
		if r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("refused origin got ACAO on a simple request: %v", r.Header)
		}
		// A subdomain or a different port is another origin.
		e.must(403, "OPTIONS", "/api/tasks", nil, "Origin", "http://localhost:3001", "Access-Control-Request-Method", "GET")
	})
}

// panicStore panics on one call, as a bug would.
type panicStore struct{ store.Store }

func (panicStore) GetProjectIn(context.Context, store.Scope, string) (domain.Project, error) {
	panic("boom")
}

func TestPanicBecomes500Problem(t *testing.T) {
	e := newEnv(t, withStore(func(s store.Store) store.Store { return panicStore{s} }))
	r := e.must(500, "GET", "/api/projects/x", nil)
	if d := r.problem(t)["detail"].(string); strings.Contains(d, "boom") {
		t.Fatalf("panic value leaked to the client: %s", d)
	}
	e.must(200, "GET", "/api/projects", nil) // the server lives on
}

func TestServerErrorsDoNotLeakInternals(t *testing.T) {
	e := newEnv(t)
	e.store.Close()
	r := e.must(500, "GET", "/api/projects", nil)
	if d := r.problem(t)["detail"].(string); strings.Contains(strings.ToLower(d), "sql") {
		t.Fatalf("internal error leaked: %s", d)
	}
	_ = http.StatusOK
}
