package api

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/workspace"
)

// writeWorkspace fills a task's workspace through the workspace package, as
// the coder does, and adds what an attacker would plant.
func (e *env) writeWorkspace(taskID string, files map[string]string) string {
	e.t.Helper()
	dir := filepath.Join(e.wsRoot, taskID)
	ws, err := workspace.Open(dir)
	if err != nil {
		e.t.Fatal(err)
	}
	for name, content := range files {
		if err := ws.WriteFile(name, []byte(content)); err != nil {
			e.t.Fatal(err)
		}
	}
	return dir
}

func TestFilesAPI(t *testing.T) {
	e := newEnv(t)
	task := e.createTask(e.createProject("p").ID, "x")

	var files []workspace.File
	e.must(200, "GET", "/api/tasks/"+task.ID+"/files", nil).json(t, &files)
	if len(files) != 0 {
		t.Fatalf("files before the coder ran: %v", files)
	}
	if _, err := os.Stat(filepath.Join(e.wsRoot, task.ID)); !os.IsNotExist(err) {
		t.Fatalf("a read created the workspace: %v", err)
	}

	dir := e.writeWorkspace(task.ID, map[string]string{
		"main.go":          "package main\n\nfunc main() {}\n",
		"web/index.html":   "<script>alert(document.cookie)</script>",
		"web/logo.png":     "\x89PNG\r\n\x1a\n....",
		"data/blob.bin":    "\x00\x01\x02\xff\xfe",
		"docs/README.md":   "# héllo",
		"web/evil.svg":     `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`,
		"nested/a/b/c.txt": "deep",
	})
	secret := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(secret, []byte("TOP SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "link.txt")); err != nil {
		t.Fatal(err)
	}

	e.must(200, "GET", "/api/tasks/"+task.ID+"/files", nil).json(t, &files)
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
		if f.Path == "main.go" && f.Size != int64(len("package main\n\nfunc main() {}\n")) {
			t.Errorf("size of main.go = %d", f.Size)
		}
	}
	want := []string{"data/blob.bin", "docs/README.md", "main.go", "nested/a/b/c.txt", "web/evil.svg", "web/index.html", "web/logo.png"}
	if !slices.Equal(paths, want) {
		t.Fatalf("tree = %v, want %v (no .git, no symlink)", paths, want)
	}

	for _, c := range []struct{ path, ctype, body string }{
		{"main.go", "text/plain; charset=utf-8", "package main\n\nfunc main() {}\n"},
		{"docs/README.md", "text/plain; charset=utf-8", "# héllo"},
		{"web/index.html", "text/plain; charset=utf-8", "<script>alert(document.cookie)</script>"}, // never text/html on our origin
		{"web/evil.svg", "text/plain; charset=utf-8", ""},
		{"web/logo.png", "image/png", ""},
		{"data/blob.bin", "application/octet-stream", ""},
		{"nested/a/b/c.txt", "text/plain; charset=utf-8", "deep"},
	} {
		r := e.must(200, "GET", "/api/tasks/"+task.ID+"/files/"+c.path, nil)
		if got := r.Header.Get("Content-Type"); got != c.ctype {
			t.Errorf("%s: Content-Type %q, want %q", c.path, got, c.ctype)
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(r.Header.Get("Content-Security-Policy"), "sandbox") {
			t.Errorf("%s: missing nosniff/CSP sandbox: %v", c.path, r.Header)
		}
		if c.body != "" && string(r.body) != c.body {
			t.Errorf("%s: body %q", c.path, r.body)
		}
	}
	e.must(404, "GET", "/api/tasks/"+task.ID+"/files/missing.go", nil).problem(t)
	e.must(400, "GET", "/api/tasks/"+task.ID+"/files/nested", nil).problem(t) // a directory is not a file

	// Traversal attempts: refused with 400 or not found; never the secret.
	for _, p := range []string{
		"link.txt",
		"..%2F..%2F..%2Fetc%2Fpasswd",
		"%2e%2e/%2e%2e/etc/passwd",
		"%2e%2e%2f%2e%2e%2fetc%2fpasswd",
		"nested/..%2F..%2F" + filepath.Base(secret),
		"%2Fetc%2Fpasswd",
		"%2F" + strings.TrimPrefix(secret, "/"),
		".git/config",
		".git%2Fconfig",
		"a%00b",
	} {
		r := e.do("GET", "/api/tasks/"+task.ID+"/files/"+p, nil)
		if r.StatusCode == 301 || r.StatusCode == 307 {
			// The mux cleaned the path; following the redirect must not escape either.
			r = e.do("GET", r.Header.Get("Location"), nil)
		}
		if r.StatusCode != 400 && r.StatusCode != 404 {
			t.Errorf("%s: status %d, want 400/404: %s", p, r.StatusCode, r.body)
		}
		if strings.Contains(string(r.body), "TOP SECRET") || strings.Contains(string(r.body), "root:") || strings.Contains(string(r.body), "[core]") {
			t.Errorf("%s: leaked %q", p, r.body)
		}
	}

	r := e.must(200, "GET", "/api/tasks/"+task.ID+"/archive.zip", nil)
	if r.Header.Get("Content-Type") != "application/zip" ||
		r.Header.Get("Content-Disposition") != `attachment; filename="catalyst-task-`+task.ID+`.zip"` {
		t.Fatalf("zip headers %v", r.Header)
	}
	zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
	if err != nil {
		t.Fatal(err)
	}
	var zipped []string
	for _, f := range zr.File {
		zipped = append(zipped, f.Name)
		if f.Name == "main.go" {
			rc, _ := f.Open()
			b, _ := io.ReadAll(rc)
			rc.Close()
			if !strings.HasPrefix(string(b), "package main") {
				t.Errorf("main.go in zip = %q", b)
			}
		}
	}
	slices.Sort(zipped)
	if !slices.Equal(zipped, want) {
		t.Fatalf("zip entries %v, want %v", zipped, want)
	}
}

func TestPreview(t *testing.T) {
	e := newEnv(t)
	task := e.createTask(e.createProject("p").ID, "x")
	dir := e.writeWorkspace(task.ID, map[string]string{
		"index.html":     "<h1>todo</h1>",
		"app.js":         "console.log(1)",
		"style.css":      "h1{}",
		"sub/index.html": "<p>sub</p>",
		".env":           "API_KEY=sk-secret",
	})
	// Before the deployer ran: nothing is served.
	for _, p := range []string{"/apps/" + task.ID + "/", "/apps/" + task.ID + "/index.html"} {
		r := e.must(404, "GET", p, nil)
		if !strings.Contains(string(r.body), "no deployment") {
			t.Fatalf("%s: %s", p, r.body)
		}
		if r.Header.Get("Content-Security-Policy") != previewCSP {
			t.Fatalf("404 without CSP: %v", r.Header)
		}
	}
	if err := e.store.PutDeployment(context.Background(), domain.Deployment{ID: "d", TaskID: task.ID, URL: "/apps/" + task.ID + "/", CommitSHA: strings.Repeat("b", 40)}); err != nil {
		t.Fatal(err)
	}
	r := e.must(301, "GET", "/apps/"+task.ID, nil)
	if r.Header.Get("Location") != "/apps/"+task.ID+"/" {
		t.Fatalf("redirect to %q", r.Header.Get("Location"))
	}
	for _, c := range []struct{ path, ctype, body string }{
		{"/", "text/html; charset=utf-8", "<h1>todo</h1>"},
		{"/index.html", "text/html; charset=utf-8", "<h1>todo</h1>"},
		{"/app.js", "text/javascript; charset=utf-8", "console.log(1)"},
		{"/style.css", "text/css; charset=utf-8", "h1{}"},
		{"/sub/", "text/html; charset=utf-8", "<p>sub</p>"},
	} {
		r := e.must(200, "GET", "/apps/"+task.ID+c.path, nil)
		h := r.Header
		if h.Get("Content-Security-Policy") != previewCSP || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: security headers %v", c.path, h)
		}
		if strings.Contains(h.Get("Content-Security-Policy"), "allow-same-origin") {
			t.Errorf("%s: preview may act as the user", c.path)
		}
		if h.Get("Content-Type") != c.ctype || string(r.body) != c.body {
			t.Errorf("%s: %q %q", c.path, h.Get("Content-Type"), r.body)
		}
	}
	r = e.must(301, "GET", "/apps/"+task.ID+"/sub", nil)
	if r.Header.Get("Location") != "/apps/"+task.ID+"/sub/" {
		t.Fatalf("dir redirect %q", r.Header.Get("Location"))
	}
	if _, err := os.Stat(filepath.Join(dir, ".git", "HEAD")); err != nil {
		t.Fatalf("workspace has no .git to protect: %v", err)
	}
	for _, p := range []string{"/.git/HEAD", "/.git/config", "/.git/", "/%2egit/HEAD", "/.env", "/missing.html", "/..%2F..%2Fetc%2Fpasswd"} {
		r := e.do("GET", "/apps/"+task.ID+p, nil)
		if r.StatusCode != 404 {
			t.Errorf("%s: %d %s", p, r.StatusCode, r.body)
		}
		if strings.Contains(string(r.body), "ref:") || strings.Contains(string(r.body), "sk-secret") {
			t.Errorf("%s leaked: %s", p, r.body)
		}
	}
}

func TestUIAndDocs(t *testing.T) {
	ui := fstest.MapFS{
		"index.html":                {Data: []byte("<!doctype html><div id=app></div>")},
		"assets/index-BX3k9aZq.js":  {Data: []byte("console.log('app')")},
		"assets/index-D4k2LmNo.css": {Data: []byte("body{}")},
		"favicon.svg":               {Data: []byte("<svg/>")},
	}
	e := newEnv(t, func(o *Options, _ *server) { o.UI = ui })
	for _, p := range []string{"/", "/tasks/123", "/projects"} {
		r := e.must(200, "GET", p, nil)
		if !strings.Contains(string(r.body), "id=app") || r.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("%s: %q %v", p, r.body, r.Header.Get("Cache-Control"))
		}
	}
	r := e.must(200, "GET", "/assets/index-BX3k9aZq.js", nil)
	if r.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" || string(r.body) != "console.log('app')" {
		t.Fatalf("hashed asset: %v %q", r.Header, r.body)
	}
	if cc := e.must(200, "GET", "/favicon.svg", nil).Header.Get("Cache-Control"); cc != "no-cache" {
		t.Fatalf("unhashed asset cached: %q", cc)
	}
	e.must(404, "GET", "/assets/missing-AAAAAAAA.js", nil).problem(t)
	// API paths never fall back to the UI.
	e.must(404, "GET", "/api/nothing", nil).problem(t)

	// Docs are served entirely from embedded assets.
	for _, c := range []struct{ page, must string }{
		{"/docs", "/docs/assets/swagger-ui-bundle.js"},
		{"/redoc", `disable-telemetry="true"`},
	} {
		r := e.must(200, "GET", c.page, nil)
		body := string(r.body)
		if !strings.Contains(body, c.must) || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
			t.Errorf("%s must load only local assets: %s", c.page, body)
		}
	}
	for _, a := range []string{"swagger-ui.css", "swagger-ui-bundle.js", "swagger-init.js", "redoc.standalone.js"} {
		r := e.must(200, "GET", "/docs/assets/"+a, nil)
		if len(r.body) < 100 && a != "swagger-init.js" {
			t.Errorf("%s: %d bytes", a, len(r.body))
		}
	}
	init := string(e.must(200, "GET", "/docs/assets/swagger-init.js", nil).body)
	if !strings.Contains(init, `"/openapi.json"`) {
		t.Fatalf("swagger init does not load our spec: %s", init)
	}
}

func TestNoUIRedirectsToDocs(t *testing.T) {
	e := newEnv(t)
	if r := e.must(302, "GET", "/", nil); r.Header.Get("Location") != "/docs" {
		t.Fatalf("location %q", r.Header.Get("Location"))
	}
}
