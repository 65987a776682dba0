package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const token = "ghp_TESTtokenAbC123secretXYZ"

// fake speaks GitHub's REST wire format (docs.github.com/rest) for the three
// endpoints, under an optional Enterprise prefix.
type fake struct {
	t            *testing.T
	prefix       string
	mu           sync.Mutex
	prs          []PullRequest
	posts        int
	gets         int
	ignoreHead   bool // answer the list unfiltered, one per page (pagination test)
	hideOnce     bool // first list answer omits existing PRs (race test)
	rateLimited  bool
	resetAt      int64
	leakedTokens bool
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	fail := func(status int, body string) {
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
	// GitHub's media types (application/vnd.github+json, the v3 one and the
	// preview ones go-github adds for some endpoints) all answer JSON.
	if accept := r.Header.Get("Accept"); !strings.Contains(accept, "application/vnd.github") ||
		r.Header.Get("X-GitHub-Api-Version") != "2022-11-28" || r.Header.Get("User-Agent") == "" {
		fail(400, `{"message":"bad headers"}`)
		return
	}
	if strings.Contains(r.URL.String(), token) {
		f.leakedTokens = true
	}
	if r.Header.Get("Authorization") != "Bearer "+token {
		fail(401, `{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest","status":"401"}`)
		return
	}
	if f.rateLimited {
		w.Header().Set("x-ratelimit-limit", "5000")
		w.Header().Set("x-ratelimit-remaining", "0")
		w.Header().Set("x-ratelimit-used", "5000")
		w.Header().Set("x-ratelimit-reset", strconv.FormatInt(f.resetAt, 10))
		w.Header().Set("x-ratelimit-resource", "core")
		fail(403, `{"message":"API rate limit exceeded for user ID 1.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api","status":"403"}`)
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, f.prefix)
	if !ok {
		fail(404, `{"message":"Not Found"}`)
		return
	}
	switch {
	case r.Method == "GET" && path == "/repos/acme/todo":
		fmt.Fprint(w, `{"id":1296269,"name":"todo","full_name":"acme/todo","private":true,"html_url":"https://github.com/acme/todo","clone_url":"https://github.com/acme/todo.git","default_branch":"trunk","archived":false,"owner":{"login":"acme"}}`)
	case r.Method == "GET" && path == "/repos/acme/todo/pulls":
		f.gets++
		q := r.URL.Query()
		var out []PullRequest
		for _, pr := range f.prs {
			if pr.State == q.Get("state") && (f.ignoreHead || pr.Head.Label == q.Get("head")) {
				out = append(out, pr)
			}
		}
		if f.hideOnce {
			f.hideOnce = false
			out = nil
		}
		if f.ignoreHead {
			page, _ := strconv.Atoi(q.Get("page"))
			if page == 0 {
				page = 1
			}
			if page < len(out) {
				q.Set("page", strconv.Itoa(page+1))
				next := "http://" + r.Host + r.URL.Path + "?" + q.Encode()
				q.Set("page", strconv.Itoa(len(out)))
				last := "http://" + r.Host + r.URL.Path + "?" + q.Encode()
				w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next", <%s>; rel="last"`, next, last))
			}
			if page <= len(out) {
				out = out[page-1 : page]
			} else {
				out = nil
			}
		}
		if out == nil {
			out = []PullRequest{}
		}
		_ = json.NewEncoder(w).Encode(out)
	case r.Method == "POST" && path == "/repos/acme/todo/pulls":
		f.posts++
		var in NewPullRequest
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Title == "" || strings.TrimSpace(in.Base) == "" {
			fail(422, `{"message":"Validation Failed","errors":[{"resource":"PullRequest","field":"base","code":"missing_field"}],"status":"422"}`)
			return
		}
		label := in.Head
		if !strings.Contains(label, ":") {
			label = "acme:" + in.Head
		}
		for _, pr := range f.prs {
			if pr.State == "open" && pr.Head.Label == label {
				fail(422, fmt.Sprintf(`{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"A pull request already exists for %s."}],"documentation_url":"https://docs.github.com/rest/pulls/pulls#create-a-pull-request","status":"422"}`, label))
				return
			}
		}
		_, ref, _ := strings.Cut(label, ":")
		pr := PullRequest{Number: 100 + len(f.prs), State: "open", Title: in.Title, Draft: in.Draft,
			HTMLURL: fmt.Sprintf("https://github.com/acme/todo/pull/%d", 100+len(f.prs)),
			Head:    Ref{Label: label, Ref: ref, SHA: "0123456789abcdef0123456789abcdef01234567"},
			Base:    Ref{Label: "acme:" + in.Base, Ref: in.Base}}
		f.prs = append(f.prs, pr)
		w.Header().Set("Location", "https://api.github.com/repos/acme/todo/pulls/"+strconv.Itoa(pr.Number))
		w.WriteHeader(201)
		_ = json.NewEncoder(w).Encode(pr)
	default:
		fail(404, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest","status":"404"}`)
	}
}

func setup(t *testing.T, prefix string) (*fake, *Client) {
	t.Helper()
	f := &fake{t: t, prefix: prefix}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(token, WithBaseURL(srv.URL+prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if f.leakedTokens {
			t.Error("token sent in a URL")
		}
	})
	return f, c
}

func TestDefaultBranchEnterprisePrefix(t *testing.T) {
	_, c := setup(t, "/api/v3")
	b, err := c.DefaultBranch(context.Background(), "acme", "todo")
	if err != nil || b != "trunk" {
		t.Fatalf("DefaultBranch = %q, %v", b, err)
	}
	r, err := c.Repo(context.Background(), "acme", "todo")
	if err != nil || r.FullName != "acme/todo" || !r.Private || r.CloneURL != "https://github.com/acme/todo.git" {
		t.Fatalf("Repo = %+v, %v", r, err)
	}
	if _, err := c.Repo(context.Background(), "acme", "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing repo: %v", err)
	}
	if _, err := c.Repo(context.Background(), "../x", "todo"); err == nil {
		t.Fatal("invalid owner accepted")
	}
}

func TestEnsurePRIsIdempotent(t *testing.T) {
	f, c := setup(t, "")
	ctx := context.Background()
	in := NewPullRequest{Title: "Catalyst: todo app", Head: "catalyst/task-1", Base: "trunk", Body: "Generated by Catalyst"}
	pr, created, err := c.EnsurePR(ctx, "acme", "todo", in)
	if err != nil || !created || pr.Number != 100 || pr.HTMLURL != "https://github.com/acme/todo/pull/100" || pr.Head.Ref != "catalyst/task-1" {
		t.Fatalf("first EnsurePR = %+v, %v, %v", pr, created, err)
	}
	// A resumed deployer calls again: it finds the same PR, creates nothing.
	pr2, created, err := c.EnsurePR(ctx, "acme", "todo", in)
	if err != nil || created || pr2.Number != pr.Number {
		t.Fatalf("second EnsurePR = %+v, %v, %v", pr2, created, err)
	}
	if f.posts != 1 {
		t.Fatalf("%d POSTs, want 1", f.posts)
	}
	// Creating directly now is GitHub's 422 "already exists".
	_, err = c.CreatePR(ctx, "acme", "todo", in)
	if !errors.Is(err, ErrPRExists) || !errors.Is(err, ErrValidation) {
		t.Fatalf("CreatePR on existing = %v, want ErrPRExists", err)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 422 || !strings.Contains(err.Error(), "A pull request already exists for acme:catalyst/task-1") {
		t.Fatalf("error = %v", err)
	}
	// No PR for another branch.
	if got, err := c.FindOpenPR(ctx, "acme", "todo", "", "other"); err != nil || got != nil {
		t.Fatalf("FindOpenPR(other) = %+v, %v", got, err)
	}
	// Other 422s are not "exists".
	_, err = c.CreatePR(ctx, "acme", "todo", NewPullRequest{Title: "x", Head: "y", Base: " "})
	if !errors.Is(err, ErrValidation) || errors.Is(err, ErrPRExists) || !strings.Contains(err.Error(), "PullRequest base missing_field") {
		t.Fatalf("missing base: %v, want a validation error that is not ErrPRExists", err)
	}
}

func TestEnsurePRRaceAnswered422(t *testing.T) {
	f, c := setup(t, "")
	f.prs = []PullRequest{{Number: 7, State: "open", Title: "t", Head: Ref{Label: "acme:feature", Ref: "feature"}}}
	f.hideOnce = true // our lookup misses it (created meanwhile by another worker)
	pr, created, err := c.EnsurePR(context.Background(), "acme", "todo", NewPullRequest{Title: "t", Head: "feature", Base: "trunk"})
	if err != nil || created || pr.Number != 7 {
		t.Fatalf("EnsurePR = %+v, %v, %v; want existing #7", pr, created, err)
	}
}

func TestFindOpenPRFollowsPagination(t *testing.T) {
	f, c := setup(t, "")
	f.ignoreHead = true
	for i, b := range []string{"a", "b", "c", "wanted"} {
		f.prs = append(f.prs, PullRequest{Number: i + 1, State: "open", Head: Ref{Label: "acme:" + b, Ref: b}})
	}
	f.prs = append(f.prs, PullRequest{Number: 9, State: "closed", Head: Ref{Label: "acme:wanted", Ref: "wanted"}})
	pr, err := c.FindOpenPR(context.Background(), "acme", "todo", "acme", "wanted")
	if err != nil || pr == nil || pr.Number != 4 {
		t.Fatalf("FindOpenPR = %+v, %v", pr, err)
	}
	if f.gets != 4 {
		t.Fatalf("%d pages fetched, want 4", f.gets)
	}
}

func TestUnauthorizedNeverShowsToken(t *testing.T) {
	f := &fake{t: t}
	srv := httptest.NewServer(f)
	defer srv.Close()
	wrong := "ghp_WRONGtoken999secret"
	c, err := New(wrong, WithBaseURL(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Repo(context.Background(), "acme", "todo")
	if !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrForbidden) {
		t.Fatalf("err = %v, want ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), wrong) || !strings.Contains(err.Error(), "Bad credentials") {
		t.Fatalf("error text = %q", err)
	}
	// A transport error does not show it either.
	c2, _ := New(wrong, WithBaseURL("http://127.0.0.1:1"))
	if _, err := c2.Repo(context.Background(), "acme", "todo"); err == nil || strings.Contains(err.Error(), wrong) {
		t.Fatalf("transport error = %v", err)
	}
}

func TestRateLimited(t *testing.T) {
	f, c := setup(t, "")
	f.rateLimited = true
	f.resetAt = time.Now().Add(90 * time.Second).Unix()
	_, _, err := c.EnsurePR(context.Background(), "acme", "todo", NewPullRequest{Title: "t", Head: "h", Base: "trunk"})
	if !errors.Is(err, ErrRateLimited) || errors.Is(err, ErrForbidden) {
		t.Fatalf("err = %v, want ErrRateLimited", err)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.ResetAt.Unix() != f.resetAt || apiErr.RetryAfter < 60*time.Second || apiErr.RetryAfter > 91*time.Second {
		t.Fatalf("APIError = %+v", apiErr)
	}
	if f.posts != 0 {
		t.Fatal("POST attempted after a rate-limited lookup")
	}
}

// A Link header naming another host must not carry the token there: the
// client reads only the page number from it and asks its own base URL.
func TestRefusesLinkToAnotherHost(t *testing.T) {
	var otherHits, pages int
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits++
		if r.Header.Get("Authorization") != "" {
			t.Error("token sent to the other host")
		}
		fmt.Fprint(w, `[]`)
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pages++
		if r.URL.Query().Get("page") == "" {
			w.Header().Set("Link", `<`+other.URL+`/repos/acme/todo/pulls?page=2>; rel="next"`)
		}
		fmt.Fprint(w, `[]`)
	}))
	defer srv.Close()
	c, _ := New(token, WithBaseURL(srv.URL))
	if pr, err := c.FindOpenPR(context.Background(), "acme", "todo", "", "x"); err != nil || pr != nil {
		t.Fatalf("FindOpenPR = %v, %v", pr, err)
	}
	if otherHits != 0 || pages != 2 {
		t.Fatalf("other host hit %d times, own host %d pages", otherHits, pages)
	}
}

func TestParseRepo(t *testing.T) {
	for in, want := range map[string]string{
		"acme/todo":                             "acme/todo",
		"https://github.com/acme/todo":          "acme/todo",
		"https://github.com/acme/todo.git":      "acme/todo",
		"https://x:secret@github.com/acme/todo": "acme/todo",
		"git@github.com:acme/todo.git":          "acme/todo",
		"https://ghe.corp/acme/todo/":           "acme/todo",
	} {
		o, r, err := ParseRepo(in)
		if err != nil || o+"/"+r != want {
			t.Errorf("ParseRepo(%q) = %q, %q, %v", in, o, r, err)
		}
	}
	for _, bad := range []string{"", "acme", "a/b/c", "https://github.com/acme", "../../etc/passwd", "https://u:s3cret@github.com/x"} {
		_, _, err := ParseRepo(bad)
		if err == nil {
			t.Errorf("ParseRepo(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("credential in error: %v", err)
		}
	}
	if _, err := New("", WithBaseURL("ftp://x")); err == nil {
		t.Error("bad base URL accepted")
	}
}

// pullRequests mirrors the deployer's interface (agent.PullRequests; agent
// imports this package, so it is restated here).
type pullRequests interface {
	DefaultBranch(ctx context.Context, repo string) (string, error)
	FindPullRequest(ctx context.Context, repo, head string) (string, error)
	CreatePullRequest(ctx context.Context, repo, head, base, title, body string) (string, error)
}

var _ pullRequests = (*Publisher)(nil)

func TestPublisher(t *testing.T) {
	f, c := setup(t, "")
	p := NewPublisher(c)
	ctx := context.Background()
	if b, err := p.DefaultBranch(ctx, "https://github.com/acme/todo.git"); err != nil || b != "trunk" {
		t.Fatalf("DefaultBranch = %q, %v", b, err)
	}
	if u, err := p.FindPullRequest(ctx, "acme/todo", "catalyst/t1"); err != nil || u != "" {
		t.Fatalf("FindPullRequest before = %q, %v", u, err)
	}
	u, err := p.CreatePullRequest(ctx, "acme/todo", "catalyst/t1", "trunk", "Catalyst: todo", "body")
	if err != nil || u != "https://github.com/acme/todo/pull/100" {
		t.Fatalf("CreatePullRequest = %q, %v", u, err)
	}
	if got, err := p.FindPullRequest(ctx, "acme/todo", "catalyst/t1"); err != nil || got != u {
		t.Fatalf("FindPullRequest after = %q, %v", got, err)
	}
	// Creating again (a resumed deployer) returns the same PR, no second one.
	if again, err := p.CreatePullRequest(ctx, "acme/todo", "catalyst/t1", "trunk", "Catalyst: todo", "body"); err != nil || again != u {
		t.Fatalf("second CreatePullRequest = %q, %v", again, err)
	}
	if f.posts != 1 {
		t.Fatalf("%d POSTs", f.posts)
	}
	if _, err := p.DefaultBranch(ctx, "not a repo"); err == nil {
		t.Fatal("bad repo accepted")
	}
}
