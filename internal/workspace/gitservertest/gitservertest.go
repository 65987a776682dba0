// Package gitservertest serves real git repositories over loopback HTTP for
// tests: git http-backend (smart HTTP, fetch and push) run through
// net/http/cgi, optionally behind a token, recording what it was asked.
package gitservertest

import (
	"bytes"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Server is a git HTTP server over a directory of bare repositories.
type Server struct {
	*httptest.Server
	// Root holds the bare repositories (name.git).
	Root  string
	token string

	mu sync.Mutex
	// Requests records "METHOD path?query" of every request, and Auth the
	// passwords presented (for tests that check what was sent).
	requests []string
	auth     []string
}

// New serves root's repositories; with token set, every request needs
// HTTP basic auth with that password (as GitHub takes tokens).
func New(t testing.TB, root, token string) *Server {
	t.Helper()
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	s := &Server{Root: root, token: token}
	h := &cgi.Handler{
		Path: backend,
		Dir:  root,
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
			// Pushes are authenticated by our handler, not by a web server.
			"REMOTE_USER=tester",
		},
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pass, _ := r.BasicAuth()
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.RequestURI())
		if pass != "" {
			s.auth = append(s.auth, pass)
		}
		s.mu.Unlock()
		if s.token != "" && pass != s.token {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// URL returns the clone URL of repository name ("app" → .../app.git).
func (s *Server) RepoURL(name string) string { return s.Server.URL + "/" + name + ".git" }

// Requests returns the requests seen so far.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// Passwords returns the basic-auth passwords presented so far.
func (s *Server) Passwords() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auth...)
}

// Git runs git in dir with a clean configuration and fails t on error.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Dev", "GIT_AUTHOR_EMAIL=dev@example.com", "GIT_COMMITTER_NAME=Dev", "GIT_COMMITTER_EMAIL=dev@example.com")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %v: %v: %s", args, err, errb.String())
	}
	return out.String()
}

// Publish makes a bare repository name.git under the server's root from
// files (path → content; a value starting "symlink:" makes a symlink),
// committed on branch main, and returns its clone URL.
func (s *Server) Publish(t testing.TB, name string, files map[string]string) string {
	t.Helper()
	src := t.TempDir()
	Git(t, src, "init", "-q", "-b", "main")
	for p, content := range files {
		full := filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "symlink:"); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	Git(t, src, "add", "-A")
	Git(t, src, "commit", "-q", "-m", "initial")
	bare := filepath.Join(s.Root, name+".git")
	Git(t, s.Root, "clone", "-q", "--bare", src, bare)
	// Smart HTTP pushes need this on the served repository.
	Git(t, bare, "config", "http.receivepack", "true")
	return s.RepoURL(name)
}
