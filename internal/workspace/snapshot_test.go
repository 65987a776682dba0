package workspace

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/sqlite"
)

// genApp fills a new workspace at dir with a typical generated app: about
// 50 files over a few directories and three commits, an executable script,
// a symlink and an empty directory. It returns HEAD.
func genApp(t testing.TB, dir string) string {
	t.Helper()
	w, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	write := func(rel, content string) {
		t.Helper()
		if err := w.WriteFile(rel, []byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	commit := func(msg string) string {
		t.Helper()
		sha, _, err := w.Commit(msg, Signature{})
		if err != nil {
			t.Fatal(err)
		}
		return sha
	}
	write("package.json", `{"name":"todo","version":"1.0.0","scripts":{"test":"node --test"}}`+"\n")
	write("README.md", "# Todo\n\nA todo app.\n")
	for i := range 20 {
		write(fmt.Sprintf("src/components/Item%02d.js", i), strings.Repeat(fmt.Sprintf("export const item%d = (x) => x + %d;\n", i, i), 30))
	}
	commit("planner and architect")
	for i := range 20 {
		write(fmt.Sprintf("src/lib/util%02d.js", i), strings.Repeat(fmt.Sprintf("export function f%d(a, b) { return a * b + %d; }\n", i, i), 40))
	}
	write("src/index.js", "import './lib/util00.js';\nconsole.log('hello');\n")
	commit("coder")
	for i := range 8 {
		write(fmt.Sprintf("test/t%02d.test.js", i), fmt.Sprintf("import test from 'node:test';\ntest('t%d', () => {});\n", i))
	}
	write("scripts/run.sh", "#!/bin/sh\nnode src/index.js\n")
	if err := os.Chmod(filepath.Join(dir, "scripts/run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../src/index.js", filepath.Join(dir, "scripts/entry.js")); err != nil {
		t.Fatal(err)
	}
	head := commit("tester")
	if err := os.MkdirAll(filepath.Join(dir, "logs/empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	return head
}

// entry describes one path of a tree for comparison.
type entry struct {
	Mode    fs.FileMode
	Content string // file content or symlink target
}

// tree maps every path under dir (slash-separated) to its type, permission
// bits and content.
func tree(t testing.TB, dir string) map[string]entry {
	t.Helper()
	m := map[string]entry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := entry{Mode: info.Mode() & (fs.ModeType | fs.ModePerm)}
		switch {
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.Content = string(b)
		case info.Mode()&fs.ModeSymlink != 0:
			e.Content, err = os.Readlink(p)
		}
		m[filepath.ToSlash(rel)] = e
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func archiveBytes(t testing.TB, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Archive(dir, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestArchiveRestoreRoundTrip(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	head := genApp(t, src)
	// A FIFO is not carried, and archiving must not block on it.
	if err := syscall.Mkfifo(filepath.Join(src, "logs/pipe"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := archiveBytes(t, src)
	dst := filepath.Join(base, "restored", "ws") // the parent is created too
	if err := Restore(bytes.NewReader(data), dst); err != nil {
		t.Fatal(err)
	}

	want := tree(t, src)
	delete(want, "logs/pipe")
	got := tree(t, dst)
	if len(got) != len(want) {
		t.Errorf("restored %d entries, want %d", len(got), len(want))
	}
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s missing", p)
		} else if g != w {
			t.Errorf("%s restored as %v %q, want %v %q", p, g.Mode, trim(g.Content), w.Mode, trim(w.Content))
		}
	}
	if got["scripts/run.sh"].Mode != 0o755 || got["scripts/entry.js"].Mode&fs.ModeSymlink == 0 ||
		!got["logs/empty"].Mode.IsDir() || got[".git/HEAD"].Content == "" {
		t.Errorf("the fixture's executable, symlink, empty directory or .git did not make it: %v", got)
	}

	// The restored repository works: same HEAD, clean, and a new commit.
	repo, err := git.PlainOpen(dst)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := repo.Head()
	if err != nil || ref.Hash().String() != head {
		t.Fatalf("restored HEAD = %v, %v; want %s", ref, err, head)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	// Commit records only what List shows, and List never shows a symlink:
	// the fixture's link is carried by the archive but stays untracked.
	st, err := wt.Status()
	if err != nil {
		t.Fatal(err)
	}
	for p, s := range st {
		if p != "scripts/entry.js" || s.Worktree != git.Untracked {
			t.Errorf("restored worktree status: %v; want clean but for the untracked symlink", st)
			break
		}
	}
	w, err := Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile("src/new.js", []byte("export {};\n")); err != nil {
		t.Fatal(err)
	}
	sha, created, err := w.Commit("after takeover", Signature{})
	if err != nil || !created || sha == head {
		t.Fatalf("commit in the restored repository: %s %v %v", sha, created, err)
	}
	if gitBin, err := exec.LookPath("git"); err == nil {
		out, err := exec.Command(gitBin, "-C", dst, "fsck", "--strict").CombinedOutput()
		if err != nil {
			t.Errorf("git fsck of the restored repository: %v\n%s", err, out)
		}
		out, err = exec.Command(gitBin, "-C", dst, "rev-parse", "HEAD~1").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != head {
			t.Errorf("git rev-parse HEAD~1 = %s, %v; want %s", out, err, head)
		}
	}
	ents, _ := os.ReadDir(filepath.Dir(dst))
	if len(ents) != 1 {
		t.Errorf("restore left %d entries beside the workspace, want none", len(ents)-1)
	}
}

func trim(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// The same tree gives the same bytes, whatever the files' times.
func TestArchiveDeterministic(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	genApp(t, src)
	first := archiveBytes(t, src)
	later := time.Now().Add(time.Hour)
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if d.Type()&fs.ModeSymlink == 0 {
			os.Chtimes(p, later, later)
		}
		return nil
	})
	if !bytes.Equal(first, archiveBytes(t, src)) {
		t.Error("archiving the same tree twice gave different bytes")
	}
	if err := os.WriteFile(filepath.Join(src, "README.md"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first, archiveBytes(t, src)) {
		t.Error("a changed file gave the same archive")
	}
}

// Archive never follows a symlink: one pointing outside is stored as a link,
// not as the outside file's content.
func TestArchiveDoesNotFollowSymlinks(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(base, "secret")
	os.WriteFile(secret, []byte("TOP SECRET"), 0o600)
	os.Symlink(secret, filepath.Join(src, "leak"))
	os.Mkdir(filepath.Join(base, "outdir"), 0o755)
	os.WriteFile(filepath.Join(base, "outdir", "f"), []byte("TOP SECRET"), 0o600)
	os.Symlink("../outdir", filepath.Join(src, "leakdir"))
	data := archiveBytes(t, src)
	zr, _ := gzip.NewReader(bytes.NewReader(data))
	all, _ := io.ReadAll(zr)
	if bytes.Contains(all, []byte("TOP SECRET")) {
		t.Error("the archive contains a file outside the tree")
	}
	// And Restore refuses such an archive.
	if err := Restore(bytes.NewReader(data), filepath.Join(base, "dst")); !errors.Is(err, ErrUnsafeArchive) {
		t.Errorf("restore of links out: %v, want ErrUnsafeArchive", err)
	}
}

// tarEntry is one entry of a handmade archive.
type tarEntry struct {
	name, link string
	typ        byte
	body       string
	size       int64 // when not len(body)
	mode       int64
}

func makeArchive(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		if e.typ == 0 {
			e.typ = tar.TypeReg
		}
		if e.mode == 0 {
			e.mode = 0o644
		}
		size := int64(len(e.body))
		if e.size != 0 {
			size = e.size
		}
		if e.typ != tar.TypeReg {
			size = 0
		}
		hdr := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Size: size, Mode: e.mode, Format: tar.FormatPAX}
		if e.typ == tar.TypeXGlobalHeader {
			hdr = &tar.Header{Typeflag: e.typ, Name: e.name, PAXRecords: map[string]string{"comment": "x"}}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("write header %q: %v", e.name, err)
		}
		io.WriteString(tw, e.body)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestRestoreRefusesHostileArchives(t *testing.T) {
	sym := func(name, target string) tarEntry { return tarEntry{name: name, link: target, typ: tar.TypeSymlink} }
	file := func(name string) tarEntry { return tarEntry{name: name, body: "pwned"} }
	dir := func(name string) tarEntry { return tarEntry{name: name, typ: tar.TypeDir, mode: 0o755} }
	for name, entries := range map[string][]tarEntry{
		"absolute path":                  {file("/tmp/pwned")},
		"dot dot":                        {file("../pwned")},
		"dot dot inside":                 {dir("a/"), file("a/../../pwned")},
		"dot dot at the end":             {dir("a/.."), file("x")},
		"unclean dot":                    {file("./pwned")},
		"unclean double slash":           {file("a//pwned")},
		"root entry":                     {dir("./")},
		"empty name":                     {file("")},
		"absolute symlink":               {sym("l", "/etc/passwd")},
		"symlink up":                     {sym("l", "../outside")},
		"symlink up from a subdirectory": {dir("a/"), sym("a/l", "../../outside")},
		"symlink empty target":           {sym("l", "")},
		"file through a symlink":         {sym("l", "."), file("l/pwned")},
		"file through a symlink to a directory": {
			dir("sub/"), sym("l", "sub"), file("l/pwned")},
		"symlink escaping through another": {dir("a/"), sym("a/up", ".."), sym("a/l", "up/../outside")},
		"symlink chain escaping":           {sym("a", "b/c"), sym("b", "..")},
		"symlink loop":                     {sym("a", "b"), sym("b", "a")},
		"symlink self loop":                {sym("a", "a/x")},
		"file then symlink, same name":     {file("f"), sym("f", "x")},
		"symlink then file, same name":     {sym("f", "x"), file("f")},
		"file twice":                       {file("f"), file("f")},
		"directory over a file":            {file("f"), dir("f/")},
		"below a file":                     {file("f"), file("f/x")},
		"hard link":                        {file("f"), {name: "h", link: "f", typ: tar.TypeLink}},
		"hard link out":                    {{name: "h", link: "/etc/passwd", typ: tar.TypeLink}},
		"character device":                 {{name: "null", typ: tar.TypeChar}},
		"block device":                     {{name: "sda", typ: tar.TypeBlock}},
		"fifo":                             {{name: "pipe", typ: tar.TypeFifo}},
		"global header":                    {{name: "g", typ: tar.TypeXGlobalHeader}},
	} {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			dst := filepath.Join(base, "ws")
			err := Restore(bytes.NewReader(makeArchive(t, entries...)), dst)
			if !errors.Is(err, ErrUnsafeArchive) {
				t.Errorf("Restore = %v, want ErrUnsafeArchive", err)
			}
			assertNothingRestored(t, base)
		})
	}
}

// assertNothingRestored checks that base holds nothing: no workspace, no
// temporary directory, nothing written through a link.
func assertNothingRestored(t *testing.T, base string) {
	t.Helper()
	ents, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left behind: %s", e.Name())
	}
	if _, err := os.Lstat("/tmp/pwned"); err == nil {
		t.Error("/tmp/pwned was written")
	}
}

func TestRestoreRefusesMalformedInput(t *testing.T) {
	good := makeArchive(t, tarEntry{name: "a", body: strings.Repeat("x", 10000)})
	var plainTar bytes.Buffer
	tw := tar.NewWriter(&plainTar)
	tw.WriteHeader(&tar.Header{Name: "a", Size: 1, Mode: 0o644})
	tw.Write([]byte("x"))
	tw.Close()
	trailing := append(append([]byte{}, good...), bytes.Repeat([]byte{0}, 100<<10)...)
	for name, data := range map[string][]byte{
		"empty":          nil,
		"not gzip":       []byte("hello, world"),
		"plain tar":      plainTar.Bytes(),
		"truncated":      good[:len(good)/2],
		"bad crc":        append(append([]byte{}, good[:len(good)-8]...), 1, 2, 3, 4, 5, 6, 7, 8),
		"trailing bytes": trailing,
	} {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			if err := Restore(bytes.NewReader(data), filepath.Join(base, "ws")); err == nil {
				t.Error("Restore succeeded")
			}
			assertNothingRestored(t, base)
		})
	}
}

// A reader that fails at its end, as a store snapshot whose hash does not
// match does, fails the restore even though the archive itself was whole.
func TestRestoreWaitsForTheEndOfTheReader(t *testing.T) {
	base := t.TempDir()
	data := makeArchive(t, tarEntry{name: "a", body: "x"})
	errHash := errors.New("sha256 mismatch")
	err := Restore(io.MultiReader(bytes.NewReader(data), failReader{errHash}), filepath.Join(base, "ws"))
	if !errors.Is(err, errHash) {
		t.Errorf("Restore = %v, want the reader's error", err)
	}
	assertNothingRestored(t, base)
}

type failReader struct{ err error }

func (f failReader) Read([]byte) (int, error) { return 0, f.err }

// zeroReader yields n zero bytes.
type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), z.n)
	clear(p[:k])
	z.n -= k
	return int(k), nil
}

func TestRestoreRefusesBombs(t *testing.T) {
	t.Run("gzip bomb", func(t *testing.T) {
		// 32 MiB of zeros, under 1 MiB compressed, against a 4 MiB cap:
		// refused from the header, before a byte is written.
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		tw := tar.NewWriter(zw)
		tw.WriteHeader(&tar.Header{Name: "small", Size: 1000, Mode: 0o644})
		io.Copy(tw, &zeroReader{1000})
		tw.WriteHeader(&tar.Header{Name: "zeros", Size: 32 << 20, Mode: 0o644})
		io.Copy(tw, &zeroReader{32 << 20})
		tw.Close()
		zw.Close()
		if buf.Len() > 1<<20 {
			t.Fatalf("the bomb is %d bytes compressed", buf.Len())
		}
		base := t.TempDir()
		start := time.Now()
		err := restoreTree(&buf, filepath.Join(base, "ws"), archiveLimits{bytes: 4 << 20, entries: 100})
		if !errors.Is(err, ErrArchiveTooLarge) {
			t.Errorf("Restore = %v, want ErrArchiveTooLarge", err)
		}
		t.Logf("refused in %v", time.Since(start))
		assertNothingRestored(t, base)
	})
	t.Run("declared size over the real cap", func(t *testing.T) {
		// A header claiming 2 GiB and no data: refused by MaxArchiveBytes
		// itself, from the header alone.
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		tw.WriteHeader(&tar.Header{Name: "huge", Size: 2 << 30, Mode: 0o644})
		zw.Close()
		base := t.TempDir()
		if err := Restore(&buf, filepath.Join(base, "ws")); !errors.Is(err, ErrArchiveTooLarge) {
			t.Errorf("Restore = %v, want ErrArchiveTooLarge", err)
		}
		assertNothingRestored(t, base)
	})
	t.Run("many small files", func(t *testing.T) {
		var entries []tarEntry
		for i := range 101 {
			entries = append(entries, tarEntry{name: fmt.Sprintf("f%d", i)})
		}
		base := t.TempDir()
		err := restoreTree(bytes.NewReader(makeArchive(t, entries...)), filepath.Join(base, "ws"),
			archiveLimits{bytes: 1 << 20, entries: 100})
		if !errors.Is(err, ErrArchiveTooLarge) {
			t.Errorf("Restore = %v, want ErrArchiveTooLarge", err)
		}
		assertNothingRestored(t, base)
	})
	t.Run("symlink expansion", func(t *testing.T) {
		// Each link names the next one 16 times, and the last is the root
		// itself: every link stays inside, but resolving them naively takes
		// 16^30 steps.
		var entries []tarEntry
		for i := range 30 {
			entries = append(entries, tarEntry{name: fmt.Sprintf("l%d", i), typ: tar.TypeSymlink,
				link: strings.Repeat(fmt.Sprintf("l%d/", i+1), 16)})
		}
		entries = append(entries, tarEntry{name: "l30", typ: tar.TypeSymlink, link: "."})
		base := t.TempDir()
		done := make(chan error, 1)
		go func() { done <- Restore(bytes.NewReader(makeArchive(t, entries...)), filepath.Join(base, "ws")) }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrUnsafeArchive) {
				t.Errorf("Restore = %v, want ErrUnsafeArchive", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Restore still checking links after 10s")
		}
	})
	t.Run("archive side", func(t *testing.T) {
		src := t.TempDir()
		for i := range 11 {
			os.WriteFile(filepath.Join(src, fmt.Sprint(i)), make([]byte, 100), 0o644)
		}
		err := archiveTree(src, io.Discard, archiveLimits{bytes: 1000, entries: 100})
		if !errors.Is(err, ErrArchiveTooLarge) {
			t.Errorf("archive over the byte cap = %v, want ErrArchiveTooLarge", err)
		}
		err = archiveTree(src, io.Discard, archiveLimits{bytes: 1 << 20, entries: 10})
		if !errors.Is(err, ErrArchiveTooLarge) {
			t.Errorf("archive over the entry cap = %v, want ErrArchiveTooLarge", err)
		}
	})
}

// Modes are kept, but never setuid, setgid or sticky, and directories stay
// usable by their owner.
func TestRestoreModes(t *testing.T) {
	base := t.TempDir()
	dst := filepath.Join(base, "ws")
	err := Restore(bytes.NewReader(makeArchive(t,
		tarEntry{name: "locked/", typ: tar.TypeDir, mode: 0o050},
		tarEntry{name: "locked/f", body: "x", mode: 0o400},
		tarEntry{name: "suid", body: "x", mode: 0o4755},
		tarEntry{name: "implied/deep/f", body: "x", mode: 0o640},
	)), dst)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]fs.FileMode{
		"locked": fs.ModeDir | 0o750, "locked/f": 0o400, "suid": 0o755,
		"implied": fs.ModeDir | 0o755, "implied/deep/f": 0o640,
	} {
		fi, err := os.Lstat(filepath.Join(dst, p))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (fs.ModeType | fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
	}
	if err := os.RemoveAll(dst); err != nil {
		t.Errorf("the restored tree cannot be removed: %v", err)
	}
}

// Links that stay inside, including through other links and dangling ones,
// are restored as they are.
func TestRestoreKeepsInsideSymlinks(t *testing.T) {
	base := t.TempDir()
	dst := filepath.Join(base, "ws")
	err := Restore(bytes.NewReader(makeArchive(t,
		tarEntry{name: "node_modules/pkg/bin/cli.js", body: "#!/usr/bin/env node\n", mode: 0o755},
		tarEntry{name: "node_modules/.bin/cli", typ: tar.TypeSymlink, link: "../pkg/bin/cli.js"},
		tarEntry{name: "a/up", typ: tar.TypeSymlink, link: ".."},
		tarEntry{name: "a/l", typ: tar.TypeSymlink, link: "up/node_modules"},
		tarEntry{name: "dangling", typ: tar.TypeSymlink, link: "not/yet/there"},
		tarEntry{name: "here", typ: tar.TypeSymlink, link: "."},
	)), dst)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dst, "a/l/.bin/cli"))
	if err != nil || !strings.HasPrefix(string(b), "#!") {
		t.Errorf("read through the restored links: %q, %v", b, err)
	}
	if target, _ := os.Readlink(filepath.Join(dst, "dangling")); target != "not/yet/there" {
		t.Errorf("dangling link restored as %q", target)
	}
}

func TestRestoreTarget(t *testing.T) {
	data := makeArchive(t, tarEntry{name: "a", body: "new"})
	base := t.TempDir()
	full := filepath.Join(base, "full")
	os.MkdirAll(full, 0o755)
	os.WriteFile(filepath.Join(full, "keep"), []byte("old"), 0o644)
	if err := Restore(bytes.NewReader(data), full); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Restore into a non-empty directory = %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(filepath.Join(full, "keep")); string(b) != "old" {
		t.Error("the non-empty directory was changed")
	}
	empty := filepath.Join(base, "empty")
	os.Mkdir(empty, 0o755)
	if err := Restore(bytes.NewReader(data), empty); err != nil {
		t.Errorf("Restore into an empty directory: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(empty, "a")); string(b) != "new" {
		t.Errorf("restored %q", b)
	}
}

// ---- Materializer

// countingSnaps counts how many snapshot readers were actually read from.
type countingSnaps struct {
	store.Snapshots
	reads atomic.Int64
}

func (c *countingSnaps) LatestSnapshot(ctx context.Context, taskID string) (store.SnapshotInfo, io.ReadCloser, error) {
	info, rc, err := c.Snapshots.LatestSnapshot(ctx, taskID)
	if err != nil {
		return info, nil, err
	}
	return info, &countingReader{ReadCloser: rc, c: c}, nil
}

type countingReader struct {
	io.ReadCloser
	c    *countingSnaps
	once sync.Once
}

func (r *countingReader) Read(p []byte) (int, error) {
	r.once.Do(func() { r.c.reads.Add(1) })
	return r.ReadCloser.Read(p)
}

// storeWithTask returns a real SQLite store holding one task.
func storeWithTask(t testing.TB) (store.Store, string) {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "catalyst.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	p := domain.Project{ID: "p1", Name: "n", Status: domain.ProjectActive}
	task := domain.Task{ID: "3f1c2a9e-0000-4000-8000-000000000001", ProjectID: p.ID, Status: domain.TaskRunning,
		GraphState: domain.NewGraphState([]string{domain.NodePlanner, domain.NodeArchitect, domain.NodeCoder, domain.NodeTester, domain.NodeReviewer, domain.NodeDeployer})}
	if err := s.CreateProject(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTask(t.Context(), task); err != nil {
		t.Fatal(err)
	}
	return s, task.ID
}

func putTree(t testing.TB, s store.Snapshots, taskID, node, dir string) store.SnapshotInfo {
	t.Helper()
	info, err := SaveSnapshot(t.Context(), s, store.SnapshotInfo{TaskID: taskID, Node: node}, dir)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// A worker takes a task over: the workspace as the last node left it, with
// its repository, from the store alone.
func TestSaveSnapshotRestoreLatest(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { testSaveRestore(t, storeWithTask) })
	t.Run("MongoWire", func(t *testing.T) { testSaveRestore(t, mongoWithTask) })
}

func testSaveRestore(t *testing.T, open func(testing.TB) (store.Store, string)) {
	s, taskID := open(t)
	base := t.TempDir()
	src := filepath.Join(base, "worker1")
	head := genApp(t, src)
	dst := filepath.Join(base, "worker2")
	if _, err := RestoreLatest(t.Context(), s, taskID, dst); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("RestoreLatest with no snapshot = %v, want ErrNotFound", err)
	}
	saved, err := SaveSnapshot(t.Context(), s, store.SnapshotInfo{TaskID: taskID, Node: "coder", Iteration: 1}, src)
	if err != nil {
		t.Fatal(err)
	}
	info, err := RestoreLatest(t.Context(), s, taskID, dst)
	if err != nil || info.ID != saved.ID || info.Node != "coder" || info.Iteration != 1 {
		t.Fatalf("RestoreLatest = %+v, %v; want %+v", info, err, saved)
	}
	w, err := Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := w.Head(); err != nil || got != head {
		t.Errorf("HEAD after takeover = %s, %v; want %s", got, err, head)
	}
	want, got := tree(t, src), tree(t, dst)
	if len(got) != len(want) {
		t.Errorf("restored %d entries, want %d", len(got), len(want))
	}

	// Failures come back, and do not hang on the archiving side.
	if _, err := SaveSnapshot(t.Context(), s, store.SnapshotInfo{TaskID: "no-such-task", Node: "coder"}, src); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("SaveSnapshot for an unknown task = %v, want ErrNotFound", err)
	}
	if _, err := SaveSnapshot(t.Context(), s, store.SnapshotInfo{TaskID: taskID, Node: "coder"}, filepath.Join(base, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SaveSnapshot of a missing directory = %v, want fs.ErrNotExist", err)
	}
	if latest, _ := RestoreLatest(t.Context(), s, taskID, filepath.Join(base, "again")); latest.ID != saved.ID {
		t.Errorf("a failed save replaced the snapshot: latest %s, want %s", latest.ID, saved.ID)
	}
}

func TestMaterializer(t *testing.T) {
	s, taskID := storeWithTask(t)
	snaps := &countingSnaps{Snapshots: s}
	cache := t.TempDir()
	m, err := NewMaterializer(snaps, cache)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Acquire(t.Context(), taskID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Acquire with no snapshot = %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"../etc", "a/b", "", ".", strings.Repeat("x", 200)} {
		if _, err := m.Acquire(t.Context(), bad); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("Acquire(%q) = %v, want ErrInvalid", bad, err)
		}
	}

	src := filepath.Join(t.TempDir(), "ws")
	genApp(t, src)
	first := putTree(t, s, taskID, "coder", src)

	// Many concurrent readers: one unpack, one directory.
	const n = 16
	var wg sync.WaitGroup
	outs := make([]*Checkout, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { outs[i], errs[i] = m.Acquire(t.Context(), taskID) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Acquire %d: %v", i, errs[i])
		}
		if outs[i].Dir != outs[0].Dir || outs[i].Info.ID != first.ID {
			t.Errorf("Acquire %d: %s (%s), want %s (%s)", i, outs[i].Dir, outs[i].Info.ID, outs[0].Dir, first.ID)
		}
	}
	if r := snaps.reads.Load(); r != 1 {
		t.Errorf("%d concurrent Acquires read the snapshot %d times, want once", n, r)
	}
	want := tree(t, src)
	if got := tree(t, outs[0].Dir); len(got) != len(want) || got["README.md"] != want["README.md"] {
		t.Errorf("the copy has %d entries, want %d", len(got), len(want))
	}
	old := outs[0]
	for _, c := range outs[1:] {
		c.Release()
	}

	// A new snapshot: a new copy; the old one stays while held.
	os.WriteFile(filepath.Join(src, "README.md"), []byte("# v2\n"), 0o644)
	second := putTree(t, s, taskID, "tester", src)
	c2, err := m.Acquire(t.Context(), taskID)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Info.ID != second.ID || c2.Dir == old.Dir {
		t.Fatalf("after a new put: %s (%s), want a new copy of %s", c2.Dir, c2.Info.ID, second.ID)
	}
	if b, _ := os.ReadFile(filepath.Join(c2.Dir, "README.md")); string(b) != "# v2\n" {
		t.Errorf("new copy README = %q", b)
	}
	if _, err := os.Stat(filepath.Join(old.Dir, "README.md")); err != nil {
		t.Errorf("a held copy was removed: %v", err)
	}
	old.Release()
	old.Release() // twice is harmless
	if _, err := os.Stat(old.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the superseded copy is still there after its release: %v", err)
	}
	c2.Release()
	reads := snaps.reads.Load()

	// A restarted process reuses the copy on disk and clears leftovers.
	leftover := filepath.Join(cache, taskID, "."+second.ID+".restore-123")
	os.MkdirAll(leftover, 0o700)
	m2, err := NewMaterializer(snaps, cache)
	if err != nil {
		t.Fatal(err)
	}
	c3, err := m2.Acquire(t.Context(), taskID)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Release()
	if c3.Dir != c2.Dir || snaps.reads.Load() != reads {
		t.Errorf("after a restart: %s with %d reads, want %s with %d", c3.Dir, snaps.reads.Load(), c2.Dir, reads)
	}
	if ents, _ := os.ReadDir(filepath.Join(cache, taskID)); len(ents) != 1 {
		t.Errorf("the task's cache holds %d entries, want only the current copy", len(ents))
	}
}

// corruptSnaps serves a snapshot whose reader fails at its end, as a store
// reader does when the hash does not match.
type corruptSnaps struct {
	store.Snapshots
	data []byte
}

func (c corruptSnaps) LatestSnapshot(ctx context.Context, taskID string) (store.SnapshotInfo, io.ReadCloser, error) {
	info := store.SnapshotInfo{ID: "bad-snapshot", TaskID: taskID}
	return info, io.NopCloser(io.MultiReader(bytes.NewReader(c.data), failReader{store.ErrSnapshotCorrupt})), nil
}

func TestMaterializerRefusesCorruptSnapshot(t *testing.T) {
	cache := t.TempDir()
	m, err := NewMaterializer(corruptSnaps{data: makeArchive(t, tarEntry{name: "a", body: "x"})}, cache)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Acquire(t.Context(), "task1"); !errors.Is(err, store.ErrSnapshotCorrupt) {
		t.Errorf("Acquire = %v, want ErrSnapshotCorrupt", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(cache, "task1")); len(ents) != 0 {
		t.Errorf("a corrupt snapshot left %d entries in the cache", len(ents))
	}
}

// BenchmarkSnapshot measures what a node boundary costs with snapshots: a
// typical generated app (about 50 files, three commits) archived, put, and
// on the other side fetched and restored, on both stores.
func BenchmarkSnapshot(b *testing.B) {
	src := filepath.Join(b.TempDir(), "src")
	genApp(b, src)
	var archive bytes.Buffer
	if err := Archive(src, &archive); err != nil {
		b.Fatal(err)
	}
	entries := len(tree(b, src))
	b.Run("Archive", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := Archive(src, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(archive.Len()), "archive-bytes")
		b.ReportMetric(float64(entries), "entries")
	})
	b.Run("Restore", func(b *testing.B) {
		base := b.TempDir()
		i := 0
		for b.Loop() {
			i++
			if err := Restore(bytes.NewReader(archive.Bytes()), filepath.Join(base, fmt.Sprint(i))); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, st := range []struct {
		name string
		open func(b *testing.B) (store.Store, string)
	}{
		{"SQLite", func(b *testing.B) (store.Store, string) { return storeWithTask(b) }},
		{"MongoWire", func(b *testing.B) (store.Store, string) { return mongoWithTask(b) }},
	} {
		b.Run("ArchivePutRestore/"+st.name, func(b *testing.B) {
			s, taskID := st.open(b)
			base := b.TempDir()
			i := 0
			for b.Loop() {
				i++
				putTree(b, s, taskID, "coder", src)
				_, rc, err := s.LatestSnapshot(b.Context(), taskID)
				if err != nil {
					b.Fatal(err)
				}
				if err := Restore(rc, filepath.Join(base, fmt.Sprint(i))); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
		})
	}
}
