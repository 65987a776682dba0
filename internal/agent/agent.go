// Package agent holds the agents of the task graph, one file each. Every
// agent is a Step: from the artifacts of the nodes before it to its own
// output artifact, log lines and usage. The pipeline decides when a step runs
// and persists what it returns; agents never touch the task document.
//
// Prompts are readable text files (prompts/*.md) and the structured answers
// have JSON Schemas (schemas/*.json), both embedded in the binary.
package agent

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"github.com/catalyst/catalyst/internal/connector/netpolicy"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/catalyst/catalyst/internal/agent/schemas"
	"github.com/catalyst/catalyst/internal/coding"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/sandbox"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/workspace"
)

//go:embed prompts/*.md
var prompts embed.FS

func prompt(name string) string {
	b, err := prompts.ReadFile("prompts/" + name + ".md")
	if err != nil {
		panic(err) // the names are constants of this package
	}
	return string(b)
}

// Level of a log line.
const (
	Info  = "info"
	Warn  = "warn"
	Error = "error"
)

// Input is what a step gets.
type Input struct {
	Task domain.Task
	// Node is the graph node being run (planner, coder, ...).
	Node string
	// Iteration numbers the runs of this node: 1, then 2, 3, ... in fix rounds.
	Iteration int
	// Artifacts holds the latest completed artifact of every node before this one.
	Artifacts map[string]domain.Artifact
	// Feedback holds, in a fix round, the artifacts of the checks (tester,
	// reviewer) that sent the work back, with the reasons they gave.
	Feedback []Feedback
	// Log records a human-readable line of this agent.
	Log func(level, msg string)
	// Delta streams model text while the agent "types"; may be nil.
	Delta func(text string)
	// Event records a structured event of this agent (the coder's tool
	// calls); may be nil.
	Event func(typ domain.EventType, level, msg string, data map[string]any)
}

// Feedback is one check's verdict that sent the work back to the coder.
type Feedback struct {
	Node     string
	Findings []string
	Artifact domain.Artifact
}

// Output is what a step returns.
type Output struct {
	// Artifact is the node's output document (the shapes the UI reads).
	Artifact json.RawMessage
	Usage    domain.Usage
	// Cost in USD of the step's model calls.
	Cost float64
	// Served says who answered; zero when the step made no model call.
	Served domain.Served
}

// Step is one node's work.
type Step interface {
	Run(ctx context.Context, in Input) (Output, error)
}

// StepFunc adapts a function to Step.
type StepFunc func(ctx context.Context, in Input) (Output, error)

// Run calls f.
func (f StepFunc) Run(ctx context.Context, in Input) (Output, error) { return f(ctx, in) }

// Models picks the model of an agent (llm.Router satisfies it).
type Models interface {
	For(agent string) llm.Model
}

// PullRequests is the part of a GitHub client the deployer needs to publish
// with MOCK_DEPLOYMENT=false. repo is "owner/name".
type PullRequests interface {
	DefaultBranch(ctx context.Context, repo string) (string, error)
	// FindPullRequest returns the URL of an open pull request from head, or "".
	FindPullRequest(ctx context.Context, repo, head string) (string, error)
	CreatePullRequest(ctx context.Context, repo, head, base, title, body string) (string, error)
}

// Deps are what the agents use.
type Deps struct {
	Models Models
	Store  store.Store
	// PreviewURL is the origin deployments link to (previews are served
	// apart from the API).
	PreviewURL string
	// MockDeployment simulates publishing outside Catalyst.
	MockDeployment bool
	// GitHubToken pushes a branch when publishing for real.
	GitHubToken string
	// AgentTimeout bounds a step; the tester's run gets a share of it.
	AgentTimeout time.Duration
	// WorkspaceDir is the directory (and git repository) of a task's files.
	WorkspaceDir func(taskID string) string
	// Sandbox runs tests and the coder's commands; nil means sandbox.Run.
	Sandbox func(ctx context.Context, spec sandbox.Spec) (sandbox.Result, error)
	// CoderLimits bound the coder's tool loop (CODER_MAX_STEPS, ...).
	CoderLimits coding.Limits
	// GitHub publishes pull requests when MOCK_DEPLOYMENT=false; nil means
	// publishing is not available and the report says so.
	GitHub PullRequests
	// RemoteURL is the git URL of a linked repository ("owner/name"); nil
	// means https://github.com/owner/name.git.
	RemoteURL func(repo string) string
	// Getenv reads the environment variable a project names as its
	// repository credential; nil means os.Getenv.
	Getenv func(string) string
	// CloneMaxBytes and CloneTimeout cap the clone of a change task's
	// repository; zero means the workspace package's defaults.
	CloneMaxBytes int64
	CloneTimeout  time.Duration
	// RepoPolicy, when set, refuses a repo_url whose host is loopback,
	// link-local (cloud metadata) or private, as the Explorer does: a
	// project editor must not aim the server's git at its own network.
	// CATALYST_EXPLORER_ALLOW_PRIVATE opens it for company-hosted git.
	RepoPolicy *netpolicy.Policy
}

var defaultSandbox coding.Sandbox = sandbox.Run

// Steps returns the standard agents by node id.
func Steps(d Deps) map[string]Step {
	return map[string]Step{
		domain.NodePlanner:   &Planner{d},
		domain.NodeArchitect: &Architect{d},
		domain.NodeCoder:     &Coder{d},
		domain.NodeTester:    &Tester{d},
		domain.NodeReviewer:  &Reviewer{d},
		domain.NodeDeployer:  &Deployer{d},
	}
}

// Names are the agent names of the standard nodes, as logs show them.
var Names = map[string]string{
	domain.NodePlanner:   "Planner",
	domain.NodeArchitect: "Architect",
	domain.NodeCoder:     "Coder",
	domain.NodeTester:    "Tester",
	domain.NodeReviewer:  "Reviewer",
	domain.NodeDeployer:  "Deployer",
}

func (d Deps) workspace(taskID string) (*workspace.Workspace, error) {
	if d.WorkspaceDir == nil {
		return nil, fmt.Errorf("agent: no workspace directory configured")
	}
	return workspace.Open(d.WorkspaceDir(taskID))
}

// ServedBy says who answered a call.
func ServedBy(r *llm.Response) domain.Served {
	if r == nil || r.Provider == "" {
		return domain.Served{}
	}
	if r.Provider == llm.ProviderOffline {
		return domain.Served{Provider: llm.ProviderOffline, Offline: true}
	}
	return domain.Served{Provider: r.Provider, Model: r.Model}
}

// call is the bookkeeping of one step's model calls.
type call struct {
	mu  sync.Mutex
	out Output
}

// ask sends a structured request for agent and decodes the answer into v.
func (c *call) ask(ctx context.Context, d Deps, in Input, agent, system, context, message string, v any) error {
	if d.Models == nil {
		return fmt.Errorf("%s: no model configured", agent)
	}
	m := d.Models.For(agent)
	if m == nil {
		return fmt.Errorf("%s: no model configured", agent)
	}
	req := llm.Request{
		Agent:      agent,
		System:     system,
		Context:    context,
		Messages:   []llm.Message{{Role: llm.RoleUser, Content: message}},
		Schema:     schemas.Get(agent),
		SchemaName: agent,
		OnDelta:    in.Delta,
	}
	resp, err := m.Generate(ctx, req)
	if err != nil {
		return fmt.Errorf("%s: model call: %w", agent, err)
	}
	c.mu.Lock()
	c.out.Usage = c.out.Usage.Add(resp.Usage)
	c.out.Cost += resp.Cost
	if sv := ServedBy(resp); sv != (domain.Served{}) {
		c.out.Served = sv
	}
	c.mu.Unlock()
	doc := resp.JSON
	if len(doc) == 0 {
		doc = json.RawMessage(resp.Text)
	}
	// Model output is untrusted: check it even if the provider did.
	if err := schemas.Validate(agent, doc); err != nil {
		return fmt.Errorf("%s: answer rejected: %w", agent, err)
	}
	if err := json.Unmarshal(doc, v); err != nil {
		return fmt.Errorf("%s: answer rejected: %w", agent, err)
	}
	return nil
}

// result finishes the step with its artifact.
func (c *call) result(artifact any) (Output, error) {
	b, err := json.Marshal(artifact)
	if err != nil {
		return Output{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.out
	out.Artifact = b
	return out, nil
}

// taskContext is the stable prefix shared by the agents of a task: the
// request and, when they exist, the plan and the design. The offline
// provider reads the "# Task" section.
func taskContext(in Input) string {
	var b strings.Builder
	b.WriteString("# Task\n")
	b.WriteString(strings.TrimSpace(in.Task.Prompt))
	b.WriteString("\n")
	for _, s := range []struct{ node, title string }{{domain.NodePlanner, "Plan"}, {domain.NodeArchitect, "Design"}} {
		if a, ok := in.Artifacts[s.node]; ok && in.Node != s.node {
			b.WriteString("\n# " + s.title + "\n")
			b.Write(a.Output)
			b.WriteString("\n")
		}
	}
	return b.String()
}

// decode reads the artifact of node into v; missing artifacts leave v zero.
func decode(in Input, node string, v any) error {
	a, ok := in.Artifacts[node]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(a.Output, v); err != nil {
		return fmt.Errorf("%s artifact: %w", node, err)
	}
	return nil
}

// filesHeader starts a quoted file in a message: "=== FILE: path ===".
const filesHeader = "=== FILE: "

// maxQuoted bounds the file content quoted to a model in one message.
const maxQuoted = 200 << 10

// quoteFiles renders the workspace files for a model, skipping binary files
// and stopping at maxQuoted bytes.
func quoteFiles(ws *workspace.Workspace) (string, []workspace.File, error) {
	files, err := ws.List()
	if err != nil {
		return "", nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	var b strings.Builder
	for _, f := range files {
		data, err := ws.ReadFile(f.Path)
		if err != nil {
			return "", nil, err
		}
		if strings.IndexByte(string(data), 0) >= 0 {
			fmt.Fprintf(&b, "%s%s ===\n(binary, %d bytes)\n", filesHeader, f.Path, f.Size)
			continue
		}
		if b.Len()+len(data) > maxQuoted {
			fmt.Fprintf(&b, "%s%s ===\n(%d bytes, not shown: size limit)\n", filesHeader, f.Path, f.Size)
			continue
		}
		b.WriteString(filesHeader + f.Path + " ===\n")
		b.Write(data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			b.WriteString("\n")
		}
	}
	return b.String(), files, nil
}

// IsTestFile reports whether a path names a test file of a supported stack.
func IsTestFile(p string) bool {
	base := p[strings.LastIndex(p, "/")+1:]
	switch {
	case strings.HasSuffix(base, "_test.go"):
		return true
	case strings.HasSuffix(base, ".py"):
		return strings.HasPrefix(base, "test_") || strings.HasSuffix(base, "_test.py")
	case strings.HasSuffix(base, ".js"), strings.HasSuffix(base, ".mjs"), strings.HasSuffix(base, ".cjs"):
		return strings.Contains(base, ".test.") || strings.Contains(base, "_test.") || strings.Contains(base, "-test.") ||
			strings.HasPrefix(base, "test-") || strings.HasPrefix(base, "test.") || strings.HasPrefix(p, "test/") || strings.Contains(p, "/test/")
	}
	return false
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
