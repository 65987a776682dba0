package api

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/catalyst/catalyst/internal/workspace"
)

// The previews read a task's workspace through the workspace package's
// path-safety (workspace.Resolve on an os.Root), the same that the files API
// and the coder use. The preview adds one serving rule of its own: no dot
// entry (.env, .git, ...) is served to the web, even though the file list
// shows it.

// cleanRel validates a slash-separated relative path from a preview URL.
func cleanRel(rel string) (string, error) {
	clean, err := workspace.CheckPath(rel, workspace.Read)
	if err != nil {
		return "", err
	}
	for _, comp := range strings.Split(clean, "/") {
		if strings.HasPrefix(comp, ".") {
			return "", &workspace.PathError{Path: rel, Reason: "names a hidden entry, which previews never serve"}
		}
	}
	return clean, nil
}

// taskRoot opens the workspace directory; a missing one yields fs.ErrNotExist.
func taskRoot(dir string) (*os.Root, error) {
	if dir == "" {
		return nil, fs.ErrNotExist
	}
	return os.OpenRoot(dir)
}

// lstatNoSymlink stats rel inside root, refusing a symlink at any component;
// a missing entry yields fs.ErrNotExist.
func lstatNoSymlink(root *os.Root, rel string) (fs.FileInfo, error) {
	clean, fi, err := workspace.Resolve(root, rel, workspace.Read)
	if err != nil {
		return nil, err
	}
	if fi == nil {
		return nil, fmt.Errorf("%s: %w", workspace.QuotePath(clean), fs.ErrNotExist)
	}
	return fi, nil
}

// openRegular opens rel for reading if it is a regular file (no symlink, no
// device, no FIFO); anything else reads as missing.
func openRegular(root *os.Root, rel string) (*os.File, fs.FileInfo, error) {
	f, st, err := workspace.OpenRegular(root, rel)
	if errors.Is(err, workspace.ErrUnsafePath) {
		return nil, nil, fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	return f, st, err
}
