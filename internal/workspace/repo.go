package workspace

// Existing repositories: a task of kind change starts from a clone of the
// project's repository, and its diff, commit and patch are git's own, so
// that the branch holds exactly the change on top of the base (symlinks,
// modes and ignored files as git sees them, not as List does).
//
// The repository is hostile: it is cloned and read with the git CLI under
// a configuration of our own only — hooks off, no submodules, no
// filters or external diff drivers, no transport but http(s), git and ssh,
// objects checked — capped in size and time, and its credential reaches git
// only through the environment of the credential helper.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// Clone limits (CloneOptions' zero values).
const (
	DefaultCloneMaxBytes = 512 << 20
	DefaultCloneTimeout  = 3 * time.Minute
)

// ErrCloneTooLarge is returned when a clone exceeds its size cap.
var ErrCloneTooLarge = errors.New("workspace: repository too large")

// CloneOptions describe a clone.
type CloneOptions struct {
	URL string
	// Dir must not exist or be empty.
	Dir string
	// Branch is created at the base and checked out (catalyst/task-<id>).
	Branch string
	// Ref is the branch to clone; "" is the remote's default branch.
	Ref string
	// Token, if any, is given to git's credential helper through its
	// environment: never argv, never .git/config.
	Token string
	// MaxBytes caps the clone on disk (.git included); Timeout its time.
	MaxBytes int64
	Timeout  time.Duration
}

// CloneResult says what was cloned.
type CloneResult struct {
	BaseSHA    string `json:"base_sha"`
	BaseBranch string `json:"base_branch"`
	Branch     string `json:"branch"`
	Files      int    `json:"files"`
	Bytes      int64  `json:"bytes"`
	// Symlinks counts the repository's symbolic links; the workspace never
	// reads or writes through one, and tests see only those that stay inside.
	Symlinks int `json:"symlinks"`
	// OutwardLinks lists the links to absolute paths or out of the tree:
	// they are left out of the working tree (git's skip-worktree, so the
	// change neither shows nor commits their absence) and never followed.
	OutwardLinks []string `json:"outward_links,omitempty"`
}

// hardened is the git configuration every command on a cloned repository
// runs with. A repository cannot set any of it: .git/config is written by
// our clone, and the user's and system's configurations are not read.
var hardened = [][2]string{
	{"core.hooksPath", "/dev/null"},
	{"core.fsmonitor", "false"},
	{"core.pager", "cat"},
	{"core.askPass", ""},
	{"diff.external", ""},
	{"submodule.recurse", "false"},
	{"fetch.recurseSubmodules", "false"},
	{"protocol.allow", "never"},
	{"protocol.http.allow", "always"},
	{"protocol.https.allow", "always"},
	{"protocol.git.allow", "always"},
	{"protocol.ssh.allow", "always"},
	{"transfer.fsckObjects", "true"},
	{"commit.gpgSign", "false"},
	{"tag.gpgSign", "false"},
	{"gc.auto", "0"},
	{"init.templateDir", ""},
	{"advice.detachedHead", "false"},
}

// runGit runs git in dir under the hardened configuration and returns its
// standard output; a failure carries its standard error with token and
// credentials redacted.
func runGit(ctx context.Context, dir, token, remote string, extraEnv []string, args ...string) (string, error) {
	gitBin, err := lookGit()
	if err != nil {
		return "", err
	}
	full := args
	if dir != "" {
		full = append([]string{"-C", dir}, args...)
	}
	cmd := exec.CommandContext(ctx, gitBin, full...)
	cmd.Env = append(gitEnv(token, hardened...), "GIT_ALLOW_PROTOCOL=http:https:git:ssh", "GIT_PROTOCOL_FROM_USER=0")
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("git %s: %w", args[0], ctx.Err())
		}
		return out.String(), fmt.Errorf("git %s: %v: %s", args[0], err, redact(strings.TrimSpace(errb.String()), token, remote))
	}
	return out.String(), nil
}

// Clone clones opt.URL (shallow, one branch, no tags, no submodules) into
// opt.Dir and checks out opt.Branch at its head. The clone is killed and
// removed when it grows past MaxBytes or outlives Timeout.
func Clone(ctx context.Context, opt CloneOptions) (CloneResult, error) {
	res := CloneResult{Branch: opt.Branch}
	if opt.URL == "" || strings.HasPrefix(opt.URL, "-") || strings.HasPrefix(opt.Ref, "-") {
		return res, errors.New("workspace: clone: invalid repository URL or ref")
	}
	if err := checkBranch(opt.Branch); err != nil {
		return res, err
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = DefaultCloneMaxBytes
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultCloneTimeout
	}
	if ents, err := os.ReadDir(opt.Dir); err == nil && len(ents) > 0 {
		return res, fmt.Errorf("workspace: clone: %s is not empty", opt.Dir)
	}
	if err := os.MkdirAll(filepath.Dir(opt.Dir), dirMode); err != nil {
		return res, err
	}
	cctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	var tooBig atomic.Bool
	done := make(chan struct{})
	go func() {
		// git gives no size limit of its own: watch the directory grow.
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if n, _, _ := treeSize(opt.Dir); n > opt.MaxBytes {
					tooBig.Store(true)
					cancel()
					return
				}
			}
		}
	}()
	args := []string{"clone", "--quiet", "--depth", "1", "--single-branch", "--no-tags", "--template=", "--config", "core.hooksPath=/dev/null"}
	if opt.Ref != "" {
		args = append(args, "--branch", opt.Ref)
	}
	args = append(args, "--", opt.URL, opt.Dir)
	_, err := runGit(cctx, "", opt.Token, opt.URL, nil, args...)
	close(done)
	fail := func(err error) (CloneResult, error) {
		os.RemoveAll(opt.Dir)
		return res, err
	}
	switch {
	case tooBig.Load():
		return fail(fmt.Errorf("%w: the clone of %s passed %d bytes", ErrCloneTooLarge, redactURL(opt.URL), opt.MaxBytes))
	case err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		return fail(fmt.Errorf("workspace: clone of %s did not finish within %s", redactURL(opt.URL), opt.Timeout))
	case err != nil:
		return fail(fmt.Errorf("workspace: clone of %s: %w", redactURL(opt.URL), err))
	}
	size, files, links := treeSize(opt.Dir)
	if size > opt.MaxBytes {
		return fail(fmt.Errorf("%w: the clone of %s is %d bytes (max %d)", ErrCloneTooLarge, redactURL(opt.URL), size, opt.MaxBytes))
	}
	res.Bytes, res.Files, res.Symlinks = size, files, links
	if res.OutwardLinks, err = dropOutwardLinks(ctx, opt.Dir); err != nil {
		return fail(err)
	}
	if out, err := runGit(ctx, opt.Dir, "", "", nil, "symbolic-ref", "--quiet", "--short", "HEAD"); err == nil {
		res.BaseBranch = strings.TrimSpace(out)
	}
	out, err := runGit(ctx, opt.Dir, "", "", nil, "rev-parse", "--verify", "HEAD^{commit}")
	if err != nil {
		return fail(fmt.Errorf("workspace: clone of %s has no commit: %w", redactURL(opt.URL), err))
	}
	res.BaseSHA = strings.TrimSpace(out)
	if _, err := runGit(ctx, opt.Dir, "", "", nil, "checkout", "--quiet", "-b", opt.Branch); err != nil {
		return fail(err)
	}
	return res, nil
}

// dropOutwardLinks removes from the working tree the symlinks whose target
// is absolute or leaves the tree, marking them skip-worktree so that git
// keeps them as they are in the base. A workspace snapshot refuses such
// links, and nothing should ever follow one.
func dropOutwardLinks(ctx context.Context, dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" && filepath.Dir(p) == dir {
			return filepath.SkipDir
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		inside := filepath.Join(filepath.Dir(rel), target)
		if filepath.IsAbs(target) || inside == ".." || strings.HasPrefix(inside, "../") {
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil || len(out) == 0 {
		return out, err
	}
	if _, err := runGit(ctx, dir, "", "", nil, append([]string{"update-index", "--skip-worktree", "--"}, out...)...); err != nil {
		return nil, err
	}
	for _, rel := range out {
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// treeSize sums the sizes of the regular files under dir and counts the
// files outside .git and the symlinks; it never follows a link.
func treeSize(dir string) (size int64, files, links int) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		switch t := d.Type(); {
		case t.IsRegular():
			if fi, err := d.Info(); err == nil {
				size += fi.Size()
			}
			if !strings.Contains(filepath.ToSlash(p[len(dir):])+"/", "/.git/") {
				files++
			}
		case t&fs.ModeSymlink != 0:
			links++
		}
		return nil
	})
	return size, files, links
}

func checkBranch(b string) error {
	if b == "" || strings.HasPrefix(b, "-") || strings.ContainsAny(b, " ~^:?*[\\\x00") || strings.Contains(b, "..") ||
		strings.HasSuffix(b, "/") || strings.HasSuffix(b, ".lock") {
		return fmt.Errorf("workspace: invalid branch name %q", b)
	}
	return nil
}

func checkRev(rev string) error {
	if rev == "" || strings.HasPrefix(rev, "-") || strings.ContainsAny(rev, " \x00") {
		return fmt.Errorf("workspace: invalid revision %q", rev)
	}
	return nil
}

// DiffOptions shape ChangeDiff.
type DiffOptions struct {
	// Context lines around each hunk (git's -U).
	Context int
	// Functions widens each hunk to the whole function it touches (-W).
	Functions bool
}

// ChangeDiff returns the unified diff from base to the working tree, new
// files included and ignored files not, as the commit would record it. It
// stages into a scratch copy of the index (which keeps the skip-worktree
// marks of dropped links), so the real index is left alone.
func (w *Workspace) ChangeDiff(ctx context.Context, base string, opt DiffOptions) (string, error) {
	if err := checkRev(base); err != nil {
		return "", err
	}
	idx, err := os.CreateTemp("", "catalyst-index-")
	if err != nil {
		return "", err
	}
	defer os.Remove(idx.Name())
	real, err := os.ReadFile(filepath.Join(w.root, ".git", "index"))
	if err == nil {
		_, err = idx.Write(real)
	}
	if cerr := idx.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("workspace: diff: %w", err)
	}
	env := []string{"GIT_INDEX_FILE=" + idx.Name()}
	if _, err := runGit(ctx, w.root, "", "", env, "add", "-A", "--", "."); err != nil {
		return "", err
	}
	args := []string{"diff", "--cached", "--no-color", "--no-ext-diff", "--no-textconv", fmt.Sprintf("-U%d", max(0, opt.Context))}
	if opt.Functions {
		args = append(args, "--function-context")
	}
	return runGit(ctx, w.root, "", "", env, append(args, base, "--")...)
}

// CommitChange records the working tree's changes (git add -A) as one
// commit on the current branch, authored by author. With nothing to
// commit it returns HEAD and created=false, so a deployer run again after
// a crash finds its commit instead of making a second one.
func (w *Workspace) CommitChange(ctx context.Context, message string, author Signature) (sha string, created bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := runGit(ctx, w.root, "", "", nil, "add", "-A", "--", "."); err != nil {
		return "", false, err
	}
	if _, err := runGit(ctx, w.root, "", "", nil, "diff", "--cached", "--quiet", "--no-ext-diff"); err == nil {
		out, err := runGit(ctx, w.root, "", "", nil, "rev-parse", "HEAD")
		return strings.TrimSpace(out), false, err
	}
	env := []string{
		"GIT_AUTHOR_NAME=" + author.Name, "GIT_AUTHOR_EMAIL=" + author.Email,
		"GIT_COMMITTER_NAME=" + author.Name, "GIT_COMMITTER_EMAIL=" + author.Email,
	}
	if _, err := runGit(ctx, w.root, "", "", env, "commit", "--quiet", "--no-verify", "-m", message); err != nil {
		return "", false, err
	}
	out, err := runGit(ctx, w.root, "", "", nil, "rev-parse", "HEAD")
	return strings.TrimSpace(out), err == nil, err
}

// FormatPatch returns commit sha as git format-patch text (an mbox a
// person applies with git am).
func (w *Workspace) FormatPatch(ctx context.Context, sha string) (string, error) {
	if err := checkRev(sha); err != nil {
		return "", err
	}
	return runGit(ctx, w.root, "", "", nil, "format-patch", "-1", "--stdout", "--no-color", "--no-ext-diff", "--no-textconv", "--no-signature", sha, "--")
}

// CommitsSince counts the commits from base to HEAD.
func (w *Workspace) CommitsSince(ctx context.Context, base string) (int, error) {
	if err := checkRev(base); err != nil {
		return 0, err
	}
	out, err := runGit(ctx, w.root, "", "", nil, "rev-list", "--count", base+"..HEAD")
	if err != nil {
		return 0, err
	}
	var n int
	_, err = fmt.Sscanf(strings.TrimSpace(out), "%d", &n)
	return n, err
}

// PushBranch pushes HEAD to branch of remote under the hardened
// configuration (no hooks, only network transports); token reaches git
// only through its credential helper's environment. Pushing what the
// remote branch already has succeeds, so a resumed deployer may push again.
func (w *Workspace) PushBranch(ctx context.Context, remote, branch, token string) error {
	if remote == "" || strings.HasPrefix(remote, "-") {
		return errors.New("workspace: push: invalid remote")
	}
	if err := checkBranch(branch); err != nil {
		return err
	}
	if _, err := runGit(ctx, w.root, token, remote, nil, "push", "--quiet", "--no-verify", "--", remote, "HEAD:refs/heads/"+branch); err != nil {
		return fmt.Errorf("workspace: push to %s: %w", redactURL(remote), err)
	}
	return nil
}
