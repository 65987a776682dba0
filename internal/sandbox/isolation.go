package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// nsFlags are the namespaces a run gets when Catalyst is root.
const nsFlags = syscall.CLONE_NEWNET | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS |
	syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS

const prSetDumpable = 4 // PR_SET_DUMPABLE

// sandboxHome is the working copy's path inside the minimal root.
const sandboxHome = "/home/sandbox"

// systemDirs are the host directories a run sees read-only: the toolchains
// (python3 and its pytest, node, go and GOROOT under /usr/local/go) and the
// libraries they load.
func systemDirs() []string {
	return []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}
}

// etcEntries are the /etc entries (globs) a toolchain reads: the dynamic
// linker, time zones, certificates, MIME types, alternatives symlinks. The
// rest of /etc (shadow, ssh keys, host configuration) stays out of sight.
// passwd, group and hosts are written fresh inside the sandbox.
func etcEntries() []string {
	return []string{"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone",
		"ssl", "ca-certificates", "ca-certificates.conf", "pki", "alternatives", "mime.types",
		"os-release", "debian_version", "protocols", "services", "nsswitch.conf", "host.conf",
		"gai.conf", "locale.alias", "python3", "python3.*", "nodejs"}
}

// devFiles are the device nodes a run may use.
func devFiles() []string {
	return []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"}
}

// capabilities is what this host allows, probed once.
type capabilities struct {
	root        bool // euid 0
	namespaces  bool // new net/pid/ipc/uts namespaces work
	mountns     bool // a mount namespace with tmpfs and proc mounts works
	landlockABI int  // 0: no Landlock
	seccomp     bool
	cg          *cgroupSupport
	nondumpable bool // Catalyst made non-dumpable (its /proc entries hidden from same-uid commands)
	why         map[string]string
	notes       []string
}

// warnings names every layer this host does not give, and why.
func (c capabilities) warnings() []string {
	why := func(k string) string {
		if r := c.why[k]; r != "" {
			return r
		}
		return "not available on this host"
	}
	w := append([]string(nil), c.notes...)
	switch {
	case !c.root:
		w = append(w,
			"namespaces not applied (no network/pid/mount isolation, no minimal root, no private /tmp, working copy quota only by polling): Catalyst is not running as root",
			"runs as Catalyst's own uid (not root, cannot switch to an unprivileged uid): the process-count rlimit is not applied (it would count all of this user's processes)")
	case !c.namespaces:
		w = append(w, "namespaces not applied (no network/pid isolation, no minimal root, no private /tmp): "+why("namespaces"))
	case !c.mountns:
		w = append(w, "mount namespace not applied (no minimal root, no private /tmp, working copy quota only by polling): "+why("mountns"))
	}
	if c.landlockABI == 0 {
		w = append(w, "Landlock filesystem allowlist not applied: "+why("landlock"))
	}
	if !c.seccomp {
		w = append(w, "seccomp filter not applied (namespace creation, mount, ptrace, bpf, keyctl are not refused): "+why("seccomp"))
	}
	if c.cg == nil {
		w = append(w, "cgroup limits not applied: no writable cgroup v2 (memory, pids) or v1 memory/pids hierarchy; memory bounded by RLIMIT_AS and processes by RLIMIT_NPROC instead")
	}
	return w
}

var (
	probeOnce sync.Once
	probed    capabilities
)

func probe() capabilities {
	probeOnce.Do(func() { probed = doProbe() })
	return probed
}

func doProbe() capabilities {
	c := capabilities{root: os.Geteuid() == 0, why: map[string]string{}}
	if c.root {
		try := func(flags uintptr, script string) error {
			cmd := exec.Command("/bin/sh", "-c", script)
			cmd.Env = []string{"PATH=" + SafePath}
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Cloneflags: flags, Pdeathsig: syscall.SIGKILL}
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
			}
			return nil
		}
		err := try(nsFlags, "set -e; mount --make-rprivate /; mount -t tmpfs tmpfs /tmp; mount -t proc proc /proc")
		switch {
		case err == nil:
			c.namespaces, c.mountns = true, true
		default:
			c.why["mountns"] = err.Error()
			if err2 := try(nsFlags&^syscall.CLONE_NEWNS, "true"); err2 == nil {
				c.namespaces = true
			} else {
				c.why["namespaces"] = err2.Error()
			}
		}
	}
	if v, err := llsys.LandlockGetABIVersion(); err == nil && v > 0 {
		c.landlockABI = v
	} else {
		c.why["landlock"] = fmt.Sprintf("the kernel does not offer Landlock (%v)", err)
	}
	if seccompSupported() {
		c.seccomp = true
	} else {
		c.why["seccomp"] = "the kernel does not offer seccomp filters"
	}
	if !c.namespaces {
		// Without a PID namespace the command sees Catalyst in /proc and, as
		// the same uid, could read /proc/<catalyst>/environ (API keys).
		// A non-dumpable process's /proc entries belong to root.
		if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRCTL, prSetDumpable, 0, 0, 0, 0, 0); errno == 0 {
			c.nondumpable = true
		} else {
			c.notes = append(c.notes, "could not make Catalyst non-dumpable: its /proc/<pid>/environ is readable by the command: "+errno.Error())
		}
	}
	c.cg = probeCgroup(c.root)
	cleanStale(c.cg)
	return c
}

// initConfig is what the init (init_linux.go) is told to do, as JSON on its
// fd 3.
type initConfig struct {
	MountNS   bool     // build the minimal root and pivot into it
	UID       int      // drop to this uid (and gid); <= 0 keeps Catalyst's
	SpecDir   string   // copied by the init into the working copy's tmpfs (MountNS)
	Work      string   // the working copy as the command sees it
	NewRoot   string   // host directory that becomes the minimal root (MountNS)
	CacheDir  string   // host cache directory, bound at Work/.cache (MountNS)
	DiskBytes int64    // tmpfs size of the working copy (MountNS)
	Files     int      // tmpfs inodes of the working copy (MountNS)
	ReadOnly  []string // host paths shown read-only
	Hidden    []string // host paths never shown
	Landlock  bool
	Seccomp   bool
	RL        rlimits
	Tool      string
	Args      []string // argv, Args[0] included
	Env       []string
}

type rlimits struct {
	CPU, FSize, NProc, AS, NoFile uint64 // 0: not set
}

// plan decides what the init applies and what it cannot, from the host's
// capabilities.
func (s *Sandbox) plan(c capabilities, spec Spec, lim Limits, uid int, tool, base, cacheDir string, cgMemory bool) (initConfig, []string, []string) {
	var iso, warn []string
	cfg := initConfig{
		MountNS: c.mountns, UID: uid, SpecDir: spec.Dir, CacheDir: cacheDir,
		DiskBytes: lim.DiskBytes, Files: lim.Files,
		Landlock: c.landlockABI > 0, Seccomp: c.seccomp,
		Tool: tool, Args: append([]string(nil), spec.Command...),
	}
	tmp := "/tmp"
	if c.mountns {
		cfg.NewRoot = filepath.Join(base, "root")
		cfg.Work = sandboxHome
	} else {
		cfg.Work = filepath.Join(base, "work")
		tmp = filepath.Join(cfg.Work, ".tmp")
		warn = append(warn, fmt.Sprintf("working copy on the host disk (no mount namespace for a tmpfs): its quota of %d bytes and %d files is enforced by polling, so a fast writer may overshoot before it is stopped; no private /tmp", lim.DiskBytes, lim.Files))
	}
	cfg.Env = buildEnv(cfg.Work, tmp, spec.Env)
	iso = append(iso, "scrubbed environment")

	cpu := uint64((lim.CPUTime + time.Second - 1) / time.Second)
	cfg.RL = rlimits{CPU: cpu, FSize: uint64(lim.FileSizeBytes), NoFile: 4096}
	if uid > 0 {
		cfg.RL.NProc = uint64(lim.Processes)
	}
	if !cgMemory {
		as := max(4*lim.MemoryBytes, 16<<30)
		cfg.RL.AS = uint64(as)
		warn = append(warn, fmt.Sprintf("memory bounded only by RLIMIT_AS=%d bytes of address space (no cgroup memory controller)", as))
	}
	if uid <= 0 && c.cg == nil {
		warn = append(warn, "process count not limited: no pids cgroup and no uid of the run's own for RLIMIT_NPROC")
	}

	cfg.ReadOnly = readOnlyPaths(tool, s.opt.ReadOnlyPaths)
	hidden := append([]string(nil), s.opt.HiddenPaths...)
	if wd, err := os.Getwd(); err == nil {
		hidden = append(hidden, wd) // Catalyst's own directory: its .env, its data
	}
	for _, h := range hidden {
		if h = filepath.Clean(h); filepath.IsAbs(h) && h != "/" {
			cfg.Hidden = append(cfg.Hidden, h)
		}
	}

	if c.namespaces {
		iso = append(iso, "network namespace (no network)", "pid namespace", "ipc namespace", "uts namespace")
	}
	if !cfg.Landlock && !cfg.MountNS {
		warn = append(warn, "no filesystem allowlist (neither Landlock nor a minimal root): the command can read every host file its uid can read")
	}
	if cfg.Landlock && !cfg.MountNS {
		for _, h := range cfg.Hidden {
			for _, p := range append(append([]string{cfg.Work}, cfg.ReadOnly...), filepath.Dir(cfg.Work)) {
				if within(h, p) {
					warn = append(warn, fmt.Sprintf("hidden path %s lies inside %s, which the Landlock allowlist shows (no mount namespace to cover it)", h, p))
				}
			}
		}
	}
	return cfg, iso, warn
}

// readOnlyPaths are the host paths shown read-only: the system directories,
// the operator's additions and, when the tool resolves outside them, the
// installation it belongs to (its bin directory's parent).
func readOnlyPaths(tool string, extra []string) []string {
	out := systemDirs()
	for _, e := range extra {
		if e = filepath.Clean(e); filepath.IsAbs(e) && e != "/" {
			out = append(out, e)
		}
	}
	if real, err := filepath.EvalSymlinks(tool); err == nil {
		covered := false
		for _, d := range out {
			if within(real, d) {
				covered = true
				break
			}
		}
		if !covered {
			dir := filepath.Dir(real)
			if up := filepath.Dir(dir); up != "/" {
				dir = up
			}
			out = append(out, dir)
		}
	}
	return out
}

// prepareHostCopy makes the private copy on disk where no mount namespace
// holds a tmpfs for it.
func prepareHostCopy(src, work, cacheDir string, uid int) error {
	if err := os.Mkdir(work, 0o755); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if src != "" {
		if err := copyTree(src, work); err != nil {
			if errors.Is(err, ErrBadSpec) {
				return err
			}
			return fmt.Errorf("sandbox: copy %s: %w", src, err)
		}
	}
	for _, d := range []string{".tmp", ".cache"} {
		if err := os.RemoveAll(filepath.Join(work, d)); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		if err := os.Mkdir(filepath.Join(work, d), 0o755); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
	}
	if uid > 0 {
		if err := chownTree(work, uid); err != nil {
			return fmt.Errorf("sandbox: chown working copy: %w", err)
		}
	}
	if cacheDir != "" {
		// Without a mount namespace the cache is reached through a symlink.
		cache := filepath.Join(work, ".cache")
		err := os.Remove(cache)
		if err == nil {
			err = os.Symlink(cacheDir, cache)
		}
		if err != nil {
			return fmt.Errorf("sandbox: cache dir: %w", err)
		}
	}
	return nil
}

// watchQuota stops a run whose on-disk working copy grows past its quota
// (used only where no tmpfs can hold it).
func watchQuota(ctx context.Context, dir string, maxBytes int64, maxFiles int, hit chan<- string) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var bytes int64
		files := 0
		over := errors.New("over")
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			files++
			if d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					bytes += fi.Size()
				}
			}
			if bytes > maxBytes || files > maxFiles {
				return over
			}
			return nil
		})
		if err == over {
			hit <- fmt.Sprintf("stopped: the working copy went past its quota of %d bytes / %d files", maxBytes, maxFiles)
			return
		}
	}
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// MaxCopyBytes and MaxCopyFiles bound the working copy of Spec.Dir.
const (
	MaxCopyBytes = 1 << 30
	MaxCopyFiles = 100_000
)

// copyTree copies the regular files, directories and inward relative symlinks
// of src into dst (which exists). .git is skipped; special files are skipped.
func copyTree(src, dst string) error {
	var bytes, files int64
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if files++; files > MaxCopyFiles {
			return fmt.Errorf("%w: more than %d files to copy", ErrBadSpec, MaxCopyFiles)
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		if rel == ".git" {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		switch t := d.Type(); {
		case t.IsDir():
			return os.Mkdir(target, 0o755)
		case t.IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if bytes += fi.Size(); bytes > MaxCopyBytes {
				return fmt.Errorf("%w: more than %d bytes to copy", ErrBadSpec, int64(MaxCopyBytes))
			}
			mode := os.FileMode(0o644)
			if fi.Mode()&0o111 != 0 {
				mode = 0o755
			}
			return copyFile(p, target, mode)
		case t&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil || filepath.IsAbs(link) || !within(filepath.Join(filepath.Dir(rel), link), ".") {
				return nil // absolute or outward links are not copied
			}
			return os.Symlink(link, target)
		}
		return nil
	})
}

func copyFile(src, dst string, mode os.FileMode) error {
	// O_NOFOLLOW|O_NONBLOCK: a file swapped for a symlink or FIFO after the
	// walk saw it is neither followed (root would read outside) nor waited on.
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func chownTree(root string, uid int) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
}

// removeAll removes a run's directory even if the run made parts of it
// read-only (matters when not root).
func removeAll(dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

// cleanStale removes the working copies and cgroups of runs whose Catalyst
// process died (killed mid-run): their names carry the owner's pid.
func cleanStale(cg *cgroupSupport) {
	dead := func(name, prefix string) bool {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			return false
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			return false
		}
		_, err = os.Stat(fmt.Sprintf("/proc/%d", pid))
		return errors.Is(err, fs.ErrNotExist)
	}
	if ents, err := os.ReadDir(os.TempDir()); err == nil {
		for _, e := range ents {
			if e.IsDir() && dead(e.Name(), "catalyst-sandbox-") {
				removeAll(filepath.Join(os.TempDir(), e.Name()))
			}
		}
	}
	if cg == nil {
		return
	}
	for _, parent := range []string{cg.v2, cg.v1mem, cg.v1pids} {
		if parent == "" {
			continue
		}
		ents, _ := os.ReadDir(parent)
		for _, e := range ents {
			if e.IsDir() && dead(e.Name(), "catalyst-sandbox-") {
				(&runCgroup{v1: []string{filepath.Join(parent, e.Name())}}).remove()
			}
		}
	}
}
