package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// repoRoot is this repository's top directory (the test runs in its package).
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(wd))
}

// TestHostFilesOutsideTheAllowlist: what a hostile test would read — the
// shadow file, root's home, this repository's source, a world-readable file
// in the host's /tmp, another directory's world-readable file — is out of
// reach, through the full sandbox and through each filesystem layer alone
// (Landlock without a mount namespace; the minimal root without Landlock),
// while the toolchain stays usable.
func TestHostFilesOutsideTheAllowlist(t *testing.T) {
	requireNamespaces(t)
	if probe().landlockABI == 0 {
		skipUnlessRequired(t, "no Landlock on this kernel")
	}
	root := repoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found from %s", root)
	}
	hostTmp, err := os.CreateTemp("", "catalyst-host-secret-")
	if err != nil {
		t.Fatal(err)
	}
	hostTmp.WriteString("host tmp secret")
	hostTmp.Close()
	os.Chmod(hostTmp.Name(), 0o644)
	defer os.Remove(hostTmp.Name())
	varDir, err := os.MkdirTemp("/var/lib", "catalyst-allowlist-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(varDir)
	os.Chmod(varDir, 0o755)
	os.WriteFile(filepath.Join(varDir, "f"), []byte("var secret"), 0o644)

	targets := []string{"/etc/shadow", "/root/.bashrc", "/root/.profile", filepath.Join(root, "go.mod"),
		filepath.Join(root, "internal", "sandbox", "sandbox.go"), hostTmp.Name(), filepath.Join(varDir, "f")}
	var script strings.Builder
	for _, p := range targets {
		fmt.Fprintf(&script, "cat %s >/dev/null 2>&1 && echo LEAK %s\n", p, p)
	}
	fmt.Fprintf(&script, "ls /root %s >/dev/null 2>&1 && echo LEAK listing\n", root)
	script.WriteString("python3 -c 'print(\"toolchain ok\")'\n")

	modes := []struct {
		name  string
		caps  func(c *capabilities)
		layer string
	}{
		{"full", func(*capabilities) {}, "landlock ABI"},
		{"landlock only", func(c *capabilities) { c.mountns = false }, "landlock ABI"},
		{"minimal root only", func(c *capabilities) { c.landlockABI = 0 }, "minimal root"},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			withCaps(t, m.caps)
			res := run(t, Spec{Command: sh(script.String())})
			if strings.Contains(res.Stdout, "LEAK") {
				t.Fatalf("host files readable inside the sandbox:\n%s", res.Stdout)
			}
			if !strings.Contains(res.Stdout, "toolchain ok") {
				t.Fatalf("the toolchain does not run: %q %q", res.Stdout, res.Stderr)
			}
			if !hasIsolation(res, m.layer) {
				t.Fatalf("isolation does not name %q: %v", m.layer, res.Isolation)
			}
			if m.name != "full" && len(res.Warnings) == 0 {
				t.Fatal("a weaker sandbox with no warning")
			}
		})
	}
	// Control: with neither layer the same script does reach the host's
	// world-readable files, and the warnings say there is no allowlist.
	t.Run("control without either layer", func(t *testing.T) {
		withCaps(t, func(c *capabilities) { c.mountns, c.landlockABI = false, 0 })
		res := run(t, Spec{Command: sh(script.String())})
		if !strings.Contains(res.Stdout, "LEAK "+hostTmp.Name()) || !strings.Contains(res.Stdout, "LEAK "+filepath.Join(root, "go.mod")) {
			t.Fatalf("control run did not reach host files, so the test proves nothing: %q", res.Stdout)
		}
		if !strings.Contains(strings.Join(res.Warnings, ";"), "no filesystem allowlist") {
			t.Fatalf("warnings = %v", res.Warnings)
		}
	})
}

// TestSeccompRefusesEscapeSyscalls: a user namespace (`unshare -U`, as an
// unprivileged user would get one), a mount, ptrace, keyctl, bpf, io_uring
// are refused; clone3 answers ENOSYS so threads still start through clone.
// The control run without the filter shows the probes would work, so the
// refusals are the filter's.
func TestSeccompRefusesEscapeSyscalls(t *testing.T) {
	requireNamespaces(t)
	if !probe().seccomp {
		skipUnlessRequired(t, "no seccomp on this kernel")
	}
	probe := `
import ctypes, errno, os, threading, subprocess
libc = ctypes.CDLL(None, use_errno=True)
def sc(name, nr, *args):
    r = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
    e = ctypes.get_errno()
    print(name, "ok" if r >= 0 else errno.errorcode.get(e, e))
sc("unshare_user", 272, 0x10000000)
sc("unshare_mount", 272, 0x00020000)
sc("ptrace_traceme", 101, 0)
sc("keyctl_get_keyring", 250, 0, -3, 0)
sc("bpf", 321, 0, 0, 0)
sc("io_uring_setup", 425, 1, 0)
sc("clone3", 435, 0, 0)
t = threading.Thread(target=lambda: print("thread ok")); t.start(); t.join()
r = subprocess.run(["unshare", "-U", "true"], capture_output=True, text=True)
print("unshare_cmd", "ok" if r.returncode == 0 else "refused:" + r.stderr.strip())
r = subprocess.run(["mount", "-t", "tmpfs", "x", "/tmp"], capture_output=True, text=True)
print("mount_cmd", "ok" if r.returncode == 0 else "refused")
`
	res := run(t, Spec{Command: []string{"python3", "-c", probe}})
	want := map[string]string{
		"unshare_user": "EPERM", "unshare_mount": "EPERM", "ptrace_traceme": "EPERM",
		"keyctl_get_keyring": "EPERM", "bpf": "EPERM", "io_uring_setup": "EPERM", "clone3": "ENOSYS",
	}
	got := map[string]string{}
	for _, line := range strings.Split(res.Stdout, "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			got[k] = v
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %s", k, got[k], v)
		}
	}
	if got["thread"] != "ok" || !strings.HasPrefix(got["unshare_cmd"], "refused") || got["mount_cmd"] != "refused" {
		t.Errorf("threads must work, unshare -U and mount be refused: %q", res.Stdout)
	}
	if !hasIsolation(res, "seccomp filter") {
		t.Fatalf("isolation = %v", res.Isolation)
	}

	// Control: without the filter, the same uid gets a user namespace,
	// traces itself and reaches its keyring.
	withCaps(t, func(c *capabilities) { c.seccomp = false })
	ctl := run(t, Spec{Command: []string{"python3", "-c", probe}})
	for _, k := range []string{"unshare_user", "ptrace_traceme", "keyctl_get_keyring"} {
		if !strings.Contains(ctl.Stdout, k+" ok") {
			t.Errorf("control: %s should succeed without the filter: %q", k, ctl.Stdout)
		}
	}
	if hasIsolation(ctl, "seccomp filter") || !strings.Contains(strings.Join(ctl.Warnings, ";"), "seccomp") {
		t.Errorf("a run without seccomp must say so: isolation %v warnings %v", ctl.Isolation, ctl.Warnings)
	}
}

// TestDiskQuota: a test that writes past the working copy's quota (here in
// the working copy and in /tmp, which share it) has its writes refused and
// the result says so; nothing lands on the host disk.
func TestDiskQuota(t *testing.T) {
	requireNamespaces(t)
	const quota = 16 << 20
	res := run(t, Spec{
		Command: sh(`head -c 100000000 /dev/zero > big.bin; echo "rc=$?"; head -c 100000000 /dev/zero > /tmp/more.bin; echo "rc=$?"; du -sk . | cut -f1`),
		Limits:  Limits{DiskBytes: quota},
	})
	f := strings.Fields(res.Stdout)
	if len(f) != 3 || f[0] == "rc=0" || f[1] == "rc=0" {
		t.Fatalf("writes past the quota were not refused: %q %q", res.Stdout, res.Stderr)
	}
	if kb, err := strconv.Atoi(f[2]); err != nil || kb*1024 > quota {
		t.Fatalf("working copy holds %s KiB, quota %d bytes", f[2], quota)
	}
	if !res.QuotaExceeded || !strings.Contains(res.Stderr, "size quota") || res.TimedOut {
		t.Fatalf("result does not report the quota: QuotaExceeded=%v stderr %q", res.QuotaExceeded, res.Stderr)
	}
	// A normal run does not report it.
	if ok := run(t, Spec{Command: sh("echo fine > f")}); ok.QuotaExceeded {
		t.Fatal("quota reported for a small write")
	}
	// A project larger than the quota is refused before anything runs.
	dir := project(t, map[string]string{"big.txt": strings.Repeat("x", 2<<20)})
	if _, err := Run(context.Background(), Spec{Dir: dir, Command: sh("true"), Limits: Limits{DiskBytes: 1 << 20}}); err == nil || !strings.Contains(err.Error(), "quota") {
		t.Fatalf("oversized project: err = %v", err)
	}
}

// TestMillionFiles: creating a million files stops at the file limit.
func TestMillionFiles(t *testing.T) {
	requireNamespaces(t)
	start := time.Now()
	res := run(t, Spec{
		Command: []string{"python3", "-c", `
import os
n = 0
try:
    for i in range(1000000):
        open("f%d" % i, "w").close()
        n += 1
except OSError as e:
    print("stopped", n, e.strerror)
`},
		Limits:  Limits{Files: 3000},
		Timeout: 60 * time.Second,
	})
	f := strings.Fields(res.Stdout)
	if len(f) < 2 || f[0] != "stopped" {
		t.Fatalf("a million files were created: %q %q", res.Stdout, res.Stderr)
	}
	if n, _ := strconv.Atoi(f[1]); n >= 3000 {
		t.Fatalf("%d files created under a limit of 3000", n)
	}
	if !res.QuotaExceeded || !strings.Contains(res.Stderr, "limit of 3000 files") {
		t.Fatalf("result does not report the file limit: %q", res.Stderr)
	}
	t.Logf("stopped after %s", time.Since(start))
}

// TestQuotaWithoutMountNamespace: where no tmpfs can hold the working copy,
// a run that writes past the quota is stopped and the result says so.
func TestQuotaWithoutMountNamespace(t *testing.T) {
	requireNamespaces(t)
	withCaps(t, func(c *capabilities) { c.mountns = false })
	start := time.Now()
	res := run(t, Spec{
		Command: sh(`i=0; while :; do head -c 1048576 /dev/zero > f$i || exit 9; i=$((i+1)); done`),
		Limits:  Limits{DiskBytes: 8 << 20},
		Timeout: 20 * time.Second,
	})
	if res.TimedOut || !res.QuotaExceeded || !strings.Contains(res.Stderr, "went past its quota") || time.Since(start) > 10*time.Second {
		t.Fatalf("writer not stopped by the quota: exit %d timedOut %v quota %v after %s, stderr %q",
			res.ExitCode, res.TimedOut, res.QuotaExceeded, time.Since(start), res.Stderr)
	}
	if !strings.Contains(strings.Join(res.Warnings, ";"), "enforced by polling") {
		t.Fatalf("the weaker quota is not in the warnings: %v", res.Warnings)
	}
}

// TestProcessLimitWithoutCgroup: with no cgroup, RLIMIT_NPROC on the run's own
// uid still bounds the number of processes.
func TestProcessLimitWithoutCgroup(t *testing.T) {
	requireNamespaces(t)
	withCaps(t, func(c *capabilities) { c.cg = nil })
	res := run(t, Spec{
		Command: []string{"python3", "-c", `
import os, time
n = 0
for i in range(100):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(3)
        os._exit(0)
    n += 1
print(n)
`},
		Limits: Limits{Processes: 30},
	})
	n, err := strconv.Atoi(strings.TrimSpace(res.Stdout))
	if err != nil || n >= 30 {
		t.Fatalf("%q processes started under a limit of 30 with no cgroup (stderr %q)", res.Stdout, res.Stderr)
	}
	if hasIsolation(res, "cgroup") || !strings.Contains(strings.Join(res.Isolation, ";"), "nproc") {
		t.Fatalf("isolation = %v", res.Isolation)
	}
	if !strings.Contains(strings.Join(res.Warnings, ";"), "cgroup limits not applied") {
		t.Fatalf("missing cgroup not in warnings: %v", res.Warnings)
	}
}

// TestNoPrivilegesInside: the command has no capabilities, no_new_privs, a
// read-only root and its own uid.
func TestNoPrivilegesInside(t *testing.T) {
	requireNamespaces(t)
	res := run(t, Spec{Command: sh(`grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status; touch /newfile 2>/dev/null && echo ROOTWRITE; id -u`)})
	for _, want := range []string{"CapInh:\t0000000000000000", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
		"CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("want %q in\n%s", want, res.Stdout)
		}
	}
	if strings.Contains(res.Stdout, "ROOTWRITE") || strings.HasSuffix(strings.TrimSpace(res.Stdout), "\n0") {
		t.Errorf("root writable or uid 0: %s", res.Stdout)
	}
}
