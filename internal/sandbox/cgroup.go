package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// cgroupSupport is where per-run cgroups can be created.
type cgroupSupport struct {
	v2     string // parent directory in a cgroup2 hierarchy with memory+pids delegated
	v1mem  string // parent directory in the v1 memory hierarchy
	v1pids string // parent directory in the v1 pids hierarchy
}

type mountInfo struct{ root, point, fstype, super string }

func readMounts() []mountInfo {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []mountInfo
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root point opts [optional...] - fstype source super
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, x := range fields {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || len(fields) < sep+4 {
			continue
		}
		out = append(out, mountInfo{root: fields[3], point: fields[4], fstype: fields[sep+1], super: fields[sep+3]})
	}
	return out
}

// ownCgroups maps a controller ("" for v2) to this process's cgroup path.
func ownCgroups() map[string]string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			m[ctl] = parts[2]
		}
	}
	return m
}

func cgDir(mi mountInfo, path string) string {
	rel := path
	if mi.root != "/" {
		rel = strings.TrimPrefix(path, mi.root)
	}
	return filepath.Join(mi.point, rel)
}

// writable reports whether a child cgroup can be created under dir.
func writable(dir string) bool {
	probe := filepath.Join(dir, fmt.Sprintf("catalyst-probe-%d", os.Getpid()))
	if err := os.Mkdir(probe, 0o755); err != nil {
		return false
	}
	_ = os.Remove(probe)
	return true
}

func probeCgroup(root bool) *cgroupSupport {
	own := ownCgroups()
	mounts := readMounts()
	for _, mi := range mounts {
		if mi.fstype != "cgroup2" {
			continue
		}
		p, ok := own[""]
		if !ok {
			continue
		}
		dir := cgDir(mi, p)
		ctl, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		has := func(s string) bool { return strings.Contains(" "+string(ctl)+" ", " "+s+" ") }
		if !has("memory") || !has("pids") {
			// Enabling controllers is only allowed where no process lives
			// (or at the root): try, and accept failure.
			_ = os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+memory +pids"), 0)
			ctl, _ = os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		}
		if has("memory") && has("pids") && writable(dir) {
			return &cgroupSupport{v2: dir}
		}
	}
	if !root {
		return nil
	}
	var c cgroupSupport
	for _, mi := range mounts {
		if mi.fstype != "cgroup" {
			continue
		}
		opts := "," + mi.super + ","
		if strings.Contains(opts, ",memory,") && own["memory"] != "" && c.v1mem == "" {
			if d := cgDir(mi, own["memory"]); writable(d) {
				c.v1mem = d
			}
		}
		if strings.Contains(opts, ",pids,") && own["pids"] != "" && c.v1pids == "" {
			if d := cgDir(mi, own["pids"]); writable(d) {
				c.v1pids = d
			}
		}
	}
	if c.v1mem == "" && c.v1pids == "" {
		return nil
	}
	return &c
}

var cgSeq atomic.Uint64

// runCgroup is the cgroup(s) of one run.
type runCgroup struct {
	lim     Limits
	v2      string
	v1      []string // created v1 directories
	mem     bool     // memory limited
	pids    bool     // process count limited
	fd      *os.File // v2 directory, for CLONE_INTO_CGROUP
	applied []string
}

// newCgroup creates the run's cgroup(s) with their limits; nil when
// unsupported. Failures are returned as warnings.
func newCgroup(c capabilities, lim Limits) (*runCgroup, []string) {
	if c.cg == nil {
		return nil, nil
	}
	name := fmt.Sprintf("catalyst-sandbox-%d-%d", os.Getpid(), cgSeq.Add(1))
	rc := &runCgroup{lim: lim}
	var warn []string
	if c.cg.v2 != "" {
		dir := filepath.Join(c.cg.v2, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, []string{"cgroup not applied: " + err.Error()}
		}
		rc.v2 = dir
		werr := os.WriteFile(filepath.Join(dir, "memory.max"), []byte(strconv.FormatInt(lim.MemoryBytes, 10)), 0)
		_ = os.WriteFile(filepath.Join(dir, "memory.swap.max"), []byte("0"), 0)
		perr := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.Itoa(lim.Processes)), 0)
		fd, err := os.Open(dir)
		if err != nil || werr != nil || perr != nil {
			rc.remove()
			return nil, []string{fmt.Sprintf("cgroup v2 not applied: %v %v %v", err, werr, perr)}
		}
		rc.fd, rc.mem, rc.pids = fd, true, true
		rc.applied = []string{"cgroup v2 memory.max", "cgroup v2 pids.max"}
		return rc, nil
	}
	if c.cg.v1mem != "" {
		dir := filepath.Join(c.cg.v1mem, name)
		if err := os.Mkdir(dir, 0o755); err == nil {
			rc.v1 = append(rc.v1, dir)
			if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte(strconv.FormatInt(lim.MemoryBytes, 10)), 0); err == nil {
				_ = os.WriteFile(filepath.Join(dir, "memory.memsw.limit_in_bytes"), []byte(strconv.FormatInt(lim.MemoryBytes, 10)), 0)
				rc.mem = true
				rc.applied = append(rc.applied, "cgroup v1 memory.limit_in_bytes")
			} else {
				warn = append(warn, "cgroup v1 memory limit not applied: "+err.Error())
			}
		} else {
			warn = append(warn, "cgroup v1 memory not applied: "+err.Error())
		}
	}
	if c.cg.v1pids != "" {
		dir := filepath.Join(c.cg.v1pids, name)
		if err := os.Mkdir(dir, 0o755); err == nil {
			rc.v1 = append(rc.v1, dir)
			if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.Itoa(lim.Processes)), 0); err == nil {
				rc.pids = true
				rc.applied = append(rc.applied, "cgroup v1 pids.max")
			} else {
				warn = append(warn, "cgroup v1 pids limit not applied: "+err.Error())
			}
		} else {
			warn = append(warn, "cgroup v1 pids not applied: "+err.Error())
		}
	}
	if len(rc.v1) == 0 {
		return nil, warn
	}
	return rc, warn
}

// prepare arranges for a v2 child to start inside the cgroup. A v1 child is
// placed by started before the init reads its configuration.
func (rc *runCgroup) prepare(cmd *exec.Cmd) {
	if rc.fd != nil {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(rc.fd.Fd())
	}
}

// started places the child (v1). On error the caller must kill the child: it
// would otherwise run without its limits.
func (rc *runCgroup) started(cmd *exec.Cmd) error {
	if rc.fd != nil {
		_ = rc.fd.Close()
		rc.fd = nil
		return nil
	}
	pid := []byte(strconv.Itoa(cmd.Process.Pid))
	for _, dir := range rc.v1 {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), pid, 0); err != nil {
			return fmt.Errorf("sandbox: place run in cgroup %s: %w", dir, err)
		}
	}
	return nil
}

// remove kills whatever is left in the cgroup(s) and removes them.
func (rc *runCgroup) remove() {
	if rc.fd != nil {
		_ = rc.fd.Close()
	}
	dirs := append([]string{}, rc.v1...)
	if rc.v2 != "" {
		_ = os.WriteFile(filepath.Join(rc.v2, "cgroup.kill"), []byte("1"), 0)
		dirs = append(dirs, rc.v2)
	}
	for _, dir := range dirs {
		deadline := time.Now().Add(2 * time.Second)
		for {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
				break
			}
			if b, rerr := os.ReadFile(filepath.Join(dir, "cgroup.procs")); rerr == nil {
				for _, f := range strings.Fields(string(b)) {
					if pid, perr := strconv.Atoi(f); perr == nil {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// oomKilled reports whether the memory limit killed a process of the run.
func (rc *runCgroup) oomKilled() bool {
	if rc.v2 != "" {
		b, _ := os.ReadFile(filepath.Join(rc.v2, "memory.events"))
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "oom_kill" && f[1] != "0" {
				return true
			}
		}
		return false
	}
	for _, dir := range rc.v1 {
		b, err := os.ReadFile(filepath.Join(dir, "memory.oom_control"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "oom_kill" && f[1] != "0" {
				return true
			}
		}
	}
	return false
}
