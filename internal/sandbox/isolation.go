package sandbox

import (
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
)

// nsFlags are the namespaces a run gets when Catalyst is root.
const nsFlags = syscall.CLONE_NEWNET | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS |
	syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS

const prSetDumpable = 4 // PR_SET_DUMPABLE

// privateTempDirs are replaced by empty private tmpfs mounts in a run.
var privateTempDirs = []string{"/tmp", "/var/tmp", "/dev/shm"}

// HiddenPaths are directories replaced by an empty read-only view inside the
// sandbox (when a mount namespace is available). Catalyst's working directory,
// /root, /home and /run are hidden automatically; callers should add the data
// directory (database, other tasks' workspaces) when it lies elsewhere.
var HiddenPaths []string

// capabilities is what this host allows, probed once.
type capabilities struct {
	root        bool   // euid 0
	namespaces  bool   // new net/pid/ipc/uts namespaces work
	mountns     bool   // a mount namespace with private /tmp and /proc works
	prlimit     string // path of util-linux prlimit, "" if missing
	setpriv     string // path of util-linux setpriv, "" if missing
	ip          string // path of iproute2 ip
	loopback    bool   // lo can be brought up inside the network namespace
	shell       string
	cg          *cgroupSupport
	nondumpable bool // Catalyst made non-dumpable (its /proc entries hidden from same-uid commands)
	warnings    []string
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
	c := capabilities{root: os.Geteuid() == 0, shell: "/bin/sh"}
	c.prlimit, _ = lookTool("prlimit")
	c.setpriv, _ = lookTool("setpriv")
	if c.prlimit == "" {
		c.warnings = append(c.warnings, "rlimits not applied: util-linux prlimit not found")
	}
	if !c.root {
		c.warnings = append(c.warnings,
			"namespaces not applied (no network/pid/mount isolation): Catalyst is not running as root",
			"runs as Catalyst's own uid (not root, cannot switch to an unprivileged uid): the command can read every file Catalyst's user can, and the process-count rlimit is not applied (it would count all of this user's processes)")
	} else if c.setpriv == "" {
		c.warnings = append(c.warnings, "cannot drop to an unprivileged uid: util-linux setpriv not found; running as root")
		c.root = false
	}
	if c.root {
		try := func(flags uintptr, script string) error {
			cmd := exec.Command(c.shell, "-c", script)
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
			if ip, lerr := lookTool("ip"); lerr == nil && try(nsFlags, shq(ip)+" link set lo up") == nil {
				c.ip, c.loopback = ip, true
			} else {
				c.warnings = append(c.warnings, "loopback inside the sandbox is down (iproute2 `ip` missing or failed): tests cannot serve on 127.0.0.1")
			}
		default:
			err2 := try(nsFlags&^syscall.CLONE_NEWNS, "true")
			if err2 == nil {
				c.namespaces = true
				c.warnings = append(c.warnings, "mount namespace not applied (no private /tmp, /proc): "+err.Error())
			} else {
				c.warnings = append(c.warnings, "namespaces not applied (no network isolation): "+err2.Error())
			}
		}
	}
	if !c.namespaces {
		// Without a PID namespace the command sees Catalyst in /proc and, as
		// the same uid, could read /proc/<catalyst>/environ (API keys).
		// A non-dumpable process's /proc entries belong to root.
		if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRCTL, prSetDumpable, 0, 0, 0, 0, 0); errno == 0 {
			c.nondumpable = true
		} else {
			c.warnings = append(c.warnings, "could not make Catalyst non-dumpable: its /proc/<pid>/environ is readable by the command: "+errno.Error())
		}
	}
	c.cg = probeCgroup(c.root)
	cleanStale(c.cg)
	if c.cg == nil {
		c.warnings = append(c.warnings, "cgroup limits not applied: no writable cgroup v2 (memory, pids) or v1 memory/pids hierarchy; memory bounded by RLIMIT_AS instead")
	}
	return c
}

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// wrap builds the argv that runs tool with args under the applicable isolation.
func wrap(c capabilities, lim Limits, uid int, work, cacheDir, tool string, args []string, gate, cgMemory bool) (argv, iso, warn []string) {
	var rl []string
	if c.prlimit != "" {
		cpu := int64((lim.CPUTime + time.Second - 1) / time.Second)
		rl = []string{c.prlimit,
			fmt.Sprintf("--cpu=%d:%d", cpu, cpu+2),
			fmt.Sprintf("--fsize=%d", lim.FileSizeBytes),
			"--core=0",
			"--nofile=4096",
		}
		names := []string{"cpu", "fsize", "core"}
		if uid > 0 {
			rl = append(rl, fmt.Sprintf("--nproc=%d", lim.Processes))
			names = append(names, "nproc")
		}
		if !cgMemory {
			as := max(4*lim.MemoryBytes, 16<<30)
			rl = append(rl, fmt.Sprintf("--as=%d", as))
			names = append(names, "as")
			warn = append(warn, fmt.Sprintf("memory bounded only by RLIMIT_AS=%d bytes of address space (no cgroup memory controller)", as))
		}
		rl = append(rl, "--")
		iso = append(iso, "rlimits: "+strings.Join(names, ","))
	}
	cmdline := append(append(rl, tool), args...)
	if !c.root {
		return cmdline, iso, warn
	}
	drop := []string{c.setpriv,
		fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", uid),
		"--clear-groups", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"}
	iso = append(iso, fmt.Sprintf("unprivileged uid %d (no capabilities, no_new_privs)", uid))

	var s strings.Builder
	s.WriteString("set -eu\n")
	if gate {
		// Wait until the parent has placed this process in its cgroups.
		s.WriteString("read -r _ <&3 || true\nexec 3<&-\n")
	}
	if c.namespaces {
		if c.loopback {
			// The namespace's own loopback, so tests may serve and call
			// 127.0.0.1 among themselves; the host's stays out of reach.
			s.WriteString(shq(c.ip) + " link set lo up\n")
			iso = append(iso, "network namespace (no network; private loopback only)")
		} else {
			iso = append(iso, "network namespace (no network, loopback down)")
		}
		iso = append(iso, "pid namespace", "ipc namespace", "uts namespace")
	}
	if c.mountns {
		s.WriteString("cd " + shq(work) + "\n")
		s.WriteString("mount --make-rprivate /\n")
		if cacheDir != "" {
			// Before anything is hidden: the cache may lie under a hidden directory.
			s.WriteString("mount --bind " + shq(cacheDir) + " .cache\n")
		}
		// Private, empty, writable temp dirs: writes there vanish with the run.
		for _, d := range privateTempDirs {
			if isDir(d) && !within(work, d) || d == "/tmp" {
				s.WriteString("mount -t tmpfs -o mode=1777,size=256m,nosuid,nodev tmpfs " + shq(d) + "\n")
			}
		}
		for _, d := range hiddenPaths(work, tool) {
			s.WriteString("mount -t tmpfs -o mode=0755,size=1m,nosuid,nodev tmpfs " + shq(d) + "\n")
		}
		// Re-expose the private copy at its own path (it may lie under a
		// directory just hidden; the cwd still refers to it).
		s.WriteString("mkdir -p " + shq(work) + "\nmount --rbind --no-canonicalize . " + shq(work) + "\ncd " + shq(work) + "\n")
		s.WriteString("mount -t proc -o nosuid,nodev,noexec proc /proc\n")
		iso = append(iso, "mount namespace (private /tmp, fresh /proc; /root, /home, /run and Catalyst's directory hidden)")
	}
	if c.namespaces {
		// Stay as the namespace's init (pid 1) and run the command as its
		// child: pid 1 does not get kernel signals it has no handler for, and
		// RLIMIT_CPU's SIGXCPU must reach the command.
		s.WriteString("set +e\n\"$@\"\nexit $?\n")
	} else {
		s.WriteString(`exec "$@"` + "\n")
	}
	argv = append([]string{c.shell, "-c", s.String(), "catalyst-sandbox"}, cmdline[:len(rl)]...)
	argv = append(argv, drop...)
	argv = append(argv, cmdline[len(rl):]...)
	return argv, iso, warn
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

// hiddenPaths lists existing directories to hide: never "/", never one that
// holds the tool or a SafePath directory.
func hiddenPaths(work, tool string) []string {
	// /run holds the host's service sockets (a filesystem socket crosses
	// network namespaces).
	cands := append([]string{"/root", "/home", "/run"}, HiddenPaths...)
	if wd, err := os.Getwd(); err == nil {
		cands = append(cands, wd)
	}
	var out []string
	seen := map[string]bool{}
next:
	for _, d := range cands {
		d = filepath.Clean(d)
		if d == "/" || !filepath.IsAbs(d) || seen[d] || !isDir(d) {
			continue
		}
		for _, keep := range append(filepath.SplitList(SafePath), tool, "/tmp", "/usr", "/etc", "/bin", "/lib", "/proc", "/dev", "/sys") {
			if within(keep, d) {
				continue next
			}
		}
		seen[d] = true
		out = append(out, d)
	}
	// A directory inside another hidden one, or inside a private temp dir,
	// is already out of sight; mounting over it would fail, as its mount
	// point no longer exists once the parent is replaced.
	kept := out[:0]
	for _, d := range out {
		covered := false
		for _, other := range append(append([]string{}, privateTempDirs...), out...) {
			if other != d && within(d, other) {
				covered = true
				break
			}
		}
		if !covered {
			kept = append(kept, d)
		}
	}
	return kept
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
