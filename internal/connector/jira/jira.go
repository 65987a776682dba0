// Package jira is the Explorer's Jira Cloud connector: open issues of a
// project by type, priority, status and age, and its stale and blocker bugs.
//
// It searches with POST /rest/api/3/search/jql and nextPageToken paging
// (Atlassian retired /rest/api/2/search and its startAt paging), with basic
// auth (e-mail and API token). 429 answers are waited out up to a cap.
package jira

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/catalyst/catalyst/internal/connector"
)

var (
	ErrUnauthorized = errors.New("jira: unauthorized (JIRA_USERNAME or JIRA_API_TOKEN wrong)")
	ErrForbidden    = errors.New("jira: forbidden (the user cannot browse the project)")
	ErrNotFound     = errors.New("jira: not found (no such project, or the user cannot see it)")
	ErrRateLimited  = errors.New("jira: rate limited")
)

// APIError is a non-2xx answer; errors.Is matches the sentinels above.
type APIError struct {
	Status     int
	Messages   []string
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("jira: search: %d %s", e.Status, http.StatusText(e.Status))
	if len(e.Messages) > 0 {
		msg += ": " + strings.Join(e.Messages, "; ")
	}
	return msg
}

func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrNotFound:
		// An unknown project is a 400 naming the field in JQL searches.
		return e.Status == http.StatusNotFound || (e.Status == http.StatusBadRequest && strings.Contains(strings.Join(e.Messages, " "), "does not exist"))
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	}
	return false
}

// Options configures the source; BaseURL, Username and APIToken come from
// JIRA_URL, JIRA_USERNAME and JIRA_API_TOKEN.
type Options struct {
	BaseURL, Username, APIToken string
	HTTP                        *http.Client // the netpolicy's client; default 30 s timeout
	MaxIssues                   int          // issues read at most (default 2000)
	RateLimitWait               time.Duration
	Now                         func() time.Time
}

// Source is the Jira connector.
type Source struct{ o Options }

// New returns the source.
func New(o Options) *Source {
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	if o.MaxIssues <= 0 {
		o.MaxIssues = 2000
	}
	if o.RateLimitWait == 0 {
		o.RateLimitWait = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	return &Source{o: o}
}

// Name implements connector.Source.
func (s *Source) Name() string { return "jira" }

// Thresholds of the facts.
const (
	staleAfter     = 90 * 24 * time.Hour
	pageSize       = 100
	maxIssueFacts  = 50
	maxTitleLength = 200
)

var projectKey = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,49}$`)

type issue struct {
	Key    string `json:"key"`
	Fields struct {
		Summary   string `json:"summary"`
		IssueType struct {
			Name string `json:"name"`
		} `json:"issuetype"`
		Priority *struct {
			Name string `json:"name"`
		} `json:"priority"`
		Status struct {
			Name           string `json:"name"`
			StatusCategory struct {
				Key string `json:"key"`
			} `json:"statusCategory"`
		} `json:"status"`
		Created string `json:"created"`
		Updated string `json:"updated"`
	} `json:"fields"`
}

// Gather reads the open issues of t.JiraProject.
func (s *Source) Gather(ctx context.Context, t connector.Target) ([]connector.Fact, error) {
	if t.JiraProject == "" {
		return nil, fmt.Errorf("%w: no Jira project asked", connector.ErrSkip)
	}
	if s.o.BaseURL == "" || s.o.Username == "" || s.o.APIToken == "" {
		return nil, fmt.Errorf("%w: JIRA_URL, JIRA_USERNAME and JIRA_API_TOKEN must all be set", connector.ErrSkip)
	}
	if !projectKey.MatchString(t.JiraProject) {
		return nil, fmt.Errorf("jira: invalid project key %q", t.JiraProject)
	}
	base, err := url.Parse(s.o.BaseURL)
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, errors.New("jira: JIRA_URL is not an http(s) URL")
	}
	jql := fmt.Sprintf(`project = "%s" AND statusCategory != Done ORDER BY created ASC`, t.JiraProject)
	var issues []issue
	token := ""
	truncated := false
	for {
		page, next, last, err := s.search(ctx, jql, token)
		if err != nil {
			return nil, err
		}
		issues = append(issues, page...)
		if len(issues) >= s.o.MaxIssues {
			issues, truncated = issues[:s.o.MaxIssues], true
			break
		}
		if last || next == "" || len(page) == 0 {
			break
		}
		token = next
	}
	return s.facts(t.JiraProject, issues, truncated), nil
}

func (s *Source) search(ctx context.Context, jql, token string) ([]issue, string, bool, error) {
	body := map[string]any{
		"jql":        jql,
		"fields":     []string{"summary", "issuetype", "priority", "status", "created", "updated"},
		"maxResults": pageSize,
	}
	if token != "" {
		body["nextPageToken"] = token
	}
	payload, _ := json.Marshal(body)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.o.BaseURL+"/rest/api/3/search/jql", bytes.NewReader(payload))
		if err != nil {
			return nil, "", false, fmt.Errorf("jira: %w", err)
		}
		req.SetBasicAuth(s.o.Username, s.o.APIToken)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.o.HTTP.Do(req)
		if err != nil {
			return nil, "", false, fmt.Errorf("jira: %w", err) // url.Error: the URL has no credentials
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return nil, "", false, fmt.Errorf("jira: read: %w", err)
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			wait := retryAfter(resp.Header.Get("Retry-After"))
			if wait <= s.o.RateLimitWait {
				if err := sleep(ctx, wait); err != nil {
					return nil, "", false, fmt.Errorf("jira: waiting out a rate limit: %w", err)
				}
				continue
			}
			return nil, "", false, &APIError{Status: resp.StatusCode, RetryAfter: wait, Messages: []string{fmt.Sprintf("retry after %s", wait)}}
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			e := &APIError{Status: resp.StatusCode}
			var eb struct {
				ErrorMessages []string          `json:"errorMessages"`
				Errors        map[string]string `json:"errors"`
			}
			if json.Unmarshal(data, &eb) == nil {
				e.Messages = append(e.Messages, eb.ErrorMessages...)
				for _, k := range sortedKeys(eb.Errors) {
					e.Messages = append(e.Messages, k+": "+eb.Errors[k])
				}
			}
			for i, m := range e.Messages {
				e.Messages[i] = strings.ReplaceAll(m, s.o.APIToken, "[REDACTED]")
			}
			return nil, "", false, e
		}
		var out struct {
			Issues        []issue `json:"issues"`
			NextPageToken string  `json:"nextPageToken"`
			IsLast        bool    `json:"isLast"`
		}
		if err := json.Unmarshal(data, &out); err != nil {
			return nil, "", false, fmt.Errorf("jira: decode search answer: %w", err)
		}
		return out.Issues, out.NextPageToken, out.IsLast, nil
	}
}

// retryAfter reads seconds (Jira sends seconds); unreadable means a minute.
func retryAfter(h string) time.Duration {
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(time.Until(t), 0)
	}
	return time.Minute
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// jiraTime parses Jira's timestamps ("2024-01-02T10:00:00.000+0100").
func jiraTime(s string) time.Time {
	for _, layout := range []string{"2006-01-02T15:04:05.000-0700", time.RFC3339Nano, "2006-01-02T15:04:05-0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

var blockerPriorities = map[string]bool{"blocker": true, "highest": true, "critical": true}

func (s *Source) facts(project string, issues []issue, truncated bool) []connector.Fact {
	now := s.o.Now()
	byType, byPriority, byStatus := map[string]int{}, map[string]int{}, map[string]int{}
	byAge := map[string]int{"under_30d": 0, "30_90d": 0, "90_365d": 0, "over_365d": 0}
	stale := 0
	var notable []connector.Fact
	for _, is := range issues {
		typ := orNone(is.Fields.IssueType.Name)
		pri := "None"
		if is.Fields.Priority != nil && is.Fields.Priority.Name != "" {
			pri = is.Fields.Priority.Name
		}
		status := orNone(is.Fields.Status.Name)
		byType[typ]++
		byPriority[pri]++
		byStatus[status]++
		created, updated := jiraTime(is.Fields.Created), jiraTime(is.Fields.Updated)
		age := 0
		if !created.IsZero() {
			age = int(now.Sub(created).Hours() / 24)
		}
		switch {
		case age < 30:
			byAge["under_30d"]++
		case age < 90:
			byAge["30_90d"]++
		case age < 365:
			byAge["90_365d"]++
		default:
			byAge["over_365d"]++
		}
		isStale := !updated.IsZero() && now.Sub(updated) > staleAfter
		if isStale {
			stale++
		}
		bug := strings.EqualFold(typ, "bug")
		blocker := bug && blockerPriorities[strings.ToLower(pri)]
		if !(blocker || (bug && isStale)) || len(notable) >= maxIssueFacts || !validKey(is.Key) {
			continue
		}
		what := "stale bug"
		if blocker {
			what = pri + " bug"
		}
		summary := fmt.Sprintf("%s %s open %d days, status %s", what, is.Key, age, status)
		if isStale {
			summary += fmt.Sprintf(", no update for %d days", int(now.Sub(updated).Hours()/24))
		}
		notable = append(notable, connector.Fact{ID: "jira.issue." + is.Key, Source: "jira", Kind: connector.KindIssue, Summary: summary,
			Value: map[string]any{"key": is.Key, "type": typ, "priority": pri, "status": status, "age_days": age, "stale": isStale,
				"blocker": blocker, "title": title(is.Fields.Summary)},
			Where: &connector.Location{Ref: is.Key, URL: s.o.BaseURL + "/browse/" + is.Key}})
	}
	more := ""
	if truncated {
		more = fmt.Sprintf(" (first %d read)", len(issues))
	}
	sum := connector.Fact{ID: "jira.issue_summary", Source: "jira", Kind: connector.KindIssueSummary,
		Summary: fmt.Sprintf("%d open issues in %s%s: %s; %d not updated for 90 days", len(issues), project, more, top(byType), stale),
		Value: map[string]any{"by_type": byType, "by_priority": byPriority, "by_status": byStatus, "by_age": byAge,
			"total": len(issues), "stale": stale, "truncated": truncated},
		Where: &connector.Location{Ref: project, URL: s.o.BaseURL + "/browse/" + url.PathEscape(project)}}
	return append([]connector.Fact{sum}, notable...)
}

var keyRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*-[0-9]+$`)

// validKey keeps fact IDs and links well-formed whatever the server sent.
func validKey(k string) bool { return keyRe.MatchString(k) }

// title is an issue's summary as data: one line, bounded.
func title(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxTitleLength {
		s = string([]rune(s)[:min(len([]rune(s)), maxTitleLength)]) + "…"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "None"
	}
	return s
}

func top(m map[string]int) string {
	keys := sortedKeys(m)
	sort.SliceStable(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	var parts []string
	for i, k := range keys {
		if i == 4 {
			break
		}
		parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
