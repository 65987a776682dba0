// Package connector holds what every source the Explorer reads (git/,
// github/, jira/, servicenow/) has in common: the target of a scan, the facts
// a source measures, and the network policy for URLs a user typed.
//
// A connector only measures. It never judges: risks are computed from facts
// by the explorer's rules, and the model may only cite facts by ID. So a fact
// carries where it was seen (file and line, issue key, incident number) and a
// one-line summary a person can check, never a secret's value.
package connector

import (
	"context"
	"errors"
)

// Target is the system a scan looks at. Empty fields mean "not asked".
type Target struct {
	SystemName   string
	RepoURL      string // any git URL: https, http, ssh, git, scp-like
	GitHubRepo   string // owner/name; derived from a github.com RepoURL when empty
	JiraProject  string // project key
	ServiceNowCI string // configuration item (cmdb_ci) name
}

// Fact is one measurement. IDs are unique within a scan and stable for the
// same input: "<source>.<kind>" or "<source>.<kind>.<n>" (git.secret.2,
// jira.issue.PROJ-12); a risk cites them.
type Fact struct {
	ID      string    `json:"id"`
	Source  string    `json:"source"`
	Kind    Kind      `json:"kind"`
	Summary string    `json:"summary"`
	Value   any       `json:"value,omitempty"`
	Where   *Location `json:"where,omitempty"`
}

// Location says where a fact can be checked.
type Location struct {
	Path string `json:"path,omitempty"` // file inside the repository, slash-separated
	Line int    `json:"line,omitempty"`
	Ref  string `json:"ref,omitempty"` // issue key, incident number, PR number, commit
	URL  string `json:"url,omitempty"` // a link a person can open (http/https only)
}

// Kind names what a fact measures. The explorer's rules match on kinds, so a
// connector adding a kind adds it here.
type Kind string

const (
	KindLanguages        Kind = "languages"         // Value: map language -> bytes
	KindManifest         Kind = "manifest"          // Value: {"path","ecosystem","dependencies":[{"name","version"}]}
	KindDependency       Kind = "dependency"        // a dependency that looks stale or vulnerable; Value: {"name","version","why"}
	KindTests            Kind = "tests"             // Value: {"present":bool,"files":int}
	KindCI               Kind = "ci"                // Value: {"present":bool,"systems":[...]}
	KindLicence          Kind = "licence"           // Value: {"present":bool,"spdx":"MIT"|""}
	KindContributors     Kind = "contributors"      // Value: {"count":int,"top_share":float (0..1)}
	KindActivity         Kind = "activity"          // Value: {"last_commit":time,"commits_90d":int}
	KindSecret           Kind = "secret"            // Value: {"rule":"aws-access-key"|...}; Where: path+line; never the value
	KindSecurityPolicy   Kind = "security_policy"   // Value: {"present":bool}
	KindBranchProtection Kind = "branch_protection" // Value: {"branch","protected":bool,"visible":bool}
	KindWorkflows        Kind = "workflows"         // Value: {"count":int,"names":[...]}
	KindRepository       Kind = "repository"        // Value: metadata (stars, archived, default branch, ...)
	KindOpenIssues       Kind = "open_issues"       // Value: {"issues":int,"pull_requests":int}
	KindRelease          Kind = "release"           // Value: {"latest":tag,"published_at":time}
	KindIssueSummary     Kind = "issue_summary"     // Jira: Value: {"by_type":{},"by_priority":{},"by_status":{},"total":int}
	KindIssue            Kind = "issue"             // one notable Jira issue (blocker, stale bug); Value: {"key","type","priority","status","age_days","stale":bool}
	KindIncidentSummary  Kind = "incident_summary"  // ServiceNow: Value: {"by_priority":{},"by_state":{},"total":int}
	KindIncident         Kind = "incident"          // one notable incident or a recurring group; Value: {"number","priority","state","recurring":int}
)

// Source is one connector.
type Source interface {
	// Name is the source's label in facts and results: git, github, jira, servicenow.
	Name() string
	// Gather measures the target. It returns promptly when ctx is
	// cancelled. An error means the source could not be read (the scan goes
	// on without it and names the error), not that it found problems.
	Gather(ctx context.Context, t Target) ([]Fact, error)
}

// ErrSkip wraps a source's reason for not reading anything (no Jira
// project asked, no credentials configured, the repository is not on
// github.com): the scan records the source as skipped, not failed.
var ErrSkip = errors.New("skipped")

// Result is how one source fared in a scan.
type Result struct {
	Source   string `json:"source"`
	Status   string `json:"status"` // ok, failed, skipped
	Error    string `json:"error,omitempty"`
	Facts    int    `json:"facts"`
	Duration int64  `json:"duration_ms"`
}
