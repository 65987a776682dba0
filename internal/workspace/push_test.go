package workspace

import (
	"context"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPushToLocalBareRepoIsIdempotent(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git CLI not installed")
	}
	w, _ := newWS(t)
	bare := filepath.Join(t.TempDir(), "remote.git")
	gitCLI(t, ".", "init", "--bare", "-q", bare)
	if err := w.Push(context.Background(), bare, "catalyst/task-1", ""); err == nil {
		t.Fatal("push with nothing committed succeeded")
	}
	if err := w.WriteFile("index.html", []byte("<h1>hi</h1>\n")); err != nil {
		t.Fatal(err)
	}
	sha, _, err := w.Commit("deploy", Signature{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second push is a resumed deployer's: a no-op
		if err := w.Push(context.Background(), bare, "catalyst/task-1", ""); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	if got := gitCLI(t, bare, "rev-parse", "refs/heads/catalyst/task-1"); got != sha {
		t.Fatalf("remote branch = %q, want %q", got, sha)
	}
	for _, bad := range []string{"--upload-pack=touch /tmp/x", "a b", "x..y"} {
		if err := w.Push(context.Background(), bare, bad, ""); err == nil {
			t.Fatalf("branch %q accepted", bad)
		}
	}
}

// TestPushOverHTTPWithToken serves the bare repository through git's own
// smart-HTTP CGI behind Basic auth, as GitHub does with a token as password.
func TestPushOverHTTPWithToken(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git CLI not installed")
	}
	if out, err := exec.Command(gitBin, "http-backend").CombinedOutput(); err != nil && !strings.Contains(string(out), "Status") {
		t.Skipf("git http-backend unavailable: %v %s", err, out)
	}
	const token = "ghp_TESTtoken1234567890secret"
	projects := t.TempDir()
	bare := filepath.Join(projects, "repo.git")
	gitCLI(t, ".", "init", "--bare", "-q", bare)
	gitCLI(t, bare, "config", "http.receivepack", "true")

	var mu sync.Mutex
	var seenURLs []string
	backend := &cgi.Handler{
		Path: gitBin,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + projects, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seenURLs = append(seenURLs, r.URL.String())
		mu.Unlock()
		_, pass, ok := r.BasicAuth()
		if !ok || pass != token {
			rw.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(rw, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(rw, r)
	}))
	defer srv.Close()

	w, _ := newWS(t)
	if err := w.WriteFile("app.js", []byte("1\n")); err != nil {
		t.Fatal(err)
	}
	sha, _, err := w.Commit("deploy", Signature{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	remote := srv.URL + "/repo.git"

	// A wrong token fails, and the error does not echo it.
	err = w.Push(ctx, remote, "feature", "wrong-"+token)
	if err == nil {
		t.Fatal("push with a wrong token succeeded")
	}
	if strings.Contains(err.Error(), token) {
		t.Fatalf("token leaked into error: %v", err)
	}
	if err := w.Push(ctx, remote, "feature", token); err != nil {
		t.Fatalf("push: %v", err)
	}
	if got := gitCLI(t, bare, "rev-parse", "refs/heads/feature"); got != sha {
		t.Fatalf("remote feature = %q, want %q", got, sha)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, u := range seenURLs {
		if strings.Contains(u, token) {
			t.Fatalf("token in URL %q", u)
		}
	}
	// Credentials embedded in a URL are redacted from errors.
	err = w.Push(ctx, "http://user:"+token+"@127.0.0.1:1/repo.git", "feature", "")
	if err == nil || strings.Contains(err.Error(), token) {
		t.Fatalf("error = %v", err)
	}
}
