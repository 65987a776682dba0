// Package sandbox runs generated code and its tests isolated from Catalyst and
// from the host: generated code is hostile until proven otherwise.
//
// A run works on a private copy of Spec.Dir (the original is never written),
// with a scrubbed environment, in its own process group, under a wall-clock
// timeout that kills the whole group, with CPU, memory, process-count and
// file-size limits and capped output. When Catalyst runs as root (the normal
// case on a Linux server) the run also gets new network, PID, mount, IPC and
// UTS namespaces (no network at all; every process dies with the run; a
// private /tmp and fresh /proc; the private copy re-exposed at its own path;
// /root and /home hidden) and runs as an unprivileged uid of its own, so that
// the process-count limit is per run and it cannot signal other runs.
//
// Mechanism (no init hook, no re-exec of the calling binary): the child is
// /bin/sh running a short setup script inside the new namespaces, which then
// execs util-linux `prlimit` (rlimits) and `setpriv` (drop to the run's uid,
// no capabilities, no_new_privs) and finally the command. Memory and process
// count are bounded by a cgroup (v2 memory.max/pids.max via CLONE_INTO_CGROUP,
// or v1 memory/pids placed before the command starts) where the cgroup
// filesystem is writable; otherwise by RLIMIT_AS with a generous value and
// RLIMIT_NPROC. Result.Isolation lists what was applied, Result.Warnings what
// could not be and why.
package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrToolMissing is returned when Command[0] is not found on the sandbox's
// PATH: a missing toolchain is reported as such, never as a pass.
var ErrToolMissing = errors.New("sandbox: tool not found")

// ErrBadSpec is returned for a Spec that cannot be run.
var ErrBadSpec = errors.New("sandbox: invalid spec")

// SafePath is the PATH inside the sandbox and the only place Command[0] is
// looked up (unless it contains a slash). Catalyst's own PATH is not used.
var SafePath = "/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Limits bound one run. Zero fields take the DefaultLimits value.
type Limits struct {
	CPUTime       time.Duration // RLIMIT_CPU, whole seconds (rounded up)
	MemoryBytes   int64         // cgroup memory.max; else RLIMIT_AS of max(4×this, 16 GiB)
	Processes     int           // cgroup pids.max and RLIMIT_NPROC for the run's uid
	FileSizeBytes int64         // RLIMIT_FSIZE: largest file a process may write
	OutputBytes   int           // per stream (stdout, stderr); beyond it head and tail are kept
}

// DefaultLimits are generous enough for `go test`, `node --test` and pytest on
// a generated project and small enough to stop runaway code quickly.
func DefaultLimits() Limits {
	return Limits{
		CPUTime:       2 * time.Minute,
		MemoryBytes:   1 << 30,
		Processes:     256,
		FileSizeBytes: 256 << 20,
		OutputBytes:   256 << 10,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.CPUTime <= 0 {
		l.CPUTime = d.CPUTime
	}
	if l.MemoryBytes <= 0 {
		l.MemoryBytes = d.MemoryBytes
	}
	if l.Processes <= 0 {
		l.Processes = d.Processes
	}
	if l.FileSizeBytes <= 0 {
		l.FileSizeBytes = d.FileSizeBytes
	}
	if l.OutputBytes <= 0 {
		l.OutputBytes = d.OutputBytes
	}
	return l
}

// DefaultTimeout applies when Spec.Timeout is zero.
const DefaultTimeout = 5 * time.Minute

// Spec describes one run.
type Spec struct {
	Dir     string            // contents COPIED into a private working dir; never written. "" = empty dir
	Command []string          // argv; Command[0] looked up on SafePath
	Env     map[string]string // added to the minimal scrubbed environment
	Timeout time.Duration     // wall clock; kills the whole process group (default DefaultTimeout)
	Limits  Limits
	// CacheDir, optional, is a host directory kept between runs (created if
	// missing) that the run sees as HOME/.cache: GOCACHE, GOMODCACHE and the
	// XDG caches live there, so a second `go test` does not rebuild the
	// standard library. Share it only between runs of the same project: one
	// run's code can plant cache entries that the next run uses. Where no
	// mount namespace is available it is reached through a symlink, so the
	// run's uid must be able to traverse its parent directories.
	CacheDir string
}

// Result reports one run.
type Result struct {
	Command   string        `json:"command"`
	ExitCode  int           `json:"exit_code"` // 128+signal when killed by a signal
	Stdout    string        `json:"stdout"`
	Stderr    string        `json:"stderr"`
	Truncated bool          `json:"truncated"`
	TimedOut  bool          `json:"timed_out"`
	Canceled  bool          `json:"canceled"` // the caller's ctx was cancelled
	Duration  time.Duration `json:"duration"`
	Isolation []string      `json:"isolation"`
	Warnings  []string      `json:"warnings,omitempty"`
}

// uidBase is the first of the unprivileged uids given to runs (one per
// concurrent run, so RLIMIT_NPROC is per run and runs cannot signal each
// other). These uids own no files on the host.
const (
	uidBase  = 880000
	uidRange = 4096
)

var uidNext atomic.Uint32

// acquireUID picks a uid no other run uses, in this process or another
// Catalyst process on the host (a test binary, a worker): each uid has a lock
// file held with flock for the run's duration, released by the kernel if the
// process dies. Leftover processes of a previous holder are killed.
func acquireUID() (int, func(), error) {
	dir := filepath.Join(os.TempDir(), "catalyst-sandbox-uids")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, nil, fmt.Errorf("sandbox: uid locks: %w", err)
	}
	start := uint32(os.Getpid()) + uidNext.Add(1)
	for i := uint32(0); i < uidRange; i++ {
		uid := uidBase + int((start+i)%uidRange)
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(uid)), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return 0, nil, fmt.Errorf("sandbox: uid lock: %w", err)
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close()
			continue
		}
		killUID(uid)
		return uid, func() { f.Close() }, nil
	}
	return 0, nil, errors.New("sandbox: no free sandbox uid (too many concurrent runs)")
}

// Run executes spec and reports what happened. It returns an error only when
// the run could not start (ErrToolMissing, ErrBadSpec, setup failure); a
// failing, crashing, timed-out or cancelled command is a Result.
func Run(ctx context.Context, spec Spec) (Result, error) {
	res := Result{Command: quoteArgs(spec.Command)}
	if len(spec.Command) == 0 || spec.Command[0] == "" {
		return res, fmt.Errorf("%w: empty command", ErrBadSpec)
	}
	for _, a := range spec.Command {
		if strings.IndexByte(a, 0) >= 0 {
			return res, fmt.Errorf("%w: NUL in argument", ErrBadSpec)
		}
	}
	for k, v := range spec.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.IndexByte(v, 0) >= 0 {
			return res, fmt.Errorf("%w: bad environment variable %q", ErrBadSpec, k)
		}
	}
	if spec.Dir != "" {
		fi, err := os.Stat(spec.Dir)
		if err != nil || !fi.IsDir() {
			return res, fmt.Errorf("%w: Dir %q is not a directory", ErrBadSpec, spec.Dir)
		}
	}
	tool, err := lookTool(spec.Command[0])
	if err != nil {
		return res, err
	}
	lim := spec.Limits.withDefaults()
	timeout := spec.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("sandbox: not started: %w", err)
	}

	caps := probe()
	res.Warnings = append(res.Warnings, caps.warnings...)
	if caps.nondumpable {
		res.Isolation = append(res.Isolation, "Catalyst non-dumpable (its /proc entries unreadable)")
	}

	// The private working copy.
	base, err := os.MkdirTemp("", fmt.Sprintf("catalyst-sandbox-%d-", os.Getpid()))
	if err != nil {
		return res, fmt.Errorf("sandbox: %w", err)
	}
	defer removeAll(base)
	if err := os.Chmod(base, 0o711); err != nil {
		return res, fmt.Errorf("sandbox: %w", err)
	}
	work := filepath.Join(base, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		return res, fmt.Errorf("sandbox: %w", err)
	}
	if spec.Dir != "" {
		if err := copyTree(spec.Dir, work); err != nil {
			return res, fmt.Errorf("sandbox: copy %s: %w", spec.Dir, err)
		}
	}
	tmp := filepath.Join(work, ".tmp")
	_ = os.Mkdir(tmp, 0o755)
	res.Isolation = append(res.Isolation, "private working copy")
	cache := filepath.Join(work, ".cache")
	if err := os.RemoveAll(cache); err != nil {
		return res, fmt.Errorf("sandbox: %w", err)
	}
	if err := os.Mkdir(cache, 0o755); err != nil {
		return res, fmt.Errorf("sandbox: %w", err)
	}
	cacheDir := ""
	if spec.CacheDir != "" {
		if cacheDir, err = filepath.Abs(spec.CacheDir); err == nil {
			err = os.MkdirAll(cacheDir, 0o755)
		}
		if err != nil {
			return res, fmt.Errorf("sandbox: cache dir: %w", err)
		}
	}

	uid := -1
	if caps.root {
		var release func()
		if uid, release, err = acquireUID(); err != nil {
			return res, err
		}
		defer release()
		if err := chownTree(work, uid); err != nil {
			return res, fmt.Errorf("sandbox: chown working copy: %w", err)
		}
		if cacheDir != "" {
			if err := chownTree(cacheDir, uid); err != nil {
				return res, fmt.Errorf("sandbox: chown cache dir: %w", err)
			}
		}
	}
	if cacheDir != "" && !caps.mountns {
		// Without a mount namespace the cache is reached through a symlink.
		if err := os.Remove(cache); err == nil {
			err = os.Symlink(cacheDir, cache)
		}
		if err != nil {
			return res, fmt.Errorf("sandbox: cache dir: %w", err)
		}
	}

	env := buildEnv(work, tmp, spec.Env)
	res.Isolation = append(res.Isolation, "scrubbed environment")

	cg, cgWarn := newCgroup(caps, lim)
	res.Warnings = append(res.Warnings, cgWarn...)
	if cg != nil {
		defer cg.remove()
	}
	cgMemory := cg != nil && cg.mem
	argv, iso, warn := wrap(caps, lim, uid, work, cacheDir, tool, spec.Command[1:], cg.gated(), cgMemory)
	res.Isolation = append(res.Isolation, iso...)
	res.Warnings = append(res.Warnings, warn...)

	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = work
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if caps.namespaces {
		cmd.SysProcAttr.Cloneflags = nsFlags
	}
	stdout := newCapWriter(lim.OutputBytes)
	stderr := newCapWriter(lim.OutputBytes)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = 500 * time.Millisecond

	if cg != nil {
		if err := cg.prepare(cmd); err != nil {
			return res, fmt.Errorf("sandbox: cgroup: %w", err)
		}
	}

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("sandbox: start: %w", err)
	}
	pgid := cmd.Process.Pid
	res.Isolation = append(res.Isolation, "process group")
	if cg != nil {
		if err := cg.started(cmd); err != nil {
			killGroup(pgid, uid)
			_ = cmd.Wait()
			return res, err
		}
		res.Isolation = append(res.Isolation, cg.applied...)
	}

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-runCtx.Done():
		killGroup(pgid, uid)
		werr = <-done
	}
	killGroup(pgid, uid) // leftovers of a command that exited: daemons, orphans
	res.Duration = time.Since(start)
	if ctx.Err() != nil {
		res.Canceled = true
	} else if runCtx.Err() == context.DeadlineExceeded {
		res.TimedOut = true
	}
	res.ExitCode = exitCode(cmd, werr)
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	res.Truncated = stdout.truncated() || stderr.truncated()
	if cg != nil && cg.oomKilled() {
		res.Stderr += fmt.Sprintf("\n[sandbox: a process was killed for exceeding the memory limit of %d bytes]\n", lim.MemoryBytes)
	}
	switch res.ExitCode {
	case 128 + int(syscall.SIGXCPU):
		res.Stderr += fmt.Sprintf("\n[sandbox: killed for exceeding the CPU time limit of %s]\n", lim.CPUTime)
	case 128 + int(syscall.SIGXFSZ):
		res.Stderr += fmt.Sprintf("\n[sandbox: killed for writing a file over the size limit of %d bytes]\n", lim.FileSizeBytes)
	}
	if res.TimedOut {
		res.Stderr += fmt.Sprintf("\n[sandbox: killed after timeout of %s]\n", timeout)
	}
	sort.Strings(res.Warnings)
	return res, nil
}

func exitCode(cmd *exec.Cmd, werr error) int {
	if cmd.ProcessState == nil {
		return -1
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
	if werr != nil {
		return -1
	}
	return cmd.ProcessState.ExitCode()
}

// killGroup kills the run's process group and, when the run had its own uid,
// every process of that uid (a process that left the group with setsid).
func killGroup(pgid, uid int) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if uid > 0 {
		killUID(uid)
	}
}

// killUID SIGKILLs every process whose real uid is uid.
func killUID(uid int) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	want := strconv.Itoa(uid)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "Uid:") {
				f := strings.Fields(line)
				if len(f) > 1 && f[1] == want {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				break
			}
		}
	}
}

// lookTool finds name on SafePath (or checks it when it contains a slash).
func lookTool(name string) (string, error) {
	if strings.Contains(name, "/") {
		if isExecutable(name) {
			return name, nil
		}
		return "", fmt.Errorf("%w: %s", ErrToolMissing, name)
	}
	for _, dir := range filepath.SplitList(SafePath) {
		p := filepath.Join(dir, name)
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %q is not installed (searched %s)", ErrToolMissing, name, SafePath)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// buildEnv is the whole environment of the child: nothing of Catalyst's own
// environment is inherited.
func buildEnv(work, tmp string, extra map[string]string) []string {
	m := map[string]string{
		"PATH":                    SafePath,
		"HOME":                    work,
		"TMPDIR":                  tmp,
		"LANG":                    "C.UTF-8",
		"LC_ALL":                  "C.UTF-8",
		"USER":                    "sandbox",
		"TERM":                    "dumb",
		"CI":                      "true",
		"NO_COLOR":                "1",
		"GOCACHE":                 filepath.Join(work, ".cache", "go-build"),
		"GOPATH":                  filepath.Join(work, ".cache", "gopath"),
		"GOMODCACHE":              filepath.Join(work, ".cache", "gopath", "pkg", "mod"),
		"GOFLAGS":                 "-mod=mod",
		"GOTOOLCHAIN":             "local",
		"GOPROXY":                 "off",
		"GOSUMDB":                 "off",
		"GOTELEMETRY":             "off",
		"XDG_CACHE_HOME":          filepath.Join(work, ".cache"),
		"PYTHONDONTWRITEBYTECODE": "1",
		"PYTHONUNBUFFERED":        "1",
		"PIP_NO_INDEX":            "1",
		"npm_config_offline":      "true",
	}
	for k, v := range extra {
		m[k] = v
	}
	env := make([]string, 0, len(m))
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

func quoteArgs(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`*?;&|<>()[]{}") {
			b.WriteString(a)
			continue
		}
		b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
	}
	return b.String()
}

// capWriter keeps the first and last max/2 bytes written to it.
type capWriter struct {
	max        int
	head, tail []byte
	total      int64
}

func newCapWriter(max int) *capWriter { return &capWriter{max: max} }

func (c *capWriter) Write(p []byte) (int, error) {
	n := len(p)
	c.total += int64(n)
	hmax := c.max - c.max/2
	if room := hmax - len(c.head); room > 0 {
		k := min(room, len(p))
		c.head = append(c.head, p[:k]...)
		p = p[k:]
	}
	if len(p) > 0 {
		tmax := c.max / 2
		c.tail = append(c.tail, p...)
		if len(c.tail) > tmax {
			c.tail = append(c.tail[:0:0], c.tail[len(c.tail)-tmax:]...)
		}
	}
	return n, nil
}

func (c *capWriter) truncated() bool { return c.total > int64(len(c.head)+len(c.tail)) }

func (c *capWriter) String() string {
	if !c.truncated() {
		return string(c.head) + string(c.tail)
	}
	var b bytes.Buffer
	b.Write(c.head)
	fmt.Fprintf(&b, "\n[... %d bytes truncated by the sandbox ...]\n", c.total-int64(len(c.head)+len(c.tail)))
	b.Write(c.tail)
	return b.String()
}
