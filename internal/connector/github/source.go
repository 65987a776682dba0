package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	gh "github.com/google/go-github/v93/github"

	"github.com/catalyst/catalyst/internal/connector"
)

// Source is the Explorer's GitHub connector. It only reads.
type Source struct {
	c            *Client
	statsRetries int
	statsWait    time.Duration
	now          func() time.Time
}

// SourceOption configures NewSource.
type SourceOption func(*Source)

// WithStatsRetries sets how often a statistics endpoint answering 202 is
// asked again, and the pause between tries (default 4 tries, 2 s).
func WithStatsRetries(n int, wait time.Duration) SourceOption {
	return func(s *Source) { s.statsRetries, s.statsWait = n, wait }
}

// WithNow sets the clock (tests).
func WithNow(now func() time.Time) SourceOption { return func(s *Source) { s.now = now } }

// NewSource wraps a client. For the Explorer the client should be built
// WithHTTPClient(policy.HTTPClient(...)) and WithRateLimitWait(...).
func NewSource(c *Client, opts ...SourceOption) *Source {
	s := &Source{c: c, statsRetries: 4, statsWait: 2 * time.Second, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Name implements connector.Source.
func (s *Source) Name() string { return "github" }

// maxContributorPages bounds the contributors list (100 per page).
const maxContributorPages = 5

// Gather reads t.GitHubRepo, or the repository a github.com RepoURL names.
func (s *Source) Gather(ctx context.Context, t connector.Target) ([]connector.Fact, error) {
	owner, name, err := s.target(t)
	if err != nil {
		return nil, err
	}
	c := s.c
	repo, err := call(ctx, c, func() (*gh.Repository, *gh.Response, error) { return c.gh.Repositories.Get(ctx, owner, name) })
	if err != nil {
		return nil, err
	}
	full := repo.GetFullName()
	web := repo.GetHTMLURL()
	var facts []connector.Fact
	var gaps []string
	add := func(f connector.Fact) { f.Source = "github"; facts = append(facts, f) }
	// soft records an endpoint that could not be read; a rate limit or a
	// cancelled scan stops the source instead.
	soft := func(what string, err error) error {
		if errors.Is(err, ErrRateLimited) || ctx.Err() != nil {
			return err
		}
		gaps = append(gaps, fmt.Sprintf("%s: %v", what, err))
		return nil
	}

	meta := map[string]any{
		"full_name": full, "description": repo.GetDescription(), "stars": repo.GetStargazersCount(),
		"forks": repo.GetForksCount(), "watchers": repo.GetSubscribersCount(), "archived": repo.GetArchived(),
		"disabled": repo.GetDisabled(), "private": repo.GetPrivate(), "fork": repo.GetFork(),
		"default_branch": repo.GetDefaultBranch(), "open_issues_count": repo.GetOpenIssuesCount(),
		"html_url": web, "topics": repo.Topics, "licence": repo.GetLicense().GetSPDXID(),
		"created_at": repo.GetCreatedAt().Time, "pushed_at": repo.GetPushedAt().Time,
	}
	summary := fmt.Sprintf("%s: %d stars, %d forks, default branch %s", full, repo.GetStargazersCount(), repo.GetForksCount(), repo.GetDefaultBranch())
	if repo.GetArchived() {
		summary += ", archived"
	}
	repoFact := connector.Fact{ID: "github.repository", Kind: connector.KindRepository, Summary: summary, Value: meta,
		Where: &connector.Location{Ref: full, URL: web}}

	if langs, err := call(ctx, c, func() (map[string]int, *gh.Response, error) { return c.gh.Repositories.ListLanguages(ctx, owner, name) }); err != nil {
		if err := soft("languages", err); err != nil {
			return nil, err
		}
	} else {
		m := make(map[string]int64, len(langs))
		for k, v := range langs {
			m[k] = int64(v)
		}
		add(connector.Fact{ID: "github.languages", Kind: connector.KindLanguages, Summary: summariseLangs(m), Value: m,
			Where: &connector.Location{URL: web}})
	}

	if f, err := s.contributors(ctx, owner, name, web); err != nil {
		if err := soft("contributors", err); err != nil {
			return nil, err
		}
	} else {
		add(f)
	}

	if f, err := s.activity(ctx, owner, name, repo.GetDefaultBranch(), web); err != nil {
		if err := soft("commit activity", err); err != nil {
			return nil, err
		}
	} else {
		add(f)
	}

	if f, err := s.openIssues(ctx, owner, name, repo.GetOpenIssuesCount(), web); err != nil {
		if err := soft("pull requests", err); err != nil {
			return nil, err
		}
	} else {
		add(f)
	}

	rel, err := call(ctx, c, func() (*gh.RepositoryRelease, *gh.Response, error) {
		return c.gh.Repositories.GetLatestRelease(ctx, owner, name)
	})
	switch {
	case err == nil:
		add(connector.Fact{ID: "github.release", Kind: connector.KindRelease,
			Summary: fmt.Sprintf("latest release %s published %s", rel.GetTagName(), rel.GetPublishedAt().Format("2006-01-02")),
			Value:   map[string]any{"latest": rel.GetTagName(), "published_at": rel.GetPublishedAt().Time},
			Where:   &connector.Location{Ref: rel.GetTagName(), URL: safeURL(rel.GetHTMLURL())}})
	case errors.Is(err, ErrNotFound):
		add(connector.Fact{ID: "github.release", Kind: connector.KindRelease, Summary: "no release published",
			Value: map[string]any{"latest": "", "published_at": nil}})
	default:
		if err := soft("releases", err); err != nil {
			return nil, err
		}
	}

	add(s.protection(ctx, owner, name, repo.GetDefaultBranch(), web))

	if wf, err := call(ctx, c, func() (*gh.Workflows, *gh.Response, error) {
		return c.gh.Actions.ListWorkflows(ctx, owner, name, &gh.ListOptions{PerPage: 100})
	}); err != nil {
		if err := soft("workflows", err); err != nil {
			return nil, err
		}
	} else {
		names := []string{}
		for _, w := range wf.Workflows {
			if w.GetState() == "active" || w.GetState() == "" {
				names = append(names, w.GetName())
			}
		}
		sort.Strings(names)
		summary := "no active GitHub Actions workflows"
		if len(names) > 0 {
			summary = fmt.Sprintf("%d active workflows: %s", len(names), strings.Join(names, ", "))
		}
		add(connector.Fact{ID: "github.workflows", Kind: connector.KindWorkflows, Summary: summary,
			Value: map[string]any{"count": len(names), "names": names, "total": wf.GetTotalCount()}})
	}

	if f, err := s.securityPolicy(ctx, owner, name, web); err != nil {
		if err := soft("security policy", err); err != nil {
			return nil, err
		}
	} else {
		add(f)
	}

	if len(gaps) > 0 {
		meta["unreadable"] = gaps
	}
	return append([]connector.Fact{withSource(repoFact)}, facts...), nil
}

func withSource(f connector.Fact) connector.Fact { f.Source = "github"; return f }

func (s *Source) target(t connector.Target) (string, string, error) {
	if t.GitHubRepo != "" {
		return ParseRepo(t.GitHubRepo)
	}
	if t.RepoURL == "" {
		return "", "", fmt.Errorf("%w: no GitHub repository named", connector.ErrSkip)
	}
	host := ""
	if strings.HasPrefix(t.RepoURL, "git@") {
		host, _, _ = strings.Cut(strings.TrimPrefix(t.RepoURL, "git@"), ":")
	} else if i := strings.Index(t.RepoURL, "://"); i >= 0 {
		rest := t.RepoURL[i+3:]
		if at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@"); at >= 0 {
			rest = rest[at+1:]
		}
		host = strings.SplitN(rest, "/", 2)[0]
	}
	if !strings.EqualFold(host, "github.com") && !strings.EqualFold(host, "www.github.com") {
		return "", "", fmt.Errorf("%w: the repository is not on github.com", connector.ErrSkip)
	}
	return ParseRepo(t.RepoURL)
}

func (s *Source) contributors(ctx context.Context, owner, name, web string) (connector.Fact, error) {
	c := s.c
	opt := &gh.ListContributorsOptions{Anon: "true", ListOptions: gh.ListOptions{PerPage: 100}}
	var counts []int
	capped := false
	for page := 0; ; page++ {
		if page == maxContributorPages {
			capped = true
			break
		}
		var resp *gh.Response
		list, err := call(ctx, c, func() ([]*gh.Contributor, *gh.Response, error) {
			l, r, err := c.gh.Repositories.ListContributors(ctx, owner, name, opt)
			resp = r
			return l, r, err
		})
		if err != nil {
			return connector.Fact{}, err
		}
		for _, k := range list {
			counts = append(counts, k.GetContributions())
		}
		if resp == nil || resp.NextPage == 0 {
			break
		}
		opt.Page = resp.NextPage
	}
	total, top := 0, 0
	for _, n := range counts {
		total += n
		top = max(top, n)
	}
	share := 0.0
	if total > 0 {
		share = float64(top) / float64(total)
	}
	count := fmt.Sprint(len(counts))
	if capped {
		count += "+"
	}
	return connector.Fact{ID: "github.contributors", Kind: connector.KindContributors,
		Summary: fmt.Sprintf("%s contributors; the most active made %.0f%% of contributions", count, share*100),
		Value:   map[string]any{"count": len(counts), "top_share": share, "capped": capped},
		Where:   &connector.Location{URL: web + "/graphs/contributors"}}, nil
}

// activity reads the weekly commit statistics, which GitHub computes on
// demand: 202 means "ask again shortly". After the retries the commits of
// the last 90 days are counted from the commit list instead, and the
// summary says so.
func (s *Source) activity(ctx context.Context, owner, name, branch, web string) (connector.Fact, error) {
	c := s.c
	now := s.now()
	last, err := call(ctx, c, func() ([]*gh.RepositoryCommit, *gh.Response, error) {
		return c.gh.Repositories.ListCommits(ctx, owner, name, &gh.CommitsListOptions{SHA: branch, ListOptions: gh.ListOptions{PerPage: 1}})
	})
	if err != nil {
		return connector.Fact{}, err
	}
	var lastAt time.Time
	var lastSHA string
	if len(last) > 0 {
		lastAt, lastSHA = last[0].GetCommit().GetCommitter().GetDate().Time, last[0].GetSHA()
	}
	recent, how := -1, "weekly statistics"
	for try := 0; try <= s.statsRetries; try++ {
		weeks, err := call(ctx, c, func() ([]*gh.WeeklyCommitActivity, *gh.Response, error) {
			return c.gh.Repositories.ListCommitActivity(ctx, owner, name)
		})
		var api *APIError
		if errors.As(err, &api) && api.Status == http.StatusAccepted {
			if try == s.statsRetries {
				break
			}
			t := time.NewTimer(s.statsWait)
			select {
			case <-ctx.Done():
				t.Stop()
				return connector.Fact{}, ctx.Err()
			case <-t.C:
			}
			continue
		}
		if err != nil {
			return connector.Fact{}, err
		}
		recent = 0
		cutoff := now.AddDate(0, 0, -91)
		for _, w := range weeks {
			if w.GetWeek().After(cutoff) {
				recent += w.GetTotal()
			}
		}
		break
	}
	if recent < 0 {
		how = "GitHub was still computing its statistics; counted from the commit list"
		n, err := s.countCommitsSince(ctx, owner, name, branch, now.AddDate(0, 0, -90))
		if err != nil {
			return connector.Fact{}, err
		}
		recent = n
	}
	return connector.Fact{ID: "github.activity", Kind: connector.KindActivity,
		Summary: fmt.Sprintf("last commit %s; %d commits in the last 90 days (%s)", lastAt.UTC().Format("2006-01-02"), recent, how),
		Value:   map[string]any{"last_commit": lastAt.UTC(), "commits_90d": recent, "method": how},
		Where:   &connector.Location{Ref: lastSHA, URL: web + "/commits/" + branch}}, nil
}

// maxCommitPages bounds the fallback count (100 commits a page).
const maxCommitPages = 10

func (s *Source) countCommitsSince(ctx context.Context, owner, name, branch string, since time.Time) (int, error) {
	c := s.c
	opt := &gh.CommitsListOptions{SHA: branch, Since: since, ListOptions: gh.ListOptions{PerPage: 100}}
	n := 0
	for page := 0; page < maxCommitPages; page++ {
		var resp *gh.Response
		list, err := call(ctx, c, func() ([]*gh.RepositoryCommit, *gh.Response, error) {
			l, r, err := c.gh.Repositories.ListCommits(ctx, owner, name, opt)
			resp = r
			return l, r, err
		})
		if err != nil {
			return 0, err
		}
		n += len(list)
		if resp == nil || resp.NextPage == 0 {
			break
		}
		opt.Page = resp.NextPage
	}
	return n, nil
}

// openIssues counts open pull requests from the last page number of a
// one-per-page listing; GitHub's open_issues_count includes them.
func (s *Source) openIssues(ctx context.Context, owner, name string, openCount int, web string) (connector.Fact, error) {
	c := s.c
	var resp *gh.Response
	list, err := call(ctx, c, func() ([]*gh.PullRequest, *gh.Response, error) {
		l, r, err := c.gh.PullRequests.List(ctx, owner, name, &gh.PullRequestListOptions{State: "open", ListOptions: gh.ListOptions{PerPage: 1}})
		resp = r
		return l, r, err
	})
	if err != nil {
		return connector.Fact{}, err
	}
	prs := len(list)
	if resp != nil && resp.LastPage > 0 {
		prs = resp.LastPage
	}
	issues := max(openCount-prs, 0)
	return connector.Fact{ID: "github.open_issues", Kind: connector.KindOpenIssues,
		Summary: fmt.Sprintf("%d open issues, %d open pull requests", issues, prs),
		Value:   map[string]any{"issues": issues, "pull_requests": prs},
		Where:   &connector.Location{URL: web + "/issues"}}, nil
}

// protection reads the default branch's protection. "protected" comes
// from the branch itself (readable by anyone who can read the repository);
// the rules need admin rights, so 403/404 there means "not visible".
func (s *Source) protection(ctx context.Context, owner, name, branch, web string) connector.Fact {
	c := s.c
	f := connector.Fact{ID: "github.branch_protection", Kind: connector.KindBranchProtection, Source: "github",
		Where: &connector.Location{Ref: branch, URL: web + "/tree/" + branch}}
	b, err := call(ctx, c, func() (*gh.Branch, *gh.Response, error) {
		return c.gh.Repositories.GetBranch(ctx, owner, name, branch, 1)
	})
	if err != nil {
		f.Summary = fmt.Sprintf("protection of %s not visible (%s)", branch, shortErr(err))
		f.Value = map[string]any{"branch": branch, "protected": false, "visible": false}
		return f
	}
	v := map[string]any{"branch": branch, "protected": b.GetProtected(), "visible": true}
	f.Value = v
	if !b.GetProtected() {
		f.Summary = fmt.Sprintf("default branch %s is not protected", branch)
		return f
	}
	f.Summary = fmt.Sprintf("default branch %s is protected", branch)
	p, err := call(ctx, c, func() (*gh.Protection, *gh.Response, error) {
		return c.gh.Repositories.GetBranchProtection(ctx, owner, name, branch)
	})
	if err != nil {
		v["rules_visible"] = false
		return f
	}
	v["rules_visible"] = true
	if r := p.GetRequiredPullRequestReviews(); r != nil {
		v["required_reviews"] = r.RequiredApprovingReviewCount
	}
	v["required_status_checks"] = p.GetRequiredStatusChecks() != nil
	v["enforce_admins"] = p.GetEnforceAdmins() != nil && p.GetEnforceAdmins().Enabled
	return f
}

// securityPolicyPaths are where GitHub looks for a security policy.
var securityPolicyPaths = []string{"SECURITY.md", ".github/SECURITY.md", "docs/SECURITY.md"}

func (s *Source) securityPolicy(ctx context.Context, owner, name, web string) (connector.Fact, error) {
	c := s.c
	for _, p := range securityPolicyPaths {
		fc, err := call(ctx, c, func() (*gh.RepositoryContent, *gh.Response, error) {
			f, _, r, err := c.gh.Repositories.GetContents(ctx, owner, name, p, nil)
			return f, r, err
		})
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return connector.Fact{}, err
		}
		return connector.Fact{ID: "github.security_policy", Kind: connector.KindSecurityPolicy,
			Summary: "security policy " + p, Value: map[string]any{"present": true, "path": p},
			Where: &connector.Location{Path: p, URL: safeURL(fc.GetHTMLURL())}}, nil
	}
	return connector.Fact{ID: "github.security_policy", Kind: connector.KindSecurityPolicy,
		Summary: "no security policy (SECURITY.md)", Value: map[string]any{"present": false},
		Where: &connector.Location{URL: web + "/security/policy"}}, nil
}

func shortErr(err error) string {
	var api *APIError
	if errors.As(err, &api) {
		return fmt.Sprintf("%d %s", api.Status, api.Message)
	}
	return err.Error()
}

// safeURL keeps http(s) links only: a response field could carry
// javascript: or data: URLs the dashboard would render.
func safeURL(u string) string {
	if strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
		return u
	}
	return ""
}

func summariseLangs(m map[string]int64) string {
	type kv struct {
		k string
		v int64
	}
	var all []kv
	var total int64
	for k, v := range m {
		all = append(all, kv{k, v})
		total += v
	}
	if total == 0 {
		return "no languages reported"
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v || all[i].v == all[j].v && all[i].k < all[j].k })
	var parts []string
	for i, e := range all {
		if i == 4 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.0f%%", e.k, float64(e.v)*100/float64(total)))
	}
	return "languages by size: " + strings.Join(parts, ", ")
}
