package workspace

// Snapshots: a workspace travels between processes as one archive of its
// whole tree, .git included (store.Snapshots keeps them). Archive writes it;
// Restore unpacks one into a new directory. An archive is treated as
// hostile on the way in: its tree was shaped by model-written code, and it
// crossed a database.

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

var (
	// ErrUnsafeArchive is wrapped by Restore for an entry that could write
	// outside the directory or is not a plain file, directory or symlink:
	// an absolute or unclean path, "..", a path through a symlink or below a
	// file, a duplicate, a symlink whose target leaves the directory, a
	// device, FIFO or hard link.
	ErrUnsafeArchive = errors.New("workspace: unsafe archive")
	// ErrArchiveTooLarge is wrapped by Archive and Restore when a tree
	// exceeds MaxArchiveBytes or MaxArchiveEntries.
	ErrArchiveTooLarge = errors.New("workspace: archive too large")
)

const (
	// MaxArchiveBytes caps the total size of the regular files of an
	// archive (1 GiB, uncompressed): Restore checks every entry's declared
	// size before writing it, so a decompression bomb stops at its header.
	MaxArchiveBytes = 1 << 30
	// MaxArchiveEntries caps the number of entries of an archive.
	MaxArchiveEntries = 200_000

	maxLinkTarget = 4096
	maxTrailing   = 64 << 10
	maxEntryName  = 4096
	// linkDepth is how many symlinks one resolution may pass through (the
	// kernel's limit is 40), and linkSteps per link bounds the total work,
	// so that links expanding into each other cannot stall Restore.
	linkDepth = 40
	linkSteps = 1000
	// restoredDirMode is the mode of the restored root and of directories
	// the archive implies without listing them.
	restoredDirMode = 0o755
)

type archiveLimits struct {
	bytes   int64
	entries int
}

var defaultLimits = archiveLimits{bytes: MaxArchiveBytes, entries: MaxArchiveEntries}

// epoch is every entry's modification time, so that the same tree gives the
// same archive byte for byte.
var epoch = time.Unix(0, 0)

// Archive writes the tree under dir to w as a gzip-compressed tar:
// directories, regular files and symlinks (stored as they are, never
// followed) with their permission bits, in lexical order, with no owner and
// a fixed time, so that the same tree always gives the same bytes. Sockets,
// FIFOs and devices are left out. A tree over MaxArchiveBytes or
// MaxArchiveEntries fails with ErrArchiveTooLarge.
//
// The tree should not change while it is archived (run it between nodes): a
// file that changes size fails the archive rather than storing a torn copy.
func Archive(dir string, w io.Writer) error {
	return archiveTree(dir, w, defaultLimits)
}

func archiveTree(dir string, w io.Writer, lim archiveLimits) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("workspace: archive %s: %w", dir, err)
	}
	defer root.Close()
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	var total int64
	entries := 0
	err = fs.WalkDir(root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name == "." {
			return nil
		}
		typ := d.Type()
		if !typ.IsDir() && !typ.IsRegular() && typ&fs.ModeSymlink == 0 {
			return nil // socket, FIFO, device: nothing a workspace can carry
		}
		if entries++; entries > lim.entries {
			return fmt.Errorf("%w: more than %d entries", ErrArchiveTooLarge, lim.entries)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: name, Mode: int64(info.Mode().Perm()), ModTime: epoch}
		switch {
		case typ.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
			return tw.WriteHeader(hdr)
		case typ&fs.ModeSymlink != 0:
			target, err := root.Readlink(name)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
			return tw.WriteHeader(hdr)
		}
		return archiveFile(root, tw, hdr, &total, lim)
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return fmt.Errorf("workspace: archive %s: %w", dir, err)
	}
	return nil
}

// archiveFile writes one regular file. It is opened without following a
// symlink and without blocking on a FIFO, and checked to be a regular file
// once open, in case the tree changed since it was listed.
func archiveFile(root *os.Root, tw *tar.Writer, hdr *tar.Header, total *int64, lim archiveLimits) error {
	f, err := root.OpenFile(hdr.Name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s changed into a %s while being archived", hdr.Name, fi.Mode().Type())
	}
	if *total += fi.Size(); *total > lim.bytes {
		return fmt.Errorf("%w: files larger than %d bytes in total", ErrArchiveTooLarge, lim.bytes)
	}
	hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, fi.Size(), int64(fi.Mode().Perm())
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, f, fi.Size()); err != nil {
		return fmt.Errorf("%s changed while being archived: %w", hdr.Name, err)
	}
	return nil
}

// Restore unpacks an archive made by Archive into dir, which must not exist
// or be empty; its parent is created if needed. Nothing appears at dir
// unless the whole archive is sound: it is unpacked into a temporary
// sibling directory, checked, and renamed to dir at the end.
//
// The archive is hostile: entries that could reach outside dir, or that are
// not directories, regular files or symlinks, fail with ErrUnsafeArchive;
// more than MaxArchiveBytes or MaxArchiveEntries with ErrArchiveTooLarge,
// checked from each entry's header before its data is written. Permission
// bits are kept, except that setuid, setgid and sticky bits are dropped and
// directories stay accessible to their owner (so the tree can be removed).
func Restore(r io.Reader, dir string) error {
	return restoreTree(r, dir, defaultLimits)
}

func restoreTree(r io.Reader, dir string, lim archiveLimits) (err error) {
	dir = filepath.Clean(dir)
	fail := func(err error) error { return fmt.Errorf("workspace: restore into %s: %w", dir, err) }
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fail(fmt.Errorf("%w: the directory is not empty", fs.ErrExist))
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail(err)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, restoredDirMode); err != nil {
		return fail(err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".restore-")
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := extract(r, tmp, lim); err != nil {
		return fail(err)
	}
	if err := os.Chmod(tmp, restoredDirMode); err != nil {
		return fail(err)
	}
	// rename(2) replaces an empty directory and refuses a non-empty one, so
	// a directory that filled up meanwhile is not clobbered (os.Rename
	// refuses any existing directory).
	if err := syscall.Rename(tmp, dir); err != nil {
		return fail(&os.LinkError{Op: "rename", Old: tmp, New: dir, Err: err})
	}
	return nil
}

// restored tracks what extract has created, by slash-separated path.
type restored struct {
	kind  map[string]byte   // 'd', 'f' or 'l'
	links map[string]string // symlink -> target
	modes map[string]fs.FileMode
}

func extract(r io.Reader, dir string, lim archiveLimits) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("not a gzip stream: %w", err)
	}
	defer zr.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	t := restored{kind: map[string]byte{}, links: map[string]string{}, modes: map[string]fs.FileMode{}}
	tr := tar.NewReader(zr)
	var total int64
	for entries := 1; ; entries++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if entries > lim.entries {
			return fmt.Errorf("%w: more than %d entries", ErrArchiveTooLarge, lim.entries)
		}
		name, err := entryName(hdr)
		if err != nil {
			return err
		}
		if err := t.parents(root, name); err != nil {
			return err
		}
		if k, ok := t.kind[name]; ok && !(k == 'd' && hdr.Typeflag == tar.TypeDir) {
			return fmt.Errorf("%w: %q appears twice", ErrUnsafeArchive, name)
		}
		perm := fs.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if t.kind[name] == 0 {
				if err := root.Mkdir(name, 0o700); err != nil {
					return err
				}
				t.kind[name] = 'd'
			}
			t.modes[name] = perm | 0o700
		case tar.TypeReg:
			if hdr.Size < 0 {
				return fmt.Errorf("%w: %q has a negative size", ErrUnsafeArchive, name)
			}
			if total += hdr.Size; total > lim.bytes {
				return fmt.Errorf("%w: files larger than %d bytes in total (at %q)", ErrArchiveTooLarge, lim.bytes, name)
			}
			if err := writeEntry(root, name, perm, tr, hdr.Size); err != nil {
				return err
			}
			t.kind[name] = 'f'
		case tar.TypeSymlink:
			target := hdr.Linkname
			switch {
			case target == "" || len(target) > maxLinkTarget || strings.IndexByte(target, 0) >= 0:
				return fmt.Errorf("%w: symlink %q has an empty, overlong or NUL-containing target", ErrUnsafeArchive, name)
			case path.IsAbs(target):
				return fmt.Errorf("%w: symlink %q points to the absolute path %q", ErrUnsafeArchive, name, target)
			}
			if err := root.Symlink(target, name); err != nil {
				return err
			}
			t.kind[name], t.links[name] = 'l', target
		default:
			return fmt.Errorf("%w: %q is a %s, not a directory, regular file or symlink", ErrUnsafeArchive, name, typeName(hdr.Typeflag))
		}
	}
	if err := t.checkLinks(); err != nil {
		return err
	}
	for name, mode := range t.modes {
		if err := root.Chmod(name, mode); err != nil {
			return err
		}
	}
	// The rest of the stream: the tar's end and the gzip trailer, whose CRC
	// is checked on the way, then whatever is left of r, so that a reader
	// that verifies at its end (a store snapshot) has done so before
	// anything is renamed into place.
	for _, rest := range []io.Reader{zr, r} {
		n, err := io.Copy(io.Discard, io.LimitReader(rest, maxTrailing+1))
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if n > maxTrailing {
			return fmt.Errorf("%w: more than %d bytes after the end of the archive", ErrUnsafeArchive, maxTrailing)
		}
	}
	return nil
}

// entryName validates an entry's path: relative, clean, no "..", no NUL.
func entryName(hdr *tar.Header) (string, error) {
	name := hdr.Name
	if hdr.Typeflag == tar.TypeDir {
		name = strings.TrimSuffix(name, "/")
	}
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: entry %q: %s", ErrUnsafeArchive, hdr.Name, why)
	}
	switch {
	case name == "" || name == ".":
		return bad("names the root")
	case len(name) > maxEntryName || strings.IndexByte(name, 0) >= 0:
		return bad("overlong or contains NUL")
	case path.IsAbs(name):
		return bad("absolute path")
	case name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "/../") || strings.HasSuffix(name, "/.."):
		return bad(`contains ".."`)
	case path.Clean(name) != name:
		return bad("not a clean path")
	}
	return name, nil
}

// parents creates the missing directories above name, refusing a path that
// passes through a symlink or a file that the archive created.
func (t *restored) parents(root *os.Root, name string) error {
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		p := name[:i]
		switch t.kind[p] {
		case 'd':
		case 'l':
			return fmt.Errorf("%w: %q is inside the symlink %q", ErrUnsafeArchive, name, p)
		case 'f':
			return fmt.Errorf("%w: %q is inside the file %q", ErrUnsafeArchive, name, p)
		default:
			if err := root.Mkdir(p, 0o700); err != nil {
				return err
			}
			t.kind[p] = 'd'
			t.modes[p] = restoredDirMode
		}
	}
	return nil
}

// writeEntry writes a new regular file (never through an existing one) with
// exactly size bytes of r.
func writeEntry(root *os.Root, name string, perm fs.FileMode, r io.Reader, size int64) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = io.CopyN(f, r, size)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q: %w", name, err)
	}
	return nil
}

// checkLinks refuses any symlink that, followed as the kernel would through
// the links the archive made, leads outside the directory. Lexical checks
// are not enough: with a/up -> "..", the target "up/../x" of a link in a/
// cleans to a/x but resolves to ../x.
func (t *restored) checkLinks() error {
	budget := linkSteps * len(t.links)
	for name, target := range t.links {
		if _, err := t.resolve(path.Dir(name), target, 0, &budget); err != nil {
			return fmt.Errorf("%w: symlink %q -> %q: %v", ErrUnsafeArchive, name, target, err)
		}
	}
	return nil
}

// resolve walks target from the directory from (slash-separated, "." for
// the root) and returns where it ends, or an error if it goes above the
// root. Components that do not exist are taken literally: a dangling link
// is fine as long as it dangles inside.
func (t *restored) resolve(from, target string, depth int, budget *int) (string, error) {
	if depth > linkDepth {
		return "", errors.New("too many levels of symlinks")
	}
	var cur []string
	if from != "." {
		cur = strings.Split(from, "/")
	}
	for _, c := range strings.Split(target, "/") {
		if *budget--; *budget < 0 {
			return "", errors.New("too many symlink steps")
		}
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return "", errors.New("leads outside the directory")
			}
			cur = cur[:len(cur)-1]
			continue
		}
		cur = append(cur, c)
		if next, ok := t.links[strings.Join(cur, "/")]; ok {
			res, err := t.resolve(path.Join(append([]string{"."}, cur[:len(cur)-1]...)...), next, depth+1, budget)
			if err != nil {
				return "", err
			}
			cur = nil
			if res != "." {
				cur = strings.Split(res, "/")
			}
		}
	}
	if len(cur) == 0 {
		return ".", nil
	}
	return strings.Join(cur, "/"), nil
}

func typeName(flag byte) string {
	switch flag {
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "FIFO"
	}
	return fmt.Sprintf("entry of type %q", flag)
}

// SaveSnapshot archives the tree under dir and puts it as the snapshot of
// info's (TaskID, Node, Iteration), streaming: the archive is never whole in
// memory. Run it when a node has completed and nothing writes to dir.
func SaveSnapshot(ctx context.Context, snaps store.Snapshots, info store.SnapshotInfo, dir string) (store.SnapshotInfo, error) {
	pr, pw := io.Pipe()
	archived := make(chan error, 1)
	go func() {
		err := Archive(dir, pw)
		pw.CloseWithError(err)
		archived <- err
	}()
	out, err := snaps.PutSnapshot(ctx, info, pr)
	pr.Close() // a put that stopped reading early unblocks Archive
	if aerr := <-archived; err == nil && aerr != nil {
		err = aerr // cannot happen: the put read Archive's error
	}
	if err != nil {
		return store.SnapshotInfo{}, fmt.Errorf("workspace: save snapshot of %s: %w", dir, err)
	}
	return out, nil
}

// RestoreLatest restores the latest snapshot of taskID into dir (see
// Restore), for a worker that takes the task over; domain.ErrNotFound
// (wrapped) when the task has none, and dir is left alone then.
func RestoreLatest(ctx context.Context, snaps store.Snapshots, taskID, dir string) (store.SnapshotInfo, error) {
	info, rc, err := snaps.LatestSnapshot(ctx, taskID)
	if err != nil {
		return store.SnapshotInfo{}, fmt.Errorf("workspace: snapshot of task %s: %w", taskID, err)
	}
	defer rc.Close()
	if err := Restore(rc, dir); err != nil {
		return store.SnapshotInfo{}, fmt.Errorf("workspace: snapshot %s of task %s: %w", info.ID, taskID, err)
	}
	return info, nil
}

// Materializer keeps local copies of the latest snapshots of tasks, for an
// API node that serves the files, zip and preview of a task another process
// runs. Each copy lives in cacheDir/<task>/<snapshot id>: a snapshot ID
// changes with every put, so a copy is valid for as long as its ID is the
// latest, and a copy left by an earlier run of the process is reused.
// Concurrent Acquires of one snapshot unpack it once; a copy that a newer
// snapshot superseded is removed once nobody holds it.
//
// One process owns a cache directory.
type Materializer struct {
	snaps store.Snapshots
	dir   string

	mu    sync.Mutex
	tasks map[string]*taskCopies
}

type taskCopies struct {
	current string              // the snapshot ID acquired last
	ready   map[string]bool     // unpacked and complete
	refs    map[string]int      // holders of each copy
	flights map[string]*restore // copies being unpacked
}

type restore struct {
	done chan struct{}
	err  error
}

// Checkout is a held copy of a task's snapshot: Dir stays as it is until
// Release. Serve files from it; do not write to it.
type Checkout struct {
	Dir  string
	Info store.SnapshotInfo

	m    *Materializer
	once sync.Once
}

// NewMaterializer returns a Materializer that reads snaps and keeps its
// copies under cacheDir (created if needed).
func NewMaterializer(snaps store.Snapshots, cacheDir string) (*Materializer, error) {
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("workspace: snapshot cache %s: %w", cacheDir, err)
	}
	return &Materializer{snaps: snaps, dir: cacheDir, tasks: map[string]*taskCopies{}}, nil
}

// cacheName is what a task or snapshot ID must look like to name a
// directory: ours are UUIDs.
var cacheName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// Acquire returns a local copy of the latest snapshot of taskID, unpacking
// it unless a current copy exists; domain.ErrNotFound (wrapped) when the
// task has no snapshot. The caller must Release it.
func (m *Materializer) Acquire(ctx context.Context, taskID string) (*Checkout, error) {
	if !cacheName.MatchString(taskID) {
		return nil, fmt.Errorf("workspace: snapshot of task %q: %w: not a task id", taskID, domain.ErrInvalid)
	}
	info, rc, err := m.snaps.LatestSnapshot(ctx, taskID)
	if err != nil {
		return nil, fmt.Errorf("workspace: snapshot of task %s: %w", taskID, err)
	}
	defer rc.Close()
	if !cacheName.MatchString(info.ID) {
		return nil, fmt.Errorf("workspace: snapshot of task %s: unusable snapshot id %q", taskID, info.ID)
	}
	target := filepath.Join(m.dir, taskID, info.ID)
	for {
		m.mu.Lock()
		tc := m.copies(taskID)
		if f := tc.flights[info.ID]; f != nil {
			m.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, fmt.Errorf("workspace: snapshot of task %s: %w", taskID, ctx.Err())
			}
			// Another caller's failure is ours only if it was not its own
			// context that ended; then unpack from our reader.
			if f.err != nil && !errors.Is(f.err, context.Canceled) && !errors.Is(f.err, context.DeadlineExceeded) {
				return nil, f.err
			}
			continue
		}
		if !tc.ready[info.ID] {
			if _, err := os.Stat(target); err == nil {
				tc.ready[info.ID] = true // unpacked by an earlier run: Restore renames only a whole tree
			}
		}
		if tc.ready[info.ID] {
			c := m.holdLocked(taskID, tc, info, target)
			trash := m.sweepLocked(taskID, tc)
			m.mu.Unlock()
			removeAll(trash)
			return c, nil
		}
		f := &restore{done: make(chan struct{})}
		tc.flights[info.ID] = f
		m.mu.Unlock()

		err := Restore(rc, target)
		if err != nil {
			err = fmt.Errorf("workspace: snapshot %s of task %s: %w", info.ID, taskID, err)
		}

		m.mu.Lock()
		delete(tc.flights, info.ID)
		f.err = err
		close(f.done)
		var c *Checkout
		var trash []string
		if err == nil {
			tc.ready[info.ID] = true
			c = m.holdLocked(taskID, tc, info, target)
			trash = m.sweepLocked(taskID, tc)
		}
		m.mu.Unlock()
		removeAll(trash)
		return c, err
	}
}

func (m *Materializer) copies(taskID string) *taskCopies {
	tc := m.tasks[taskID]
	if tc == nil {
		tc = &taskCopies{ready: map[string]bool{}, refs: map[string]int{}, flights: map[string]*restore{}}
		m.tasks[taskID] = tc
	}
	return tc
}

func (m *Materializer) holdLocked(taskID string, tc *taskCopies, info store.SnapshotInfo, dir string) *Checkout {
	tc.refs[info.ID]++
	tc.current = info.ID
	return &Checkout{Dir: dir, Info: info, m: m}
}

// Release lets the copy go; a superseded copy is removed when its last
// holder releases it. Calling it again does nothing.
func (c *Checkout) Release() {
	c.once.Do(func() {
		m := c.m
		m.mu.Lock()
		tc := m.tasks[c.Info.TaskID]
		tc.refs[c.Info.ID]--
		trash := m.sweepLocked(c.Info.TaskID, tc)
		m.mu.Unlock()
		removeAll(trash)
	})
}

// sweepLocked moves every copy of the task that is not current, held or
// being unpacked out of the way (a rename, so that no Acquire can find it
// half removed) and returns the paths for removeAll. That includes the
// leftovers of an earlier run: interrupted unpacks and unremoved trash.
func (m *Materializer) sweepLocked(taskID string, tc *taskCopies) []string {
	dir := filepath.Join(m.dir, taskID)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var trash []string
	for _, e := range ents {
		name := e.Name()
		if name == tc.current || tc.refs[name] > 0 || tc.flights[name] != nil {
			continue
		}
		if id, ok := strings.CutPrefix(name, "."); ok {
			if id, _, ok = strings.Cut(id, ".restore-"); ok && tc.flights[id] != nil {
				continue // the temporary directory of a Restore under way
			}
			trash = append(trash, filepath.Join(dir, name))
			continue
		}
		gone := filepath.Join(dir, fmt.Sprintf(".trash-%s-%d", name, time.Now().UnixNano()))
		if os.Rename(filepath.Join(dir, name), gone) == nil {
			trash = append(trash, gone)
		}
		delete(tc.ready, name)
		delete(tc.refs, name)
	}
	return trash
}

func removeAll(paths []string) {
	for _, p := range paths {
		_ = os.RemoveAll(p)
	}
}
