// Package domain holds Catalyst's entities and their rules. It does no I/O and
// imports nothing of ours, so every other package can depend on it.
//
// JSON field names follow the original Python backend's schema (see the seed
// guide): they are a public contract.
package domain

import (
	"encoding/json"
	"errors"
	"time"
)

// Sentinel errors shared by stores, the executor and the API; the API maps
// them to HTTP statuses in one place.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid argument")
	// ErrForbidden: the actor may see the resource but not do this to it
	// (a viewer submitting a task). A resource the actor may not see is
	// ErrNotFound, never ErrForbidden: its existence is not told.
	ErrForbidden = errors.New("forbidden")
)

// ProjectStatus is the lifecycle of a project.
type ProjectStatus string

const (
	ProjectActive   ProjectStatus = "active"
	ProjectArchived ProjectStatus = "archived"
)

// Project groups tasks.
type Project struct {
	ID          string        `json:"id"`
	Name        string        `json:"name"`
	Description string        `json:"description"`
	Status      ProjectStatus `json:"status"`
	// GitHubRepo ("owner/name") links the project to a repository the deployer
	// may publish to when MOCK_DEPLOYMENT=false.
	GitHubRepo string `json:"github_repo,omitempty"`
	// RepoURL is the git repository (any git URL) tasks of kind change
	// start from: a clone of it on a task branch.
	RepoURL string `json:"repo_url,omitempty"`
	// RepoCredential names where the credential for RepoURL lives (see
	// CheckCredentialRef); the secret itself is never stored. It is
	// write-only: never serialised to the API.
	RepoCredential string `json:"-"`
	// OwnerID is the user the project belongs to ("local" for the
	// installation's token holder, "" for projects from before accounts:
	// only admins see those).
	OwnerID   string    `json:"owner_id"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// MyRole is what the asking actor is to the project; scoped reads fill
	// it in, it is never stored.
	MyRole ProjectRole `json:"my_role,omitempty"`
}

// ProjectRole is what an actor may do with a project. Each role includes
// the ones before it: viewers read, editors submit, cancel and retry tasks
// and edit the project, owners manage members and archive; admins may do
// everything an owner may, on every project (RoleAdminAccess: an admin on a
// project they have no role in).
type ProjectRole string

const (
	RoleViewer      ProjectRole = "viewer"
	RoleEditor      ProjectRole = "editor"
	RoleOwner       ProjectRole = "owner"
	RoleAdminAccess ProjectRole = "admin"
)

// rank orders roles; unknown roles rank below viewer.
func (r ProjectRole) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleEditor:
		return 2
	case RoleOwner:
		return 3
	case RoleAdminAccess:
		return 4
	}
	return 0
}

// Allows reports whether r includes need.
func (r ProjectRole) Allows(need ProjectRole) bool { return r.rank() > 0 && r.rank() >= need.rank() }

// MemberRole reports whether r can be given to a member (viewer, editor).
func (r ProjectRole) MemberRole() bool { return r == RoleViewer || r == RoleEditor }

// Member gives a user a role on a project they do not own (collection
// project_members).
type Member struct {
	ProjectID string      `json:"project_id"`
	UserID    string      `json:"user_id"`
	Role      ProjectRole `json:"role"`
	// AddedBy is the actor who gave the role.
	AddedBy   string    `json:"added_by"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TaskStatus is the lifecycle of a task.
type TaskStatus string

const (
	TaskPending   TaskStatus = "pending"
	TaskRunning   TaskStatus = "running"
	TaskCompleted TaskStatus = "completed"
	TaskFailed    TaskStatus = "failed"
	TaskCancelled TaskStatus = "cancelled"
)

// Terminal reports whether no further work happens without a retry.
func (s TaskStatus) Terminal() bool {
	return s == TaskCompleted || s == TaskFailed || s == TaskCancelled
}

// NodeState is the state of one node of the task graph.
type NodeState string

const (
	NodePending   NodeState = "pending"
	NodeRunning   NodeState = "running"
	NodeCompleted NodeState = "completed"
	NodeFailed    NodeState = "failed"
	NodeSkipped   NodeState = "skipped"
)

// Node ids of the standard task graph; they are the guide's graph_state keys.
const (
	NodePlanner   = "planner"
	NodeArchitect = "architect"
	NodeCoder     = "coder"
	NodeTester    = "tester"
	NodeReviewer  = "reviewer"
	NodeDeployer  = "deployer"
)

// Node ids of the explore graph (gather -> analyse -> report).
const (
	NodeGather  = "gather"
	NodeAnalyse = "analyse"
	NodeReport  = "report"
)

// Task is one prompt run through the agent graph.
type Task struct {
	ID        string `json:"id"`
	ProjectID string `json:"project_id"`
	Prompt    string `json:"prompt"`
	// Kind selects the task's graph (KindBuild for documents without one).
	Kind string `json:"kind"`
	// CreatedBy is the actor who submitted the task (a user id, "local" or
	// "system:<name>"); per-user limits count by it.
	CreatedBy  string               `json:"created_by,omitempty"`
	GraphState map[string]NodeState `json:"graph_state"`
	Status     TaskStatus           `json:"status"`
	// Cost is the sum of the node costs in USD.
	Cost float64 `json:"cost"`
	// NodeCosts holds each node's cost (all of its runs, fix rounds included).
	NodeCosts map[string]float64 `json:"node_costs,omitempty"`
	// Error says why a task failed or was cancelled.
	Error string `json:"error,omitempty"`
	// FixIteration counts the fix rounds the coder has been sent on.
	FixIteration int `json:"fix_iteration"`
	// Provider, Model and Offline say which LLM served the task
	// ("anthropic", "claude-3-7-sonnet-20250219"); Offline is true for the
	// offline demonstration provider. UIs render them; code never parses a label.
	Provider string `json:"provider,omitempty"`
	Model    string `json:"model,omitempty"`
	Offline  bool   `json:"offline,omitempty"`
	// LeaseOwner is the process running the task and LeaseExpiresAt when its
	// lease lapses unless renewed; only the transitions in lifecycle.go
	// write them.
	LeaseOwner     string     `json:"lease_owner,omitempty"`
	LeaseExpiresAt *time.Time `json:"lease_expires_at,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	StartedAt      *time.Time `json:"started_at,omitempty"`
	FinishedAt     *time.Time `json:"finished_at,omitempty"`
	// Version increases by one on every stored update; stores use it for
	// optimistic concurrency. Not part of the wire contract.
	Version int64 `json:"-"`
}

// NewGraphState returns a graph_state with every node pending.
func NewGraphState(nodes []string) map[string]NodeState {
	gs := make(map[string]NodeState, len(nodes))
	for _, n := range nodes {
		gs[n] = NodePending
	}
	return gs
}

// EventType classifies an AgentLog / stream event.
type EventType string

const (
	EventLog        EventType = "log"         // a human-readable line from an agent
	EventNodeState  EventType = "node_state"  // a graph node changed state
	EventTaskState  EventType = "task_state"  // the task changed status
	EventCost       EventType = "cost"        // the task's cost changed
	EventTokenDelta EventType = "token_delta" // model text while an agent is "typing"; live only, never stored
	EventFixRound   EventType = "fix_round"   // checks sent the work back: the loop body's nodes are pending again
	EventToolCall   EventType = "tool_call"   // an agent's tool call and its result (the coder's steps)
)

// AgentLog is one stored event of a task (collection agent_logs). Seq orders
// the events of one task, starting at 1, without gaps.
type AgentLog struct {
	ID        string    `json:"id"`
	TaskID    string    `json:"task_id"`
	Seq       int64     `json:"seq"`
	Type      EventType `json:"type"`
	AgentName string    `json:"agent_name"`
	Message   string    `json:"message"`
	// Level is info, warn or error.
	Level string `json:"level,omitempty"`
	// Data carries the machine-readable part of an event (the node and its
	// state, the task status, the cost); omitted for plain log lines.
	Data      json.RawMessage `json:"data,omitempty"`
	Timestamp time.Time       `json:"timestamp"`
}

// Deployment is the deployer's result for one task (collection deployments).
type Deployment struct {
	ID        string  `json:"id"`
	TaskID    string  `json:"task_id"`
	URL       string  `json:"url"`
	CommitSHA string  `json:"commit_sha"`
	Cost      float64 `json:"cost"`
	Report    string  `json:"report"`
	// Mock is true when publishing outside Catalyst was simulated
	// (MOCK_DEPLOYMENT=true).
	Mock           bool      `json:"mock"`
	Branch         string    `json:"branch,omitempty"`
	PullRequestURL string    `json:"pull_request_url,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

// ScanStatus is the lifecycle of an explorer scan.
type ScanStatus string

const (
	ScanPending   ScanStatus = "pending"
	ScanRunning   ScanStatus = "running"
	ScanCompleted ScanStatus = "completed"
	ScanFailed    ScanStatus = "failed"
	ScanCancelled ScanStatus = "cancelled"
)

// Terminal reports whether the scan's task has ended.
func (s ScanStatus) Terminal() bool {
	return s == ScanCompleted || s == ScanFailed || s == ScanCancelled
}

// ExplorerScan is a scan of an existing system (collection explorer_scans).
// It is run by the task TaskID (kind explore), whose id it shares; the
// original's fields (id, system_name, brief, risks, proposals, created_at)
// keep their shapes, the rest was added.
type ExplorerScan struct {
	ID           string `json:"id"`
	SystemName   string `json:"system_name"`
	RepoURL      string `json:"repo_url,omitempty"`
	JiraProject  string `json:"jira_project,omitempty"`
	ServiceNowCI string `json:"servicenow_ci,omitempty"`
	GitHubRepo   string `json:"github_repo,omitempty"`
	TaskID       string `json:"task_id,omitempty"`
	// OwnerID is who asked for the scan; ProjectID is the project its
	// task runs in, whose members see it.
	OwnerID   string     `json:"owner_id,omitempty"`
	ProjectID string     `json:"project_id,omitempty"`
	Status    ScanStatus `json:"status"`
	Brief     string     `json:"brief"`
	// Risks and Proposals are one line each, as the original stored them;
	// RiskDetails holds each risk with its severity and evidence.
	Risks       []string   `json:"risks"`
	Proposals   []string   `json:"proposals"`
	RiskDetails []ScanRisk `json:"risk_details"`
	// Facts are what the sources measured, the only ground for brief and
	// risks; Sources says how each source fared.
	Facts     []ScanFact   `json:"facts"`
	Sources   []ScanSource `json:"sources"`
	Error     string       `json:"error,omitempty"`
	Cost      float64      `json:"cost"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// ScanFact is one measurement of a source (the stored form of
// connector.Fact): ID is unique within the scan and is what risks cite.
type ScanFact struct {
	ID      string        `json:"id"`
	Source  string        `json:"source"`
	Kind    string        `json:"kind"`
	Summary string        `json:"summary"`
	Value   any           `json:"value,omitempty"`
	Where   *ScanLocation `json:"where,omitempty"`
}

// ScanLocation says where a fact can be checked.
type ScanLocation struct {
	Path string `json:"path,omitempty"`
	Line int    `json:"line,omitempty"`
	Ref  string `json:"ref,omitempty"`
	URL  string `json:"url,omitempty"`
}

// ScanSource is how one source fared in a scan.
type ScanSource struct {
	Source     string `json:"source"`
	Status     string `json:"status" enum:"running,ok,failed,skipped"`
	Error      string `json:"error,omitempty"`
	Facts      int    `json:"facts"`
	DurationMS int64  `json:"duration_ms"`
}

// ScanRisk is one risk with the facts it rests on.
type ScanRisk struct {
	Title    string `json:"title"`
	Severity string `json:"severity" enum:"low,medium,high,critical"`
	// Rule names the explicit rule that found it; empty when the model did.
	Rule     string         `json:"rule,omitempty"`
	By       string         `json:"by" enum:"rule,model"`
	Evidence []ScanEvidence `json:"evidence"`
}

// ScanEvidence is one cited fact.
type ScanEvidence struct {
	FactID  string        `json:"fact_id"`
	Summary string        `json:"summary"`
	Where   *ScanLocation `json:"where,omitempty"`
}

// Artifact is the persisted output of one run of one node. A node that runs
// again in a fix round writes a new artifact with the next Iteration; nothing
// else of the task state is copied per step.
type Artifact struct {
	TaskID    string          `json:"task_id"`
	Node      string          `json:"node"`
	Iteration int             `json:"iteration"`
	Output    json.RawMessage `json:"output"`
	Cost      float64         `json:"cost"`
	Usage     Usage           `json:"usage"`
	CreatedAt time.Time       `json:"created_at"`
}

// Usage counts the tokens of one or more LLM calls.
type Usage struct {
	InputTokens      int64 `json:"input_tokens"`
	OutputTokens     int64 `json:"output_tokens"`
	CacheReadTokens  int64 `json:"cache_read_tokens"`
	CacheWriteTokens int64 `json:"cache_write_tokens"`
}

// Add returns the sum of two usages.
func (u Usage) Add(o Usage) Usage {
	return Usage{
		InputTokens:      u.InputTokens + o.InputTokens,
		OutputTokens:     u.OutputTokens + o.OutputTokens,
		CacheReadTokens:  u.CacheReadTokens + o.CacheReadTokens,
		CacheWriteTokens: u.CacheWriteTokens + o.CacheWriteTokens,
	}
}
