package api

import (
	"archive/zip"
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/workspace"
)

// plantLinks adds to a task's workspace what a hostile test run or clone
// could leave: symlinked files and directories, inside and escaping, next to
// an outside directory holding a secret and an HTML page.
func plantLinks(t *testing.T, dir string) {
	t.Helper()
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"secret.txt": "TOP SECRET", "index.html": "<h1>OUTSIDE</h1>"} {
		if err := os.WriteFile(filepath.Join(outside, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{
		"assets":        outside,                                                      // directory, escaping
		"inner":         "sub",                                                        // directory, inside
		"leak.txt":      filepath.Join(outside, "secret.txt"),                         // file, escaping
		"alias.html":    "index.html",                                                 // file, inside
		"sub/up":        "../../" + filepath.Base(filepath.Dir(outside)) + "/outside", // relative, escaping
		"sub/self.html": "../sub/index.html",                                          // relative, inside
	} {
		if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPreviewRefusesSymlinks guards the preview: a symlinked directory or
// file is never followed, whether it points inside the workspace (which
// os.Root alone would allow) or out of it.
func TestPreviewRefusesSymlinks(t *testing.T) {
	e := newEnv(t)
	task := e.createTask(e.createProject("p").ID, "x")
	dir := e.writeWorkspace(task.ID, map[string]string{"index.html": "<h1>todo</h1>", "sub/index.html": "<p>sub</p>"})
	plantLinks(t, dir)
	if err := e.store.PutDeployment(context.Background(), domain.Deployment{ID: "d", TaskID: task.ID, URL: "/apps/" + task.ID + "/", CommitSHA: strings.Repeat("c", 40)}); err != nil {
		t.Fatal(err)
	}
	base := "/apps/" + task.ID
	// Control: the preview serves real files, so the 404s below are refusals.
	if r := e.must(200, "GET", base+"/sub/index.html", nil); string(r.body) != "<p>sub</p>" {
		t.Fatalf("control: %q", r.body)
	}
	for _, p := range []string{
		"/assets/secret.txt", "/assets/index.html", "/assets/", "/assets",
		"/inner/index.html", "/inner/", "/inner",
		"/leak.txt", "/alias.html",
		"/sub/up/secret.txt", "/sub/up/", "/sub/self.html",
	} {
		r := e.do("GET", base+p, nil)
		if r.StatusCode != 404 {
			t.Errorf("%s: status %d, want 404: %.200s", p, r.StatusCode, r.body)
		}
		for _, leak := range []string{"TOP SECRET", "OUTSIDE", "<h1>todo</h1>", "<p>sub</p>"} {
			if strings.Contains(string(r.body), leak) {
				t.Errorf("%s: served %q through a symlink", p, leak)
			}
		}
	}
}

// TestFilesAPIRefusesSymlinksAndShowsScratchNames: the files API uses the
// same path-safety as the previews, and a scratch-named file on disk is as
// visible as any other (listed, served, zipped).
func TestFilesAPIRefusesSymlinksAndShowsScratchNames(t *testing.T) {
	e := newEnv(t)
	task := e.createTask(e.createProject("p").ID, "x")
	dir := e.writeWorkspace(task.ID, map[string]string{"index.html": "<h1>todo</h1>", "sub/index.html": "<p>sub</p>"})
	plantLinks(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "sub", ".catalyst-tmp-payload.js"), []byte("evil()"), 0o644); err != nil {
		t.Fatal(err)
	}
	var files []workspace.File
	e.must(200, "GET", "/api/tasks/"+task.ID+"/files", nil).json(t, &files)
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	want := []string{"index.html", "sub/.catalyst-tmp-payload.js", "sub/index.html"}
	if !slices.Equal(paths, want) {
		t.Fatalf("files %v, want %v", paths, want)
	}
	if r := e.must(200, "GET", "/api/tasks/"+task.ID+"/files/sub/.catalyst-tmp-payload.js", nil); string(r.body) != "evil()" {
		t.Fatalf("scratch file content %q", r.body)
	}
	r := e.must(200, "GET", "/api/tasks/"+task.ID+"/archive.zip", nil)
	zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
	if err != nil {
		t.Fatal(err)
	}
	var zipped []string
	for _, f := range zr.File {
		zipped = append(zipped, f.Name)
	}
	slices.Sort(zipped)
	if !slices.Equal(zipped, want) {
		t.Fatalf("zip %v, want %v", zipped, want)
	}
	for _, p := range []string{"assets/secret.txt", "inner/index.html", "leak.txt", "alias.html", "sub/up/secret.txt", "sub/self.html"} {
		r := e.must(400, "GET", "/api/tasks/"+task.ID+"/files/"+p, nil)
		if !strings.Contains(string(r.body), "symlink") || strings.Contains(string(r.body), "TOP SECRET") {
			t.Errorf("%s: %s", p, r.body)
		}
	}
	// A bidi override in a requested name is refused and quoted escaped.
	r = e.must(400, "GET", "/api/tasks/"+task.ID+"/files/"+url.PathEscape("evil\u202egnp.js"), nil)
	if strings.ContainsRune(string(r.body), '\u202e') || !strings.Contains(string(r.body), `\\u202e`) {
		t.Errorf("bidi answer: %s", r.body)
	}
	// A huge requested path is not echoed back.
	long := strings.Repeat("a", 200_000)
	r = e.do("GET", "/api/tasks/"+task.ID+"/files/"+long, nil)
	if r.StatusCode != 400 && r.StatusCode != 404 && r.StatusCode != 431 {
		t.Errorf("long path: status %d", r.StatusCode)
	}
	if len(r.body) > 4096 {
		t.Errorf("long path echoed: %d bytes", len(r.body))
	}
}

// TestErrorsDoNotEchoInput: 400 and 422 answers, huma's own included, quote
// at most a short part of the invalid input.
func TestErrorsDoNotEchoInput(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Settings) { c.MaxBodyBytes = 4 << 20 }))
	big := strings.Repeat("A", 300_000)
	p := e.createProject("p")
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/api/projects", `{"name":"` + big + `"}`, 422},
		{"POST", "/api/projects", `{"name":"x","github_repo":"` + big + `"}`, 422},
		{"POST", "/api/projects", `{"name":` + big + `}`, 400},
		{"POST", "/api/projects", `{"name":"x"}` + big, 400},
		{"POST", "/api/projects", `["` + big + `"]`, 422},
		{"POST", "/api/projects", `{"name":"x","description":"` + strings.Repeat("B", 20_000) + `"}`, 422},
		{"POST", "/api/projects", `{"name":"x\u0000` + big[:5000] + `"}`, 422},
		{"PATCH", "/api/projects/" + p.ID, `{"status":"` + big[:5000] + `"}`, 422},
		{"POST", "/api/tasks", `{"prompt":"` + big + `"}`, 422},
		{"GET", "/api/tasks?status=" + big[:5000], "", 422},
		{"GET", "/api/tasks?limit=" + big[:5000], "", 422},
		{"GET", "/api/tasks/" + big[:5000], "", 422},
		{"GET", "/api/nothing/" + big[:5000], "", 404},
		{"GET", "/api/tasks/" + big[:5000] + "/files/x", "", 404},
		{"GET", "/api/tasks/" + big[:5000] + "/archive.zip", "", 404},
		{"GET", "/api/tasks/" + big[:5000] + "/events", "", 404},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		r := e.do(c.method, c.path, body)
		if r.StatusCode != c.status {
			t.Errorf("%s %.60s: status %d, want %d: %.300s", c.method, c.path, r.StatusCode, c.status, r.body)
			continue
		}
		r.problem(t)
		if len(r.body) > 2048 {
			t.Errorf("%s %.60s %.40s: answer is %d bytes: %.400s", c.method, c.path, c.body, len(r.body), r.body)
		}
		if strings.Contains(string(r.body), strings.Repeat("A", 250)) {
			t.Errorf("%s %.60s: more than 200 bytes of the input quoted back", c.method, c.path)
		}
	}
}

// TestNamesRefuseNULControlAndBidi: project names, descriptions and task
// prompts refuse a NUL byte (422) on create and update; names also refuse
// other control characters and bidi overrides; right-to-left text stays
// accepted.
func TestNamesRefuseNULControlAndBidi(t *testing.T) {
	e := newEnv(t)
	p := e.createProject("ok")
	for _, c := range []struct {
		method, path string
		body         map[string]any
		want         string
	}{
		{"POST", "/api/projects", map[string]any{"name": "a\x00b"}, "NUL"},
		{"POST", "/api/projects", map[string]any{"name": "\x00"}, "NUL"},
		{"POST", "/api/projects", map[string]any{"name": "line\nbreak"}, "control character"},
		{"POST", "/api/projects", map[string]any{"name": "invoice\u202egnp.exe"}, "bidirectional"},
		{"POST", "/api/projects", map[string]any{"name": "x\u2066y"}, "bidirectional"},
		{"POST", "/api/projects", map[string]any{"name": "x", "description": "d\x00"}, "NUL"},
		{"PATCH", "/api/projects/" + p.ID, map[string]any{"name": "a\x00b"}, "NUL"},
		{"PATCH", "/api/projects/" + p.ID, map[string]any{"name": "a\u202db"}, "bidirectional"},
		{"PATCH", "/api/projects/" + p.ID, map[string]any{"description": "\x00"}, "NUL"},
		{"POST", "/api/tasks", map[string]any{"project_id": p.ID, "prompt": "Build\x00 a todo app"}, "NUL"},
		{"POST", "/api/tasks", map[string]any{"project_id": p.ID, "prompt": "Build \x1b[2J a todo app"}, "control character"},
	} {
		r := e.do(c.method, c.path, c.body)
		if r.StatusCode != 422 || !strings.Contains(string(r.body), c.want) {
			t.Errorf("%s %s %q: %d %s, want 422 naming %q", c.method, c.path, c.body, r.StatusCode, r.body, c.want)
		}
	}
	var got domain.Project
	e.must(200, "GET", "/api/projects/"+p.ID, nil).json(t, &got)
	if got.Name != "ok" || got.Description != "d" {
		t.Fatalf("a refused update changed the project: %+v", got)
	}
	e.must(200, "POST", "/api/projects", map[string]any{"name": "مشروع جديد", "description": "שלום\n\tעולם\u200f"})
	e.must(200, "POST", "/api/tasks", map[string]any{"project_id": p.ID, "prompt": "Build a todo app\r\n\twith tabs"})
}
