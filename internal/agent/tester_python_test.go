package agent

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/sandbox"
)

// requirePytest fails, never skips, when the sandbox's python3 cannot import
// pytest: CI installs it, so its absence is a broken setup, not a reason to
// stop checking the pytest path.
func requirePytest(t *testing.T) {
	t.Helper()
	res, err := sandbox.Run(context.Background(), sandbox.Spec{Command: []string{"python3", "-c", "import pytest"}})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("the sandbox's python3 cannot import pytest (%v, exit %d: %s%s); run scripts/install-test-deps.sh",
			err, res.ExitCode, res.Stdout, res.Stderr)
	}
}

// testerRun runs the tester on a workspace of files, in the real sandbox when
// run is nil.
func testerRun(t *testing.T, files map[string]string, run func(context.Context, sandbox.Spec) (sandbox.Result, error)) (TestOutput, json.RawMessage, string) {
	t.Helper()
	wsDir := t.TempDir()
	write(t, wsDir, files)
	tr := &Tester{Deps{WorkspaceDir: func(string) string { return wsDir }, Sandbox: run}}
	var l logs
	out, err := tr.Run(context.Background(), Input{Task: domain.Task{ID: "t"}, Node: "tester", Iteration: 1, Log: l.log})
	if err != nil {
		t.Fatal(err)
	}
	var to TestOutput
	if err := json.Unmarshal(out.Artifact, &to); err != nil {
		t.Fatal(err)
	}
	return to, out.Artifact, l.String()
}

// failure returns the failure named name.
func failure(t *testing.T, to TestOutput, name string) TestFailure {
	t.Helper()
	for _, f := range to.Failures {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no failure named %q in %+v\n%s", name, to.Failures, to.Output)
	return TestFailure{}
}

func wantContains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s lacks %q:\n%s", what, sub, s)
		}
	}
}

type pythonCase struct {
	name   string
	files  map[string]string
	cmd    string
	exit   int // -1: any non-zero, -2: any
	passed int
	failed int
	check  func(t *testing.T, to TestOutput)
}

// runPythonCases runs each case through the tester in the real sandbox (with
// the python3 the sandbox's PATH finds, /usr/bin/python3 on Debian: the
// login shell's pyenv under /root is hidden there) and checks the report and
// the verdict: a pass only when everything ran and passed.
func runPythonCases(t *testing.T, cases []pythonCase) {
	for _, c := range cases {
		if strings.Contains(c.cmd, "pytest") {
			requirePytest(t)
			break
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			to, raw, log := testerRun(t, c.files, nil)
			if len(to.TestsAdded) != 0 || to.ToolMissing || len(to.Sandbox.Isolation) == 0 {
				t.Fatalf("not a sandboxed run of the project's own tests: %+v\n%s", to, log)
			}
			exitOK := to.ExitCode == c.exit || c.exit == -1 && to.ExitCode > 0 || c.exit == -2
			if to.Command != c.cmd || !exitOK || to.Passed != c.passed || to.Failed != c.failed {
				t.Fatalf("got %q exit %d, %d passed, %d failed; want %q exit %d, %d passed, %d failed\nfailures: %+v\noutput:\n%s\nlog:\n%s",
					to.Command, to.ExitCode, to.Passed, to.Failed, c.cmd, c.exit, c.passed, c.failed, to.Failures, to.Output, log)
			}
			pass, reasons := TestVerdict(raw)
			if pass != (c.failed == 0 && c.exit == 0 && len(to.Failures) == 0) {
				t.Fatalf("verdict %v %v for %+v", pass, reasons, to)
			}
			if !pass && len(to.Failures) == 0 {
				t.Fatalf("a failing run reports no failure: %+v", to)
			}
			if c.check != nil {
				c.check(t, to)
			}
		})
	}
}

const pytestCmd = "python3 -m pytest --verbosity=-1 -rfE"

func TestTesterRunsPytestInTheSandbox(t *testing.T) {
	calc := "def add(a, b):\n    return a + b\n"
	runPythonCases(t, []pythonCase{
		{
			name: "passing suite", cmd: pytestCmd, exit: 0, passed: 3,
			files: map[string]string{"conftest.py": "", "calc.py": calc, "test_calc.py": `from calc import add

def test_add():
    assert add(1, 2) == 3

def test_add_negative():
    assert add(-1, -2) == -3

def test_tmp_path(tmp_path):
    (tmp_path / "x.txt").write_text("ok")
    assert (tmp_path / "x.txt").read_text() == "ok"
`},
			check: func(t *testing.T, to TestOutput) {
				if len(to.Failures) != 0 {
					t.Fatalf("%+v", to.Failures)
				}
				wantContains(t, "output", to.Output, "3 passed")
			},
		},
		{
			name: "failing suite", cmd: pytestCmd, exit: 1, passed: 2, failed: 1,
			files: map[string]string{"pytest.ini": "[pytest]\n", "calc.py": calc, "test_calc.py": `from calc import add

def test_add():
    assert add(1, 2) == 3

def test_bad():
    x = add(1, 1)
    assert x == 3, "x should be three"

def test_zero():
    assert add(0, 0) == 0
`},
			check: func(t *testing.T, to TestOutput) {
				if len(to.Failures) != 1 {
					t.Fatalf("%+v", to.Failures)
				}
				f := failure(t, to, "test_calc.py::test_bad")
				wantContains(t, "message", f.Message, "AssertionError: x should be three", "assert 2 == 3")
				wantContains(t, "trimmed output", to.Output, "test_bad", "assert 2 == 3", "1 failed, 2 passed")
			},
		},
		{
			// pytest stops at a module that does not import: the passing
			// test_ok.py does not run, and the run is not "0 failed".
			name: "collection error", cmd: pytestCmd, exit: 2, passed: 0, failed: 1,
			files: map[string]string{"conftest.py": "", "test_broken.py": "import nosuchmodule\n\ndef test_never():\n    pass\n",
				"test_ok.py": "def test_ok():\n    pass\n"},
			check: func(t *testing.T, to TestOutput) {
				f := failure(t, to, "test_broken.py")
				wantContains(t, "message", f.Message, "ModuleNotFoundError: No module named 'nosuchmodule'")
				wantContains(t, "trimmed output", to.Output, "ERROR test_broken.py", "1 error")
			},
		},
		{
			name: "syntax error", cmd: pytestCmd, exit: 2, passed: 0, failed: 1,
			files: map[string]string{"conftest.py": "", "test_syntax.py": "def test_x(:\n    pass\n"},
			check: func(t *testing.T, to TestOutput) {
				f := failure(t, to, "test_syntax.py")
				wantContains(t, "message", f.Message, "SyntaxError", "test_syntax.py:1")
				if strings.Contains(f.Message, "catalyst-sandbox-") {
					t.Errorf("the sandbox's private path leaks into the message: %s", f.Message)
				}
			},
		},
		{
			// Chosen from pyproject.toml alone (the tests are unittest
			// TestCases), whose settings pytest applies: without its
			// pythonpath, tests/ could not import calc.
			name: "configured in pyproject.toml", cmd: pytestCmd, exit: 0, passed: 3,
			files: map[string]string{
				"pyproject.toml": "[project]\nname = \"calc\"\nversion = \"0.1.0\"\n\n[tool.pytest.ini_options]\ntestpaths = [\"tests\"]\npythonpath = [\".\"]\n",
				"calc.py":        calc,
				"tests/test_calc.py": `import unittest
from calc import add

class AddTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 2), 4)
`,
				"tests/test_more.py": "import unittest\nfrom calc import add\n\nclass MoreTest(unittest.TestCase):\n    def test_zero(self):\n        self.assertEqual(add(0, 0), 0)\n\n    def test_neg(self):\n        self.assertEqual(add(-1, 1), 0)\n",
			},
		},
		{
			// A plain pytest module without any pytest configuration:
			// unittest would find no test in it.
			name: "pytest-style tests without configuration", cmd: pytestCmd, exit: 0, passed: 1,
			files: map[string]string{"calc.py": calc, "test_calc.py": "from calc import add\n\ndef test_add():\n    assert add(1, 2) == 3\n"},
		},
		{
			// The command's own quiet flag must not add to the project's:
			// at -qq pytest prints no summary, and a passing suite would
			// count 0 passed.
			name: "addopts -q", cmd: pytestCmd, exit: 0, passed: 2,
			files: map[string]string{"pytest.ini": "[pytest]\naddopts = -q\n", "test_a.py": "def test_one():\n    pass\n\ndef test_two():\n    pass\n"},
		},
		{
			// Skips, xfail, xpass and warnings count as neither; an error
			// in a fixture is a failure. The failing test prints a line
			// that looks like a summary: the real one comes last.
			name: "mixed outcomes", cmd: pytestCmd, exit: 1, passed: 2, failed: 3,
			files: map[string]string{
				"conftest.py": "import pytest\n\n@pytest.fixture\ndef broken():\n    raise RuntimeError('fixture boom')\n",
				"test_mixed.py": `import warnings
import pytest

def test_ok():
    warnings.warn("careful", UserWarning)

@pytest.mark.skip(reason="later")
def test_skipped():
    pass

@pytest.mark.xfail
def test_xfail():
    assert 0

@pytest.mark.xfail
def test_xpass():
    pass

def test_uses_broken(broken):
    pass

def test_fail():
    print("9 passed in 1.00s")
    assert [1, 2] == [1, 3]

@pytest.mark.parametrize("word", ["a b", "c - d"])
def test_word(word):
    assert word == "a b"
`},
			check: func(t *testing.T, to TestOutput) {
				if len(to.Failures) != 3 {
					t.Fatalf("%+v", to.Failures)
				}
				wantContains(t, "message", failure(t, to, "test_mixed.py::test_word[c - d]").Message, "assert 'c - d' == 'a b'")
				wantContains(t, "message", failure(t, to, "test_mixed.py::test_fail").Message, "assert [1, 2] == [1, 3]")
				wantContains(t, "message", failure(t, to, "test_mixed.py::test_uses_broken").Message, "RuntimeError: fixture boom")
			},
		},
		{
			name: "strict xfail that passes", cmd: pytestCmd, exit: 1, passed: 1, failed: 1,
			files: map[string]string{"pytest.ini": "[pytest]\nxfail_strict = true\n",
				"test_x.py": "import pytest\n\ndef test_ok():\n    pass\n\n@pytest.mark.xfail(reason='bug 12')\ndef test_known_bug():\n    pass\n"},
			check: func(t *testing.T, to TestOutput) {
				wantContains(t, "message", failure(t, to, "test_x.py::test_known_bug").Message, "XPASS(strict)")
			},
		},
		{
			name: "no tests", cmd: pytestCmd, exit: 5, passed: 0, failed: 1,
			files: map[string]string{"pytest.ini": "[pytest]\n", "test_nothing.py": "VALUE = 1\n"},
			check: func(t *testing.T, to TestOutput) {
				wantContains(t, "message", failure(t, to, "tests").Message, "no test ran")
			},
		},
		{
			name: "conftest does not import", cmd: pytestCmd, exit: 4, passed: 0, failed: 1,
			files: map[string]string{"conftest.py": "import nosuchplugin\n", "test_a.py": "def test_a():\n    pass\n"},
			check: func(t *testing.T, to TestOutput) {
				wantContains(t, "message", failure(t, to, "conftest.py").Message, "ImportError while loading conftest", "No module named 'nosuchplugin'")
			},
		},
		{
			name: "bad option in addopts", cmd: pytestCmd, exit: 4, passed: 0, failed: 1,
			files: map[string]string{"pytest.ini": "[pytest]\naddopts = --no-such-flag\n", "test_a.py": "def test_a():\n    pass\n"},
			check: func(t *testing.T, to TestOutput) {
				wantContains(t, "message", failure(t, to, "pytest").Message, "unrecognized arguments: --no-such-flag")
			},
		},
	})
}

const unittestCmd = "python3 -m unittest discover -v -s . -p *test*.py"

func TestTesterRunsUnittestInTheSandbox(t *testing.T) {
	runPythonCases(t, []pythonCase{
		{
			name: "passing suite", cmd: unittestCmd, exit: 0, passed: 2,
			files: map[string]string{"test_a.py": "import unittest\n\nclass T(unittest.TestCase):\n    def test_one(self):\n        self.assertEqual(1, 1)\n\n    def test_two(self):\n        self.assertTrue(True)\n"},
		},
		{
			// An expected failure passes, a skip is not counted.
			name: "failing and erroring tests", cmd: unittestCmd, exit: 1, passed: 2, failed: 2,
			files: map[string]string{"test_a.py": `import unittest

class T(unittest.TestCase):
    def test_good(self):
        self.assertEqual(1, 1)

    def test_bad(self):
        self.assertEqual(1, 2, "one is not two")

    def test_err(self):
        raise KeyError("k")

    @unittest.skip("later")
    def test_skip(self):
        pass

    @unittest.expectedFailure
    def test_known(self):
        self.assertEqual(1, 2)
`},
			check: func(t *testing.T, to TestOutput) {
				wantContains(t, "message", failure(t, to, "test_a.T.test_bad").Message, "AssertionError: 1 != 2 : one is not two")
				wantContains(t, "message", failure(t, to, "test_a.T.test_err").Message, "KeyError: 'k'")
				wantContains(t, "trimmed output", to.Output, "FAIL: test_bad", "ERROR: test_err")
			},
		},
		{
			name: "module that does not import", cmd: unittestCmd, exit: 1, passed: 1, failed: 1,
			files: map[string]string{"test_broken.py": "import nosuchmodule\n",
				"test_ok.py": "import unittest\n\nclass T(unittest.TestCase):\n    def test_ok(self):\n        pass\n"},
			check: func(t *testing.T, to TestOutput) {
				wantContains(t, "message", failure(t, to, "test_broken").Message, "ModuleNotFoundError: No module named 'nosuchmodule'")
			},
		},
		{
			name: "unexpected success", cmd: unittestCmd, exit: 1, passed: 0, failed: 1,
			files: map[string]string{"test_a.py": "import unittest\n\nclass T(unittest.TestCase):\n    @unittest.expectedFailure\n    def test_fixed(self):\n        pass\n"},
			check: func(t *testing.T, to TestOutput) {
				wantContains(t, "message", failure(t, to, "test_a.T.test_fixed").Message, "unexpected success")
			},
		},
		{
			// Python 3.11 exits 0 when nothing ran, 3.12 exits 5: a failure either way.
			name: "no tests", cmd: unittestCmd, exit: -2, passed: 0, failed: 1,
			files: map[string]string{"test_a.py": "import unittest\n"},
			check: func(t *testing.T, to TestOutput) {
				wantContains(t, "message", failure(t, to, "tests").Message, "no test ran")
			},
		},
	})
}

// A python3 without pytest is a missing toolchain, not a failing project.
func TestTesterReportsAMissingPytestAsAMissingToolchain(t *testing.T) {
	to, raw, log := testerRun(t, map[string]string{"conftest.py": "", "test_a.py": "def test_a():\n    pass\n"},
		func(ctx context.Context, s sandbox.Spec) (sandbox.Result, error) {
			return sandbox.Result{ExitCode: 1, Stderr: "/usr/bin/python3: No module named pytest\n"}, nil
		})
	if !to.ToolMissing || to.Command != pytestCmd || len(to.Failures) != 1 || !strings.Contains(to.Failures[0].Message, "pytest") {
		t.Fatalf("%+v\n%s", to, log)
	}
	if pass, f := TestVerdict(raw); pass || !strings.Contains(f[0], "not installed") {
		t.Fatalf("a missing pytest passed: %v %v", pass, f)
	}
}
