package agent

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/catalyst/catalyst/internal/domain"
)

func TestTestResultsNameEveryTest(t *testing.T) {
	cases := []struct {
		kind, out string
		exit      int
		want      []TestResult
	}{
		{"go", "=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== RUN   TestB\n    b_test.go:9: bad\n--- FAIL: TestB (0.00s)\n    --- PASS: TestB/sub (0.00s)\nFAIL\n", 1,
			[]TestResult{{"TestA", "passed"}, {"TestB", "failed"}, {"TestB/sub", "passed"}}},
		{"go", "FAIL\texample.com/m [build failed]\n", 1, []TestResult{{"example.com/m", "failed"}}},
		{"node", "TAP version 13\nok 1 - add\nnot ok 2 - sub\nok 3 - later # SKIP not yet\n# pass 1\n# fail 1\n", 1,
			[]TestResult{{"add", "passed"}, {"sub", "failed"}}},
		{"unittest", "test_a (test_m.T.test_a) ... ok\ntest_b (test_m.T.test_b) ... FAIL\ntest_c (test_m.T) ... ERROR\n", 1,
			[]TestResult{{"test_m.T.test_a", "passed"}, {"test_m.T.test_b", "failed"}, {"test_m.T.test_c", "failed"}}},
		{"pytest", "PASSED test_m.py::test_a\nFAILED test_m.py::test_b[x - y] - assert 1 == 2\nERROR test_m.py::test_c\n", 1,
			[]TestResult{{"test_m.py::test_a", "passed"}, {"test_m.py::test_b[x - y]", "failed"}, {"test_m.py::test_c", "failed"}}},
		{"node", "something crashed\n", 2, []TestResult{{"(exit status)", "failed"}}},
	}
	for _, c := range cases {
		if got := testResults(c.kind, c.out, c.exit); !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.kind, got, c.want)
		}
	}
}

func TestBaselineComparisonSendsBackOnlyWhatTheChangeBroke(t *testing.T) {
	before := TestOutput{Command: "go test", Passed: 3, Failed: 2, Verdict: VerdictFailed, Results: []TestResult{
		{"Old", "failed"}, {"Fixed", "failed"}, {"Kept", "passed"}, {"Broken", "passed"}, {"Deleted", "passed"},
	}}
	after := TestOutput{Command: "go test", Passed: 3, Failed: 3, ExitCode: 1, Results: []TestResult{
		{"Old", "failed"}, {"Fixed", "passed"}, {"Kept", "passed"}, {"Broken", "failed"}, {"New", "failed"}, {"Added", "passed"},
	}, Failures: []TestFailure{{"Old", "was broken"}, {"Broken", "now broken"}, {"New", "new test fails"}}}
	after.Baseline = compareRuns(before, after)
	c := after.Baseline
	if !slices.Equal(c.Fixed, []string{"Fixed"}) || !slices.Equal(c.PreExisting, []string{"Old"}) ||
		!slices.Equal(c.NewFailures, []string{"Broken", "New", "Deleted"}) {
		t.Fatalf("comparison %+v", c)
	}
	raw, _ := json.Marshal(after)
	pass, findings := TestVerdict(raw)
	all := strings.Join(findings, "\n")
	if pass || strings.Contains(all, "Old") || !strings.Contains(all, "now broken") || !strings.Contains(all, "Deleted ran before the change and no longer runs") {
		t.Fatalf("verdict %v:\n%s", pass, all)
	}
	// Only pre-existing failures left: the check passes, and says nothing.
	ok := TestOutput{Results: []TestResult{{"Old", "failed"}, {"Fixed", "passed"}, {"Kept", "passed"}, {"Broken", "passed"}, {"Deleted", "passed"}}}
	ok.Baseline = compareRuns(before, ok)
	raw, _ = json.Marshal(ok)
	if pass, f := TestVerdict(raw); !pass || len(f) != 0 {
		t.Fatalf("pre-existing failure sent back: %v %v", pass, f)
	}
	// A run that hangs after the change did not hang before: sent back.
	hung := ok
	hung.TimedOut = true
	raw, _ = json.Marshal(hung)
	if pass, _ := TestVerdict(raw); pass {
		t.Fatal("a hang after the change passed")
	}
}

func TestRepoTokenNeverGoesToAnotherHost(t *testing.T) {
	d := Deps{GitHubToken: "ghp_x", Getenv: func(k string) string {
		if k == "CATALYST_REPO_TOKEN_A" {
			return "tok_a"
		}
		return "server-secret"
	}}
	cases := []struct {
		p          domain.Project
		tok, using string
		err        bool
	}{
		{domain.Project{RepoURL: "https://github.com/a/b.git"}, "ghp_x", "github_token", false},
		{domain.Project{RepoURL: "https://evil.test/a/b.git"}, "", "none", false},
		{domain.Project{RepoURL: "http://github.com/a/b.git"}, "", "none", false},
		{domain.Project{RepoURL: "https://evil.test/a/b.git", RepoCredential: "CATALYST_REPO_TOKEN_A"}, "tok_a", "CATALYST_REPO_TOKEN_A", false},
		{domain.Project{RepoURL: "https://evil.test/a/b.git", RepoCredential: "ANTHROPIC_API_KEY"}, "", "", true},
		{domain.Project{RepoURL: "https://evil.test/a/b.git", RepoCredential: "CATALYST_REPO_TOKEN_UNSET"}, "", "", true},
	}
	d.Getenv = func(k string) string {
		switch k {
		case "CATALYST_REPO_TOKEN_A":
			return "tok_a"
		case "ANTHROPIC_API_KEY":
			return "server-secret"
		}
		return ""
	}
	for _, c := range cases {
		tok, using, err := d.repoToken(c.p)
		if tok != c.tok || using != c.using || (err != nil) != c.err {
			t.Errorf("%+v: got %q %q %v", c.p, tok, using, err)
		}
	}
}
