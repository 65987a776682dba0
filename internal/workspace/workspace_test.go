package workspace

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// newWS opens a workspace in <tmp>/ws; <tmp>/outside is a sibling directory
// that no operation may ever touch.
func newWS(t *testing.T) (*Workspace, string) {
	t.Helper()
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := Open(filepath.Join(base, "ws"))
	if err != nil {
		t.Fatal(err)
	}
	return w, outside
}

// snapshot returns every path under dir (relative) with its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			m[rel] = string(b)
		} else {
			m[rel] = d.Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestWriteReadRoundTrip(t *testing.T) {
	w, _ := newWS(t)
	if err := w.WriteFile("src/app/main.js", []byte("console.log(1)\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile("./README.md", []byte("# hi\n")); err != nil {
		t.Fatal(err)
	}
	got, err := w.ReadFile("src/app/main.js")
	if err != nil || string(got) != "console.log(1)\n" {
		t.Fatalf("ReadFile = %q, %v", got, err)
	}
	fi, err := os.Stat(filepath.Join(w.Root(), "src", "app", "main.js"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode = %v, want 0644", fi.Mode().Perm())
	}
	// Overwrite.
	if err := w.WriteFile("src/app/main.js", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.ReadFile("src/app/main.js"); string(got) != "v2" {
		t.Fatalf("after overwrite: %q", got)
	}
	if _, err := w.ReadFile("missing.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestWriteFileRefusesUnsafePaths(t *testing.T) {
	w, outside := newWS(t)
	gitBefore := snapshot(t, filepath.Join(w.Root(), ".git"))
	parent := filepath.Dir(w.Root())
	parentBefore, _ := os.ReadDir(parent)

	cases := []string{
		"",
		".",
		"./",
		"/etc/passwd",
		"/tmp/escape",
		filepath.Join(outside, "abs.txt"),
		"../x",
		"../outside/x",
		"a/../../x",
		"a/../b",
		"a/b/../../../outside/x",
		"..",
		".git/config",
		".git/hooks/pre-commit",
		".GIT/config",
		".git./config",
		"sub/.git/config",
		"x\x00y",
		"a/\x00/b",
		"line\nbreak",
		"CON",
		"nul",
		"nul.txt",
		"src/aux.js",
		"com1",
		"LPT9.log",
		`..\outside\x`,
		`a\b`,
		"C:/Windows/x",
		strings.Repeat("a/", 600) + "x",
		strings.Repeat("n", 300),
	}
	for _, rel := range cases {
		err := w.WriteFile(rel, []byte("pwned"))
		if !errors.Is(err, ErrUnsafePath) {
			t.Errorf("WriteFile(%q) = %v, want ErrUnsafePath", rel, err)
		}
		if _, err := w.ReadFile(rel); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("ReadFile(%q) = %v, want ErrUnsafePath", rel, err)
		}
		if _, err := openInRoot(t, w.Root(), rel); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("OpenRegular(%q) = %v, want ErrUnsafePath", rel, err)
		}
	}
	if got := snapshot(t, outside); len(got) != 1 { // only "."
		t.Fatalf("something was written outside: %v", got)
	}
	if got := snapshot(t, filepath.Join(w.Root(), ".git")); !reflect.DeepEqual(got, gitBefore) {
		t.Fatal(".git was modified")
	}
	if after, _ := os.ReadDir(parent); len(after) != len(parentBefore) {
		t.Fatalf("parent of root changed: %v -> %v", parentBefore, after)
	}
	if _, err := os.Stat("/tmp/escape"); err == nil {
		b, _ := os.ReadFile("/tmp/escape")
		if string(b) == "pwned" {
			t.Fatal("/tmp/escape written")
		}
	}
	if files, _ := w.List(); len(files) != 0 {
		t.Fatalf("files written inside: %v", files)
	}
}

func TestWriteFileSymlinkOut(t *testing.T) {
	w, outside := newWS(t)
	secret := filepath.Join(outside, "secret.txt")
	if err := os.WriteFile(secret, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A directory symlink pointing out, and a file symlink pointing out.
	if err := os.Symlink(outside, filepath.Join(w.Root(), "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(w.Root(), "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(w.Root(), "deep", "er"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../outside", filepath.Join(w.Root(), "deep", "er", "rel")); err != nil {
		t.Fatal(err)
	}
	// A symlink inside pointing to .git.
	if err := os.Symlink(".git", filepath.Join(w.Root(), "g")); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"out/new.txt", "out/secret.txt", "link.txt", "deep/er/rel/x", "g/config", "out"} {
		if err := w.WriteFile(rel, []byte("pwned")); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("WriteFile(%q) = %v, want ErrUnsafePath", rel, err)
		}
		if _, err := w.ReadFile(rel); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("ReadFile(%q) = %v, want ErrUnsafePath", rel, err)
		}
		if _, err := openInRoot(t, w.Root(), rel); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("OpenRegular(%q) = %v, want ErrUnsafePath", rel, err)
		}
	}
	if err := w.Remove("link.txt"); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("Remove through symlink: %v", err)
	}
	if b, _ := os.ReadFile(secret); string(b) != "original" {
		t.Fatalf("secret changed to %q", b)
	}
	if got := snapshot(t, outside); len(got) != 2 {
		t.Fatalf("outside changed: %v", got)
	}
	// Symlinks are neither listed nor zipped.
	files, err := w.List()
	if err != nil || len(files) != 0 {
		t.Fatalf("List = %v, %v", files, err)
	}
}

func TestWriteFileDoesNotWriteThroughHardLink(t *testing.T) {
	w, outside := newWS(t)
	secret := filepath.Join(outside, "secret.txt")
	if err := os.WriteFile(secret, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(secret, filepath.Join(w.Root(), "h.txt")); err != nil {
		t.Skip("hard links unsupported:", err)
	}
	if err := w.WriteFile("h.txt", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(secret); string(b) != "original" {
		t.Fatalf("write went through the hard link: %q", b)
	}
	if b, _ := w.ReadFile("h.txt"); string(b) != "new" {
		t.Fatalf("h.txt = %q", b)
	}
}

func TestSpecialFilesRefused(t *testing.T) {
	w, _ := newWS(t)
	fifo := filepath.Join(w.Root(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	names := []string{"fifo"}
	if os.Geteuid() == 0 {
		if err := syscall.Mknod(filepath.Join(w.Root(), "null"), syscall.S_IFCHR|0o666, 1<<8|3); err == nil {
			names = append(names, "null")
		}
	}
	if err := os.Mkdir(filepath.Join(w.Root(), "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	names = append(names, "dir")
	for _, rel := range names {
		if err := w.WriteFile(rel, []byte("x")); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("WriteFile(%q) = %v, want ErrUnsafePath", rel, err)
		}
		if _, err := w.ReadFile(rel); !errors.Is(err, ErrUnsafePath) { // must not block on the FIFO
			t.Errorf("ReadFile(%q) = %v, want ErrUnsafePath", rel, err)
		}
	}
	// A file where a directory is expected.
	if err := w.WriteFile("plain", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile("plain/child", []byte("x")); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("WriteFile under a file = %v", err)
	}
	if files, _ := w.List(); len(files) != 1 || files[0].Path != "plain" {
		t.Fatalf("List = %v (special files must not be listed)", files)
	}
}

func TestWriteFileTooLarge(t *testing.T) {
	w, _ := newWS(t)
	if err := w.WriteFile("big.bin", make([]byte, MaxFileSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize: %v, want ErrTooLarge", err)
	}
	if _, err := os.Stat(filepath.Join(w.Root(), "big.bin")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("oversized file exists: %v", err)
	}
	if err := w.WriteFile("max.bin", make([]byte, MaxFileSize)); err != nil {
		t.Fatalf("exactly MaxFileSize refused: %v", err)
	}
}

func TestListZipRemove(t *testing.T) {
	w, _ := newWS(t)
	files := map[string]string{"b.txt": "bb", "a/z.go": "package a\n", "a/b/c.py": "print(1)\n"}
	for p, c := range files {
		if err := w.WriteFile(p, []byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := w.List()
	if err != nil {
		t.Fatal(err)
	}
	want := []File{{"a/b/c.py", 9}, {"a/z.go", 10}, {"b.txt", 2}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	var buf bytes.Buffer
	if err := w.Zip(&buf); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	zipped := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		zipped[f.Name] = string(b)
	}
	if !reflect.DeepEqual(zipped, files) {
		t.Fatalf("zip = %v, want %v (no .git)", zipped, files)
	}
	if err := w.Remove("a/b/c.py"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(w.Root(), "a", "b")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("empty dir left: %v", err)
	}
	if err := w.Remove("a/b/c.py"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("second Remove = %v, want fs.ErrNotExist", err)
	}
	if err := w.Remove("../outside"); !errors.Is(err, ErrUnsafePath) {
		t.Fatalf("Remove(../outside) = %v", err)
	}
}

// openInRoot opens rel the way the files API and the previews do.
func openInRoot(t *testing.T, dir, rel string) ([]byte, error) {
	t.Helper()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, _, err := OpenRegular(r, rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

func gitCLI(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestCommitIdempotent(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git CLI not installed")
	}
	w, _ := newWS(t)
	if h, err := w.Head(); err != nil || h != "" {
		t.Fatalf("Head before commit = %q, %v", h, err)
	}
	if err := w.WriteFile("main.go", []byte("package main\n")); err != nil {
		t.Fatal(err)
	}
	author := Signature{Name: "Catalyst Deployer", Email: "deployer@catalyst.local"}
	sha1, created, err := w.Commit("deploy: first", author)
	if err != nil || !created || len(sha1) != 40 {
		t.Fatalf("Commit = %q, %v, %v", sha1, created, err)
	}
	sha2, created, err := w.Commit("deploy: again", author)
	if err != nil || created || sha2 != sha1 {
		t.Fatalf("second Commit = %q, %v, %v; want %q, false", sha2, created, err, sha1)
	}
	// A new Workspace on the same dir (a resumed process) sees the same.
	w2, err := Open(w.Root())
	if err != nil {
		t.Fatal(err)
	}
	if sha3, created, err := w2.Commit("deploy: resumed", author); err != nil || created || sha3 != sha1 {
		t.Fatalf("Commit after reopen = %q, %v, %v", sha3, created, err)
	}
	if head, _ := w2.Head(); head != sha1 {
		t.Fatalf("Head = %q, want %q", head, sha1)
	}
	// The real git CLI sees it, on branch master, with the author.
	if got := gitCLI(t, w.Root(), "log", "--format=%H %an <%ae> %s"); got != sha1+" Catalyst Deployer <deployer@catalyst.local> deploy: first" {
		t.Fatalf("git log = %q", got)
	}
	if got := gitCLI(t, w.Root(), "symbolic-ref", "HEAD"); got != "refs/heads/master" {
		t.Fatalf("branch = %q", got)
	}
	if got := gitCLI(t, w.Root(), "status", "--porcelain"); got != "" {
		t.Fatalf("git status not clean: %q", got)
	}
	// A deletion is a change.
	if err := w.Remove("main.go"); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile("app.py", []byte("print(1)\n")); err != nil {
		t.Fatal(err)
	}
	sha4, created, err := w.Commit("deploy: fix", author)
	if err != nil || !created || sha4 == sha1 {
		t.Fatalf("Commit after change = %q, %v, %v", sha4, created, err)
	}
	if got := gitCLI(t, w.Root(), "ls-tree", "--name-only", "HEAD"); got != "app.py" {
		t.Fatalf("tree = %q", got)
	}
	if got := gitCLI(t, w.Root(), "rev-list", "--count", "HEAD"); got != "2" {
		t.Fatalf("commits = %s", got)
	}
}

func TestOpenBranchMainAndEmptyCommit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git CLI not installed")
	}
	w, err := Open(filepath.Join(t.TempDir(), "new", "ws"), WithBranch("main"))
	if err != nil {
		t.Fatal(err)
	}
	sha, created, err := w.Commit("empty", Signature{})
	if err != nil || !created || len(sha) != 40 {
		t.Fatalf("first commit of empty workspace = %q %v %v", sha, created, err)
	}
	if got := gitCLI(t, w.Root(), "rev-parse", "refs/heads/main"); got != sha {
		t.Fatalf("main = %q, want %q", got, sha)
	}
}
