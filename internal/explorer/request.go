package explorer

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/catalyst/catalyst/internal/connector"
	"github.com/catalyst/catalyst/internal/domain"
)

// Request is what a person asks to scan. Empty fields are not asked.
type Request struct {
	SystemName   string
	RepoURL      string
	JiraProject  string
	ServiceNowCI string
	GitHubRepo   string
	// ProjectID, when set, runs the scan in that project (the actor must be
	// an editor of it), shared with its members; else the actor's own
	// Explorer project.
	ProjectID string
}

var (
	// scpLikeGit matches git's scp-like syntax: user@host:path.
	scpLikeGit = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._~/-]+$`)
	githubRepo = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$`)
	// Jira keys are letters and digits; the guide's example (SAILPOINT-IIQ)
	// has a hyphen, so hyphens and underscores are accepted too.
	jiraKey = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,99}$`)
)

// ValidRepoURL accepts the URLs git can clone from a server: http(s), git,
// ssh (URL or scp-like). Local paths and file:// are refused: the explorer
// must not be pointed at the server's own disk. A password in the URL is
// refused too: it would be stored and shown with the scan (tokens belong in
// GITHUB_TOKEN).
func ValidRepoURL(raw string) error {
	if scpLikeGit.MatchString(raw) {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("repo_url must be an http(s), git or ssh repository URL, got %q", raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "git", "ssh":
	default:
		return fmt.Errorf("repo_url must be an http(s), git or ssh repository URL, got %q", raw)
	}
	if _, ok := u.User.Password(); ok {
		return fmt.Errorf("repo_url must not carry a password; set GITHUB_TOKEN for private GitHub repositories")
	}
	return nil
}

// Normalize trims r and checks every field, naming the bad one.
func (r Request) Normalize() (Request, error) {
	r.SystemName = strings.TrimSpace(r.SystemName)
	r.RepoURL = strings.TrimSpace(r.RepoURL)
	r.JiraProject = strings.TrimSpace(r.JiraProject)
	r.ServiceNowCI = strings.TrimSpace(r.ServiceNowCI)
	r.GitHubRepo = strings.Trim(strings.TrimSpace(r.GitHubRepo), "/")
	if err := domain.CheckName("system_name", r.SystemName); err != nil {
		return r, fmt.Errorf("%w: %v", domain.ErrInvalid, err)
	}
	if r.RepoURL != "" {
		if err := ValidRepoURL(r.RepoURL); err != nil {
			return r, fmt.Errorf("%w: %v", domain.ErrInvalid, err)
		}
	}
	if r.GitHubRepo != "" && !githubRepo.MatchString(r.GitHubRepo) {
		return r, fmt.Errorf("%w: github_repo must be owner/name, got %q", domain.ErrInvalid, r.GitHubRepo)
	}
	if r.JiraProject != "" && !jiraKey.MatchString(r.JiraProject) {
		return r, fmt.Errorf("%w: jira_project must be a project key (letters, digits, - or _), got %q", domain.ErrInvalid, r.JiraProject)
	}
	if r.ServiceNowCI != "" {
		if err := domain.CheckName("servicenow_ci", r.ServiceNowCI); err != nil {
			return r, fmt.Errorf("%w: %v", domain.ErrInvalid, err)
		}
	}
	return r, nil
}

// prompt is the explore task's prompt: what a person reads in task lists.
func (r Request) prompt() string {
	var parts []string
	for _, f := range []struct{ k, v string }{{"repository", r.RepoURL}, {"GitHub", r.GitHubRepo},
		{"Jira", r.JiraProject}, {"ServiceNow CI", r.ServiceNowCI}} {
		if f.v != "" {
			parts = append(parts, f.k+" "+f.v)
		}
	}
	if len(parts) == 0 {
		return "Explore " + r.SystemName
	}
	return "Explore " + r.SystemName + ": " + strings.Join(parts, ", ")
}

// targetOf is what the sources are asked to read for sc. GitHubRepo is
// derived from a github.com repo_url when not given.
func targetOf(sc domain.ExplorerScan) connector.Target {
	t := connector.Target{SystemName: sc.SystemName, RepoURL: sc.RepoURL, GitHubRepo: sc.GitHubRepo,
		JiraProject: sc.JiraProject, ServiceNowCI: sc.ServiceNowCI}
	if t.GitHubRepo == "" {
		t.GitHubRepo = githubRepoOf(sc.RepoURL)
	}
	return t
}

// githubRepoOf returns owner/name of a github.com URL, or "".
func githubRepoOf(raw string) string {
	var path string
	if m := scpLikeGit.MatchString(raw); m {
		host, p, _ := strings.Cut(raw[strings.IndexByte(raw, '@')+1:], ":")
		if !strings.EqualFold(host, "github.com") {
			return ""
		}
		path = p
	} else {
		u, err := url.Parse(raw)
		if err != nil || !strings.EqualFold(u.Hostname(), "github.com") {
			return ""
		}
		path = u.Path
	}
	path = strings.TrimSuffix(strings.Trim(path, "/"), ".git")
	if !githubRepo.MatchString(path) {
		return ""
	}
	return path
}
