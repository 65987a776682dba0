package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

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
}

// TestFailure is one failing test.
type TestFailure struct {
	Name    string `json:"name"`
	Message string `json:"message"`
}

// SandboxReport says how the tests were isolated.
type SandboxReport struct {
	Isolation []string `json:"isolation"`
	Warnings  []string `json:"warnings"`
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
	cmd, kind := testCommand(files, design.Stack.Language)
	if cmd == nil {
		out.Output = "no test files found"
		out.Failures = append(out.Failures, TestFailure{Name: "tests", Message: "the project has no test files the tester can run"})
		in.Log(Warn, "No tests to run")
		return k.result(out)
	}
	out.Command = strings.Join(cmd, " ")
	in.Log(Info, "Running "+out.Command+" in the sandbox")
	run := t.Sandbox
	if run == nil {
		run = sandbox.Run
	}
	res, err := run(ctx, sandbox.Spec{Dir: ws.Root(), Command: cmd})
	if ctx.Err() != nil {
		return Output{}, ctx.Err()
	}
	out.Sandbox.Isolation = append(out.Sandbox.Isolation, res.Isolation...)
	out.Sandbox.Warnings = append(out.Sandbox.Warnings, res.Warnings...)
	if errors.Is(err, sandbox.ErrToolMissing) {
		out.ToolMissing = true
		out.Output = err.Error()
		out.Failures = append(out.Failures, TestFailure{Name: "toolchain", Message: cmd[0] + " is not installed where tests run"})
		in.Log(Error, fmt.Sprintf("Cannot run the tests: %s is not installed (reported as a failure, not a pass)", cmd[0]))
		return k.result(out)
	}
	if err != nil {
		return Output{}, fmt.Errorf("tester: sandbox: %w", err)
	}
	out.ExitCode = res.ExitCode
	out.DurationMS = res.Duration.Milliseconds()
	combined := res.Stdout
	if res.Stderr != "" {
		combined += "\n" + res.Stderr
	}
	out.Passed, out.Failed, out.Failures = parseResults(kind, combined)
	if res.TimedOut {
		out.Failures = append(out.Failures, TestFailure{Name: "timeout", Message: "the test run timed out and was killed"})
	}
	if out.ExitCode != 0 && out.Failed == 0 {
		// The runner failed without a test failing: a syntax error, a crash, a build failure.
		out.Failed = max(1, len(out.Failures))
		if len(out.Failures) == 0 {
			out.Failures = append(out.Failures, TestFailure{Name: "run", Message: fmt.Sprintf("%s exited with status %d: %s", cmd[0], out.ExitCode, firstError(combined))})
		}
	}
	out.Output = trim(combined, 1000, 3000)
	for _, w := range res.Warnings {
		in.Log(Warn, "Sandbox: "+w)
	}
	level := Info
	if !TestsPassed(out) {
		level = Warn
	}
	in.Log(level, fmt.Sprintf("%s: %d passed, %d failed (exit %d, %d ms)", out.Command, out.Passed, out.Failed, out.ExitCode, out.DurationMS))
	for i, f := range out.Failures {
		if i == 5 {
			in.Log(Warn, fmt.Sprintf("… and %d more failures", len(out.Failures)-5))
			break
		}
		in.Log(Warn, fmt.Sprintf("FAIL %s: %s", f.Name, oneLine(f.Message, 200)))
	}
	return k.result(out)
}

// TestsPassed is the tester's verdict: tests ran, some passed, none failed.
func TestsPassed(t TestOutput) bool {
	return !t.ToolMissing && t.ExitCode == 0 && t.Passed > 0 && t.Failed == 0
}

// TestVerdict is the fix-loop condition on a tester artifact: pass, or the
// failing tests (stable across runs, so a stalled loop is recognised).
func TestVerdict(raw json.RawMessage) (bool, []string) {
	var t TestOutput
	if err := decodeRaw(raw, &t); err != nil {
		return false, []string{"unreadable test report: " + err.Error()}
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
// design's language when several stacks have tests.
func testCommand(files []workspace.File, language string) ([]string, string) {
	var js, py []string
	var goTests, pytestCfg bool
	for _, f := range files {
		base := path.Base(f.Path)
		switch {
		case base == "conftest.py" || base == "pytest.ini":
			pytestCfg = true
		case !IsTestFile(f.Path):
		case strings.HasSuffix(base, "_test.go"):
			goTests = true
		case strings.HasSuffix(base, ".py"):
			py = append(py, f.Path)
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
			return []string{"python3", "-m", "pytest", "-q", "-rfE"}, "pytest"
		case k == "python" && len(py) > 0:
			return []string{"python3", "-m", "unittest", "discover", "-v", "-s", ".", "-p", "*test*.py"}, "unittest"
		case k == "go" && goTests:
			return []string{"go", "test", "-v", "./..."}, "go"
		}
	}
	return nil, ""
}

var (
	tapCount     = regexp.MustCompile(`(?m)^# (pass|fail) (\d+)\s*$`)
	tapNotOK     = regexp.MustCompile(`^\s*not ok \d+ - (.*?)(\s+#.*)?$`)
	tapError     = regexp.MustCompile(`^\s*error: (.*)$`)
	unitRan      = regexp.MustCompile(`(?m)^Ran (\d+) tests?`)
	unitFailed   = regexp.MustCompile(`(?m)^FAILED \((.*)\)`)
	unitKV       = regexp.MustCompile(`(failures|errors|skipped|expected failures)=(\d+)`)
	unitHead     = regexp.MustCompile(`^(FAIL|ERROR): (\S+)`)
	pytestCount  = regexp.MustCompile(`(\d+) (passed|failed|errors?)\b`)
	pytestFailed = regexp.MustCompile(`^(FAILED|ERROR) (\S+)(?: - (.*))?$`)
	goResult     = regexp.MustCompile(`^\s*--- (PASS|FAIL): (\S+)`)
	goBuildFail  = regexp.MustCompile(`^FAIL\s+(\S+)\s+\[(build failed|setup failed)\]`)
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
					if kv[1] == "failures" || kv[1] == "errors" {
						bad += n
					}
					if kv[1] == "skipped" {
						total -= n
					}
				}
			}
			failed, passed = bad, max(0, total-bad)
		}
		for i, l := range lines {
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
			failures = appendFailure(failures, m[2], msg)
		}
	case "pytest":
		for _, l := range lines {
			if strings.Contains(l, " in ") && (strings.Contains(l, "passed") || strings.Contains(l, "failed") || strings.Contains(l, "error")) {
				for _, m := range pytestCount.FindAllStringSubmatch(l, -1) {
					n, _ := strconv.Atoi(m[1])
					if m[2] == "passed" {
						passed = n
					} else {
						failed += n
					}
				}
			}
			if m := pytestFailed.FindStringSubmatch(l); m != nil {
				failures = appendFailure(failures, m[2], m[3])
			}
		}
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

func appendFailure(fs []TestFailure, name, msg string) []TestFailure {
	if len(fs) >= 50 {
		return fs
	}
	if strings.TrimSpace(msg) == "" {
		msg = "failed"
	}
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
