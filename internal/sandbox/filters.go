package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// landlockRuleset builds the run's filesystem allowlist: the working copy
// and the private temp dirs read-write, the toolchains read-only, a few
// device nodes; everything else, /etc/shadow, /root and Catalyst's own files
// included, is out of reach even where the uid could read it. Signals and
// abstract unix sockets are scoped to the run. It returns the ruleset fd
// (-1 when Landlock offers nothing) for restrictSelf.
func landlockRuleset(c *initConfig) (int, uint32, string, error) {
	v7 := landlock.V7
	cfg := landlock.Config{HandledAccessFS: v7.HandledAccessFS, Scoped: v7.Scoped}.BestEffort()
	ro := append([]string(nil), c.ReadOnly...)
	rw := []string{c.Work}
	if c.MountNS {
		ro = append(ro, "/etc", "/proc")
		rw = append(rw, "/tmp", "/var/tmp", "/dev/shm")
	} else {
		ro = append(ro, "/proc")
		if c.CacheDir != "" {
			rw = append(rw, c.CacheDir)
		}
	}
	rules := []landlock.Rule{
		landlock.RODirs(ro...).IgnoreIfMissing(),
		landlock.RWDirs(rw...).IgnoreIfMissing(),
		landlock.RWFiles(devFiles()...).WithIoctlDev().IgnoreIfMissing(),
	}
	etc := "allowlisted /etc entries"
	if !c.MountNS {
		var dirs, files []string
		for _, p := range etcPaths() {
			if isDir(p) {
				dirs = append(dirs, p)
			} else {
				files = append(files, p)
			}
		}
		rules = append(rules, landlock.RODirs(dirs...).IgnoreIfMissing(), landlock.ROFiles(files...).IgnoreIfMissing())
	}
	fd, flags, err := cfg.NewRulesetFD(rules...)
	if err != nil {
		return -1, 0, "", err
	}
	abi, _ := llsys.LandlockGetABIVersion()
	desc := fmt.Sprintf("landlock ABI %d filesystem allowlist (read-write: the working copy%s; read-only: %s, %s, /proc; nothing else), signals and abstract unix sockets scoped to the run",
		abi, map[bool]string{true: " and /tmp", false: ""}[c.MountNS], strings.Join(existing(c.ReadOnly), ", "), etc)
	return fd, flags, desc, nil
}

// etcPaths expands etcEntries on the host.
func etcPaths() []string {
	var out []string
	for _, pat := range etcEntries() {
		m, _ := filepath.Glob(filepath.Join("/etc", pat))
		out = append(out, m...)
	}
	return out
}

func existing(paths []string) []string {
	var out []string
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// deniedSyscalls are refused with EPERM: namespace creation and entry,
// mounts and root changes, tracing and reading other processes' memory,
// kernel keyrings, eBPF, perf, loading kernels and modules, userfaultfd,
// io_uring (it bypasses this filter), clock and host settings. Names this
// architecture lacks are left out.
func deniedSyscalls() []string {
	return []string{
		"unshare", "setns",
		"mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
		"fsconfig", "fsmount", "fspick", "mount_setattr",
		"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
		"bpf", "perf_event_open", "userfaultfd",
		"keyctl", "add_key", "request_key",
		"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "create_module",
		"open_by_handle_at", "name_to_handle_at",
		"io_uring_setup", "io_uring_enter", "io_uring_register",
		"fanotify_init", "swapon", "swapoff", "reboot", "acct", "quotactl", "quotactl_fd", "syslog",
		"iopl", "ioperm", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
		"sethostname", "setdomainname", "vhangup", "lookup_dcookie", "uselib", "_sysctl", "nfsservctl",
	}
}

// cloneNewFlags are the clone flags that create namespaces.
const cloneNewFlags = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

func seccompSupported() bool { return seccomp.Supported() }

// loadSeccomp installs the filter on the calling thread (the init's locked
// thread, which starts the command). It needs no_new_privs already set.
func loadSeccomp() (string, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return "", err
	}
	var names []string
	for _, n := range deniedSyscalls() {
		if _, ok := info.SyscallNames[n]; ok {
			names = append(names, n)
		}
	}
	group := seccomp.SyscallGroup{Names: names, Action: seccomp.ActionErrno}
	if _, ok := info.SyscallNames["clone"]; ok {
		// clone(2)'s flags are its first argument on x86_64 and arm64.
		group.NamesWithCondtions = []seccomp.NameWithConditions{{Name: "clone",
			Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.BitsSet, Value: cloneNewFlags}}}}
	}
	filter := seccomp.Filter{Policy: seccomp.Policy{DefaultAction: seccomp.ActionAllow, Syscalls: []seccomp.SyscallGroup{group}}}
	if err := seccomp.LoadFilter(filter); err != nil {
		return "", err
	}
	// The library lets foreign architectures through (a 64-bit process can
	// still make i386 system calls with int 0x80) and can only answer
	// EPERM. A second filter refuses foreign architectures, and answers
	// clone3 — whose flags a filter cannot read — with ENOSYS, so that libc
	// falls back to clone, where the flags are checked.
	clone3, ok := info.SyscallNames["clone3"]
	if !ok {
		clone3 = -1
	}
	retErrno := func(e syscall.Errno) uint32 { return unix.SECCOMP_RET_ERRNO | uint32(e) }
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 4}, // arch
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 1, Jf: 0, K: uint32(info.ID)},
		{Code: unix.BPF_RET | unix.BPF_K, K: retErrno(unix.ENOSYS)},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: uint32(clone3)},
		{Code: unix.BPF_RET | unix.BPF_K, K: retErrno(unix.ENOSYS)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, e := syscall.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return "", fmt.Errorf("seccomp architecture filter: %w", e)
	}
	return "seccomp filter (EPERM: new namespaces by unshare/setns/clone flags, mount and pivot_root/chroot, ptrace and process_vm_*, bpf, perf_event_open, keyctl/add_key/request_key, kexec and kernel modules, userfaultfd, io_uring, clock and host settings; clone3 ENOSYS; foreign-architecture system calls refused)", nil
}
