package workspace

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/catalyst/catalyst/internal/domain"
)

// This file is the one path-safety implementation of Catalyst: the
// workspace's own reads and writes, the files API, the previews and the
// coder's model-supplied paths all go through Resolve (or its lexical half,
// CheckPath), so a rule added here holds everywhere.

// ScratchPrefix starts the names of the workspace's own temporary files
// (written, then renamed over their target). Model paths may not use it: a
// file the model names so would look like an internal one.
const ScratchPrefix = ".catalyst-tmp-"

// Access says what a path is resolved for.
type Access int

const (
	// Read resolves a path to read or serve.
	Read Access = iota
	// Write resolves a path that will be created, replaced or removed; it
	// also refuses reserved scratch names.
	Write
)

// PathError is an unsafe path and why it was refused. It matches
// ErrUnsafePath with errors.Is.
type PathError struct {
	Path   string
	Reason string
}

// maxQuotedPath caps how much of a refused path an error message repeats:
// the path is hostile input and may be megabytes long.
const maxQuotedPath = 200

func (e *PathError) Error() string {
	return fmt.Sprintf("%v: %s: %s", ErrUnsafePath, QuotePath(e.Path), e.Reason)
}

// Is makes errors.Is(err, ErrUnsafePath) hold.
func (e *PathError) Is(target error) bool { return target == ErrUnsafePath }

// QuotePath renders an untrusted path for a message or a log: ASCII-only
// (so bidi and invisible characters show as escapes, never act on the text
// around them) and cut after maxQuotedPath bytes of input.
func QuotePath(p string) string {
	if len(p) <= maxQuotedPath {
		return strconv.QuoteToASCII(p)
	}
	cut := maxQuotedPath
	for cut > 0 && !utf8.RuneStart(p[cut]) {
		cut--
	}
	return strconv.QuoteToASCII(p[:cut]) + fmt.Sprintf("… (%d bytes)", len(p))
}

func unsafePath(rel, why string) error { return &PathError{Path: rel, Reason: why} }

// invisible reports runes that change how a path displays or compares
// without showing: bidi controls, zero-width and other format characters
// (Unicode Cf, which also hides ".git" from a case-folding filesystem), and
// the line and paragraph separators.
func invisible(r rune) bool {
	return domain.IsBidiControl(r) || unicode.Is(unicode.Cf, r) || r == 0x2028 || r == 0x2029
}

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

// gitDir reports a component that git or a filesystem treats as ".git":
// any case, trailing dots or spaces (Windows strips them) and the 8.3 short
// name GIT~1 (CVE-2014-9390).
func gitDir(comp string) bool {
	c := strings.ToLower(strings.TrimRight(comp, ". "))
	return c == ".git" || c == "git~1"
}

// CheckPath validates an untrusted relative path lexically and returns it in
// canonical slash form ("a/b/c"); empty and "." components are dropped.
// It refuses: empty, over-long paths or components, invalid UTF-8, NUL and
// other control characters, bidi and invisible formatting characters,
// backslashes, absolute paths and drive letters, "..", anything inside .git,
// Windows device names and, for Write, reserved scratch names.
func CheckPath(rel string, access Access) (string, error) {
	bad := func(why string) (string, error) { return "", unsafePath(rel, why) }
	if rel == "" {
		return bad("empty")
	}
	if len(rel) > maxPathLen {
		return bad(fmt.Sprintf("longer than %d bytes", maxPathLen))
	}
	if !utf8.ValidString(rel) {
		return bad("not valid UTF-8")
	}
	for _, r := range rel {
		switch {
		case r == 0:
			return bad("NUL byte")
		case r < 0x20 || r >= 0x7f && r <= 0x9f:
			return bad("control character")
		case invisible(r):
			return bad(fmt.Sprintf("bidirectional or invisible formatting character U+%04X", r))
		case r == '\\':
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
			return bad(fmt.Sprintf("a component is longer than %d bytes", maxComponentLen))
		case gitDir(c):
			return bad("inside .git")
		case windowsDevice(c):
			return bad("Windows device name")
		case access == Write && strings.HasPrefix(strings.ToLower(c), ScratchPrefix):
			return bad("reserved name (" + ScratchPrefix + "… is the workspace's own scratch file)")
		}
		parts = append(parts, c)
	}
	if len(parts) == 0 {
		return bad("names the root")
	}
	return strings.Join(parts, "/"), nil
}

// Resolve validates rel with CheckPath and walks it inside root with Lstat,
// refusing any existing component that is a symlink (to a file or a
// directory, pointing inside or out) and any intermediate one that is not a
// directory. It returns the canonical path and the Lstat of the target, nil
// when the target does not exist; what the target may be (a regular file, a
// directory) is the caller's decision.
//
// Every later access must go through the same os.Root: should a component
// be swapped for a symlink after this check, the root still refuses to leave.
func Resolve(root *os.Root, rel string, access Access) (string, fs.FileInfo, error) {
	clean, err := CheckPath(rel, access)
	if err != nil {
		return "", nil, err
	}
	parts := strings.Split(clean, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		fi, err := root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return clean, nil, nil
		}
		if err != nil {
			if errors.Is(err, syscall.ENOTDIR) {
				return "", nil, unsafePath(clean, "a parent is not a directory")
			}
			return "", nil, fmt.Errorf("workspace: %s: %w", QuotePath(clean), err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return "", nil, unsafePath(clean, "passes through a symlink")
		}
		if i == len(parts)-1 {
			return clean, fi, nil
		}
		if !fi.IsDir() {
			return "", nil, unsafePath(clean, p+" is not a directory")
		}
	}
	return clean, nil, nil
}

// OpenRegular resolves rel for reading and opens it if it is a regular file.
// A missing file yields fs.ErrNotExist; a directory, device, FIFO or socket
// yields ErrUnsafePath. The open never follows a symlink and never blocks
// (a FIFO swapped in after the check does not hang it).
func OpenRegular(root *os.Root, rel string) (*os.File, fs.FileInfo, error) {
	clean, fi, err := Resolve(root, rel, Read)
	if err != nil {
		return nil, nil, err
	}
	if fi == nil {
		return nil, nil, fmt.Errorf("workspace: %s: %w", QuotePath(clean), fs.ErrNotExist)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, unsafePath(clean, "not a regular file")
	}
	f, err := root.OpenFile(clean, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, nil, unsafePath(clean, "passes through a symlink")
		}
		return nil, nil, fmt.Errorf("workspace: open %s: %w", QuotePath(clean), err)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, unsafePath(clean, "not a regular file")
	}
	return f, st, nil
}
