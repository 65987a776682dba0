package workspace_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/catalyst/catalyst/internal/workspace"
	"github.com/catalyst/catalyst/internal/workspace/gitservertest"
)

const secret = "tok_repo_SECRET_1234567890"

func TestCloneDiffCommitPatchPush(t *testing.T) {
	srv := gitservertest.New(t, t.TempDir(), secret)
	url := srv.Publish(t, "app", map[string]string{
		"calc.py":      "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n",
		"test_calc.py": "from calc import add\n\ndef test_add():\n    assert add(1, 2) == 3\n",
		// A hostile repository: a link out of the tree, a hook that would
		// leave a mark, a submodule that must not be fetched.
		"escape":      "symlink:/etc/passwd",
		".gitmodules": "[submodule \"x\"]\n\tpath = x\n\turl = file:///etc\n",
	})
	marker := filepath.Join(t.TempDir(), "hook-ran")
	bare := filepath.Join(srv.Root, "app.git")
	os.WriteFile(filepath.Join(bare, "hooks", "post-checkout"), []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755)

	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "ws")
	if _, err := workspace.Clone(ctx, workspace.CloneOptions{URL: url, Dir: dir, Branch: "catalyst/task-1", Token: "wrong"}); err == nil {
		t.Fatal("clone with a wrong token succeeded")
	} else if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("error shows the token: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("failed clone left %s behind", dir)
	}
	res, err := workspace.Clone(ctx, workspace.CloneOptions{URL: url, Dir: dir, Branch: "catalyst/task-1", Token: secret})
	if err != nil {
		t.Fatal(err)
	}
	if res.BaseBranch != "main" || len(res.BaseSHA) != 40 || res.Symlinks != 1 || res.Files != 3 {
		t.Fatalf("clone result %+v", res)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a hook of the repository ran")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, ".git", "config")); strings.Contains(string(b), secret) {
		t.Fatal(".git/config holds the token")
	}
	if got := strings.TrimSpace(gitservertest.Git(t, dir, "rev-parse", "--abbrev-ref", "HEAD")); got != "catalyst/task-1" {
		t.Fatalf("checked out %q", got)
	}
	// The clone travels as a snapshot (the next node may run elsewhere).
	var buf bytes.Buffer
	if err := workspace.Archive(dir, &buf); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dir)
	if err := workspace.Restore(&buf, dir); err != nil {
		t.Fatalf("restoring the clone's snapshot: %v", err)
	}
	ws, err := workspace.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ws.ReadFile("escape"); err == nil {
		t.Fatal("read through the repository's symlink out of the tree")
	}
	if _, err := os.Lstat(filepath.Join(dir, "escape")); !errors.Is(err, fs.ErrNotExist) || !slices.Equal(res.OutwardLinks, []string{"escape"}) {
		t.Fatalf("outward link kept in the working tree (%v, %v)", err, res.OutwardLinks)
	}
	if err := ws.WriteFile("calc.py", []byte("def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n")); err != nil {
		t.Fatal(err)
	}
	ws.WriteFile("NOTES.md", []byte("new file\n"))
	d, err := ws.ChangeDiff(ctx, res.BaseSHA, workspace.DiffOptions{Context: 1, Functions: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-    return a - b", "+    return a + b", "+++ b/NOTES.md", "def add(a, b):"} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
	if strings.Contains(d, "escape") || strings.Contains(d, "mul(") {
		t.Errorf("diff shows untouched code:\n%s", d)
	}
	if st := gitservertest.Git(t, dir, "status", "--porcelain"); !strings.Contains(st, "?? NOTES.md") {
		t.Errorf("ChangeDiff touched the real index: %q", st)
	}
	ws.Remove("NOTES.md")
	sha, created, err := ws.CommitChange(ctx, "Fix add", workspace.Signature{Name: "Catalyst", Email: "catalyst@localhost"})
	if err != nil || !created {
		t.Fatal(created, err)
	}
	again, created, err := ws.CommitChange(ctx, "Fix add", workspace.Signature{Name: "Catalyst", Email: "catalyst@localhost"})
	if err != nil || created || again != sha {
		t.Fatalf("second commit: %s %v %v", again, created, err)
	}
	if n, err := ws.CommitsSince(ctx, res.BaseSHA); err != nil || n != 1 {
		t.Fatalf("commits since base: %d %v", n, err)
	}
	if got := gitservertest.Git(t, dir, "log", "-1", "--format=%an <%ae>"); strings.TrimSpace(got) != "Catalyst <catalyst@localhost>" {
		t.Fatalf("author %q", got)
	}
	files := strings.Fields(gitservertest.Git(t, dir, "show", "--name-only", "--format=", sha))
	if !slices.Equal(files, []string{"calc.py"}) {
		t.Fatalf("commit touches %v", files)
	}
	patch, err := ws.FormatPatch(ctx, sha)
	if err != nil || !strings.HasPrefix(patch, "From "+sha) || !strings.Contains(patch, "Subject: [PATCH] Fix add") {
		t.Fatalf("patch %v:\n%s", err, patch)
	}
	if err := ws.PushBranch(ctx, url, "catalyst/task-1", "wrong"); err == nil || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("push with a wrong token: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := ws.PushBranch(ctx, url, "catalyst/task-1", secret); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.TrimSpace(gitservertest.Git(t, bare, "rev-parse", "refs/heads/catalyst/task-1")); got != sha {
		t.Fatalf("remote branch at %s, want %s", got, sha)
	}
	for _, r := range srv.Requests() {
		if strings.Contains(r, "/x") {
			t.Errorf("submodule fetched: %s", r)
		}
	}
}

func TestCloneCaps(t *testing.T) {
	srv := gitservertest.New(t, t.TempDir(), "")
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB, stored compressed
	url := srv.Publish(t, "big", map[string]string{"a.txt": big, "b.txt": big + "b", "c.txt": big + "c"})
	dir := filepath.Join(t.TempDir(), "ws")
	_, err := workspace.Clone(context.Background(), workspace.CloneOptions{URL: url, Dir: dir, Branch: "catalyst/task-2", MaxBytes: 1 << 20})
	if !errors.Is(err, workspace.ErrCloneTooLarge) {
		t.Fatalf("over-size clone: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("over-size clone left behind")
	}
	for _, bad := range []string{"file:///etc", "ext::sh -c touch% /tmp/pwned", "/etc"} {
		_, err := workspace.Clone(context.Background(), workspace.CloneOptions{URL: bad, Dir: filepath.Join(t.TempDir(), "x"), Branch: "b"})
		if err == nil {
			t.Errorf("clone of %q succeeded", bad)
		}
	}
	if _, err := workspace.Clone(context.Background(), workspace.CloneOptions{URL: url, Dir: filepath.Join(t.TempDir(), "y"), Branch: "--force"}); err == nil {
		t.Error("option-like branch accepted")
	}
}
