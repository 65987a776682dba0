package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/catalyst/catalyst/internal/sandbox"
	"github.com/catalyst/catalyst/internal/workspace"
)

// TestOutput is the tester's artifact.
type TestOutput struct {
	Command     string        `json:"command"`
	ExitCode    int           `json:"exit_code"`
	Passed      int           `json:"passed"`
	Failed      int           `json:"failed"`
	DurationMS  int64         `json:"duration_ms"`
	Output      string        `json:"output"`
	Failures    []TestFailure `json:"failures"`
	ToolMissing bool          `json:"tool_missing"`
	TestsAdded  []string      `json:"tests_added"`
	Sandbox     SandboxReport `json:"sandbox"`
	// Verdict sums the run up: passed, failed, hung (killed at its own
	// timeout, the output so far kept), no_tests, tool_missing.
	Verdict string `json:"verdict"`
	// TimedOut: the run hung and was killed after TimeoutMS.
	TimedOut  bool  `json:"timed_out,omitempty"`
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// QuotaExceeded: the run filled its working copy's size or file quota.
	QuotaExceeded bool `json:"quota_exceeded,omitempty"`
	// Results names every test and its outcome, on existing repositories
	// (baseline and after), where the runner names them; otherwise one
	// entry for the run's exit status.
	Results []TestResult `json:"results,omitempty"`
	// Baseline compares this run with the repository's own results before
	// the change (tasks of kind change).
	Baseline *BaselineComparison `json:"baseline,omitempty"`
}

// Verdicts of a test run.
const (
	VerdictPassed      = "passed"
	VerdictFailed      = "failed"
	VerdictHung        = "hung"
	VerdictNoTests     = "no_tests"
	VerdictToolMissing = "tool_missing"
)

// TestFailure is one failing test.
type TestFailure struct {
	Name    string `json:"name"`
	Message string `json:"message"`
}

// SandboxReport says how the tests were isolated; Warnings name every
// isolation the host could not give, and why.
type SandboxReport struct {
	Isolation []string `json:"isolation"`
	Warnings  []string `json:"warnings"`
}

// testRunShare is the part of AGENT_TIMEOUT (and of the step's remaining
// time) a test run may use, so that a hang ends in a report, not in the step
// timing out; the sandbox's own Options.Timeout caps it further.
const testRunShare = 0.8

// testTimeout is the test run's wall clock; 0 leaves it to the sandbox.
func testTimeout(ctx context.Context, agentTimeout time.Duration) time.Duration {
	var t time.Duration
	if agentTimeout > 0 {
		t = time.Duration(float64(agentTimeout) * testRunShare)
	}
	if dl, ok := ctx.Deadline(); ok {
		left := time.Duration(float64(time.Until(dl)) * testRunShare)
		if t == 0 || left < t {
			t = max(left, time.Second)
		}
	}
	return t
}

// testAnswer is what the tester asks the model for when the code has no tests.
type testAnswer struct {
	Files []fileContent `json:"files"`
	Notes string        `json:"notes"`
}

// Tester adds tests when there are none and runs them in the sandbox.
type Tester struct{ Deps }

// Run picks the test command from the files and the design, runs it in the
// sandbox and parses the counts. A missing toolchain is reported, not passed.
func (t *Tester) Run(ctx context.Context, in Input) (Output, error) {
	ws, err := t.workspace(in.Task.ID)
	if err != nil {
		return Output{}, err
	}
	var design DesignOutput
	if err := decode(in, "architect", &design); err != nil {
		return Output{}, err
	}
	files, err := ws.List()
	if err != nil {
		return Output{}, err
	}
	out := TestOutput{ExitCode: -1, Failures: []TestFailure{}, TestsAdded: []string{}, Sandbox: SandboxReport{Isolation: []string{}, Warnings: []string{}}}
	var k call
	if !hasTests(files) {
		in.Log(Info, "The code has no tests: asking for some")
		quoted, _, err := quoteFiles(ws)
		if err != nil {
			return Output{}, err
		}
		var ans testAnswer
		if err := k.ask(ctx, t.Deps, in, "tester", prompt("tester"), taskContext(in),
			"Write tests for this project.\n\n"+quoted, &ans); err != nil {
			return Output{}, err
		}
		for _, f := range ans.Files {
			if err := ws.WriteFile(f.Path, []byte(f.Content)); err != nil {
				refuse(in, f.Path, err)
				continue
			}
			out.TestsAdded = append(out.TestsAdded, f.Path)
			in.Log(Info, "Added test "+f.Path)
		}
		if files, err = ws.List(); err != nil {
			return Output{}, err
		}
	}
	out, err = t.suite(ctx, in, ws, files, design.Stack.Language, out, false)
	if err != nil {
		return Output{}, err
	}
	return k.result(out)
}

// suite runs the project's tests in the sandbox and reads the results into
// out. change: the tests of an existing repository, run so that every test
// is named (passes included), for the baseline comparison.
func (t *Tester) suite(ctx context.Context, in Input, ws *workspace.Workspace, files []workspace.File, language string, out TestOutput, change bool) (TestOutput, error) {
	cmd, kind := testCommand(files, language, func(p string) []byte {
		b, _ := ws.ReadFile(p)
		return b
	})
	if cmd == nil {
		out.Verdict = VerdictNoTests
		out.Output = "no test files found"
		out.Failures = append(out.Failures, TestFailure{Name: "tests", Message: "the project has no test files the tester can run"})
		in.Log(Warn, "No tests to run")
		return out, nil
	}
	if change && kind == "pytest" {
		// -rA names the passing tests too, so each can be compared.
		cmd = slices.Replace(cmd, len(cmd)-1, len(cmd), "-rA")
	}
	out.Command = strings.Join(cmd, " ")
	in.Log(Info, "Running "+out.Command+" in the sandbox")
	run := t.Sandbox
	if run == nil {
		run = sandbox.Run
	}
	res, err := run(ctx, sandbox.Spec{Dir: ws.Root(), Command: cmd, Timeout: testTimeout(ctx, t.AgentTimeout)})
	if ctx.Err() != nil {
		return out, ctx.Err()
	}
	out.Sandbox.Isolation = append(out.Sandbox.Isolation, res.Isolation...)
	out.Sandbox.Warnings = append(out.Sandbox.Warnings, res.Warnings...)
	missing := func(tool, output string) (TestOutput, error) {
		out.ToolMissing = true
		out.Verdict = VerdictToolMissing
		out.Output = output
		out.Failures = append(out.Failures, TestFailure{Name: "toolchain", Message: tool + " is not installed where tests run"})
		in.Log(Error, fmt.Sprintf("Cannot run the tests: %s is not installed (reported as a failure, not a pass)", tool))
		return out, nil
	}
	if errors.Is(err, sandbox.ErrToolMissing) {
		return missing(cmd[0], err.Error())
	}
	if err != nil {
		return out, fmt.Errorf("tester: sandbox: %w", err)
	}
	out.ExitCode = res.ExitCode
	out.DurationMS = res.Duration.Milliseconds()
	combined := res.Stdout
	if res.Stderr != "" {
		combined += "\n" + res.Stderr
	}
	if kind == "pytest" && res.ExitCode != 0 && pytestMissing.MatchString(combined) {
		// python3 is there but not its pytest module: a toolchain gap, not a test failure.
		return missing("pytest (for "+cmd[0]+")", trim(combined, 1000, 3000))
	}
	out.Passed, out.Failed, out.Failures = parseResults(kind, combined)
	if change {
		out.Results = testResults(kind, combined, out.ExitCode)
	}
	out.TimedOut, out.QuotaExceeded = res.TimedOut, res.QuotaExceeded
	switch {
	case res.TimedOut:
		out.TimeoutMS = res.Timeout.Milliseconds()
		out.Failures = append(out.Failures, TestFailure{Name: "timeout", Message: fmt.Sprintf(
			"the test run hung: it did not finish within %s and was killed; the report holds its output so far", res.Timeout)})
	case res.QuotaExceeded:
		out.Failures = append(out.Failures, TestFailure{Name: "quota", Message: "the tests filled the sandbox's working copy quota: " + sandboxNote(res.Stderr)})
	}
	if out.Failed == 0 && out.Passed == 0 && out.ExitCode == 0 && len(out.Failures) == 0 {
		// A runner that exits 0 having run nothing is not a pass.
		out.Failures = append(out.Failures, TestFailure{Name: "tests", Message: fmt.Sprintf("no test ran: %s exited 0 without running a test", cmd[0])})
	}
	if out.Failed == 0 && (out.ExitCode != 0 || len(out.Failures) > 0) {
		// The runner failed without a test failing: a syntax error, a crash,
		// a build failure; or nothing ran.
		out.Failed = max(1, len(out.Failures))
		if len(out.Failures) == 0 {
			out.Failures = append(out.Failures, TestFailure{Name: "run", Message: fmt.Sprintf("%s exited with status %d: %s", cmd[0], out.ExitCode, firstError(combined))})
		}
	}
	switch {
	case out.TimedOut:
		out.Verdict = VerdictHung
	case TestsPassed(out):
		out.Verdict = VerdictPassed
	case out.Passed == 0 && len(out.Failures) == 1 && out.Failures[0].Name == "tests" && strings.HasPrefix(out.Failures[0].Message, "no test ran"):
		out.Verdict = VerdictNoTests
	default:
		out.Verdict = VerdictFailed
	}
	out.Output = trim(combined, 1000, 3000)
	for _, w := range res.Warnings {
		in.Log(Warn, "Sandbox: "+w)
	}
	level := Info
	if !TestsPassed(out) {
		level = Warn
	}
	if out.TimedOut {
		in.Log(Warn, fmt.Sprintf("The test run hung and was killed after %s; reporting its output so far", res.Timeout))
	}
	in.Log(level, fmt.Sprintf("%s: %d passed, %d failed (exit %d, %d ms, verdict %s)", out.Command, out.Passed, out.Failed, out.ExitCode, out.DurationMS, out.Verdict))
	for i, f := range out.Failures {
		if i == 5 {
			in.Log(Warn, fmt.Sprintf("… and %d more failures", len(out.Failures)-5))
			break
		}
		in.Log(Warn, fmt.Sprintf("FAIL %s: %s", f.Name, oneLine(f.Message, 200)))
	}
	return out, nil
}

// TestsPassed is the tester's verdict: tests ran, some passed, none failed,
// and the run neither hung nor filled its quota.
func TestsPassed(t TestOutput) bool {
	return !t.ToolMissing && !t.TimedOut && !t.QuotaExceeded && t.ExitCode == 0 && t.Passed > 0 && t.Failed == 0
}

// sandboxNote returns the sandbox's own notes ("[sandbox: ...]") in stderr.
func sandboxNote(stderr string) string {
	var notes []string
	for _, l := range strings.Split(stderr, "\n") {
		if n, ok := strings.CutPrefix(strings.TrimSpace(l), "[sandbox: "); ok {
			notes = append(notes, strings.TrimSuffix(n, "]"))
		}
	}
	return strings.Join(notes, "; ")
}

// TestVerdict is the fix-loop condition on a tester artifact: pass, or the
// failing tests (stable across runs, so a stalled loop is recognised).
func TestVerdict(raw json.RawMessage) (bool, []string) {
	var t TestOutput
	if err := decodeRaw(raw, &t); err != nil {
		return false, []string{"unreadable test report: " + err.Error()}
	}
	if t.Baseline != nil {
		return changeVerdict(t)
	}
	if TestsPassed(t) {
		return true, nil
	}
	var f []string
	for _, x := range t.Failures {
		f = append(f, fmt.Sprintf("test %s failed: %s", x.Name, oneLine(x.Message, 300)))
	}
	if len(f) == 0 {
		f = append(f, fmt.Sprintf("%s: %d passed, %d failed, exit status %d", t.Command, t.Passed, t.Failed, t.ExitCode))
	}
	return false, f
}

func decodeRaw(raw json.RawMessage, v any) error { return json.Unmarshal(raw, v) }

func hasTests(files []workspace.File) bool {
	for _, f := range files {
		if IsTestFile(f.Path) {
			return true
		}
	}
	return false
}

// testCommand chooses the runner from the test files present, preferring the
// design's language when several stacks have tests. Python tests run under
// pytest when the project is set up for it (conftest.py, pytest.ini, a
// pytest section in pyproject.toml, setup.cfg or tox.ini) or its test files
// are written for it (they import pytest or define module-level test_
// functions, which unittest would not find); otherwise under unittest. read
// returns a file's content (nil when unreadable).
func testCommand(files []workspace.File, language string, read func(string) []byte) ([]string, string) {
	var js, py []string
	var goTests, pytestCfg bool
	for _, f := range files {
		base := path.Base(f.Path)
		switch {
		case base == "conftest.py" || base == "pytest.ini":
			pytestCfg = true
		case pytestSections[f.Path] != "":
			pytestCfg = pytestCfg || strings.Contains(string(read(f.Path)), pytestSections[f.Path])
		case !IsTestFile(f.Path):
		case strings.HasSuffix(base, "_test.go"):
			goTests = true
		case strings.HasSuffix(base, ".py"):
			py = append(py, f.Path)
			pytestCfg = pytestCfg || pytestStyle.Match(read(f.Path))
		default:
			js = append(js, f.Path)
		}
	}
	sort.Strings(js)
	kinds := []string{"node", "python", "go"}
	switch strings.ToLower(language) {
	case "python":
		kinds = []string{"python", "node", "go"}
	case "go", "golang":
		kinds = []string{"go", "node", "python"}
	}
	for _, k := range kinds {
		switch {
		case k == "node" && len(js) > 0:
			return append([]string{"node", "--test", "--test-reporter=tap"}, js...), "node"
		case k == "python" && len(py) > 0 && pytestCfg:
			// --verbosity=-1, not -q: -q adds to a project's addopts, and
			// at -qq pytest prints no summary line to count from.
			return []string{"python3", "-m", "pytest", "--verbosity=-1", "-rfE"}, "pytest"
		case k == "python" && len(py) > 0:
			return []string{"python3", "-m", "unittest", "discover", "-v", "-s", ".", "-p", "*test*.py"}, "unittest"
		case k == "go" && goTests:
			return []string{"go", "test", "-v", "./..."}, "go"
		}
	}
	return nil, ""
}

// pytestSections are the root-level files that configure pytest when they
// hold this section.
var pytestSections = map[string]string{
	"pyproject.toml": "[tool.pytest.ini_options]",
	"setup.cfg":      "[tool:pytest]",
	"tox.ini":        "[pytest]",
}

var (
	tapCount    = regexp.MustCompile(`(?m)^# (pass|fail) (\d+)\s*$`)
	tapNotOK    = regexp.MustCompile(`^\s*not ok \d+ - (.*?)(\s+#.*)?$`)
	tapError    = regexp.MustCompile(`^\s*error: (.*)$`)
	unitRan     = regexp.MustCompile(`(?m)^Ran (\d+) tests?`)
	unitFailed  = regexp.MustCompile(`(?m)^FAILED \((.*)\)`)
	unitKV      = regexp.MustCompile(`(failures|errors|skipped|unexpected successes|expected failures)=(\d+)`)
	unitHead    = regexp.MustCompile(`^(FAIL|ERROR): (\S+)(?: \(([^)\s]*)\))?`)
	unitUnexpOK = regexp.MustCompile(`^(\S+) \(([^)\s]*)\) \.\.\. unexpected success$`)
	// pytest's last line: "1 failed, 2 passed, 1 warning in 0.03s", framed
	// by "=" unless quiet, "(0:01:02)" added past a minute.
	pytestSummary = regexp.MustCompile(`^=* ?((?:\d+ [a-z]+)(?:, \d+ [a-z]+)*|no tests ran) in [\d.]+s(?: \([\d:.]+\))? ?=*$`)
	pytestCount   = regexp.MustCompile(`(\d+) ([a-z]+)`)
	// A short-summary entry: "FAILED test_a.py::test_x[a - b] - message";
	// a parametrize id in brackets may hold spaces and " - ".
	pytestFailed  = regexp.MustCompile(`^(FAILED|ERROR) ((?:[^\s\[]|\[[^\]]*\])+)(?: - (.*))?$`)
	pytestEntry   = regexp.MustCompile(`^(?:FAILED|ERROR|PASSED|SKIPPED|XFAIL|XPASS)\b|^[=!]{3}`)
	pytestSection = regexp.MustCompile(`^_{3,} (.+?) _{3,}$`)
	pytestELine   = regexp.MustCompile(`^E {1,}(.*)$`)
	pytestFileAt  = regexp.MustCompile(`^File "([^"]+)", line (\d+)`)
	pytestConfErr = regexp.MustCompile(`^ImportError while loading conftest '([^']+)'`)
	pytestUsage   = regexp.MustCompile(`^\S+: error: (.+)$`)
	// A test file written for pytest: it imports pytest or has module-level
	// test functions.
	pytestStyle   = regexp.MustCompile(`(?m)^(?:(?:import|from)\s+pytest\b|(?:async\s+)?def\s+test\w*\s*\()`)
	pytestMissing = regexp.MustCompile(`(?m)^\S*python[\d.]*: No module named pytest\s*$`)
	// sandboxPath is the private working copy's directory in tracebacks.
	sandboxPath = regexp.MustCompile(`/\S*?/catalyst-sandbox-\d+-\d+/work/|/home/sandbox/`)
	goResult    = regexp.MustCompile(`^\s*--- (PASS|FAIL): (\S+)`)
	goBuildFail = regexp.MustCompile(`^FAIL\s+(\S+)\s+\[(build failed|setup failed)\]`)
)

// parseResults counts passed and failed tests in a runner's output.
func parseResults(kind, out string) (passed, failed int, failures []TestFailure) {
	failures = []TestFailure{}
	lines := strings.Split(out, "\n")
	switch kind {
	case "node":
		for _, m := range tapCount.FindAllStringSubmatch(out, -1) {
			n, _ := strconv.Atoi(m[2])
			if m[1] == "pass" {
				passed = n
			} else {
				failed = n
			}
		}
		for i, l := range lines {
			m := tapNotOK.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			msg, block := "", false
			for _, next := range lines[i+1:] {
				t := strings.TrimSpace(next)
				if strings.HasPrefix(t, "ok ") || strings.HasPrefix(t, "not ok ") || t == "..." {
					break
				}
				if block {
					if t != "" {
						msg = t
						break
					}
					continue
				}
				if e := tapError.FindStringSubmatch(next); e != nil {
					v := strings.TrimSpace(e[1])
					if v == "|-" || v == "|" || v == ">-" || v == ">" {
						block = true
						continue
					}
					msg = strings.Trim(v, `'"`)
					break
				}
			}
			if msg == "" {
				msg = "failed"
			}
			failures = appendFailure(failures, m[1], msg)
		}
	case "unittest":
		if m := unitRan.FindStringSubmatch(out); m != nil {
			total, _ := strconv.Atoi(m[1])
			bad := 0
			if f := unitFailed.FindStringSubmatch(out); f != nil {
				for _, kv := range unitKV.FindAllStringSubmatch(f[1], -1) {
					n, _ := strconv.Atoi(kv[2])
					switch kv[1] {
					case "failures", "errors", "unexpected successes":
						bad += n
					case "skipped":
						total -= n
					}
				}
			}
			failed, passed = bad, max(0, total-bad)
			if total <= 0 {
				failures = appendFailure(failures, "tests", "no test ran: unittest found no unittest.TestCase test methods ("+strings.TrimSpace(m[0])+")")
			}
		}
		for i, l := range lines {
			if m := unitUnexpOK.FindStringSubmatch(l); m != nil {
				failures = appendFailure(failures, unitName(m[1], m[2]), "unexpected success: marked expectedFailure but passed")
				continue
			}
			m := unitHead.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			msg := m[1]
			for _, next := range lines[i+1:] {
				if strings.HasPrefix(next, "=====") || strings.HasPrefix(next, "Ran ") {
					break
				}
				if t := strings.TrimSpace(next); t != "" && !strings.HasPrefix(next, " ") && !strings.HasPrefix(next, "---") && !strings.HasPrefix(t, "Traceback") {
					msg = t
				}
			}
			failures = appendFailure(failures, unitName(m[2], m[3]), msg)
		}
	case "pytest":
		return parsePytest(lines)
	case "go":
		var pending []string
		for _, l := range lines {
			if m := goResult.FindStringSubmatch(l); m != nil {
				if m[1] == "PASS" {
					passed++
				} else {
					failed++
					failures = appendFailure(failures, m[2], strings.Join(pending, " "))
				}
				pending = nil
				continue
			}
			if m := goBuildFail.FindStringSubmatch(l); m != nil {
				failed++
				failures = appendFailure(failures, m[1], m[2]+": "+firstError(out))
				continue
			}
			if t := strings.TrimSpace(l); strings.Contains(t, "_test.go:") && len(pending) < 3 {
				pending = append(pending, t)
			}
			if strings.HasPrefix(l, "=== RUN") {
				pending = nil
			}
		}
	}
	return passed, failed, failures
}

// unitName names a unittest test by its dotted id ("test_a.T.test_bad" from
// "test_bad (test_a.T.test_bad)", or "test_a.T.test_bad" from Python < 3.11's
// "test_bad (test_a.T)"); a module that failed to import by its name.
func unitName(method, id string) string {
	switch {
	case id == "" || strings.HasPrefix(id, "unittest.loader."):
		return method
	case strings.HasSuffix(id, "."+method):
		return id
	}
	return id + "." + method
}

// parsePytest reads `pytest -rfE` output: the counts from its last summary
// line; one failure per short-summary entry (FAILED/ERROR nodeid - message,
// the message possibly spread over several lines), the message taken from
// the entry's traceback section when the entry has none (collection errors,
// strict xpass); a broken conftest or command line, which stop pytest before
// any summary, as failures of their own.
func parsePytest(lines []string) (passed, failed int, failures []TestFailure) {
	failures = []TestFailure{}
	summary := -1
	for i, l := range lines {
		if pytestSummary.MatchString(strings.TrimSpace(l)) {
			summary = i
		}
	}
	if summary >= 0 {
		// The last one: a test may print a line that looks like a summary.
		line := strings.TrimSpace(lines[summary])
		for _, m := range pytestCount.FindAllStringSubmatch(line, -1) {
			n, _ := strconv.Atoi(m[1])
			switch m[2] {
			case "passed":
				passed = n
			case "failed", "error", "errors":
				failed += n
			}
		}
		if passed+failed == 0 {
			failures = appendFailure(failures, "tests", "no test ran: "+strings.Trim(line, "= "))
		}
	}
	// The traceback sections ("____ test_x ____", "____ ERROR collecting
	// test_a.py ____"): their "E" lines, else their first line.
	details := map[string]string{}
	title, first, lastE, at := "", "", "", ""
	flush := func() {
		if title == "" {
			return
		}
		d := first
		if lastE != "" {
			d = lastE
			if at != "" {
				d += " (" + at + ")"
			}
		}
		details[title] = d
	}
	for i, l := range lines {
		if i >= summary && summary >= 0 {
			break
		}
		if m := pytestSection.FindStringSubmatch(l); m != nil {
			flush()
			title, first, lastE, at = m[1], "", "", ""
			continue
		}
		if strings.HasPrefix(l, "====") {
			flush()
			title = ""
			continue
		}
		if title == "" {
			continue
		}
		if m := pytestELine.FindStringSubmatch(l); m != nil {
			e := strings.TrimSpace(m[1])
			if f := pytestFileAt.FindStringSubmatch(e); f != nil {
				at = sandboxPath.ReplaceAllString(f[1], "") + ":" + f[2]
			} else if e != "" && e != "^" {
				lastE = e
			}
		} else if t := strings.TrimSpace(l); first == "" && t != "" {
			first = t
		}
	}
	flush()
	for i, l := range lines {
		m := pytestFailed.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		msg := m[3]
		if msg != "" {
			for _, next := range lines[i+1:] {
				t := strings.TrimSpace(next)
				if t == "" || pytestEntry.MatchString(next) || pytestSummary.MatchString(t) {
					break
				}
				msg += "\n" + t
			}
		} else {
			msg = pytestDetail(details, m[1], m[2])
		}
		failures = appendFailure(failures, m[2], msg)
	}
	if summary < 0 {
		// Nothing ran: a conftest that does not import, a bad option in
		// the project's addopts.
		for i, l := range lines {
			if m := pytestConfErr.FindStringSubmatch(l); m != nil {
				msg := "ImportError while loading conftest"
				for _, next := range lines[i+1:] {
					if e := pytestELine.FindStringSubmatch(next); e != nil {
						msg += ": " + strings.TrimSpace(e[1])
						break
					}
				}
				failures = appendFailure(failures, sandboxPath.ReplaceAllString(m[1], ""), msg)
			} else if m := pytestUsage.FindStringSubmatch(l); m != nil {
				failures = appendFailure(failures, "pytest", "usage error: "+m[1])
			}
		}
	}
	return passed, failed, failures
}

// pytestDetail finds the traceback section of a short-summary entry.
func pytestDetail(details map[string]string, kind, nodeid string) string {
	_, head, ok := strings.Cut(nodeid, "::")
	if !ok {
		return details["ERROR collecting "+nodeid]
	}
	head = strings.ReplaceAll(head, "::", ".")
	if kind == "FAILED" {
		return details[head]
	}
	if d := details["ERROR at setup of "+head]; d != "" {
		return d
	}
	return details["ERROR at teardown of "+head]
}

func appendFailure(fs []TestFailure, name, msg string) []TestFailure {
	if len(fs) >= 50 {
		return fs
	}
	if strings.TrimSpace(msg) == "" {
		msg = "failed"
	}
	// Tracebacks name files by their path in the sandbox's private copy.
	msg = sandboxPath.ReplaceAllString(msg, "")
	return append(fs, TestFailure{Name: strings.TrimSpace(name), Message: oneLine(msg, 500)})
}

// firstError returns the first line that looks like an error.
func firstError(out string) string {
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		low := strings.ToLower(t)
		if strings.Contains(low, "error") || strings.Contains(low, "cannot") || strings.Contains(low, "undefined") {
			return oneLine(t, 300)
		}
	}
	return oneLine(strings.TrimSpace(out), 300)
}

// trim keeps the head and tail of long output.
func trim(s string, head, tail int) string {
	if len(s) <= head+tail {
		return s
	}
	h, t := s[:head], s[len(s)-tail:]
	return strings.ToValidUTF8(h, "") + fmt.Sprintf("\n… (%d bytes omitted) …\n", len(s)-head-tail) + strings.ToValidUTF8(t, "")
}
