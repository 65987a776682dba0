package api

import (
	"strings"
	"testing"
)

func TestProjectRepositoryFields(t *testing.T) {
	e := newEnv(t)
	r := e.must(200, "POST", "/api/projects", map[string]any{"name": "svc", "repo_url": "https://github.com/acme/svc.git", "repo_credential": "CATALYST_REPO_TOKEN_SVC"})
	if strings.Contains(string(r.body), "CATALYST_REPO_TOKEN") || !strings.Contains(string(r.body), `"repo_url":"https://github.com/acme/svc.git"`) {
		t.Fatalf("create answered %s", r.body)
	}
	var p struct{ ID string }
	r.json(t, &p)
	stored, err := e.store.GetProject(t.Context(), p.ID)
	if err != nil || stored.RepoCredential != "CATALYST_REPO_TOKEN_SVC" {
		t.Fatalf("stored %+v %v", stored, err)
	}
	if g := e.must(200, "GET", "/api/projects/"+p.ID, nil); strings.Contains(string(g.body), "CATALYST_REPO_TOKEN") {
		t.Fatalf("get shows the credential reference: %s", g.body)
	}
	for _, bad := range []map[string]any{
		{"repo_url": "file:///etc/passwd"},
		{"repo_url": "/srv/git/repo"},
		{"repo_url": "ext::sh -c id"},
		{"repo_url": "https://me:hunter2@github.com/acme/svc.git"},
		{"repo_credential": "ANTHROPIC_API_KEY"},
		{"repo_credential": "CATALYST_API_TOKEN"},
	} {
		if r := e.do("PATCH", "/api/projects/"+p.ID, bad); r.StatusCode != 422 {
			t.Errorf("%v: %d %s", bad, r.StatusCode, r.body)
		}
	}
	e.must(200, "PATCH", "/api/projects/"+p.ID, map[string]any{"repo_url": "", "repo_credential": ""})
	stored, _ = e.store.GetProject(t.Context(), p.ID)
	if stored.RepoURL != "" || stored.RepoCredential != "" {
		t.Fatalf("unlinking left %+v", stored)
	}
	if r := e.do("POST", "/api/tasks", map[string]any{"project_id": p.ID, "prompt": "fix it", "kind": "change"}); r.StatusCode != 400 || !strings.Contains(string(r.body), "repo_url") {
		t.Fatalf("change task without a repository: %d %s", r.StatusCode, r.body)
	}
}

func TestPatchEndpointRefusals(t *testing.T) {
	e := newEnv(t)
	p := e.createProject("x")
	build := e.createTask(p.ID, "Build a todo app")
	if r := e.do("GET", "/api/tasks/"+build.ID+"/patch", nil); r.StatusCode != 404 || !strings.Contains(string(r.body), "kind change") {
		t.Fatalf("patch of a build task: %d %s", r.StatusCode, r.body)
	}
	e.must(200, "PATCH", "/api/projects/"+p.ID, map[string]any{"repo_url": "https://example.com/r.git"})
	r := e.must(200, "POST", "/api/tasks", map[string]any{"project_id": p.ID, "prompt": "fix it", "kind": "change"})
	var ch struct{ ID string }
	r.json(t, &ch)
	if r := e.do("GET", "/api/tasks/"+ch.ID+"/patch", nil); r.StatusCode != 409 {
		t.Fatalf("patch before the commit: %d %s", r.StatusCode, r.body)
	}
	if r := e.do("GET", "/api/tasks/nope/patch", nil); r.StatusCode != 404 {
		t.Fatalf("unknown task: %d", r.StatusCode)
	}
}
