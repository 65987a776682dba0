// Package workspace holds the generated files of one task: a directory that is
// also a git repository (go-git v5).
//
// Paths handed to a Workspace come from a language model and are untrusted.
// Every method that takes a path goes through Resolve (paths.go), the one
// path-safety implementation that the files API and the previews use too: a
// lexical check, then a walk inside an os.Root refusing any symlink on the
// way. Writes are atomic (scratch file + rename inside the same directory),
// so a pre-existing hard link or symlink at the target is replaced, never
// written through. What List shows is what the zip holds, what the reviewer
// reads and what Commit records.
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
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/object"
)

var (
	// ErrUnsafePath matches every *PathError: a path CheckPath refuses, one
	// that passes through a symlink, or one naming an existing non-regular
	// file (device, FIFO, socket, directory) where a file is needed.
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

// resolve opens the root and resolves rel inside it (see Resolve). fi is
// nil when the target does not exist. The caller closes r.
func (w *Workspace) resolve(rel string, access Access) (r *os.Root, clean string, fi fs.FileInfo, err error) {
	if r, err = os.OpenRoot(w.root); err != nil {
		return nil, "", nil, fmt.Errorf("workspace: %w", err)
	}
	if clean, fi, err = Resolve(r, rel, access); err != nil {
		r.Close()
		return nil, "", nil, err
	}
	return r, clean, fi, nil
}

// WriteFile writes data to rel (mode 0644), creating parent directories.
// It refuses unsafe paths and reserved scratch names (ErrUnsafePath) and
// content over MaxFileSize (ErrTooLarge); it never follows a symlink and
// never writes through an existing hard link (the file is replaced
// atomically).
func (w *Workspace) WriteFile(rel string, data []byte) error {
	if clean, err := CheckPath(rel, Write); err != nil {
		return err
	} else if len(data) > MaxFileSize {
		return fmt.Errorf("%w: %s is %d bytes (max %d)", ErrTooLarge, QuotePath(clean), len(data), MaxFileSize)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	r, clean, fi, err := w.resolve(rel, Write)
	if err != nil {
		return err
	}
	defer r.Close()
	if fi != nil && !fi.Mode().IsRegular() {
		return &PathError{Path: clean, Reason: "existing " + fileType(fi) + " is not a regular file"}
	}
	if dir := path.Dir(clean); dir != "." {
		// os.Root refuses to leave the root even if a component were swapped
		// for a symlink between the check above and here.
		if err := r.MkdirAll(dir, dirMode); err != nil {
			return fmt.Errorf("workspace: mkdir %s: %w", QuotePath(dir), err)
		}
		if _, _, err := Resolve(r, dir, Write); err != nil {
			return err
		}
	}
	// The scratch file lives beside its target so that the rename is atomic;
	// CheckPath reserves its prefix, so no model file can pass for one.
	tmp := path.Join(path.Dir(clean), fmt.Sprintf("%s%d-%d", ScratchPrefix, os.Getpid(), time.Now().UnixNano()))
	f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, fileMode)
	if err != nil {
		return fmt.Errorf("workspace: write %s: %w", QuotePath(clean), err)
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
		return fmt.Errorf("workspace: write %s: %w", QuotePath(clean), werr)
	}
	return nil
}

func fileType(fi fs.FileInfo) string {
	switch t := fi.Mode().Type(); {
	case t.IsDir():
		return "directory"
	case t&fs.ModeNamedPipe != 0:
		return "FIFO"
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// ReadFile returns the content of rel. A missing file yields an error
// satisfying errors.Is(err, fs.ErrNotExist); unsafe paths ErrUnsafePath.
func (w *Workspace) ReadFile(rel string) ([]byte, error) {
	r, err := os.OpenRoot(w.root)
	if err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	defer r.Close()
	f, _, err := OpenRegular(r, rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Remove deletes the file rel. Removing a missing file yields fs.ErrNotExist.
// Directories left empty are removed too.
func (w *Workspace) Remove(rel string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, clean, fi, err := w.resolve(rel, Write)
	if err != nil {
		return err
	}
	defer r.Close()
	if fi == nil {
		return fmt.Errorf("workspace: remove %s: %w", QuotePath(clean), fs.ErrNotExist)
	}
	if fi.IsDir() {
		return &PathError{Path: clean, Reason: "is a directory"}
	}
	if err := r.Remove(clean); err != nil {
		return fmt.Errorf("workspace: remove %s: %w", QuotePath(clean), err)
	}
	for dir := path.Dir(clean); dir != "."; dir = path.Dir(dir) {
		if r.Remove(dir) != nil { // fails when not empty: stop
			break
		}
	}
	return nil
}

// walk calls fn for every regular file outside .git whose path CheckPath
// accepts for reading, in lexical order. Nothing else is skipped — scratch
// names and dot files included — so what List shows is every file a test
// run can execute and Commit can record. Symlinks, special files and names
// no workspace operation accepts are never listed, zipped, served or
// committed.
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
		if _, err := CheckPath(rel, Read); err != nil {
			if d.IsDir() {
				return filepath.SkipDir // .git, and directories no path may name
			}
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() {
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

// Commit records exactly the files List shows (additions, modifications,
// deletions; .gitignore honoured for files HEAD does not track) and commits
// them. Nothing List leaves out — a symlink, a special file, a nested .git,
// a name no workspace operation accepts — is ever committed or pushed. If the staged tree equals HEAD's tree, nothing is
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
	head, err := w.Head()
	if err != nil {
		return "", false, err
	}
	if err := w.stage(head); err != nil {
		return "", false, fmt.Errorf("workspace: stage: %w", err)
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

// stage replaces the index with the files List returns, so the commit holds
// nothing the file list, the zip and the reviewer did not see. go-git's
// AddWithOptions is not used: it stages symlinks and whatever else lies in
// the tree, and hashing a FIFO there would block.
func (w *Workspace) stage(head string) error {
	files, err := w.List()
	if err != nil {
		return err
	}
	tracked := map[string]bool{}
	if head != "" {
		c, err := w.repo.CommitObject(plumbing.NewHash(head))
		if err != nil {
			return err
		}
		tree, err := c.Tree()
		if err != nil {
			return err
		}
		if err := tree.Files().ForEach(func(f *object.File) error { tracked[f.Name] = true; return nil }); err != nil {
			return err
		}
	}
	ignored, err := w.ignoreMatcher(files)
	if err != nil {
		return err
	}
	r, err := os.OpenRoot(w.root)
	if err != nil {
		return err
	}
	defer r.Close()
	idx := &index.Index{Version: 2}
	for _, f := range files {
		if !tracked[f.Path] && ignored.Match(strings.Split(f.Path, "/"), false) {
			continue
		}
		e, err := w.stageFile(r, f.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return err
		}
		idx.Entries = append(idx.Entries, e)
	}
	return w.repo.Storer.SetIndex(idx)
}

// stageFile stores the blob of one listed file and returns its index entry.
func (w *Workspace) stageFile(r *os.Root, rel string) (*index.Entry, error) {
	f, st, err := OpenRegular(r, rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	obj := w.repo.Storer.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(st.Size())
	ow, err := obj.Writer()
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(ow, f); err != nil {
		ow.Close()
		return nil, err
	}
	if err := ow.Close(); err != nil {
		return nil, err
	}
	h, err := w.repo.Storer.SetEncodedObject(obj)
	if err != nil {
		return nil, err
	}
	mode := filemode.Regular
	if st.Mode()&0o111 != 0 {
		mode = filemode.Executable
	}
	return &index.Entry{Name: rel, Hash: h, Mode: mode, Size: uint32(st.Size()), ModifiedAt: st.ModTime()}, nil
}

// ignoreMatcher builds the .gitignore rules from the listed .gitignore files
// only, read through OpenRegular (go-git's own reader follows symlinks and
// would block on a FIFO named .gitignore).
func (w *Workspace) ignoreMatcher(files []File) (gitignore.Matcher, error) {
	var ps []gitignore.Pattern
	for _, f := range files {
		if path.Base(f.Path) != ".gitignore" {
			continue
		}
		data, err := w.ReadFile(f.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var domain []string
		if dir := path.Dir(f.Path); dir != "." {
			domain = strings.Split(dir, "/")
		}
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimRight(line, "\r")
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			ps = append(ps, gitignore.ParsePattern(line, domain))
		}
	}
	return gitignore.NewMatcher(ps), nil
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
