package api

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// This file reads a task's workspace for the previews. It is read-only and
// stricter than the workspace package (which the files API uses): lexical
// checks first (no absolute paths, no "..", no NUL/control characters, no
// .git or any other dot entry such as .env), then every access goes through
// an os.Root, with symlinks refused.

// errUnsafePath marks a requested path that is refused before any I/O.
var errUnsafePath = errors.New("unsafe path")

// cleanRel validates a slash-separated relative path from a URL.
func cleanRel(rel string) (string, error) {
	if rel == "" || len(rel) > 1024 {
		return "", fmt.Errorf("%w: empty or too long", errUnsafePath)
	}
	if strings.HasPrefix(rel, "/") || strings.Contains(rel, `\`) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("%w: %q is absolute", errUnsafePath, rel)
	}
	for _, r := range rel {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%w: control character in path", errUnsafePath)
		}
	}
	for _, comp := range strings.Split(rel, "/") {
		switch {
		case comp == "" || comp == ".":
			return "", fmt.Errorf("%w: %q has an empty component", errUnsafePath, rel)
		case comp == "..":
			return "", fmt.Errorf("%w: %q leaves the workspace", errUnsafePath, rel)
		case strings.HasPrefix(comp, "."):
			// .git and other dot entries (.env, ...) are never served.
			return "", fmt.Errorf("%w: %q names a hidden entry", errUnsafePath, rel)
		}
	}
	return path.Clean(rel), nil
}

// taskRoot opens the workspace directory; a missing one yields fs.ErrNotExist.
func taskRoot(dir string) (*os.Root, error) {
	if dir == "" {
		return nil, fs.ErrNotExist
	}
	return os.OpenRoot(dir)
}

// lstatNoSymlink stats rel inside root, refusing a symlink at any component.
func lstatNoSymlink(root *os.Root, rel string) (fs.FileInfo, error) {
	comps := strings.Split(rel, "/")
	var fi fs.FileInfo
	for i := range comps {
		var err error
		fi, err = root.Lstat(strings.Join(comps[:i+1], "/"))
		if err != nil {
			return nil, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%w: %q passes through a symlink", errUnsafePath, rel)
		}
	}
	return fi, nil
}

// openRegular opens rel for reading if it is a regular file (no symlink, no
// device, no FIFO).
func openRegular(root *os.Root, rel string) (*os.File, fs.FileInfo, error) {
	fi, err := lstatNoSymlink(root, rel)
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fi, fmt.Errorf("%s: %w", rel, fs.ErrNotExist)
	}
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", rel, fs.ErrNotExist)
	}
	return f, st, nil
}
