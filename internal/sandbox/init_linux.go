package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// initArg0 is the argv[0] under which the binary runs as a sandbox's init.
// Run re-executes /proc/self/exe with it, so the hook below works in the
// catalyst binary and in every test binary that links this package.
const initArg0 = "catalyst-sandbox-init"

func init() {
	if len(os.Args) == 1 && os.Args[0] == initArg0 {
		// Every per-thread attribute set from here on (capability bounding
		// set, no_new_privs, Landlock domain, seccomp filter) belongs to
		// this thread, the one that starts the command.
		runtime.LockOSThread()
		os.Exit(initMain())
	}
}

// initExitSetup is the init's exit status when it could not start the
// command; the reason is on the status pipe.
const initExitSetup = 125

type initReporter struct{ f *os.File }

func (r initReporter) say(kind, text string) {
	text = strings.NewReplacer("\n", " ", "\t", " ").Replace(text)
	_, _ = fmt.Fprintf(r.f, "%s\t%s\n", kind, text)
}

// initMain runs inside the run's namespaces, as root when Catalyst is: it
// builds the minimal root, applies the limits, drops privileges, applies
// Landlock and seccomp, starts the command and reports what it did on fd 4.
func initMain() int {
	cfgFile, status := os.NewFile(3, "config"), os.NewFile(4, "status")
	if cfgFile == nil || status == nil {
		return initExitSetup
	}
	syscall.CloseOnExec(3)
	syscall.CloseOnExec(4)
	rep := initReporter{status}
	fail := func(kind string, err error) int {
		rep.say(kind, err.Error())
		return initExitSetup
	}
	var c initConfig
	if err := json.NewDecoder(cfgFile).Decode(&c); err != nil {
		return fail("fail", fmt.Errorf("reading the configuration: %w", err))
	}
	cfgFile.Close()
	pid1 := os.Getpid() == 1

	if c.MountNS {
		if kind, err := buildRoot(&c, rep); err != nil {
			return fail(kind, err)
		}
	}
	if pid1 {
		// The namespace's own loopback, so tests may serve and call
		// 127.0.0.1 among themselves; the host's stays out of reach.
		if err := loopbackUp(); err != nil {
			rep.say("warn", "loopback inside the sandbox is down: tests cannot serve on 127.0.0.1: "+err.Error())
		} else {
			rep.say("iso", "private loopback only (network namespace)")
		}
	}
	if err := os.Chdir(c.Work); err != nil {
		return fail("fail", err)
	}

	// Built while still privileged: opening the allowlisted paths may need it.
	llFD, llFlags, llDesc := -1, uint32(0), ""
	if c.Landlock {
		var err error
		if llFD, llFlags, llDesc, err = landlockRuleset(&c); err != nil {
			rep.say("warn", "Landlock filesystem allowlist not applied: "+err.Error())
			llFD = -1
		} else if llFD < 0 {
			rep.say("warn", "Landlock filesystem allowlist not applied: the kernel offers none of its access rights")
		}
	}

	if err := setRlimits(c.RL); err != nil {
		return fail("fail", err)
	}
	names := []string{"cpu", "fsize", "core", "nofile"}
	if c.RL.NProc > 0 {
		names = append(names, "nproc")
	}
	if c.RL.AS > 0 {
		names = append(names, "as")
	}
	rep.say("iso", "rlimits: "+strings.Join(names, ","))

	if c.UID > 0 {
		if err := dropPrivileges(c.UID); err != nil {
			return fail("fail", fmt.Errorf("dropping to uid %d: %w", c.UID, err))
		}
		rep.say("iso", fmt.Sprintf("unprivileged uid %d (no capabilities, no_new_privs)", c.UID))
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fail("fail", fmt.Errorf("no_new_privs: %w", err))
	}
	if llFD >= 0 {
		if err := llsys.LandlockRestrictSelf(llFD, llFlags); err != nil {
			rep.say("warn", "Landlock filesystem allowlist not applied: "+err.Error())
		} else {
			rep.say("iso", llDesc)
		}
		unix.Close(llFD)
	}
	if c.Seccomp {
		if desc, err := loadSeccomp(); err != nil {
			rep.say("warn", "seccomp filter not applied: "+err.Error())
		} else {
			rep.say("iso", desc)
		}
	}

	if !pid1 {
		// No PID namespace to keep alive: become the command.
		err := syscall.Exec(c.Tool, c.Args, c.Env)
		return fail("fail", fmt.Errorf("exec %s: %w", c.Tool, err))
	}
	// Stay as the namespace's init (pid 1) and run the command as its
	// child: pid 1 does not get kernel signals it has no handler for, and
	// RLIMIT_CPU's SIGXCPU must reach the command.
	p, err := os.StartProcess(c.Tool, c.Args, &os.ProcAttr{
		Dir: c.Work, Env: c.Env, Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		return fail("fail", fmt.Errorf("start %s: %w", c.Tool, err))
	}
	code := 0
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			code = 255
			break
		}
		if pid == p.Pid {
			code = ws.ExitStatus()
			if ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
			break
		}
	}
	if c.MountNS {
		reportQuota(&c, rep)
	}
	// Exiting kills whatever the command left behind in the namespace.
	return code
}

// reportQuota says whether the run filled its working copy's tmpfs.
func reportQuota(c *initConfig, rep initReporter) {
	var st unix.Statfs_t
	if unix.Statfs(c.Work, &st) != nil {
		return
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	switch {
	case st.Ffree == 0:
		rep.say("quota", fmt.Sprintf("the working copy reached its limit of %d files: further files were refused (ENOSPC)", c.Files))
	case free < 256<<10:
		rep.say("quota", fmt.Sprintf("the working copy reached its size quota of %d bytes: further writes were refused (ENOSPC)", c.DiskBytes))
	}
}

func setRlimits(rl rlimits) error {
	set := func(res int, cur, max uint64) error {
		// syscall's Setrlimit, not x/sys's: the runtime then forgets the
		// NOFILE limit it would otherwise restore in the command.
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: cur, Max: max}); err != nil {
			return fmt.Errorf("setrlimit %d: %w", res, err)
		}
		return nil
	}
	if err := set(unix.RLIMIT_CPU, rl.CPU, rl.CPU+2); err != nil {
		return err
	}
	if err := set(unix.RLIMIT_FSIZE, rl.FSize, rl.FSize); err != nil {
		return err
	}
	if err := set(unix.RLIMIT_CORE, 0, 0); err != nil {
		return err
	}
	if err := set(unix.RLIMIT_NOFILE, rl.NoFile, rl.NoFile); err != nil {
		return err
	}
	if rl.NProc > 0 {
		if err := set(unix.RLIMIT_NPROC, rl.NProc, rl.NProc); err != nil {
			return err
		}
	}
	if rl.AS > 0 {
		if err := set(unix.RLIMIT_AS, rl.AS, rl.AS); err != nil {
			return err
		}
	}
	return nil
}

// dropPrivileges empties this thread's capability bounding set, then moves
// the whole process to uid (and gid) with no supplementary groups; leaving
// uid 0 clears the capabilities.
func dropPrivileges(uid int) error {
	last := 40
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	if err := syscall.Setgroups([]int{}); err != nil {
		return err
	}
	if err := syscall.Setresgid(uid, uid, uid); err != nil {
		return err
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return err
	}
	var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	if data[0].Effective|data[0].Permitted|data[1].Effective|data[1].Permitted != 0 {
		return errors.New("capabilities remain after leaving uid 0")
	}
	return nil
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// buildRoot makes the minimal root and pivots into it: a read-only tmpfs
// holding read-only binds of the toolchain directories and of allowlisted
// /etc entries, fresh passwd/group/hosts, a few device nodes, a fresh /proc,
// the working copy in a tmpfs of its own (size and inode limits, counted
// against the run's memory cgroup), and /tmp, /var/tmp and /dev/shm bound to
// the working copy's .tmp so they share its quota. It returns the status
// kind of an error ("badspec" when the project does not fit the quota).
func buildRoot(c *initConfig, rep initReporter) (string, error) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return "fail", fmt.Errorf("making mounts private: %w", err)
	}
	root := c.NewRoot
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=8m,nr_inodes=4096,mode=0755"); err != nil {
		return "fail", fmt.Errorf("root tmpfs: %w", err)
	}
	in := func(p string) string { return filepath.Join(root, p) }
	var shown []string
	for _, d := range c.ReadOnly {
		ok, err := bindRO(d, in(d), false)
		if err != nil {
			return "fail", err
		}
		if ok {
			shown = append(shown, d)
		}
	}
	if err := os.MkdirAll(in("/etc"), 0o755); err != nil {
		return "fail", err
	}
	for _, p := range etcPaths() {
		if _, err := bindRO(p, in(p), false); err != nil {
			return "fail", err
		}
		shown = append(shown, p)
	}
	uid := max(c.UID, 0)
	etc := map[string]string{
		"passwd": fmt.Sprintf("root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:%d:%d:sandbox:%s:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", uid, uid, sandboxHome),
		"group":  fmt.Sprintf("root:x:0:\nsandbox:x:%d:\nnogroup:x:65534:\n", uid),
		"hosts":  "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
	}
	for name, content := range etc {
		if err := os.WriteFile(in("/etc/"+name), []byte(content), 0o644); err != nil {
			return "fail", err
		}
	}
	if err := os.MkdirAll(in("/dev/shm"), 0o755); err != nil {
		return "fail", err
	}
	for _, d := range devFiles() {
		if _, err := bindRO(d, in(d), true); err != nil {
			return "fail", err
		}
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, in("/dev/"+name)); err != nil {
			return "fail", err
		}
	}
	if err := os.MkdirAll(in("/proc"), 0o755); err != nil {
		return "fail", err
	}
	if err := unix.Mount("proc", in("/proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return "fail", fmt.Errorf("mounting /proc: %w", err)
	}

	// The working copy.
	home := in(c.Work)
	if err := os.MkdirAll(home, 0o755); err != nil {
		return "fail", err
	}
	opts := fmt.Sprintf("size=%d,nr_inodes=%d,mode=0755", c.DiskBytes, c.Files)
	if c.UID > 0 {
		opts += fmt.Sprintf(",uid=%d,gid=%d", c.UID, c.UID)
	}
	if err := unix.Mount("tmpfs", home, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return "fail", fmt.Errorf("working copy tmpfs: %w", err)
	}
	if c.SpecDir != "" {
		if err := copyTree(c.SpecDir, home); err != nil {
			if errors.Is(err, ErrBadSpec) || errors.Is(err, syscall.ENOSPC) {
				return "badspec", fmt.Errorf("the project does not fit the working copy's quota of %d bytes and %d files: %v", c.DiskBytes, c.Files, err)
			}
			return "fail", fmt.Errorf("copying %s: %w", c.SpecDir, err)
		}
	}
	for _, d := range []string{".tmp", ".cache"} {
		if err := os.RemoveAll(filepath.Join(home, d)); err != nil {
			return "fail", err
		}
		if err := os.Mkdir(filepath.Join(home, d), 0o755); err != nil {
			return "fail", err
		}
	}
	if err := os.Chmod(filepath.Join(home, ".tmp"), 0o1777); err != nil {
		return "fail", err
	}
	if c.UID > 0 {
		if err := chownTree(home, c.UID); err != nil {
			return "fail", err
		}
	}
	if c.CacheDir != "" {
		if err := bindRW(c.CacheDir, filepath.Join(home, ".cache")); err != nil {
			return "fail", fmt.Errorf("cache dir: %w", err)
		}
	}
	for _, d := range []string{"/tmp", "/var/tmp", "/dev/shm"} {
		if err := os.MkdirAll(in(d), 0o755); err != nil {
			return "fail", err
		}
		if err := bindRW(filepath.Join(home, ".tmp"), in(d)); err != nil {
			return "fail", fmt.Errorf("private %s: %w", d, err)
		}
	}
	// A hidden path inside a directory shown read-only is covered.
	for _, h := range c.Hidden {
		for _, d := range shown {
			if within(h, d) && isDir(in(h)) {
				if err := unix.Mount("tmpfs", in(h), "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=4k,mode=0755"); err != nil {
					return "fail", fmt.Errorf("hiding %s: %w", h, err)
				}
				break
			}
		}
	}

	old := in("/.oldroot")
	if err := os.Mkdir(old, 0o700); err != nil {
		return "fail", err
	}
	if err := unix.PivotRoot(root, old); err != nil {
		return "fail", fmt.Errorf("pivot_root: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return "fail", err
	}
	if err := unix.Unmount("/.oldroot", unix.MNT_DETACH); err != nil {
		return "fail", fmt.Errorf("detaching the host root: %w", err)
	}
	if err := os.Remove("/.oldroot"); err != nil {
		return "fail", err
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return "fail", fmt.Errorf("making the root read-only: %w", err)
	}
	rep.say("iso", fmt.Sprintf("minimal root (pivot_root): only %s and allowlisted /etc entries, read-only; fresh /proc; no /sys, /root, /home, /run or host /tmp",
		strings.Join(existing(c.ReadOnly), ", ")))
	rep.say("iso", fmt.Sprintf("private working copy at %s: tmpfs of %d bytes and %d files, /tmp, /var/tmp and /dev/shm included (counted against the memory limit)",
		c.Work, c.DiskBytes, c.Files))
	return "", nil
}

// bindRO shows host path src at dst read-only (a symlink is recreated as a
// symlink). A missing src is skipped (false, nil).
func bindRO(src, dst string, device bool) (bool, error) {
	fi, err := os.Lstat(src)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return false, err
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return false, err
		}
		return true, os.Symlink(target, dst)
	case fi.IsDir():
		err = os.MkdirAll(dst, 0o755)
	default:
		err = os.WriteFile(dst, nil, 0o644)
	}
	if err != nil {
		return false, err
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return false, fmt.Errorf("bind %s: %w", src, err)
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_NOSUID)
	if device {
		flags |= unix.MS_NOEXEC
	} else {
		flags |= unix.MS_RDONLY | unix.MS_NODEV
	}
	if err := unix.Mount("", dst, "", flags, ""); err != nil {
		return false, fmt.Errorf("read-only %s: %w", src, err)
	}
	return true, nil
}

func bindRW(src, dst string) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	return unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV, "")
}
