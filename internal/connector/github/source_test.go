package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/connector"
)

// fakeExplorer answers the endpoints the Explorer reads, in GitHub's JSON
// shapes (docs.github.com/rest): stats answer 202 a few times first,
// contributors paginate with Link, branch protection is 404 without admin.
type fakeExplorer struct {
	mu        sync.Mutex
	accepted  int // 202 answers before the commit activity is ready
	paths     []string
	secondary int // 403 secondary rate limits with Retry-After before answering
}

func (f *fakeExplorer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paths = append(f.paths, r.URL.Path)
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer "+token {
		w.WriteHeader(401)
		fmt.Fprint(w, `{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest","status":"401"}`)
		return
	}
	if f.secondary > 0 {
		f.secondary--
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(403)
		fmt.Fprint(w, `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}`)
		return
	}
	host := "http://" + r.Host
	week := func(daysAgo, total int) string {
		return fmt.Sprintf(`{"days":[0,0,0,0,0,0,%d],"total":%d,"week":%d}`, total, total, now.AddDate(0, 0, -daysAgo).Unix())
	}
	switch p := r.URL.Path; p {
	case "/repos/sailpoint/iiq":
		fmt.Fprint(w, `{"id":1,"name":"iiq","full_name":"sailpoint/iiq","private":false,"fork":false,"archived":false,"disabled":false,
			"html_url":"https://github.com/sailpoint/iiq","default_branch":"main","stargazers_count":42,"forks_count":7,"subscribers_count":3,
			"open_issues_count":12,"topics":["iam"],"license":{"key":"apache-2.0","spdx_id":"Apache-2.0"},
			"created_at":"2015-01-01T00:00:00Z","pushed_at":"2025-05-30T00:00:00Z","description":"identity"}`)
	case "/repos/sailpoint/iiq/languages":
		fmt.Fprint(w, `{"Java":900000,"JavaScript":100000}`)
	case "/repos/sailpoint/iiq/contributors":
		if r.URL.Query().Get("page") == "2" {
			fmt.Fprint(w, `[{"login":"c","contributions":10,"type":"User"}]`)
			return
		}
		w.Header().Set("Link", fmt.Sprintf(`<%s%s?anon=true&per_page=100&page=2>; rel="next", <%s%s?anon=true&per_page=100&page=2>; rel="last"`, host, p, host, p))
		fmt.Fprint(w, `[{"login":"a","contributions":80,"type":"User"},{"email":"b@x","name":"b","contributions":10,"type":"Anonymous"}]`)
	case "/repos/sailpoint/iiq/commits":
		fmt.Fprint(w, `[{"sha":"abc123","commit":{"committer":{"name":"a","date":"2025-05-30T10:00:00Z"},"message":"x"}}]`)
	case "/repos/sailpoint/iiq/stats/commit_activity":
		if f.accepted > 0 {
			f.accepted--
			w.WriteHeader(202)
			fmt.Fprint(w, `{}`)
			return
		}
		fmt.Fprintf(w, `[%s,%s,%s]`, week(200, 50), week(60, 5), week(7, 4))
	case "/repos/sailpoint/iiq/pulls":
		w.Header().Set("Link", fmt.Sprintf(`<%s%s?state=open&per_page=1&page=2>; rel="next", <%s%s?state=open&per_page=1&page=4>; rel="last"`, host, p, host, p))
		fmt.Fprint(w, `[{"number":1,"state":"open","head":{"ref":"x","label":"a:x"},"base":{"ref":"main"}}]`)
	case "/repos/sailpoint/iiq/releases/latest":
		fmt.Fprint(w, `{"tag_name":"v8.4","html_url":"https://github.com/sailpoint/iiq/releases/tag/v8.4","published_at":"2024-01-15T00:00:00Z"}`)
	case "/repos/sailpoint/iiq/branches/main":
		fmt.Fprint(w, `{"name":"main","protected":true,"commit":{"sha":"abc123"}}`)
	case "/repos/sailpoint/iiq/branches/main/protection":
		w.WriteHeader(404)
		fmt.Fprint(w, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest/branches/branch-protection#get-branch-protection","status":"404"}`)
	case "/repos/sailpoint/iiq/actions/workflows":
		fmt.Fprint(w, `{"total_count":2,"workflows":[{"id":1,"name":"CI","path":".github/workflows/ci.yml","state":"active"},{"id":2,"name":"Old","state":"disabled_manually"}]}`)
	case "/repos/sailpoint/iiq/contents/.github/SECURITY.md":
		fmt.Fprint(w, `{"type":"file","name":"SECURITY.md","path":".github/SECURITY.md","html_url":"https://github.com/sailpoint/iiq/blob/main/.github/SECURITY.md"}`)
	default:
		w.WriteHeader(404)
		fmt.Fprint(w, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest","status":"404"}`)
	}
}

var now = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

func explorer(t *testing.T, f *fakeExplorer, opts ...Option) *Source {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(token, append([]Option{WithBaseURL(srv.URL)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return NewSource(c, WithStatsRetries(3, 10*time.Millisecond), WithNow(func() time.Time { return now }))
}

func TestSourceGathersFacts(t *testing.T) {
	f := &fakeExplorer{accepted: 2}
	facts, err := explorer(t, f).Gather(context.Background(), connector.Target{RepoURL: "https://github.com/sailpoint/iiq.git"})
	if err != nil {
		t.Fatal(err)
	}
	v := map[string]map[string]any{}
	for _, fa := range facts {
		if fa.Source != "github" {
			t.Errorf("%s source %q", fa.ID, fa.Source)
		}
		if m, ok := fa.Value.(map[string]any); ok {
			v[fa.ID] = m
		}
	}
	if v["github.repository"]["stars"] != 42 || v["github.repository"]["licence"] != "Apache-2.0" {
		t.Errorf("repository %v", v["github.repository"])
	}
	if c := v["github.contributors"]; c["count"] != 3 || c["top_share"] != 0.8 {
		t.Errorf("contributors %v (both pages)", c)
	}
	if a := v["github.activity"]; a["commits_90d"] != 9 || !a["last_commit"].(time.Time).Equal(time.Date(2025, 5, 30, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("activity %v", a)
	}
	if o := v["github.open_issues"]; o["pull_requests"] != 4 || o["issues"] != 8 {
		t.Errorf("open issues %v", o)
	}
	if r := v["github.release"]; r["latest"] != "v8.4" {
		t.Errorf("release %v", r)
	}
	if b := v["github.branch_protection"]; b["protected"] != true || b["visible"] != true || b["rules_visible"] != false {
		t.Errorf("protection %v", b)
	}
	if w := v["github.workflows"]; w["count"] != 1 {
		t.Errorf("workflows %v", w)
	}
	if s := v["github.security_policy"]; s["present"] != true || s["path"] != ".github/SECURITY.md" {
		t.Errorf("security policy %v", s)
	}
	stats := 0
	for _, p := range f.paths {
		if strings.HasSuffix(p, "/stats/commit_activity") {
			stats++
		}
	}
	if stats != 3 {
		t.Errorf("commit activity asked %d times, want 3 (two 202s)", stats)
	}
}

func TestStatsStillComputingFallsBackAndSaysSo(t *testing.T) {
	f := &fakeExplorer{accepted: 100}
	facts, err := explorer(t, f).Gather(context.Background(), connector.Target{GitHubRepo: "sailpoint/iiq"})
	if err != nil {
		t.Fatal(err)
	}
	for _, fa := range facts {
		if fa.ID == "github.activity" {
			if !strings.Contains(fa.Summary, "still computing") || fa.Value.(map[string]any)["commits_90d"] != 1 {
				t.Errorf("activity %+v", fa)
			}
			return
		}
	}
	t.Fatal("no activity fact")
}

func TestSourceRateLimitsAndSkips(t *testing.T) {
	// A secondary limit with Retry-After is waited out within the cap.
	f := &fakeExplorer{secondary: 1}
	if _, err := explorer(t, f, WithRateLimitWait(5*time.Second)).Gather(context.Background(), connector.Target{GitHubRepo: "sailpoint/iiq"}); err != nil {
		t.Fatalf("secondary limit not waited out: %v", err)
	}
	// Without a wait it is a clear, typed error.
	f = &fakeExplorer{secondary: 1}
	_, err := explorer(t, f).Gather(context.Background(), connector.Target{GitHubRepo: "sailpoint/iiq"})
	if !errors.Is(err, ErrRateLimited) || errors.Is(err, ErrForbidden) {
		t.Fatalf("got %v, want ErrRateLimited", err)
	}
	if _, err := explorer(t, &fakeExplorer{}).Gather(context.Background(), connector.Target{RepoURL: "https://gitlab.com/a/b"}); !errors.Is(err, connector.ErrSkip) {
		t.Fatalf("gitlab repo: %v", err)
	}
	if _, err := explorer(t, &fakeExplorer{}).Gather(context.Background(), connector.Target{GitHubRepo: "sailpoint/missing"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}
