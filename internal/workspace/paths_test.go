package workspace

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// pathFixture is a workspace root with what an attacker would plant: file
// and directory symlinks pointing inside and out, a file where a directory
// is expected, a FIFO, and a secret beside the root.
func pathFixture(t *testing.T) (root *os.Root, dir, outside string) {
	t.Helper()
	base := t.TempDir()
	dir, outside = filepath.Join(base, "ws"), filepath.Join(base, "outside")
	for _, d := range []string{dir, outside, filepath.Join(dir, "sub", "deep")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		filepath.Join(outside, "secret.txt"):        "TOP SECRET",
		filepath.Join(dir, "real.txt"):              "real",
		filepath.Join(dir, "sub", "deep", "x.txt"):  "x",
		filepath.Join(dir, ".env"):                  "A=1",
		filepath.Join(dir, ".catalyst-tmp-planted"): "scratch",
	}
	for p, c := range files {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"link-in.txt":      "real.txt",                               // file, inside
		"link-out.txt":     filepath.Join(outside, "secret.txt"),     // file, escaping (absolute)
		"link-rel-out.txt": "../outside/secret.txt",                  // file, escaping (relative)
		"dir-in":           "sub",                                    // directory, inside
		"dir-out":          outside,                                  // directory, escaping
		"sub/deep/up":      "../../../outside",                       // directory, escaping from below
		"dangling":         filepath.Join(outside, "does-not-exist"), // to nothing (a write would create it)
		"git-link":         ".git",                                   // into .git
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, dir, outside
}

// TestResolve is the table over the one path-safety function: every rule
// has a row whose refusal names that rule, so removing any check fails here.
func TestResolve(t *testing.T) {
	root, _, _ := pathFixture(t)
	type row struct {
		rel    string
		access Access
		clean  string // accepted: the canonical path
		reason string // refused: part of PathError.Reason
	}
	rows := []row{
		// Accepted.
		{rel: "real.txt", clean: "real.txt"},
		{rel: "./sub//deep/./x.txt", clean: "sub/deep/x.txt"},
		{rel: "sub/new/file.js", access: Write, clean: "sub/new/file.js"},
		{rel: ".env", clean: ".env"},
		{rel: "héllo/日本語.txt", access: Write, clean: "héllo/日本語.txt"},
		{rel: ".catalyst-tmp-planted", clean: ".catalyst-tmp-planted"}, // readable, so it can be listed and zipped
		{rel: "catalyst-tmp-x", access: Write, clean: "catalyst-tmp-x"},
		{rel: "a.git/x", access: Write, clean: "a.git/x"},
		{rel: "console.js", access: Write, clean: "console.js"},
		{rel: strings.Repeat("n", maxComponentLen), access: Write, clean: strings.Repeat("n", maxComponentLen)},

		// Parent directories and absolute paths.
		{rel: "..", reason: "parent directory"},
		{rel: "../outside/secret.txt", reason: "parent directory"},
		{rel: "a/../../x", reason: "parent directory"},
		{rel: "a/../b", access: Write, reason: "parent directory"},
		{rel: "/etc/passwd", reason: "absolute"},
		{rel: "//etc/passwd", reason: "absolute"},
		{rel: "C:/Windows/win.ini", reason: "drive letter"},
		{rel: "c:x", reason: "drive letter"},
		{rel: "", reason: "empty"},
		{rel: ".", reason: "names the root"},
		{rel: "./", reason: "names the root"},

		// NUL, control characters, invalid UTF-8.
		{rel: "a\x00b", reason: "NUL"},
		{rel: "real.txt\x00.png", reason: "NUL"},
		{rel: "line\nbreak", access: Write, reason: "control character"},
		{rel: "tab\there", access: Write, reason: "control character"},
		{rel: "esc\x1b[31m", access: Write, reason: "control character"},
		{rel: "del\x7f", access: Write, reason: "control character"},
		{rel: "c1\u0085next", access: Write, reason: "control character"},
		{rel: "bad\xffutf8", access: Write, reason: "UTF-8"},

		// Backslashes.
		{rel: `a\b`, access: Write, reason: "backslash"},
		{rel: `..\outside\secret.txt`, reason: "backslash"},

		// Windows device names.
		{rel: "CON", access: Write, reason: "device"},
		{rel: "nul.txt", access: Write, reason: "device"},
		{rel: "src/aux.js", access: Write, reason: "device"},
		{rel: "com1", access: Write, reason: "device"},
		{rel: "LPT9.log", access: Write, reason: "device"},
		{rel: "prn .txt", access: Write, reason: "device"},
		{rel: "CONIN$", access: Write, reason: "device"},

		// Over-long names.
		{rel: strings.Repeat("a/", 600) + "x", access: Write, reason: "longer than"},
		{rel: strings.Repeat("n", maxComponentLen+1), access: Write, reason: "component is longer"},

		// .git, however spelled.
		{rel: ".git/config", reason: ".git"},
		{rel: ".git/hooks/pre-commit", access: Write, reason: ".git"},
		{rel: ".GIT/config", access: Write, reason: ".git"},
		{rel: ".git./config", access: Write, reason: ".git"},
		{rel: ".git /config", access: Write, reason: ".git"},
		{rel: "GIT~1/config", access: Write, reason: ".git"},
		{rel: "sub/.git/config", access: Write, reason: ".git"},
		{rel: ".git", reason: ".git"},

		// Hidden scratch names: the workspace's own, never a model's.
		{rel: ".catalyst-tmp-123-456", access: Write, reason: "reserved name"},
		{rel: "src/.catalyst-tmp-payload.js", access: Write, reason: "reserved name"},
		{rel: ".CATALYST-TMP-x", access: Write, reason: "reserved name"},
		{rel: ".catalyst-tmp-planted", access: Write, reason: "reserved name"},

		// Invisible characters.
		{rel: ".g\u200bit/config", access: Write, reason: "invisible"},
		{rel: "a\ufeffb.js", access: Write, reason: "invisible"},
		{rel: "a\u2028b.js", access: Write, reason: "invisible"},
		{rel: "a\u200eb.js", access: Write, reason: "invisible"},
		{rel: "a\u200fb.js", access: Write, reason: "invisible"},

		// Symlinks: file and directory, inside and escaping; intermediate
		// non-directories.
		{rel: "link-in.txt", reason: "symlink"},
		{rel: "link-in.txt", access: Write, reason: "symlink"},
		{rel: "link-out.txt", reason: "symlink"},
		{rel: "link-rel-out.txt", reason: "symlink"},
		{rel: "dir-in/deep/x.txt", reason: "symlink"},
		{rel: "dir-in", reason: "symlink"},
		{rel: "dir-out/secret.txt", reason: "symlink"},
		{rel: "dir-out/new.txt", access: Write, reason: "symlink"},
		{rel: "sub/deep/up/secret.txt", reason: "symlink"},
		{rel: "dangling", access: Write, reason: "symlink"},
		{rel: "git-link/config", reason: "symlink"},
		{rel: "real.txt/child", access: Write, reason: "not a directory"},
	}
	// Every bidirectional control, U+202A–U+202E and U+2066–U+2069, in a
	// name that would display as something else ("exe.txt" vs "txt.exe").
	for r := rune(0x202A); r <= 0x202E; r++ {
		rows = append(rows, row{rel: "invoice" + string(r) + "txt.js", access: Write, reason: "bidirectional"})
	}
	for r := rune(0x2066); r <= 0x2069; r++ {
		rows = append(rows, row{rel: "dir" + string(r) + "/x.js", reason: "bidirectional"})
	}

	for _, c := range rows {
		name := fmt.Sprintf("%s/%q", map[Access]string{Read: "read", Write: "write"}[c.access], c.rel)
		if len(name) > 80 {
			name = name[:80]
		}
		t.Run(name, func(t *testing.T) {
			clean, _, err := Resolve(root, c.rel, c.access)
			if c.reason == "" {
				if err != nil || clean != c.clean {
					t.Fatalf("Resolve = %q, %v; want %q", clean, err, c.clean)
				}
				return
			}
			var pe *PathError
			if !errors.As(err, &pe) || !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("Resolve = %q, %v; want a PathError (%s)", clean, err, c.reason)
			}
			if !strings.Contains(pe.Reason, c.reason) {
				t.Fatalf("refused for %q, want a reason containing %q", pe.Reason, c.reason)
			}
			// The message never repeats hostile input raw: ASCII only, capped.
			msg := err.Error()
			if len(msg) > 4*maxQuotedPath+200 {
				t.Fatalf("error message is %d bytes", len(msg))
			}
			for _, r := range msg {
				if r < 0x20 || r > 0x7e && r != '…' {
					t.Fatalf("error message holds %U: %q", r, msg)
				}
			}
		})
	}
}

// TestOpenRegular: only regular files open; the secret outside never does.
func TestOpenRegular(t *testing.T) {
	root, _, _ := pathFixture(t)
	f, st, err := OpenRegular(root, "sub/deep/x.txt")
	if err != nil || st.Size() != 1 {
		t.Fatalf("OpenRegular = %v, %v", st, err)
	}
	f.Close()
	for _, c := range []struct {
		rel  string
		want error
	}{
		{"missing.txt", fs.ErrNotExist},
		{"sub/missing/x", fs.ErrNotExist},
		{"sub", ErrUnsafePath}, // a directory
		{"fifo", ErrUnsafePath},
		{"link-out.txt", ErrUnsafePath},
		{"dir-out/secret.txt", ErrUnsafePath},
		{"sub/deep/up/secret.txt", ErrUnsafePath},
		{"../outside/secret.txt", ErrUnsafePath},
	} {
		f, _, err := OpenRegular(root, c.rel)
		if f != nil {
			f.Close()
		}
		if !errors.Is(err, c.want) {
			t.Errorf("OpenRegular(%q) = %v, want %v", c.rel, err, c.want)
		}
	}
}

func TestQuotePathCapsAndEscapes(t *testing.T) {
	long := strings.Repeat("é", 100_000)
	q := QuotePath(long)
	if len(q) > 4*maxQuotedPath+40 { // \x01 is 4 bytes per input byte, the worst case
		t.Fatalf("quoted %d bytes", len(q))
	}
	if !strings.Contains(q, "(200000 bytes)") {
		t.Fatalf("no length note: %q", q[len(q)-40:])
	}
	if q := QuotePath("a\u202eb"); q != `"a\u202eb"` {
		t.Fatalf("bidi not escaped: %s", q)
	}
}

// TestNoHiddenFiles: a file the workspace itself might name (a leftover
// scratch file, or one planted beside the workspace) and dot files are in
// the list, the zip and the commit alike; what the list leaves out
// (symlinks, FIFOs, nested .git, unsafe names) is never committed. The
// model itself cannot create a scratch name.
func TestNoHiddenFiles(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git CLI is required for this test")
	}
	w, outside := newWS(t)
	for p, c := range map[string]string{"app.js": "require('./.catalyst-tmp-payload.js')\n", ".env": "A=1\n", "src/.hidden.js": "x\n"} {
		if err := w.WriteFile(p, []byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteFile(".catalyst-tmp-payload.js", []byte("evil()")); !errors.Is(err, ErrUnsafePath) {
		t.Fatalf("a model-named scratch file was written: %v", err)
	}
	// Present on disk anyway (a crash leftover, or written by other means):
	// it must be as visible as any other file.
	plant := func(rel, content string) {
		p := filepath.Join(w.Root(), filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	plant(".catalyst-tmp-payload.js", "evil()")
	plant("src/.catalyst-tmp-9-9", "more")
	// Things no list can show: they must not be committed either.
	plant("nested/.git/config", "[core]")
	plant("bad\u202egnp.js", "spoof")
	plant(`back\slash.js`, "x")
	if err := os.Symlink(filepath.Join(outside), filepath.Join(w.Root(), "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("app.js", filepath.Join(w.Root(), "alias.js")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(w.Root(), "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}

	want := []string{".catalyst-tmp-payload.js", ".env", "app.js", "src/.catalyst-tmp-9-9", "src/.hidden.js"}
	files, err := w.List()
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, f := range files {
		listed = append(listed, f.Path)
	}
	if !slices.Equal(listed, want) {
		t.Fatalf("List = %v, want %v", listed, want)
	}

	var buf bytes.Buffer
	if err := w.Zip(&buf); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var zipped []string
	for _, f := range zr.File {
		zipped = append(zipped, f.Name)
	}
	slices.Sort(zipped)
	if !slices.Equal(zipped, want) {
		t.Fatalf("zip = %v, want %v", zipped, want)
	}

	if _, _, err := w.Commit("c", Signature{}); err != nil { // must not block on the FIFO
		t.Fatal(err)
	}
	committed := strings.Split(gitCLI(t, w.Root(), "ls-tree", "-r", "--name-only", "-z", "HEAD"), "\x00")
	committed = slices.DeleteFunc(committed, func(s string) bool { return s == "" })
	slices.Sort(committed)
	if !slices.Equal(committed, want) {
		t.Fatalf("committed %q, want exactly the listed %q", committed, want)
	}
	if got := gitCLI(t, w.Root(), "show", "HEAD:.catalyst-tmp-payload.js"); got != "evil()" {
		t.Fatalf("committed content %q", got)
	}
}

// TestCommitHonoursGitignoreAndDeletes: an ignored file stays listed (it is
// visible) but is not committed unless HEAD already tracks it; a removed
// file is deleted in the next commit.
func TestCommitHonoursGitignoreAndDeletes(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git CLI is required for this test")
	}
	w, _ := newWS(t)
	for p, c := range map[string]string{"keep.js": "1", "tracked.log": "t", "gone.js": "g"} {
		if err := w.WriteFile(p, []byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := w.Commit("one", Signature{}); err != nil {
		t.Fatal(err)
	}
	for p, c := range map[string]string{".gitignore": "*.log\nbuild/\n", "new.log": "n", "build/out.js": "b", "sub/.gitignore": "local.txt\n", "sub/local.txt": "l", "sub/ok.txt": "o", "tracked.log": "t2"} {
		if err := w.WriteFile(p, []byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Remove("gone.js"); err != nil {
		t.Fatal(err)
	}
	if _, created, err := w.Commit("two", Signature{}); err != nil || !created {
		t.Fatalf("Commit = %v, %v", created, err)
	}
	got := gitCLI(t, w.Root(), "ls-tree", "-r", "--name-only", "HEAD")
	if want := ".gitignore\nkeep.js\nsub/.gitignore\nsub/ok.txt\ntracked.log"; got != want {
		t.Fatalf("tree:\n%s\nwant:\n%s", got, want)
	}
	if got := gitCLI(t, w.Root(), "show", "HEAD:tracked.log"); got != "t2" {
		t.Fatalf("tracked ignored file not updated: %q", got)
	}
	if got := gitCLI(t, w.Root(), "status", "--porcelain", "--untracked-files=no"); got != "" {
		t.Fatalf("git sees uncommitted changes to tracked files: %q", got)
	}
}
