package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
	"github.com/catalyst/catalyst/internal/graph"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/tasks"
)

// tenant is a signed-in user of a test server: their id and the bearer
// token of their session, got through the real sign-up and sign-in.
type tenant struct {
	id, email, token string
}

func (u tenant) auth() []string { return []string{"Authorization", "Bearer " + u.token} }

// signUp signs a user up and in (the first becomes admin).
func (e *env) signUp(email string) tenant {
	e.t.Helper()
	var u struct{ ID string }
	e.must(200, "POST", "/api/auth/register", map[string]any{"email": email, "password": "correct horse battery"}, "Authorization", "").json(e.t, &u)
	var login struct {
		AccessToken string `json:"access_token"`
	}
	e.must(200, "POST", "/api/auth/login", map[string]any{"email": email, "password": "correct horse battery"}, "Authorization", "").json(e.t, &login)
	return tenant{id: u.ID, email: email, token: login.AccessToken}
}

// as sends a request as u.
func (e *env) as(u tenant, status int, method, path string, body any) response {
	e.t.Helper()
	return e.must(status, method, path, body, u.auth()...)
}

// aliceWorld is one tenant's data on every path: a project with a task
// that has logs, an artifact, files, a deployment (with a preview) and a
// scan.
type aliceWorld struct {
	root, alice, bob tenant
	project          domain.Project
	task             domain.Task
	scan             domain.ExplorerScan
}

func newAliceWorld(e *env) aliceWorld {
	e.t.Helper()
	ctx := context.Background()
	w := aliceWorld{root: e.signUp("root@example.com"), alice: e.signUp("alice@example.com"), bob: e.signUp("bob@example.com")}
	e.as(w.alice, 200, "POST", "/api/projects", map[string]any{"name": "Alice's secret project"}).json(e.t, &w.project)
	if w.project.OwnerID != w.alice.id || w.project.MyRole != domain.RoleOwner {
		e.t.Fatalf("alice's project: owner %q role %q", w.project.OwnerID, w.project.MyRole)
	}
	e.as(w.alice, 200, "POST", "/api/tasks", map[string]any{"project_id": w.project.ID, "prompt": "Build alice's todo app"}).json(e.t, &w.task)
	if w.task.CreatedBy != w.alice.id {
		e.t.Fatalf("created_by = %q", w.task.CreatedBy)
	}
	if _, err := e.store.AppendLog(ctx, domain.AgentLog{TaskID: w.task.ID, Type: domain.EventLog, AgentName: "Planner", Message: "alice's plan"}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.PutArtifact(ctx, domain.Artifact{TaskID: w.task.ID, Node: "planner", Iteration: 1, Output: []byte(`{"plan":"alice's"}`)}); err != nil {
		e.t.Fatal(err)
	}
	e.writeWorkspace(w.task.ID, map[string]string{"index.html": "<h1>alice's app</h1>"})
	if err := e.store.PutDeployment(ctx, domain.Deployment{ID: uuid.NewString(), TaskID: w.task.ID, URL: e.preview.URL + "/apps/" + w.task.ID + "/",
		CommitSHA: strings.Repeat("a", 40), Report: "alice's deployment"}); err != nil {
		e.t.Fatal(err)
	}
	e.as(w.alice, 200, "POST", "/api/explorer/scan", map[string]any{"system_name": "Alice's system"}).json(e.t, &w.scan)
	return w
}

// tenantPaths are every path that reaches one of alice's resources.
func tenantPaths(w aliceWorld) []struct{ method, path string } {
	p, t := w.project.ID, w.task.ID
	return []struct{ method, path string }{
		{"GET", "/api/projects/" + p},
		{"PATCH", "/api/projects/" + p},
		{"DELETE", "/api/projects/" + p},
		{"GET", "/api/projects/" + p + "/members"},
		{"POST", "/api/projects/" + p + "/members"},
		{"DELETE", "/api/projects/" + p + "/members/" + w.bob.id},
		{"GET", "/api/tasks/" + t},
		{"POST", "/api/tasks/" + t + "/cancel"},
		{"POST", "/api/tasks/" + t + "/retry"},
		{"GET", "/api/tasks/" + t + "/artifacts"},
		{"GET", "/api/logs/" + t},
		{"GET", "/api/deployments/" + t},
		{"GET", "/api/tasks/" + t + "/files"},
		{"GET", "/api/tasks/" + t + "/files/index.html"},
		{"GET", "/api/tasks/" + t + "/archive.zip"},
		{"GET", "/api/tasks/" + t + "/events"},
		{"GET", "/api/explorer/scans/" + w.scan.ID},
		{"GET", "/apps/" + t + "/"}, // on the API's origin: the redirect that mints a preview grant
	}
}

func bodyFor(method, path string, w aliceWorld) any {
	switch {
	case method == "PATCH":
		return map[string]any{"name": "bob's now"}
	case strings.HasSuffix(path, "/members") && method == "POST":
		return map[string]any{"email": "nobody@example.com", "role": "editor"}
	}
	return nil
}

// TestTenantIsolationEveryPath: user B gets, for each of user A's
// resources on every path, exactly what an unknown id gets (404, same
// body), and sees none of them in lists; the WebSocket, SSE, previews and
// metrics too.
func TestTenantIsolationEveryPath(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Settings) { c.EnableMetrics = true }))
	w := newAliceWorld(e)
	unknownTask, unknownProject, unknownScan := uuid.NewString(), uuid.NewString(), uuid.NewString()
	anon := func(s string) string {
		for _, id := range []string{w.project.ID, w.task.ID, w.scan.ID, unknownTask, unknownProject, unknownScan} {
			s = strings.ReplaceAll(s, id, "ID")
		}
		return s
	}
	for _, c := range tenantPaths(w) {
		// The owner reaches it (control: the 404s below are refusals; the
		// event stream of a pending task does not end, so it is left out).
		if strings.HasSuffix(c.path, "/events") {
		} else if r := e.do(c.method, e.srv.URL+c.path, bodyFor(c.method, c.path, w), w.alice.auth()...); r.StatusCode >= 400 && !(c.method == "POST" && strings.HasSuffix(c.path, "/members")) &&
			!strings.HasSuffix(c.path, "/retry") && !strings.HasSuffix(c.path, "/members/"+w.bob.id) {
			t.Errorf("alice %s %s: %d %s", c.method, c.path, r.StatusCode, r.body)
		}
		unknown := strings.NewReplacer(w.project.ID, unknownProject, w.task.ID, unknownTask, w.scan.ID, unknownScan).Replace(c.path)
		rb := e.do(c.method, e.srv.URL+c.path, bodyFor(c.method, c.path, w), w.bob.auth()...)
		ru := e.do(c.method, e.srv.URL+unknown, bodyFor(c.method, c.path, w), w.bob.auth()...)
		if rb.StatusCode != 404 {
			t.Errorf("bob %s %s: %d, want 404: %s", c.method, c.path, rb.StatusCode, rb.body)
		}
		if anon(string(rb.body)) != anon(string(ru.body)) || rb.StatusCode != ru.StatusCode {
			t.Errorf("bob %s %s tells alice's resource from an unknown one:\n%d %s\n%d %s", c.method, c.path, rb.StatusCode, rb.body, ru.StatusCode, ru.body)
		}
		for _, leak := range []string{"alice", "Alice"} {
			if strings.Contains(string(rb.body), leak) {
				t.Errorf("bob %s %s: body leaks %q: %s", c.method, c.path, leak, rb.body)
			}
		}
	}
	// Submitting into alice's project is refused as for an unknown project.
	rb := e.do("POST", "/api/tasks", map[string]any{"project_id": w.project.ID, "prompt": "x"}, w.bob.auth()...)
	ru := e.do("POST", "/api/tasks", map[string]any{"project_id": unknownProject, "prompt": "x"}, w.bob.auth()...)
	if rb.StatusCode != 404 || anon(string(rb.body)) != anon(string(ru.body)) {
		t.Errorf("bob submits into alice's project: %d %s (unknown: %s)", rb.StatusCode, rb.body, ru.body)
	}
	if _, err := e.store.GetTaskIn(context.Background(), store.User(w.alice.id), w.task.ID); err != nil {
		t.Fatal(err)
	}
	// Lists hold none of alice's resources.
	for _, p := range []string{"/api/projects", "/api/tasks", "/api/tasks?project_id=" + w.project.ID, "/api/explorer/scans"} {
		r := e.as(w.bob, 200, "GET", p, nil)
		if strings.TrimSpace(string(r.body)) != "[]" {
			t.Errorf("bob GET %s = %s, want []", p, r.body)
		}
		if r := e.as(w.alice, 200, "GET", p, nil); !strings.Contains(string(r.body), w.project.ID) && !strings.Contains(string(r.body), w.scan.ID) {
			t.Errorf("alice GET %s lacks her own: %s", p, r.body)
		}
	}
	// Bob's own default project is his, not a shared one.
	var bobs domain.Task
	e.as(w.bob, 200, "POST", "/api/tasks", map[string]any{"prompt": "bob's task"}).json(t, &bobs)
	var alices domain.Task
	e.as(w.alice, 200, "POST", "/api/tasks", map[string]any{"prompt": "alice's task"}).json(t, &alices)
	if bobs.ProjectID == alices.ProjectID {
		t.Errorf("bob and alice share the default project %s", bobs.ProjectID)
	}
	e.as(w.bob, 404, "GET", "/api/tasks/"+alices.ID, nil)

	// WebSocket: refused before the upgrade, as for an unknown task.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/ws/" + w.task.ID
	_, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + w.bob.token}}})
	if err == nil || resp == nil || resp.StatusCode != 404 {
		t.Errorf("bob's WebSocket on alice's task: err %v, resp %v", err, resp)
	}
	c, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + w.alice.token}}})
	if err != nil {
		t.Fatalf("alice's WebSocket: %v", err)
	}
	_, msg, err := c.Read(ctx)
	if err != nil || !strings.Contains(string(msg), "alice's plan") {
		t.Errorf("alice's WebSocket: %s %v", msg, err)
	}
	c.CloseNow()

	// Previews: bob cannot get a grant; one minted for him (had he stolen
	// the key) still fails the store's check; alice's opens the app.
	e.as(w.bob, 404, "GET", e.srv.URL+"/apps/"+w.task.ID+"/", nil)
	if r := e.do("GET", e.preview.URL+e.withGrant("/apps/"+w.task.ID+"/", tasks.Actor{Kind: tasks.ActorUser, ID: w.bob.id}), nil, "Authorization", ""); r.StatusCode != 404 || strings.Contains(string(r.body), "alice") {
		t.Errorf("preview with a grant for bob: %d %s", r.StatusCode, r.body)
	}
	var dep domain.Deployment
	e.as(w.alice, 200, "GET", "/api/deployments/"+w.task.ID, nil).json(t, &dep)
	if !strings.HasPrefix(dep.URL, e.preview.URL+"/apps/"+w.task.ID+"/g1.") {
		t.Fatalf("alice's deployment url %q carries no grant", dep.URL)
	}
	if r := e.do("GET", dep.URL, nil, "Authorization", ""); r.StatusCode != 200 || string(r.body) != "<h1>alice's app</h1>" {
		t.Errorf("alice's preview link: %d %s", r.StatusCode, r.body)
	}

	// Metrics are the installation's: not for users; the admin's carry no
	// tenant's ids or names.
	e.as(w.bob, 403, "GET", "/metrics", nil)
	m := e.as(w.root, 200, "GET", "/metrics", nil)
	for _, leak := range []string{w.task.ID, w.project.ID, w.alice.id, "alice", "/api/tasks/" + w.task.ID} {
		if strings.Contains(string(m.body), leak) {
			t.Errorf("metrics carry %q", leak)
		}
	}
}

// TestTenantRoles: a viewer reads and changes nothing (403 on the project
// they see), an editor submits and edits but neither archives nor shares,
// a removed member is back to 404 — previews included — and the admin
// sees everything, each read of alice's data audited.
func TestTenantRoles(t *testing.T) {
	e := newEnv(t)
	w := newAliceWorld(e)
	p, task := w.project.ID, w.task.ID
	e.as(w.bob, 404, "POST", "/api/projects/"+p+"/members", map[string]any{"email": w.bob.email, "role": "viewer"})
	var m memberBody
	e.as(w.alice, 200, "POST", "/api/projects/"+p+"/members", map[string]any{"email": "BOB@example.com", "role": "viewer"}).json(t, &m)
	if m.UserID != w.bob.id || m.Email != w.bob.email || m.Role != domain.RoleViewer {
		t.Fatalf("member %+v", m)
	}
	e.as(w.alice, 404, "POST", "/api/projects/"+p+"/members", map[string]any{"email": "nobody@example.com", "role": "viewer"})
	e.as(w.alice, 422, "POST", "/api/projects/"+p+"/members", map[string]any{"email": w.bob.email, "role": "owner"})
	e.as(w.alice, 409, "POST", "/api/projects/"+p+"/members", map[string]any{"user_id": w.alice.id, "role": "editor"})

	// Viewer: every read works, every change is 403.
	var seen domain.Project
	e.as(w.bob, 200, "GET", "/api/projects/"+p, nil).json(t, &seen)
	if seen.MyRole != domain.RoleViewer || seen.OwnerID != w.alice.id {
		t.Errorf("viewer's project: %+v", seen)
	}
	for _, path := range []string{"/api/tasks/" + task, "/api/tasks/" + task + "/artifacts", "/api/logs/" + task, "/api/deployments/" + task,
		"/api/tasks/" + task + "/files", "/api/tasks/" + task + "/files/index.html", "/api/tasks/" + task + "/archive.zip", "/api/projects/" + p + "/members"} {
		e.as(w.bob, 200, "GET", path, nil)
	}
	if r := e.as(w.bob, 200, "GET", "/api/tasks", nil); !strings.Contains(string(r.body), task) {
		t.Errorf("viewer's task list lacks the shared task")
	}
	for _, c := range []struct{ method, path string }{
		{"POST", "/api/tasks/" + task + "/cancel"}, {"POST", "/api/tasks/" + task + "/retry"},
		{"PATCH", "/api/projects/" + p}, {"DELETE", "/api/projects/" + p},
		{"POST", "/api/projects/" + p + "/members"},
	} {
		r := e.as(w.bob, 403, c.method, c.path, bodyFor(c.method, c.path, w))
		if d, _ := r.problem(t)["detail"].(string); !strings.Contains(d, "viewer") {
			t.Errorf("%s %s: 403 without saying why: %s", c.method, c.path, d)
		}
	}
	e.as(w.bob, 403, "POST", "/api/tasks", map[string]any{"project_id": p, "prompt": "x"})
	e.as(w.bob, 403, "POST", "/api/explorer/scan", map[string]any{"system_name": "s", "project_id": p})

	// The viewer's preview link works until they are removed.
	var dep domain.Deployment
	e.as(w.bob, 200, "GET", "/api/deployments/"+task, nil).json(t, &dep)
	if r := e.do("GET", dep.URL, nil, "Authorization", ""); r.StatusCode != 200 {
		t.Fatalf("viewer's preview: %d %s", r.StatusCode, r.body)
	}

	// Editor: submits, cancels, edits; no archive, no sharing.
	e.as(w.alice, 200, "POST", "/api/projects/"+p+"/members", map[string]any{"user_id": w.bob.id, "role": "editor"})
	var bt domain.Task
	e.as(w.bob, 200, "POST", "/api/tasks", map[string]any{"project_id": p, "prompt": "bob's change"}).json(t, &bt)
	e.as(w.bob, 200, "POST", "/api/tasks/"+bt.ID+"/cancel", nil)
	e.as(w.bob, 200, "PATCH", "/api/projects/"+p, map[string]any{"description": "edited by bob"})
	e.as(w.bob, 403, "PATCH", "/api/projects/"+p, map[string]any{"status": "archived"})
	e.as(w.bob, 403, "DELETE", "/api/projects/"+p, nil)
	e.as(w.bob, 403, "POST", "/api/projects/"+p+"/members", map[string]any{"email": w.root.email, "role": "viewer"})

	// Removed: 404 everywhere again, the preview link included.
	e.as(w.alice, 204, "DELETE", "/api/projects/"+p+"/members/"+w.bob.email, nil)
	e.as(w.bob, 404, "GET", "/api/tasks/"+task, nil)
	e.as(w.bob, 404, "GET", "/api/projects/"+p, nil)
	if r := e.do("GET", dep.URL, nil, "Authorization", ""); r.StatusCode != 404 || strings.Contains(string(r.body), "alice") {
		t.Errorf("removed member's preview link: %d %s", r.StatusCode, r.body)
	}
	e.as(w.alice, 404, "DELETE", "/api/projects/"+p+"/members/"+w.bob.id, nil)

	// The admin sees everything; each read of alice's data is audited with
	// who, what and from where.
	ctx := context.Background()
	before := auditCount(t, e, "admin.read")
	for _, path := range []string{"/api/projects/" + p, "/api/tasks/" + task, "/api/logs/" + task, "/api/explorer/scans/" + w.scan.ID} {
		e.as(w.root, 200, "GET", path, nil)
	}
	entries, _, err := e.store.ListAudit(ctx, store.AuditFilter{Action: "admin.read"}, store.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries)-before != 4 {
		t.Fatalf("admin reads audited %d times, want 4: %+v", len(entries)-before, entries)
	}
	got := map[string]bool{}
	for _, en := range entries[:4] {
		if en.ActorID != w.root.id || en.ActorEmail != w.root.email || en.RemoteAddr == "" {
			t.Errorf("audit entry lacks who or where: %+v", en)
		}
		got[en.ResourceType+" "+en.ResourceID] = true
	}
	for _, want := range []string{"project " + p, "task " + task, "scan " + w.scan.ID} {
		if !got[want] {
			t.Errorf("no audit entry for %s: %v", want, got)
		}
	}
	var all []domain.Project
	e.as(w.root, 200, "GET", "/api/projects", nil).json(t, &all)
	if len(all) < 1 || all[len(all)-1].MyRole != domain.RoleAdminAccess {
		t.Errorf("admin's list: %+v", all)
	}
	if n := auditCount(t, e, "admin.list"); n == 0 {
		t.Error("admin's list of alice's projects not audited")
	}
	// Alice's own reads are not admin reads.
	n := auditCount(t, e, "admin.read")
	e.as(w.alice, 200, "GET", "/api/tasks/"+task, nil)
	if auditCount(t, e, "admin.read") != n {
		t.Error("an owner's read was audited as an admin's")
	}
	// The owner archives.
	e.as(w.alice, 200, "DELETE", "/api/projects/"+p, nil)
}

func auditCount(t *testing.T, e *env, action string) int {
	t.Helper()
	entries, _, err := e.store.ListAudit(context.Background(), store.AuditFilter{Action: action}, store.Page{Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// withLimits gives the server's task use cases per-user limits.
func withLimits(l tasks.Limits) envOption {
	return withServer(func(s *server) {
		s.tasks = tasks.New(tasks.Options{Store: s.store, Graphs: graph.Builtin(), Limits: l,
			Recorder: &events.Recorder{Store: s.store, Broker: s.broker}})
	})
}

// TestUserLimits: the queue cap answers 429 and the budget 402, each with
// the figures; other users and the server token are not held.
func TestUserLimits(t *testing.T) {
	e := newEnv(t, withLimits(tasks.Limits{MaxQueuedPerUser: 2, UserBudgetUSD: 0.5}))
	w := aliceWorld{root: e.signUp("root@example.com"), alice: e.signUp("alice@example.com"), bob: e.signUp("bob@example.com")}
	var first domain.Task
	e.as(w.alice, 200, "POST", "/api/tasks", map[string]any{"prompt": "one"}).json(t, &first)
	e.as(w.alice, 200, "POST", "/api/tasks", map[string]any{"prompt": "two"})
	r := e.as(w.alice, 429, "POST", "/api/tasks", map[string]any{"prompt": "three"})
	if d := r.problem(t)["detail"].(string); !strings.Contains(d, "2 tasks pending or running") || !strings.Contains(d, "CATALYST_MAX_QUEUED_TASKS_PER_USER=2") {
		t.Errorf("429 detail: %s", d)
	}
	e.as(w.bob, 200, "POST", "/api/tasks", map[string]any{"prompt": "bob's"})
	e.must(200, "POST", "/api/tasks", map[string]any{"prompt": "the token holder's"})

	// The first task ran and spent the budget.
	e.setStatus(first.ID, domain.TaskFailed)
	if _, err := e.store.UpdateTask(context.Background(), first.ID, func(t *domain.Task) error { t.Cost = 0.75; return nil }); err != nil {
		t.Fatal(err)
	}
	r = e.as(w.alice, 402, "POST", "/api/tasks", map[string]any{"prompt": "four"})
	if d := r.problem(t)["detail"].(string); !strings.Contains(d, "$0.7500") || !strings.Contains(d, "$0.50 budget") {
		t.Errorf("402 detail: %s", d)
	}
	e.as(w.alice, 402, "POST", "/api/tasks/"+first.ID+"/retry", nil)
}

// A handler reached without an authenticated actor acts as nobody: its
// scope sees no tenant's resources, and it is not an admin.
func TestNoActorFailsClosed(t *testing.T) {
	a := actor(context.Background())
	if a.Admin || !tasks.ScopeOf(a).None() {
		t.Fatalf("a request without a credential acts as %+v (scope %+v)", a, tasks.ScopeOf(a))
	}
}
