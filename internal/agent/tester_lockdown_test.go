package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/sandbox"
)

// runScriptedTester runs the tester on a project without tests; the scripted
// model answers with the given test files, which the tester then runs in the
// real sandbox (sb, configured as the app would).
func runScriptedTester(t *testing.T, tests map[string]string, sb *sandbox.Sandbox, agentTimeout time.Duration) (TestOutput, json.RawMessage, string) {
	t.Helper()
	wsDir := t.TempDir()
	write(t, wsDir, map[string]string{"app.py": "def add(a, b):\n    return a + b\n"})
	var ans testAnswer
	for p, c := range tests {
		ans.Files = append(ans.Files, fileContent{Path: p, Content: c})
	}
	tr := &Tester{Deps{Models: fixed{ans}, WorkspaceDir: func(string) string { return wsDir },
		Sandbox: sb.Run, AgentTimeout: agentTimeout}}
	var l logs
	out, err := tr.Run(context.Background(), Input{Task: domain.Task{ID: "t"}, Node: "tester", Iteration: 1, Log: l.log})
	if err != nil {
		t.Fatal(err)
	}
	var to TestOutput
	if err := json.Unmarshal(out.Artifact, &to); err != nil {
		t.Fatal(err)
	}
	t.Logf("verdict %s: %d passed, %d failed, exit %d\nfailures: %+v\nisolation: %v\nwarnings: %v\noutput:\n%s",
		to.Verdict, to.Passed, to.Failed, to.ExitCode, to.Failures, to.Sandbox.Isolation, to.Sandbox.Warnings, to.Output)
	return to, out.Artifact, l.String()
}

// wantRefused checks that every generated test failed (the attack was
// refused), that the named failures carry the refusal, and that the verdict
// fails the run.
func wantRefused(t *testing.T, to TestOutput, raw json.RawMessage, tests int, msgs map[string]string) {
	t.Helper()
	if to.Passed != 0 || to.Failed != tests || to.Verdict != VerdictFailed {
		t.Fatalf("want all %d attacks refused (failed), got %d passed %d failed, verdict %s", tests, to.Passed, to.Failed, to.Verdict)
	}
	for name, want := range msgs {
		found := false
		for _, f := range to.Failures {
			if strings.HasSuffix(f.Name, name) {
				found = true
				if !strings.Contains(f.Message, want) {
					t.Errorf("failure %s: %q lacks %q", f.Name, f.Message, want)
				}
			}
		}
		if !found {
			t.Errorf("no failure for %s in %+v", name, to.Failures)
		}
	}
	if pass, _ := TestVerdict(raw); pass {
		t.Fatal("the verdict passed a run whose tests all failed")
	}
}

func requireSandbox(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CATALYST_REQUIRE_SANDBOX") == "1" {
			t.Fatal("CATALYST_REQUIRE_SANDBOX=1 but not root: the sandbox's namespaces are unavailable")
		}
		t.Skip("the sandbox's namespaces need root")
	}
}

// TestTesterAttacksAreRefused: generated tests, as a hostile model would
// write them, try to read host files, create a user namespace, mount, fork
// without end, write past the quota and create a million files. Each is
// refused or bounded, and the tester's report says what happened.
func TestTesterAttacksAreRefused(t *testing.T) {
	requireSandbox(t)
	wd, _ := os.Getwd()
	repo := filepath.Dir(filepath.Dir(wd))
	sb := sandbox.New(sandbox.Options{HiddenPaths: []string{repo},
		Limits: sandbox.Limits{DiskBytes: 32 << 20, Files: 4000, Processes: 64}})
	cases := []struct {
		name  string
		test  string
		tests int
		msgs  map[string]string
		check func(t *testing.T, to TestOutput)
	}{
		{
			name: "host files", tests: 4,
			test: `import os, unittest
class T(unittest.TestCase):
    def test_shadow(self):
        print("LEAKED", open("/etc/shadow").read())
    def test_repo_source(self):
        print("LEAKED", open(` + "\"" + repo + `/go.mod").read())
    def test_root_home(self):
        print("LEAKED", os.listdir("/root"))
    def test_host_tmp(self):
        print("LEAKED", os.listdir("/tmp"))
        self.assertTrue(os.listdir("/tmp"), "the private /tmp is empty")
`,
			msgs: map[string]string{"test_shadow": "/etc/shadow", "test_repo_source": "No such file", "test_root_home": "No such file", "test_host_tmp": "the private /tmp is empty"},
			check: func(t *testing.T, to TestOutput) {
				if strings.Contains(to.Output, "module github.com/catalyst") || strings.Contains(to.Output, "LEAKED ['") {
					t.Fatalf("host content in the report:\n%s", to.Output)
				}
			},
		},
		{
			name: "namespaces and mounts", tests: 3,
			test: `import ctypes, subprocess, unittest
class T(unittest.TestCase):
    def test_unshare_user(self):
        r = subprocess.run(["unshare", "-U", "--map-root-user", "id", "-u"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr.strip())
    def test_unshare_syscall(self):
        libc = ctypes.CDLL(None, use_errno=True)
        self.assertEqual(libc.unshare(0x10000000), 0, "unshare(CLONE_NEWUSER) errno %d" % ctypes.get_errno())
    def test_mount(self):
        r = subprocess.run(["mount", "-t", "tmpfs", "none", "/tmp"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr.strip())
`,
			msgs: map[string]string{"test_unshare_user": "Operation not permitted", "test_unshare_syscall": "errno 1", "test_mount": "mount"},
		},
		{
			name: "fork bomb", tests: 1,
			test: `import os, time, unittest
class T(unittest.TestCase):
    def test_fork_bomb(self):
        n = 0
        for i in range(5000):
            if os.fork() == 0:
                time.sleep(2)
                os._exit(0)
            n += 1
`,
			msgs: map[string]string{"test_fork_bomb": "Resource temporarily unavailable"},
		},
		{
			name: "disk quota", tests: 1,
			test: `import unittest
class T(unittest.TestCase):
    def test_fill_disk(self):
        with open("big.bin", "wb") as f:
            for i in range(5 * 1024):
                f.write(b"x" * (1 << 20))
`,
			msgs: map[string]string{"test_fill_disk": "No space left on device", "quota": "size quota of 33554432 bytes"},
			check: func(t *testing.T, to TestOutput) {
				if !to.QuotaExceeded {
					t.Fatal("report does not say the quota was exceeded")
				}
			},
		},
		{
			name: "million files", tests: 1,
			test: `import unittest
class T(unittest.TestCase):
    def test_million_files(self):
        for i in range(1000000):
            open("f%d" % i, "w").close()
`,
			msgs: map[string]string{"test_million_files": "No space left on device", "quota": "limit of 4000 files"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			to, raw, _ := runScriptedTester(t, map[string]string{"test_attack.py": c.test}, sb, 0)
			if len(to.TestsAdded) != 1 || !strings.HasPrefix(to.Command, "python3 -m unittest") {
				t.Fatalf("the scripted tests were not run: %+v", to)
			}
			wantRefused(t, to, raw, c.tests, c.msgs)
			if c.check != nil {
				c.check(t, to)
			}
			iso := strings.Join(to.Sandbox.Isolation, "; ")
			for _, layer := range []string{"minimal root", "landlock", "seccomp", "unprivileged uid", "network namespace"} {
				if !strings.Contains(iso, layer) {
					t.Errorf("report's isolation lacks %q: %s", layer, iso)
				}
			}
		})
	}
}

// TestTesterReportsAHang: a test that hangs is killed at the run's own
// timeout (below AGENT_TIMEOUT), and the tester reports it as hung, with the
// output so far, instead of the step timing out with no report.
func TestTesterReportsAHang(t *testing.T) {
	requireSandbox(t)
	start := time.Now()
	to, raw, log := runScriptedTester(t, map[string]string{"test_hang.py": `import time, unittest
class T(unittest.TestCase):
    def test_a_quick(self):
        pass
    def test_b_hang(self):
        time.sleep(3600)
`}, sandbox.New(sandbox.Options{}), 5*time.Second)
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("the tester returned after %s, past AGENT_TIMEOUT", el)
	}
	if to.Verdict != VerdictHung || !to.TimedOut || to.TimeoutMS != 4000 {
		t.Fatalf("verdict %s timed_out %v timeout %d ms", to.Verdict, to.TimedOut, to.TimeoutMS)
	}
	f := failure(t, to, "timeout")
	wantContains(t, "timeout failure", f.Message, "hung", "4s")
	wantContains(t, "output so far", to.Output, "test_a_quick", "ok", "test_b_hang")
	wantContains(t, "log", log, "hung and was killed after 4s")
	if pass, reasons := TestVerdict(raw); pass || !strings.Contains(strings.Join(reasons, " "), "hung") {
		t.Fatalf("verdict %v %v", pass, reasons)
	}
}

// TestTesterVerdictGuards: a runner that exits non-zero with nothing the
// parser recognises, and one that exits 0 having run no test, both fail.
func TestTesterVerdictGuards(t *testing.T) {
	files := map[string]string{"package.json": `{"name":"x"}`, "a.test.js": "x"}
	cases := []struct {
		name, out string
		exit      int
		verdict   string
		reason    string
	}{
		{"non-zero exit, no parsed failure", "Segmentation fault (core dumped)\n", 139, VerdictFailed, "node exited with status 139"},
		{"zero tests, exit 0", "TAP version 13\n1..0\n# tests 0\n# pass 0\n# fail 0\n", 0, VerdictNoTests, "no test ran"},
		{"zero tests, empty output", "", 0, VerdictNoTests, "no test ran"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			to, raw, _ := testerRun(t, files, func(ctx context.Context, s sandbox.Spec) (sandbox.Result, error) {
				return sandbox.Result{ExitCode: c.exit, Stdout: c.out, Isolation: []string{"fake"}}, nil
			})
			if to.Verdict != c.verdict || to.Failed == 0 || TestsPassed(to) {
				t.Fatalf("verdict %s, %d failed: %+v", to.Verdict, to.Failed, to)
			}
			pass, reasons := TestVerdict(raw)
			if pass || !strings.Contains(strings.Join(reasons, " "), c.reason) {
				t.Fatalf("TestVerdict = %v %v, want a failure naming %q", pass, reasons, c.reason)
			}
		})
	}
	// And the control: a run that ran a test and exited 0 passes.
	to, raw, _ := testerRun(t, files, func(ctx context.Context, s sandbox.Spec) (sandbox.Result, error) {
		return sandbox.Result{ExitCode: 0, Stdout: "ok 1 - a\n# pass 1\n# fail 0\n", Isolation: []string{"fake"}}, nil
	})
	if pass, _ := TestVerdict(raw); !pass || to.Verdict != VerdictPassed {
		t.Fatalf("a passing run failed: %+v", to)
	}
}
