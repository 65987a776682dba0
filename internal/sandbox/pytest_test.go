package sandbox

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestPytestWithTheSystemPython: the python3 on the sandbox's PATH is not a
// per-user install under the hidden /root or /home (pyenv shims there would
// not run), it has pytest (scripts/install-test-deps.sh installs it; a missing
// pytest fails this test rather than skipping it), and pytest works inside:
// tmp_path under the private temp dir, its cache written to the private copy
// only.
func TestPytestWithTheSystemPython(t *testing.T) {
	python, err := lookTool("python3")
	if err != nil {
		t.Fatalf("python3 is not on the sandbox's PATH (%v); run scripts/install-test-deps.sh", err)
	}
	res := run(t, Spec{Command: []string{"python3", "-c", "import sys, pytest; print(sys.executable)"}})
	if res.ExitCode != 0 {
		t.Fatalf("the sandbox's %s cannot import pytest; run scripts/install-test-deps.sh\n%s", python, res.Stderr)
	}
	exe := strings.TrimSpace(res.Stdout)
	for _, hidden := range []string{"/root/", "/home/"} {
		if strings.HasPrefix(exe, hidden) {
			t.Fatalf("python3 in the sandbox is %s, under a hidden directory", exe)
		}
	}
	dir := project(t, map[string]string{
		"conftest.py": "",
		"test_env.py": `import os

def test_tmp_path(tmp_path):
    (tmp_path / "x.txt").write_text("ok")
    assert (tmp_path / "x.txt").read_text() == "ok"
    assert str(tmp_path).startswith(os.environ["TMPDIR"]), tmp_path

def test_fails():
    assert 1 == 2
`,
	})
	before := snapshot(t, dir)
	res = run(t, Spec{Dir: dir, Command: []string{"python3", "-m", "pytest", "-rfE"}, Timeout: 2 * time.Minute})
	if res.ExitCode != 1 || !strings.Contains(res.Stdout, "1 failed, 1 passed") || !strings.Contains(res.Stdout, "FAILED test_env.py::test_fails") {
		t.Fatalf("want test_tmp_path passed and test_fails failed (exit 1), got exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if !reflect.DeepEqual(snapshot(t, dir), before) {
		t.Fatal("pytest wrote into the original Dir (.pytest_cache belongs in the private copy)")
	}
}
