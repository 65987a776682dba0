package agent

// Tasks of kind change work on an existing repository: a clone of the
// project's repo_url on the branch catalyst/task-<id>; the repository's own
// tests run before the change (the baseline) and after it, and only what
// the change broke goes back to the coder; the reviewer reads the diff
// against the base, widened to the functions it touches; the deployer makes
// one commit and pushes it and opens a pull request, or offers the patch.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/workspace"
)

// Node ids of the change graph beyond the standard ones.
const (
	NodeClone    = "clone"
	NodeBaseline = "baseline"
)

// ChangeNames are the agent names of the change graph's own nodes.
var ChangeNames = map[string]string{
	NodeClone:    "Git",
	NodeBaseline: "Tester",
}

// ChangeSteps returns the agents of the change graph by node id. The coder
// is the standard one: it works in the workspace, which here is the clone.
func ChangeSteps(d Deps) map[string]Step {
	return map[string]Step{
		NodeClone:           &Cloner{d},
		NodeBaseline:        &Baseline{d},
		domain.NodePlanner:  &Planner{d},
		domain.NodeCoder:    &Coder{d},
		domain.NodeTester:   &ChangeTester{d},
		domain.NodeReviewer: &ChangeReviewer{d},
		domain.NodeDeployer: &ChangeDeployer{d},
	}
}

// CloneOutput is the clone node's artifact.
type CloneOutput struct {
	// RepoURL is the project's repository URL as cloned (it holds no secret:
	// the API refuses passwords in it).
	RepoURL string `json:"repo_url"`
	workspace.CloneResult
	// Credential says which credential was used: none, github_token or the
	// name of the project's variable; never the secret.
	Credential string `json:"credential"`
}

// repoToken resolves the credential of p's repository: the project's
// variable, else GITHUB_TOKEN for https://github.com only, so that no
// server secret goes to a host a project chose.
func (d Deps) repoToken(p domain.Project) (token, source string, err error) {
	if p.RepoCredential != "" {
		if err := domain.CheckCredentialRef(p.RepoCredential); err != nil {
			return "", "", err
		}
		getenv := d.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		v := getenv(p.RepoCredential)
		if v == "" {
			return "", "", fmt.Errorf("the project's credential %s is not set in the server's environment", p.RepoCredential)
		}
		return v, p.RepoCredential, nil
	}
	if d.GitHubToken != "" && domain.IsGitHubHTTPS(p.RepoURL) {
		return d.GitHubToken, "github_token", nil
	}
	return "", "none", nil
}

// Cloner clones the project's repository into the task's workspace.
type Cloner struct{ Deps }

// Run clones afresh: whatever an interrupted clone left is removed first.
func (c *Cloner) Run(ctx context.Context, in Input) (Output, error) {
	if c.WorkspaceDir == nil {
		return Output{}, errors.New("clone: no workspace directory configured")
	}
	p, err := c.Store.GetProject(ctx, in.Task.ProjectID)
	if err != nil {
		return Output{}, fmt.Errorf("clone: project: %w", err)
	}
	if p.RepoURL == "" {
		return Output{}, errors.New("clone: the project has no repo_url")
	}
	if err := domain.CheckRepoURL(p.RepoURL); err != nil {
		return Output{}, fmt.Errorf("clone: %w", err)
	}
	if c.RepoPolicy != nil {
		// Checked before the credential is looked up, so no token is ever
		// offered to a refused host. git resolves the name again when it
		// connects; this stops the plain cases, not DNS rebinding.
		if _, err := c.RepoPolicy.CheckURL(ctx, p.RepoURL); err != nil {
			return Output{}, fmt.Errorf("clone: %w (set CATALYST_EXPLORER_ALLOW_PRIVATE=true to clone from a private network)", err)
		}
	}
	token, source, err := c.repoToken(p)
	if err != nil {
		return Output{}, fmt.Errorf("clone: %w", err)
	}
	dir := c.WorkspaceDir(in.Task.ID)
	if err := os.RemoveAll(dir); err != nil {
		return Output{}, err
	}
	in.Log(Info, fmt.Sprintf("Cloning %s (credential: %s)", p.RepoURL, source))
	res, err := workspace.Clone(ctx, workspace.CloneOptions{
		URL: p.RepoURL, Dir: dir, Branch: BranchFor(in.Task.ID), Token: token,
		MaxBytes: c.CloneMaxBytes, Timeout: c.CloneTimeout,
	})
	if err != nil {
		return Output{}, fmt.Errorf("clone: %w", err)
	}
	in.Log(Info, fmt.Sprintf("Cloned %s at %.12s (%s, %d bytes); working on branch %s",
		res.BaseBranch, res.BaseSHA, plural(res.Files, "file", "files"), res.Bytes, res.Branch))
	if len(res.OutwardLinks) > 0 {
		in.Log(Warn, fmt.Sprintf("%s pointing outside the repository left out of the working tree",
			plural(len(res.OutwardLinks), "symbolic link", "symbolic links")))
	}
	var k call
	return k.result(CloneOutput{RepoURL: p.RepoURL, CloneResult: res, Credential: source})
}

// cloneOf reads the clone node's artifact.
func cloneOf(in Input) (CloneOutput, error) {
	var c CloneOutput
	if err := decode(in, NodeClone, &c); err != nil {
		return c, err
	}
	if c.BaseSHA == "" {
		return c, errors.New("no clone artifact: the clone node has not run")
	}
	return c, nil
}

// Baseline runs the repository's own tests before any change.
type Baseline struct{ Deps }

// Run records the baseline: every test the runner names and its outcome.
func (b *Baseline) Run(ctx context.Context, in Input) (Output, error) {
	ws, err := b.workspace(in.Task.ID)
	if err != nil {
		return Output{}, err
	}
	files, err := ws.List()
	if err != nil {
		return Output{}, err
	}
	in.Log(Info, "Recording the repository's test results before the change")
	t := &Tester{b.Deps}
	out, err := t.suite(ctx, in, ws, files, "", newTestOutput(), true)
	if err != nil {
		return Output{}, err
	}
	in.Log(Info, fmt.Sprintf("Baseline: %d passed, %d failed before the change", out.Passed, out.Failed))
	var k call
	return k.result(out)
}

func newTestOutput() TestOutput {
	return TestOutput{ExitCode: -1, Failures: []TestFailure{}, TestsAdded: []string{}, Sandbox: SandboxReport{Isolation: []string{}, Warnings: []string{}}}
}

// TestResult is one named test's outcome.
type TestResult struct {
	Name   string `json:"name"`
	Status string `json:"status"` // passed, failed
}

// Outcomes of a test in a comparison.
const (
	TestPassedStatus = "passed"
	TestFailedStatus = "failed"
	TestAbsentStatus = "absent"
)

// exitStatusTest names the one result of a runner whose tests have no names.
const exitStatusTest = "(exit status)"

// BaselineComparison compares a run after the change with the baseline.
type BaselineComparison struct {
	Before TestSummary      `json:"before"`
	Tests  []TestComparison `json:"tests"`
	// Fixed failed before and pass now; PreExisting failed before and still
	// do (reported, never sent back to the coder); NewFailures are what the
	// change broke: tests that passed or did not exist and now fail, and
	// tests that ran before and no longer do.
	Fixed       []string `json:"fixed"`
	PreExisting []string `json:"pre_existing"`
	NewFailures []string `json:"new_failures"`
}

// TestSummary is a run's headline.
type TestSummary struct {
	Command  string `json:"command"`
	Passed   int    `json:"passed"`
	Failed   int    `json:"failed"`
	ExitCode int    `json:"exit_code"`
	Verdict  string `json:"verdict"`
}

// TestComparison is one test before and after.
type TestComparison struct {
	Name   string `json:"name"`
	Before string `json:"before"`
	After  string `json:"after"`
}

var (
	tapResult    = regexp.MustCompile(`^\s*(not ok|ok) \d+ - (.*?)(\s+# (SKIP|TODO)\b.*)?$`)
	unitResult   = regexp.MustCompile(`^(\S+) \(([^)\s]*)\)(?: .*)? \.\.\. (ok|FAIL|ERROR|unexpected success)$`)
	pytestLine   = regexp.MustCompile(`^(PASSED|FAILED|ERROR|XPASS) ((?:[^\s\[]|\[[^\]]*\])+)`)
	goBuildFail2 = regexp.MustCompile(`^FAIL\s+(\S+)\s+\[(build failed|setup failed)\]`)
)

// testResults names every test of a run and its outcome; a runner that
// names none gives one result for its exit status.
func testResults(kind, out string, exit int) []TestResult {
	order := []string{}
	status := map[string]string{}
	put := func(name, st string) {
		name = strings.TrimSpace(name)
		if name == "" {
			return
		}
		if _, ok := status[name]; !ok {
			order = append(order, name)
		}
		// A name seen twice is failed if either run failed.
		if status[name] != TestFailedStatus {
			status[name] = st
		}
	}
	for _, l := range strings.Split(out, "\n") {
		switch kind {
		case "go":
			if m := goResult.FindStringSubmatch(l); m != nil {
				put(m[2], map[string]string{"PASS": TestPassedStatus, "FAIL": TestFailedStatus}[m[1]])
			} else if m := goBuildFail2.FindStringSubmatch(l); m != nil {
				put(m[1], TestFailedStatus)
			}
		case "node":
			if m := tapResult.FindStringSubmatch(l); m != nil && m[4] == "" {
				st := TestPassedStatus
				if m[1] == "not ok" {
					st = TestFailedStatus
				}
				put(m[2], st)
			}
		case "unittest":
			if m := unitResult.FindStringSubmatch(l); m != nil {
				st := TestPassedStatus
				if m[3] != "ok" {
					st = TestFailedStatus
				}
				put(unitName(m[1], m[2]), st)
			}
		case "pytest":
			if m := pytestLine.FindStringSubmatch(l); m != nil {
				st := TestPassedStatus
				if m[1] != "PASSED" {
					st = TestFailedStatus
				}
				put(m[2], st)
			}
		}
	}
	if len(order) == 0 {
		st := TestPassedStatus
		if exit != 0 {
			st = TestFailedStatus
		}
		return []TestResult{{Name: exitStatusTest, Status: st}}
	}
	res := make([]TestResult, 0, len(order))
	for _, n := range order {
		res = append(res, TestResult{Name: n, Status: status[n]})
	}
	return res
}

// compareRuns sets after's baseline comparison.
func compareRuns(before, after TestOutput) *BaselineComparison {
	c := &BaselineComparison{
		Before: TestSummary{Command: before.Command, Passed: before.Passed, Failed: before.Failed, ExitCode: before.ExitCode, Verdict: before.Verdict},
		Tests:  []TestComparison{}, Fixed: []string{}, PreExisting: []string{}, NewFailures: []string{},
	}
	was := map[string]string{}
	for _, r := range before.Results {
		was[r.Name] = r.Status
	}
	seen := map[string]bool{}
	add := func(name, b, a string) {
		c.Tests = append(c.Tests, TestComparison{Name: name, Before: b, After: a})
		switch {
		case a == TestFailedStatus && b == TestFailedStatus:
			c.PreExisting = append(c.PreExisting, name)
		case a == TestFailedStatus:
			c.NewFailures = append(c.NewFailures, name)
		case a == TestPassedStatus && b == TestFailedStatus:
			c.Fixed = append(c.Fixed, name)
		case a == TestAbsentStatus:
			// Deleting a test is not fixing it.
			c.NewFailures = append(c.NewFailures, name)
		}
	}
	for _, r := range after.Results {
		seen[r.Name] = true
		b, ok := was[r.Name]
		if !ok {
			b = TestAbsentStatus
		}
		add(r.Name, b, r.Status)
	}
	for _, r := range before.Results {
		if !seen[r.Name] {
			add(r.Name, r.Status, TestAbsentStatus)
		}
	}
	return c
}

// changeVerdict is TestVerdict for a run compared with its baseline: only
// what the change broke fails it.
func changeVerdict(t TestOutput) (bool, []string) {
	c := t.Baseline
	var f []string
	msg := map[string]string{}
	for _, x := range t.Failures {
		msg[x.Name] = x.Message
	}
	for _, name := range c.NewFailures {
		if m := msg[name]; m != "" {
			f = append(f, fmt.Sprintf("test %s failed: %s (it did not fail before the change)", name, oneLine(m, 300)))
		} else if slicesContains(c.Tests, name, TestAbsentStatus) {
			f = append(f, fmt.Sprintf("test %s ran before the change and no longer runs", name))
		} else {
			f = append(f, fmt.Sprintf("test %s failed (it did not fail before the change)", name))
		}
	}
	switch {
	case t.TimedOut && c.Before.Verdict != VerdictHung:
		f = append(f, "the test run hung after the change (it finished before)")
	case t.QuotaExceeded:
		f = append(f, "the test run filled the sandbox's quota")
	case t.ToolMissing && c.Before.Verdict != VerdictToolMissing:
		f = append(f, "the test toolchain is missing")
	}
	return len(f) == 0, f
}

func slicesContains(ts []TestComparison, name, after string) bool {
	for _, t := range ts {
		if t.Name == name && t.After == after {
			return true
		}
	}
	return false
}

// ChangeTester runs the repository's tests after the change and compares
// them with the baseline.
type ChangeTester struct{ Deps }

// Run never adds tests: the change is what the coder wrote, nothing else.
func (t *ChangeTester) Run(ctx context.Context, in Input) (Output, error) {
	ws, err := t.workspace(in.Task.ID)
	if err != nil {
		return Output{}, err
	}
	var before TestOutput
	if err := decode(in, NodeBaseline, &before); err != nil {
		return Output{}, err
	}
	if before.Command == "" && before.Verdict == "" {
		return Output{}, errors.New("tester: no baseline: the baseline node has not run")
	}
	files, err := ws.List()
	if err != nil {
		return Output{}, err
	}
	out, err := (&Tester{t.Deps}).suite(ctx, in, ws, files, "", newTestOutput(), true)
	if err != nil {
		return Output{}, err
	}
	out.Baseline = compareRuns(before, out)
	b := out.Baseline
	level := Info
	if len(b.NewFailures) > 0 {
		level = Warn
	}
	in.Log(level, fmt.Sprintf("Against the baseline: %d fixed, %d failing before and still (pre-existing), %d broken by the change",
		len(b.Fixed), len(b.PreExisting), len(b.NewFailures)))
	for i, n := range b.PreExisting {
		if i == 5 {
			break
		}
		in.Log(Info, "Pre-existing failure (not sent back): "+oneLine(n, 200))
	}
	var k call
	return k.result(out)
}

// ChangeReviewer reviews the diff against the base.
type ChangeReviewer struct{ Deps }

// reviewContext is how many lines around each hunk the reviewer reads,
// besides the whole functions the hunks touch.
const reviewContext = 10

// Run reviews the change, not the tree: the diff with its surrounding code.
func (r *ChangeReviewer) Run(ctx context.Context, in Input) (Output, error) {
	ws, err := r.workspace(in.Task.ID)
	if err != nil {
		return Output{}, err
	}
	cl, err := cloneOf(in)
	if err != nil {
		return Output{}, fmt.Errorf("reviewer: %w", err)
	}
	diff, err := ws.ChangeDiff(ctx, cl.BaseSHA, workspace.DiffOptions{Context: reviewContext, Functions: true})
	if err != nil {
		return Output{}, fmt.Errorf("reviewer: diff: %w", err)
	}
	if strings.TrimSpace(diff) == "" {
		in.Log(Warn, "The change is empty")
		var k call
		return k.result(ReviewOutput{Approved: false, Summary: "The change is empty: nothing was modified.", Findings: []Finding{{Severity: "major", Message: "no file was changed"}}})
	}
	quoted := diff
	if len(quoted) > maxQuoted {
		quoted = strings.ToValidUTF8(quoted[:maxQuoted], "") + "\n… (diff cut at the size limit)\n"
	}
	files := strings.Count(diff, "\ndiff --git ") + 1
	in.Log(Info, fmt.Sprintf("Reviewing the change: %s against %.12s (%d bytes of diff with context)", plural(files, "file", "files"), cl.BaseSHA, len(diff)))
	var c call
	var rev ReviewOutput
	msg := "Review this change to an existing repository. Below is the unified diff against the base commit, " +
		"each hunk widened to the whole function it touches plus " + fmt.Sprint(reviewContext) + " lines of context. " +
		"Judge only the change: code around it is there to read, not to review. Line numbers refer to the new file.\n\n" + quoted
	if err := c.ask(ctx, r.Deps, in, "reviewer", prompt("reviewer"), taskContext(in), msg, &rev); err != nil {
		return Output{}, err
	}
	if rev.Findings == nil {
		rev.Findings = []Finding{}
	}
	rev.Diff = diff
	if len(rev.Diff) > maxDiffArtifact {
		rev.Diff = strings.ToValidUTF8(rev.Diff[:maxDiffArtifact], "") + "\n… (cut)\n"
	}
	logReview(in, rev)
	return c.result(rev)
}

// maxDiffArtifact bounds the diff kept in the review artifact.
const maxDiffArtifact = 256 << 10

// ChangeDeployer commits the change on the task branch and publishes it.
type ChangeDeployer struct{ Deps }

// PatchPath is the API path of a change task's patch.
func PatchPath(taskID string) string { return "/api/tasks/" + taskID + "/patch" }

// Run makes the change one commit authored by Catalyst, then pushes it and
// opens a pull request (MOCK_DEPLOYMENT=false), or offers the patch and the
// branch. Each step finds what a crashed run already did.
func (d *ChangeDeployer) Run(ctx context.Context, in Input) (Output, error) {
	ws, err := d.workspace(in.Task.ID)
	if err != nil {
		return Output{}, err
	}
	cl, err := cloneOf(in)
	if err != nil {
		return Output{}, fmt.Errorf("deployer: %w", err)
	}
	msg := fmt.Sprintf("%s\n\n%s\n\nCatalyst task %s", oneLine(in.Task.Prompt, 72), wrapText(in.Task.Prompt, 2000), in.Task.ID)
	sha, created, err := ws.CommitChange(ctx, msg, Signature)
	if err != nil {
		return Output{}, fmt.Errorf("deployer: commit: %w", err)
	}
	if sha == cl.BaseSHA {
		return Output{}, errors.New("deployer: the change is empty: nothing to commit")
	}
	if n, err := ws.CommitsSince(ctx, cl.BaseSHA); err != nil || n != 1 {
		return Output{}, fmt.Errorf("deployer: the branch should hold one commit on the base, it holds %d (%v)", n, err)
	}
	if created {
		in.Log(Info, fmt.Sprintf("Committed the change on %s as %s", cl.Branch, sha))
	} else {
		in.Log(Info, "The change was already committed as "+sha)
	}
	out := DeployOutput{CommitSHA: sha, Branch: cl.Branch, Mock: d.MockDeployment, BaseSHA: cl.BaseSHA, PatchURL: PatchPath(in.Task.ID)}
	var publishing string
	if d.MockDeployment {
		publishing = fmt.Sprintf("External publishing simulated (MOCK_DEPLOYMENT=true): the change is branch %s of the task's clone; get it as a patch at %s.", cl.Branch, out.PatchURL)
		in.Log(Info, publishing)
	} else if publishing, err = d.publish(ctx, in, ws, cl, &out); err != nil {
		return Output{}, err
	}
	out.URL = out.PullRequestURL
	out.Report = d.report(in, cl, out, publishing)
	if err := d.Store.PutDeployment(ctx, domain.Deployment{
		ID: deploymentID(in.Task.ID), TaskID: in.Task.ID, URL: out.URL, CommitSHA: sha, Report: out.Report,
		Mock: out.Mock, Branch: out.Branch, PullRequestURL: out.PullRequestURL, CreatedAt: time.Now().UTC(),
	}); err != nil {
		return Output{}, fmt.Errorf("deployer: store deployment: %w", err)
	}
	var k call
	return k.result(out)
}

// publish pushes the branch to the project's repository and, for a GitHub
// repository, finds or opens the pull request against the cloned branch.
func (d *ChangeDeployer) publish(ctx context.Context, in Input, ws *workspace.Workspace, cl CloneOutput, out *DeployOutput) (string, error) {
	p, err := d.Store.GetProject(ctx, in.Task.ProjectID)
	if err != nil {
		return "", err
	}
	token, _, err := d.repoToken(p)
	if err != nil {
		return "", fmt.Errorf("deployer: %w", err)
	}
	if err := ws.PushBranch(ctx, p.RepoURL, cl.Branch, token); err != nil {
		return "", fmt.Errorf("deployer: %w", err)
	}
	in.Log(Info, fmt.Sprintf("Pushed %s to %s", cl.Branch, p.RepoURL))
	repo := p.GitHubRepo
	if repo == "" {
		repo = domain.GitHubRepoOf(p.RepoURL)
	}
	switch {
	case repo == "":
		return fmt.Sprintf("Pushed branch %s to %s (not a GitHub repository: no pull request).", cl.Branch, p.RepoURL), nil
	case d.GitHub == nil:
		s := fmt.Sprintf("Pushed branch %s to %s; no pull request: GITHUB_TOKEN is not set.", cl.Branch, p.RepoURL)
		in.Log(Warn, s)
		return s, nil
	}
	pr, err := d.GitHub.FindPullRequest(ctx, repo, cl.Branch)
	if err != nil {
		return "", fmt.Errorf("deployer: find pull request: %w", err)
	}
	if pr != "" {
		in.Log(Info, "Pull request already open: "+pr)
	} else {
		base := cl.BaseBranch
		if base == "" {
			if base, err = d.GitHub.DefaultBranch(ctx, repo); err != nil {
				return "", fmt.Errorf("deployer: default branch: %w", err)
			}
		}
		body := fmt.Sprintf("Made by Catalyst for task %s.\n\n> %s\n\nOne commit on %s (%.12s): %s.", in.Task.ID,
			oneLine(in.Task.Prompt, 1000), base, cl.BaseSHA, out.CommitSHA)
		if pr, err = d.GitHub.CreatePullRequest(ctx, repo, cl.Branch, base, "Catalyst: "+oneLine(in.Task.Prompt, 60), body); err != nil {
			return "", fmt.Errorf("deployer: open pull request: %w", err)
		}
		in.Log(Info, "Opened pull request "+pr)
	}
	out.PullRequestURL = pr
	return fmt.Sprintf("Published: branch %s of %s, pull request %s.", cl.Branch, repo, pr), nil
}

func (d *ChangeDeployer) report(in Input, cl CloneOutput, out DeployOutput, publishing string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Catalyst change for task %s\n\nRequest: %s\nRepository: %s (%s at %.12s)\nBranch: %s\nCommit: %s\n",
		in.Task.ID, oneLine(in.Task.Prompt, 500), cl.RepoURL, cl.BaseBranch, cl.BaseSHA, out.Branch, out.CommitSHA)
	var t TestOutput
	if a, ok := in.Artifacts[domain.NodeTester]; ok && decodeRaw(a.Output, &t) == nil && t.Baseline != nil {
		c := t.Baseline
		fmt.Fprintf(&b, "\nTests before: %d passed, %d failed; after: %d passed, %d failed (%s).\n", c.Before.Passed, c.Before.Failed, t.Passed, t.Failed, t.Command)
		fmt.Fprintf(&b, "Fixed: %d; failing before and still (pre-existing): %d; broken by the change: %d\n", len(c.Fixed), len(c.PreExisting), len(c.NewFailures))
	}
	var r ReviewOutput
	if a, ok := in.Artifacts[domain.NodeReviewer]; ok && decodeRaw(a.Output, &r) == nil {
		fmt.Fprintf(&b, "Review: approved=%v, %s. %s\n", r.Approved, plural(len(r.Findings), "finding", "findings"), oneLine(r.Summary, 300))
	}
	fmt.Fprintf(&b, "\n%s\nPatch: %s\n", publishing, out.PatchURL)
	return b.String()
}

// wrapText keeps the first n bytes of s, valid UTF-8.
func wrapText(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}

// changeBrief opens the coder's loop on an existing repository: change
// only what the request needs, and know which tests failed before.
func changeBrief(in Input) string {
	var b strings.Builder
	b.WriteString("This workspace is a clone of an existing repository. Make the change the request asks for, and only it: " +
		"find the code with search and read_file, change it with edit_file (exact search/replace), run the tests with run, then call finish. " +
		"Do not reformat, rename or rewrite what the request does not need.\n")
	var base TestOutput
	if decode(in, NodeBaseline, &base) == nil && base.Command != "" {
		fmt.Fprintf(&b, "\nBefore any change, `%s` gave %d passed, %d failed.\n", base.Command, base.Passed, base.Failed)
		n := 0
		for _, f := range base.Failures {
			if n == 20 {
				break
			}
			fmt.Fprintf(&b, "- failing before the change: %s: %s\n", oneLine(f.Name, 200), oneLine(f.Message, 300))
			n++
		}
	}
	return b.String()
}
