// Package workspace holds the generated files of one task: a directory that is
// also a git repository (go-git v5).
//
// Paths handed to a Workspace come from a language model and are untrusted.
// Every method that takes a path validates it lexically (no absolute paths, no
// "..", no NUL or control characters, no ".git" component, no Windows device
// names) and then resolves it inside the root through an os.Root, refusing any
// symlink on the way and any existing target that is not a regular file.
// Writes are atomic (temporary file + rename inside the same directory), so a
// pre-existing hard link or symlink at the target is replaced, never written
// through.
package workspace

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

var (
	// ErrUnsafePath is returned for a path that is absolute, contains "..",
	// NUL or control characters, names something under .git, a Windows device
	// name, passes through a symlink, or names an existing non-regular file
	// (device, FIFO, socket, directory).
	ErrUnsafePath = errors.New("workspace: unsafe path")
	// ErrTooLarge is returned when content exceeds MaxFileSize.
	ErrTooLarge = errors.New("workspace: file too large")
)

// MaxFileSize is the largest file, in bytes, that WriteFile accepts (1 MiB).
// Generated source files are far smaller; anything bigger is refused rather
// than stored, committed and served.
const MaxFileSize = 1 << 20

const (
	maxPathLen      = 1024
	maxComponentLen = 255
	fileMode        = 0o644
	dirMode         = 0o755
)

// File is one entry of List.
type File struct {
	Path string `json:"path"` // slash-separated, relative to the root
	Size int64  `json:"size"`
}

// Signature names the author of a commit.
type Signature struct {
	Name, Email string
}

// Workspace is a directory of generated files that is also a git repository.
// Its methods are safe for concurrent use within one process.
type Workspace struct {
	root string
	repo *git.Repository
	mu   sync.Mutex // serialises writes and git operations
}

// Option configures Open.
type Option func(*options)

type options struct{ branch string }

// WithBranch sets the default branch of a newly initialised repository
// (default "master"). It has no effect on an existing repository.
func WithBranch(branch string) Option { return func(o *options) { o.branch = branch } }

// Open opens the workspace at root, creating the directory and initialising a
// git repository (default branch master) if missing.
func Open(root string, opts ...Option) (*Workspace, error) {
	o := options{branch: "master"}
	for _, f := range opts {
		f(&o)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	if err := os.MkdirAll(abs, dirMode); err != nil {
		return nil, fmt.Errorf("workspace: create root: %w", err)
	}
	// Resolve the root itself once, so later lexical joins are stable.
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	repo, err := git.PlainOpen(abs)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.PlainInitWithOptions(abs, &git.PlainInitOptions{
			InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName(o.branch)},
		})
	}
	if err != nil {
		return nil, fmt.Errorf("workspace: git repository at %s: %w", abs, err)
	}
	return &Workspace{root: abs, repo: repo}, nil
}

// Root returns the absolute path of the workspace directory.
func (w *Workspace) Root() string { return w.root }

// windowsDevice reports whether a component is a reserved device name on
// Windows (with or without extension): the workspace is zipped and pushed, and
// such a file breaks checkouts there.
func windowsDevice(comp string) bool {
	base := strings.ToLower(comp)
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[:i]
	}
	base = strings.TrimRight(base, " ")
	switch base {
	case "con", "prn", "aux", "nul", "conin$", "conout$":
		return true
	}
	if len(base) == 4 && (strings.HasPrefix(base, "com") || strings.HasPrefix(base, "lpt")) &&
		base[3] >= '0' && base[3] <= '9' {
		return true
	}
	return false
}

// cleanRel validates an untrusted relative path lexically and returns it in
// canonical slash form ("a/b/c"). Empty and "." components are dropped.
func cleanRel(rel string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: %q: %s", ErrUnsafePath, rel, why)
	}
	if rel == "" {
		return bad("empty")
	}
	if len(rel) > maxPathLen {
		return bad("too long")
	}
	for _, r := range rel {
		if r == 0 || r < 0x20 || r == 0x7f {
			return bad("control character")
		}
		if r == '\\' {
			return bad("backslash")
		}
	}
	if strings.HasPrefix(rel, "/") {
		return bad("absolute")
	}
	if len(rel) >= 2 && rel[1] == ':' {
		return bad("drive letter")
	}
	var parts []string
	for _, c := range strings.Split(rel, "/") {
		switch {
		case c == "" || c == ".":
			continue
		case c == "..":
			return bad("parent directory")
		case len(c) > maxComponentLen:
			return bad("component too long")
		case strings.EqualFold(strings.TrimRight(c, ". "), ".git"):
			return bad("inside .git")
		case windowsDevice(c):
			return bad("device name")
		}
		parts = append(parts, c)
	}
	if len(parts) == 0 {
		return bad("names the root")
	}
	return strings.Join(parts, "/"), nil
}

// checkNoSymlink walks the components of clean below root with Lstat and fails
// if any existing component is a symlink, or if an intermediate one is not a
// directory. It returns the Lstat of the final component (nil if missing).
func checkNoSymlink(root *os.Root, clean string) (fs.FileInfo, error) {
	parts := strings.Split(clean, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		fi, err := root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			if errors.Is(err, syscall.ENOTDIR) {
				return nil, fmt.Errorf("%w: %q: a parent is not a directory", ErrUnsafePath, clean)
			}
			return nil, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%w: %q: passes through a symlink", ErrUnsafePath, clean)
		}
		if i < len(parts)-1 && !fi.IsDir() {
			return nil, fmt.Errorf("%w: %q: %s is not a directory", ErrUnsafePath, clean, p)
		}
		if i == len(parts)-1 {
			return fi, nil
		}
	}
	return nil, nil
}

func irregular(fi fs.FileInfo) bool { return fi != nil && !fi.Mode().IsRegular() }

// SafeJoin validates rel as WriteFile does and returns the absolute path of rel
// inside root. It refuses symlinks on the way and existing non-regular targets
// (directories included); a missing target is not an error here.
func SafeJoin(root, rel string) (string, error) {
	clean, err := cleanRel(rel)
	if err != nil {
		return "", err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return "", fmt.Errorf("workspace: %w", err)
	}
	defer r.Close()
	fi, err := checkNoSymlink(r, clean)
	if err != nil {
		return "", err
	}
	if irregular(fi) {
		return "", fmt.Errorf("%w: %q: not a regular file", ErrUnsafePath, clean)
	}
	return filepath.Join(root, filepath.FromSlash(clean)), nil
}

// resolve validates rel, opens the root and checks the path for symlinks.
// fi is nil when the target does not exist. The caller closes r.
func (w *Workspace) resolve(rel string) (r *os.Root, clean string, fi fs.FileInfo, err error) {
	if clean, err = cleanRel(rel); err != nil {
		return nil, "", nil, err
	}
	if r, err = os.OpenRoot(w.root); err != nil {
		return nil, "", nil, fmt.Errorf("workspace: %w", err)
	}
	if fi, err = checkNoSymlink(r, clean); err != nil {
		r.Close()
		return nil, "", nil, err
	}
	return r, clean, fi, nil
}

// WriteFile writes data to rel (mode 0644), creating parent directories.
// It refuses unsafe paths (ErrUnsafePath) and content over MaxFileSize
// (ErrTooLarge); it never follows a symlink and never writes through an
// existing hard link (the file is replaced atomically).
func (w *Workspace) WriteFile(rel string, data []byte) error {
	if clean, err := cleanRel(rel); err != nil {
		return err
	} else if len(data) > MaxFileSize {
		return fmt.Errorf("%w: %q is %d bytes (max %d)", ErrTooLarge, clean, len(data), MaxFileSize)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	r, clean, fi, err := w.resolve(rel)
	if err != nil {
		return err
	}
	defer r.Close()
	if irregular(fi) {
		return fmt.Errorf("%w: %q: existing %s is not a regular file", ErrUnsafePath, clean, fi.Mode().Type())
	}
	if dir := path.Dir(clean); dir != "." {
		// os.Root refuses to leave the root even if a component were swapped
		// for a symlink between the check above and here.
		if err := r.MkdirAll(dir, dirMode); err != nil {
			return fmt.Errorf("workspace: mkdir %s: %w", dir, err)
		}
		if _, err := checkNoSymlink(r, dir); err != nil {
			return err
		}
	}
	tmp := path.Join(path.Dir(clean), fmt.Sprintf(".catalyst-tmp-%d-%d", os.Getpid(), time.Now().UnixNano()))
	f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, fileMode)
	if err != nil {
		return fmt.Errorf("workspace: write %s: %w", clean, err)
	}
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = r.Chmod(tmp, fileMode) // umask may have narrowed it
	}
	if werr == nil {
		werr = r.Rename(tmp, clean)
	}
	if werr != nil {
		_ = r.Remove(tmp)
		return fmt.Errorf("workspace: write %s: %w", clean, werr)
	}
	return nil
}

// ReadFile returns the content of rel. A missing file yields an error
// satisfying errors.Is(err, fs.ErrNotExist); unsafe paths ErrUnsafePath.
func (w *Workspace) ReadFile(rel string) ([]byte, error) {
	r, clean, fi, err := w.resolve(rel)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if fi == nil {
		return nil, fmt.Errorf("workspace: read %s: %w", clean, fs.ErrNotExist)
	}
	if irregular(fi) {
		return nil, fmt.Errorf("%w: %q: not a regular file", ErrUnsafePath, clean)
	}
	// O_NONBLOCK: should the file have been swapped for a FIFO, open does not hang.
	f, err := r.OpenFile(clean, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("workspace: read %s: %w", clean, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %q: not a regular file", ErrUnsafePath, clean)
	}
	return io.ReadAll(f)
}

// Remove deletes the file rel. Removing a missing file yields fs.ErrNotExist.
// Directories left empty are removed too.
func (w *Workspace) Remove(rel string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, clean, fi, err := w.resolve(rel)
	if err != nil {
		return err
	}
	defer r.Close()
	if fi == nil {
		return fmt.Errorf("workspace: remove %s: %w", clean, fs.ErrNotExist)
	}
	if fi.IsDir() {
		return fmt.Errorf("%w: %q: is a directory", ErrUnsafePath, clean)
	}
	if err := r.Remove(clean); err != nil {
		return fmt.Errorf("workspace: remove %s: %w", clean, err)
	}
	for dir := path.Dir(clean); dir != "."; dir = path.Dir(dir) {
		if r.Remove(dir) != nil { // fails when not empty: stop
			break
		}
	}
	return nil
}

// walk calls fn for every regular file outside .git, in lexical order.
// Symlinks and special files are skipped: they are never listed, zipped or served.
func (w *Workspace) walk(fn func(rel string, fi fs.FileInfo) error) error {
	return filepath.WalkDir(w.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == w.root {
			return nil
		}
		rel, err := filepath.Rel(w.root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasPrefix(path.Base(rel), ".catalyst-tmp-") {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		return fn(rel, fi)
	})
}

// List returns every regular file of the workspace except .git, sorted by path.
func (w *Workspace) List() ([]File, error) {
	files := []File{}
	err := w.walk(func(rel string, fi fs.FileInfo) error {
		files = append(files, File{Path: rel, Size: fi.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("workspace: list: %w", err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// Zip writes a zip archive of every file List returns (paths relative to the
// root, slash-separated) to out.
func (w *Workspace) Zip(out io.Writer) error {
	files, err := w.List()
	if err != nil {
		return err
	}
	zw := zip.NewWriter(out)
	for _, f := range files {
		data, err := w.ReadFile(f.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return err
		}
		hdr := &zip.FileHeader{Name: f.Path, Method: zip.Deflate, Modified: time.Now().UTC()}
		hdr.SetMode(fileMode)
		fw, err := zw.CreateHeader(hdr)
		if err != nil {
			return fmt.Errorf("workspace: zip: %w", err)
		}
		if _, err := fw.Write(data); err != nil {
			return fmt.Errorf("workspace: zip: %w", err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("workspace: zip: %w", err)
	}
	return nil
}

// Head returns the SHA of HEAD, or "" when nothing was committed yet.
func (w *Workspace) Head() (string, error) {
	ref, err := w.repo.Head()
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("workspace: head: %w", err)
	}
	return ref.Hash().String(), nil
}

// Commit stages every change (additions, modifications, deletions; .gitignore
// honoured) and commits it. If the staged tree equals HEAD's tree, nothing is
// created and HEAD's SHA is returned with created=false — so a deployer that
// crashed after committing and runs again gets the same SHA. The very first
// commit of an empty workspace is created (empty) so there is always a SHA.
func (w *Workspace) Commit(message string, author Signature) (sha string, created bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wt, err := w.repo.Worktree()
	if err != nil {
		return "", false, fmt.Errorf("workspace: commit: %w", err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return "", false, fmt.Errorf("workspace: stage: %w", err)
	}
	head, err := w.Head()
	if err != nil {
		return "", false, err
	}
	if author.Name == "" {
		author.Name = "Catalyst"
	}
	if author.Email == "" {
		author.Email = "catalyst@localhost"
	}
	if strings.TrimSpace(message) == "" {
		message = "Catalyst commit"
	}
	sig := &object.Signature{Name: author.Name, Email: author.Email, When: time.Now()}
	h, err := wt.Commit(message, &git.CommitOptions{
		Author:            sig,
		Committer:         sig,
		AllowEmptyCommits: head == "",
	})
	if errors.Is(err, git.ErrEmptyCommit) && head != "" {
		return head, false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("workspace: commit: %w", err)
	}
	return h.String(), true, nil
}

// Push pushes HEAD to branch of remoteURL by running the git CLI (go-git's
// in-process transports are not used). The token, if any, is handed to git
// through a credential helper reading it from the environment: it is never in
// argv, and it is redacted from any error. Pushing a commit the remote branch
// already has succeeds ("Everything up-to-date"), so Push is idempotent.
func (w *Workspace) Push(ctx context.Context, remoteURL, branch, token string) error {
	if remoteURL == "" || branch == "" {
		return errors.New("workspace: push: remote URL and branch are required")
	}
	if strings.HasPrefix(remoteURL, "-") || strings.HasPrefix(branch, "-") ||
		strings.ContainsAny(branch, " ~^:?*[\\\x00") || strings.Contains(branch, "..") {
		return fmt.Errorf("workspace: push: invalid remote or branch %q", branch)
	}
	head, err := w.Head()
	if err != nil {
		return err
	}
	if head == "" {
		return errors.New("workspace: push: nothing committed")
	}
	gitBin, err := lookGit()
	if err != nil {
		return err
	}
	cmd := gitCommand(ctx, gitBin, "-C", w.root, "push", "--porcelain", remoteURL, head+":refs/heads/"+branch)
	cmd.Env = gitEnv(token)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := redact(strings.TrimSpace(out.String()), token, remoteURL)
		if ctx.Err() != nil {
			return fmt.Errorf("workspace: push to %s: %w", redactURL(remoteURL), ctx.Err())
		}
		return fmt.Errorf("workspace: push to %s: %v: %s", redactURL(remoteURL), err, msg)
	}
	return nil
}
