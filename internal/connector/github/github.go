// Package github is the small GitHub REST client the deployer needs to publish
// outside Catalyst (MOCK_DEPLOYMENT=false, project linked to a repository):
// read a repository's default branch, find an open pull request for a branch,
// open one.
//
// It is also the Explorer's GitHub source (source.go), which reads many more
// endpoints: both sit on google/go-github, and this file turns go-github's
// errors into APIError so callers match ErrUnauthorized, ErrRateLimited, ...
// with errors.Is and never see the token. The base URL is configurable for
// GitHub Enterprise Server ("https://HOST/api/v3") and tests.
package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	gh "github.com/google/go-github/v93/github"
)

// DefaultBaseURL is github.com's REST API.
const DefaultBaseURL = "https://api.github.com"

// APIVersion is sent as X-GitHub-Api-Version.
const APIVersion = "2022-11-28"

var (
	ErrUnauthorized = errors.New("github: unauthorized (token missing, invalid or expired)")
	ErrForbidden    = errors.New("github: forbidden (token lacks permission)")
	ErrNotFound     = errors.New("github: not found (or the token cannot see it)")
	ErrRateLimited  = errors.New("github: rate limited")
	ErrPRExists     = errors.New("github: a pull request already exists for this branch")
	ErrValidation   = errors.New("github: validation failed")
)

// Client talks to the GitHub REST API with a token. The zero value is not
// usable; call New.
type Client struct {
	baseURL   *url.URL
	token     string
	http      *http.Client
	userAgent string
	gh        *gh.Client
	// rateWait is the longest a secondary rate limit (Retry-After) or an
	// exhausted primary limit is waited out before the call fails with
	// ErrRateLimited; 0 fails at once.
	rateWait time.Duration
}

// Option configures New.
type Option func(*Client) error

// WithBaseURL sets the API root (GitHub Enterprise: "https://HOST/api/v3").
func WithBaseURL(raw string) Option {
	return func(c *Client) error {
		u, err := url.Parse(strings.TrimRight(raw, "/"))
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("github: invalid base URL %q", raw)
		}
		c.baseURL = u
		return nil
	}
}

// WithHTTPClient sets the HTTP client (default: 30 s timeout). The Explorer
// passes the netpolicy's client.
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) error { c.http = h; return nil }
}

// WithRateLimitWait waits out rate limits up to d before failing.
func WithRateLimitWait(d time.Duration) Option {
	return func(c *Client) error { c.rateWait = d; return nil }
}

// New returns a client authenticating with token (may be empty for public reads).
func New(token string, opts ...Option) (*Client, error) {
	c := &Client{token: token, http: &http.Client{Timeout: 30 * time.Second}, userAgent: "catalyst"}
	if err := WithBaseURL(DefaultBaseURL)(c); err != nil {
		return nil, err
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	// go-github keeps the client it is given; copy ours so the token
	// transport it adds stays inside this Client.
	hc := *c.http
	base := c.baseURL.String() + "/"
	ghOpts := []gh.ClientOptionsFunc{gh.WithHTTPClient(&hc), gh.WithURLs(&base, &base), gh.WithUserAgent(c.userAgent)}
	if token != "" {
		ghOpts = append(ghOpts, gh.WithAuthToken(token))
	}
	g, err := gh.NewClient(ghOpts...)
	if err != nil {
		return nil, fmt.Errorf("github: %w", err)
	}
	c.gh = g
	return c, nil
}

// GitHub is the underlying go-github client, for endpoints this package
// does not wrap. Its errors are raw: pass them through Err.
func (c *Client) GitHub() *gh.Client { return c.gh }

// Repository is the part of GET /repos/{owner}/{repo} Catalyst uses.
type Repository struct {
	FullName      string `json:"full_name"`
	DefaultBranch string `json:"default_branch"`
	HTMLURL       string `json:"html_url"`
	CloneURL      string `json:"clone_url"`
	Private       bool   `json:"private"`
	Archived      bool   `json:"archived"`
}

// Ref is a pull request's head or base.
type Ref struct {
	Label string `json:"label"` // "owner:branch"
	Ref   string `json:"ref"`
	SHA   string `json:"sha"`
}

// PullRequest is the part of a pull request Catalyst uses.
type PullRequest struct {
	Number  int    `json:"number"`
	State   string `json:"state"`
	Title   string `json:"title"`
	HTMLURL string `json:"html_url"`
	Draft   bool   `json:"draft"`
	Head    Ref    `json:"head"`
	Base    Ref    `json:"base"`
}

// NewPullRequest is the body of POST /repos/{owner}/{repo}/pulls.
type NewPullRequest struct {
	Title string `json:"title"`
	Head  string `json:"head"` // branch, or "owner:branch" for a fork
	Base  string `json:"base"`
	Body  string `json:"body,omitempty"`
	Draft bool   `json:"draft,omitempty"`
}

// APIError is a non-2xx answer. It matches ErrUnauthorized, ErrForbidden,
// ErrNotFound, ErrRateLimited, ErrPRExists or ErrValidation with errors.Is.
type APIError struct {
	Method, Path string // path without query
	Status       int
	Message      string
	Details      []string // messages of the "errors" array
	DocURL       string
	RateLimited  bool
	RetryAfter   time.Duration // when known (Retry-After or x-ratelimit-reset)
	ResetAt      time.Time     // x-ratelimit-reset, when rate limited
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "github: %s %s: %d", e.Method, e.Path, e.Status)
	if e.Message != "" {
		b.WriteString(" " + e.Message)
	}
	if len(e.Details) > 0 {
		b.WriteString(" (" + strings.Join(e.Details, "; ") + ")")
	}
	if e.RateLimited && !e.ResetAt.IsZero() {
		fmt.Fprintf(&b, "; rate limit resets at %s", e.ResetAt.UTC().Format(time.RFC3339))
	}
	return b.String()
}

func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrRateLimited:
		return e.RateLimited
	case ErrForbidden:
		return e.Status == http.StatusForbidden && !e.RateLimited
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrValidation:
		return e.Status == http.StatusUnprocessableEntity
	case ErrPRExists:
		if e.Status != http.StatusUnprocessableEntity {
			return false
		}
		for _, d := range e.Details {
			if strings.Contains(strings.ToLower(d), "pull request already exists") {
				return true
			}
		}
	}
	return false
}

var segment = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

func checkRepo(owner, repo string) error {
	if !segment.MatchString(owner) || !segment.MatchString(repo) || owner == ".." || repo == ".." || owner == "." || repo == "." {
		return fmt.Errorf("github: invalid repository %q/%q", owner, repo)
	}
	return nil
}

// Repo returns the repository (its default branch among others).
func (c *Client) Repo(ctx context.Context, owner, repo string) (Repository, error) {
	var r Repository
	if err := checkRepo(owner, repo); err != nil {
		return r, err
	}
	g, err := call(ctx, c, func() (*gh.Repository, *gh.Response, error) { return c.gh.Repositories.Get(ctx, owner, repo) })
	if err != nil {
		return r, err
	}
	return Repository{FullName: g.GetFullName(), DefaultBranch: g.GetDefaultBranch(), HTMLURL: g.GetHTMLURL(),
		CloneURL: g.GetCloneURL(), Private: g.GetPrivate(), Archived: g.GetArchived()}, nil
}

// DefaultBranch returns the repository's default branch.
func (c *Client) DefaultBranch(ctx context.Context, owner, repo string) (string, error) {
	r, err := c.Repo(ctx, owner, repo)
	if err != nil {
		return "", err
	}
	return r.DefaultBranch, nil
}

// maxPages bounds pagination.
const maxPages = 20

// FindOpenPR returns the open pull request whose head is headOwner:branch, or
// nil if there is none. It follows pagination (Link: rel="next").
func (c *Client) FindOpenPR(ctx context.Context, owner, repo, headOwner, branch string) (*PullRequest, error) {
	if err := checkRepo(owner, repo); err != nil {
		return nil, err
	}
	if headOwner == "" {
		headOwner = owner
	}
	opt := &gh.PullRequestListOptions{State: "open", Head: headOwner + ":" + branch, ListOptions: gh.ListOptions{PerPage: 100}}
	for page := 0; page < maxPages; page++ {
		var resp *gh.Response
		prs, err := call(ctx, c, func() ([]*gh.PullRequest, *gh.Response, error) {
			p, r, err := c.gh.PullRequests.List(ctx, owner, repo, opt)
			resp = r
			return p, r, err
		})
		if err != nil {
			return nil, err
		}
		for _, p := range prs {
			pr := fromGH(p)
			// The head filter is server-side; check anyway (a fake or an
			// older server may ignore it).
			if pr.State == "open" && pr.Head.Ref == branch &&
				(pr.Head.Label == "" || strings.EqualFold(pr.Head.Label, headOwner+":"+branch)) {
				return &pr, nil
			}
		}
		if resp == nil || resp.NextPage == 0 {
			break
		}
		opt.Page = resp.NextPage
	}
	return nil, nil
}

func fromGH(p *gh.PullRequest) PullRequest {
	return PullRequest{Number: p.GetNumber(), State: p.GetState(), Title: p.GetTitle(), HTMLURL: p.GetHTMLURL(), Draft: p.GetDraft(),
		Head: Ref{Label: p.GetHead().GetLabel(), Ref: p.GetHead().GetRef(), SHA: p.GetHead().GetSHA()},
		Base: Ref{Label: p.GetBase().GetLabel(), Ref: p.GetBase().GetRef(), SHA: p.GetBase().GetSHA()}}
}

// CreatePR opens a pull request.
func (c *Client) CreatePR(ctx context.Context, owner, repo string, in NewPullRequest) (PullRequest, error) {
	var pr PullRequest
	if err := checkRepo(owner, repo); err != nil {
		return pr, err
	}
	if in.Title == "" || in.Head == "" || in.Base == "" {
		return pr, errors.New("github: a pull request needs title, head and base")
	}
	body := gh.CreatePullRequest{Title: &in.Title, Head: in.Head, Base: in.Base}
	if in.Body != "" {
		body.Body = &in.Body
	}
	if in.Draft {
		body.Draft = &in.Draft
	}
	g, err := call(ctx, c, func() (*gh.PullRequest, *gh.Response, error) { return c.gh.PullRequests.Create(ctx, owner, repo, body) })
	if err != nil {
		return pr, err
	}
	return fromGH(g), nil
}

// EnsurePR returns the open pull request for in.Head, creating it if there is
// none (created=true). Safe to call again after a crash: a resumed deployer
// finds the pull request it opened instead of opening a second one.
func (c *Client) EnsurePR(ctx context.Context, owner, repo string, in NewPullRequest) (pr PullRequest, created bool, err error) {
	headOwner, branch := owner, in.Head
	if o, b, ok := strings.Cut(in.Head, ":"); ok {
		headOwner, branch = o, b
	}
	if found, err := c.FindOpenPR(ctx, owner, repo, headOwner, branch); err != nil {
		return pr, false, err
	} else if found != nil {
		return *found, false, nil
	}
	pr, err = c.CreatePR(ctx, owner, repo, in)
	if errors.Is(err, ErrPRExists) { // raced with another creator
		if found, ferr := c.FindOpenPR(ctx, owner, repo, headOwner, branch); ferr == nil && found != nil {
			return *found, false, nil
		}
	}
	return pr, err == nil, err
}

// ParseRepo accepts "owner/repo", "https://github.com/owner/repo(.git)" or
// "git@github.com:owner/repo.git" and returns owner and repo.
func ParseRepo(s string) (owner, repo string, err error) {
	t := strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(t, "git@"):
		_, t, _ = strings.Cut(t, ":")
	case strings.Contains(t, "://"):
		u, perr := url.Parse(t)
		if perr != nil {
			return "", "", fmt.Errorf("github: invalid repository URL")
		}
		t = u.Path
	}
	t = strings.TrimSuffix(strings.Trim(t, "/"), ".git")
	parts := strings.Split(t, "/")
	if len(parts) != 2 || checkRepo(parts[0], parts[1]) != nil {
		return "", "", fmt.Errorf("github: cannot read owner/repo from %q", redactUserinfo(s))
	}
	return parts[0], parts[1], nil
}

func redactUserinfo(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = url.User("REDACTED")
		return u.String()
	}
	return s
}

// Publisher adapts a Client to repositories named "owner/repo" (or a GitHub
// URL) and pull requests reported by URL: the shape the deployer's
// PullRequests interface asks for.
type Publisher struct{ C *Client }

// NewPublisher wraps c.
func NewPublisher(c *Client) *Publisher { return &Publisher{C: c} }

// DefaultBranch returns the default branch of repo ("owner/repo").
func (p *Publisher) DefaultBranch(ctx context.Context, repo string) (string, error) {
	owner, name, err := ParseRepo(repo)
	if err != nil {
		return "", err
	}
	return p.C.DefaultBranch(ctx, owner, name)
}

// FindPullRequest returns the URL of the open pull request from head (a branch
// of repo itself, or "owner:branch"), or "" when there is none.
func (p *Publisher) FindPullRequest(ctx context.Context, repo, head string) (string, error) {
	owner, name, err := ParseRepo(repo)
	if err != nil {
		return "", err
	}
	headOwner, branch := owner, head
	if o, b, ok := strings.Cut(head, ":"); ok {
		headOwner, branch = o, b
	}
	pr, err := p.C.FindOpenPR(ctx, owner, name, headOwner, branch)
	if err != nil || pr == nil {
		return "", err
	}
	return pr.HTMLURL, nil
}

// CreatePullRequest opens a pull request and returns its URL. If GitHub
// answers that one already exists (a resumed or concurrent deployer), the
// existing one's URL is returned.
func (p *Publisher) CreatePullRequest(ctx context.Context, repo, head, base, title, body string) (string, error) {
	owner, name, err := ParseRepo(repo)
	if err != nil {
		return "", err
	}
	pr, _, err := p.C.EnsurePR(ctx, owner, name, NewPullRequest{Title: title, Head: head, Base: base, Body: body})
	if err != nil {
		return "", err
	}
	return pr.HTMLURL, nil
}
