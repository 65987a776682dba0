// Package sandbox runs generated code and its tests isolated from Catalyst and
// from the host: generated code is hostile until proven otherwise.
//
// A run shows the command only what it needs: a private copy of Spec.Dir
// (the original is never written) in a size- and file-count-limited tmpfs, the
// toolchains read-only, an empty private /tmp, no network, a scrubbed
// environment; it runs in its own process group under a wall-clock timeout
// that kills the whole group, with CPU, memory, process-count and file-size
// limits and capped output.
//
// Mechanism: Go cannot run code between fork and exec, so the calling binary
// re-executes itself (as runc does) as an init inside new network, PID, mount,
// IPC and UTS namespaces. The init (init_linux.go) builds a minimal root out of
// read-only binds and pivots into it, sets the rlimits, drops to an
// unprivileged uid of the run's own with no capabilities and no_new_privs,
// applies a Landlock filesystem allowlist and a seccomp filter, and only then
// starts the command. Memory and process count are bounded by a cgroup (v2 via
// CLONE_INTO_CGROUP, or v1 placed before the init reads its configuration)
// where the cgroup filesystem is writable. Each layer that this host cannot
// give is named in Result.Warnings with the reason; Result.Isolation lists
// what was applied.
package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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
const SafePath = "/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Limits bound one run. Zero fields take the Options' value, then the
// DefaultLimits value.
type Limits struct {
	CPUTime       time.Duration // RLIMIT_CPU, whole seconds (rounded up)
	MemoryBytes   int64         // cgroup memory.max; else RLIMIT_AS of max(4×this, 16 GiB)
	Processes     int           // cgroup pids.max and RLIMIT_NPROC for the run's uid
	FileSizeBytes int64         // RLIMIT_FSIZE: largest file a process may write
	OutputBytes   int           // per stream (stdout, stderr); beyond it head and tail are kept
	// DiskBytes is the size of the working copy's tmpfs, /tmp included: a
	// write past it fails with ENOSPC. tmpfs pages count against the memory
	// limit, so keep it below MemoryBytes.
	DiskBytes int64
	Files     int // files and directories the working copy may hold (tmpfs inodes)
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
		DiskBytes:     512 << 20,
		Files:         50_000,
	}
}

func (l Limits) withDefaults(d Limits) Limits {
	pick := func(v, o, def int64) int64 {
		switch {
		case v > 0:
			return v
		case o > 0:
			return o
		}
		return def
	}
	def := DefaultLimits()
	l.CPUTime = time.Duration(pick(int64(l.CPUTime), int64(d.CPUTime), int64(def.CPUTime)))
	l.MemoryBytes = pick(l.MemoryBytes, d.MemoryBytes, def.MemoryBytes)
	l.Processes = int(pick(int64(l.Processes), int64(d.Processes), int64(def.Processes)))
	l.FileSizeBytes = pick(l.FileSizeBytes, d.FileSizeBytes, def.FileSizeBytes)
	l.OutputBytes = int(pick(int64(l.OutputBytes), int64(d.OutputBytes), int64(def.OutputBytes)))
	l.DiskBytes = pick(l.DiskBytes, d.DiskBytes, def.DiskBytes)
	l.Files = int(pick(int64(l.Files), int64(d.Files), int64(def.Files)))
	return l
}

// DefaultTimeout applies when neither Spec.Timeout nor Options.Timeout is set.
const DefaultTimeout = 5 * time.Minute

// Options configure a Sandbox. The zero value is the standard sandbox.
type Options struct {
	// HiddenPaths are host directories that must never be visible to a run
	// (the data directory: database, other tasks' workspaces). The
	// allowlist keeps them out already unless one lies inside a path it
	// shows; then it is covered by an empty mount, or, where that is not
	// possible, named in the warnings.
	HiddenPaths []string
	// ReadOnlyPaths are further host paths shown read-only (a toolchain
	// installed outside /usr).
	ReadOnlyPaths []string
	// Timeout is a run's default and longest wall clock: a longer
	// Spec.Timeout is cut to it (DefaultTimeout when zero).
	Timeout time.Duration
	// Limits fill the zero fields of Spec.Limits (then DefaultLimits).
	Limits Limits
}

// Sandbox runs commands under its Options.
type Sandbox struct{ opt Options }

// New returns a Sandbox; opt is copied.
func New(opt Options) *Sandbox {
	opt.HiddenPaths = append([]string(nil), opt.HiddenPaths...)
	opt.ReadOnlyPaths = append([]string(nil), opt.ReadOnlyPaths...)
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	return &Sandbox{opt: opt}
}

var standard = New(Options{})

// Run runs spec in the standard sandbox (zero Options).
func Run(ctx context.Context, spec Spec) (Result, error) { return standard.Run(ctx, spec) }

// Spec describes one run.
type Spec struct {
	Dir     string            // contents COPIED into a private working dir; never written. "" = empty dir
	Command []string          // argv; Command[0] looked up on SafePath
	Env     map[string]string // added to the minimal scrubbed environment
	Timeout time.Duration     // wall clock, at most Options.Timeout; kills the whole process group
	Limits  Limits
	// CacheDir, optional, is a host directory kept between runs (created if
	// missing) that the run sees as HOME/.cache: GOCACHE, GOMODCACHE and the
	// XDG caches live there, so a second `go test` does not rebuild the
	// standard library. Share it only between runs of the same project: one
	// run's code can plant cache entries that the next run uses. It lies
	// outside the DiskBytes quota. Where no mount namespace is available it
	// is reached through a symlink, so the run's uid must be able to
	// traverse its parent directories.
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
	Timeout   time.Duration `json:"timeout"`  // the wall clock the run had
	Canceled  bool          `json:"canceled"` // the caller's ctx was cancelled
	// QuotaExceeded: the run filled its working copy's size or file quota
	// (its writes past it were refused, or it was stopped).
	QuotaExceeded bool          `json:"quota_exceeded,omitempty"`
	Duration      time.Duration `json:"duration"`
	Isolation     []string      `json:"isolation"`
	// Warnings name every isolation this host could not give, and why.
	Warnings []string `json:"warnings,omitempty"`
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
func (s *Sandbox) Run(ctx context.Context, spec Spec) (Result, error) {
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
		if spec.Dir, err = filepath.Abs(spec.Dir); err != nil {
			return res, fmt.Errorf("%w: %v", ErrBadSpec, err)
		}
	}
	tool, err := lookTool(spec.Command[0])
	if err != nil {
		return res, err
	}
	lim := spec.Limits.withDefaults(s.opt.Limits)
	timeout := s.opt.Timeout
	if spec.Timeout > 0 && spec.Timeout < timeout {
		timeout = spec.Timeout
	}
	res.Timeout = timeout
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("sandbox: not started: %w", err)
	}

	caps := probe()
	res.Warnings = append(res.Warnings, caps.warnings()...)
	if caps.nondumpable {
		res.Isolation = append(res.Isolation, "Catalyst non-dumpable (its /proc entries unreadable)")
	}

	base, err := os.MkdirTemp("", fmt.Sprintf("catalyst-sandbox-%d-", os.Getpid()))
	if err != nil {
		return res, fmt.Errorf("sandbox: %w", err)
	}
	defer removeAll(base)
	if err := os.Chmod(base, 0o711); err != nil {
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
		if cacheDir != "" {
			if err := chownTree(cacheDir, uid); err != nil {
				return res, fmt.Errorf("sandbox: chown cache dir: %w", err)
			}
		}
	}

	cg, cgWarn := newCgroup(caps, lim)
	res.Warnings = append(res.Warnings, cgWarn...)
	if cg != nil {
		defer cg.remove()
	}
	cfg, iso, warn := s.plan(caps, spec, lim, uid, tool, base, cacheDir, cg != nil && cg.mem)
	res.Isolation = append(res.Isolation, iso...)
	res.Warnings = append(res.Warnings, warn...)
	if cfg.MountNS {
		if err := os.Mkdir(cfg.NewRoot, 0o755); err != nil {
			return res, fmt.Errorf("sandbox: %w", err)
		}
	} else {
		// No mount namespace for a tmpfs: the private copy lives on disk.
		if err := prepareHostCopy(spec.Dir, cfg.Work, cacheDir, uid); err != nil {
			return res, err
		}
		res.Isolation = append(res.Isolation, "private working copy")
	}

	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// The init: this very binary, re-executed (see init_linux.go).
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{initArg0}
	cmd.Env = []string{}
	cmd.Dir = base
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if caps.namespaces {
		cmd.SysProcAttr.Cloneflags = nsFlags
	}
	stdout := newCapWriter(lim.OutputBytes)
	stderr := newCapWriter(lim.OutputBytes)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = 500 * time.Millisecond
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return res, fmt.Errorf("sandbox: %w", err)
	}
	defer cfgW.Close()
	stR, stW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		return res, fmt.Errorf("sandbox: %w", err)
	}
	defer stR.Close()
	cmd.ExtraFiles = []*os.File{cfgR, stW} // fds 3 and 4 of the init
	if cg != nil {
		cg.prepare(cmd)
	}

	start := time.Now()
	err = cmd.Start()
	cfgR.Close()
	stW.Close()
	if err != nil {
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
	// The init waits for its configuration, so it is in its cgroups before
	// it does anything.
	statusDone := make(chan []statusLine, 1)
	go func() { statusDone <- readStatus(stR) }()
	if err := json.NewEncoder(cfgW).Encode(cfg); err != nil {
		killGroup(pgid, uid)
		_ = cmd.Wait()
		return res, fmt.Errorf("sandbox: configure init: %w", err)
	}
	cfgW.Close()

	quotaHit := make(chan string, 1)
	if !cfg.MountNS {
		go watchQuota(runCtx, cfg.Work, lim.DiskBytes, lim.Files, quotaHit)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	quotaNote := ""
	select {
	case werr = <-done:
	case <-runCtx.Done():
		killGroup(pgid, uid)
		werr = <-done
	case quotaNote = <-quotaHit:
		killGroup(pgid, uid)
		werr = <-done
	}
	cancel()
	killGroup(pgid, uid) // leftovers of a command that exited: daemons, orphans
	res.Duration = time.Since(start)
	if ctx.Err() != nil {
		res.Canceled = true
	} else if quotaNote == "" && runCtx.Err() == context.DeadlineExceeded {
		res.TimedOut = true
	}
	var status []statusLine
	select {
	case status = <-statusDone:
	case <-time.After(2 * time.Second):
		status = []statusLine{{"warn", "the init's report was not complete"}}
	}
	res.ExitCode = exitCode(cmd, werr)
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	res.Truncated = stdout.truncated() || stderr.truncated()
	var notes []string
	for _, st := range status {
		switch st.kind {
		case "iso":
			res.Isolation = append(res.Isolation, st.text)
		case "warn":
			res.Warnings = append(res.Warnings, st.text)
		case "quota":
			res.QuotaExceeded = true
			notes = append(notes, st.text)
		case "note":
			notes = append(notes, st.text)
		case "badspec":
			return res, fmt.Errorf("%w: %s", ErrBadSpec, st.text)
		case "fail":
			if !res.TimedOut && !res.Canceled {
				return res, fmt.Errorf("sandbox: init: %s", st.text)
			}
		}
	}
	if quotaNote != "" {
		res.QuotaExceeded = true
		notes = append(notes, quotaNote)
	}
	for _, n := range notes {
		res.Stderr += "\n[sandbox: " + n + "]\n"
	}
	if cg != nil && cg.oomKilled() {
		res.Stderr += fmt.Sprintf("\n[sandbox: a process was killed for exceeding the memory limit of %d bytes (the working copy's tmpfs counts against it)]\n", lim.MemoryBytes)
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

// statusLine is one report of the init: what it applied ("iso"), could not
// apply ("warn"), a note for the output ("note", "quota"), or why it could not
// start the command ("fail", "badspec").
type statusLine struct{ kind, text string }

func readStatus(r *os.File) []statusLine {
	var out []statusLine
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		kind, text, ok := strings.Cut(sc.Text(), "\t")
		if ok && len(out) < 200 {
			out = append(out, statusLine{kind, text})
		}
	}
	return out
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
