// Package servicenow is the Explorer's ServiceNow connector: the incidents
// of a configuration item by priority and state, and the ones that recur.
//
// It reads the Table API (GET /api/now/table/incident) with basic auth,
// sysparm_limit/sysparm_offset paging (following the Link header's next
// when the instance sends one) and waits out 429 answers up to a cap.
package servicenow

import (
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
	ErrUnauthorized = errors.New("servicenow: unauthorized (SERVICENOW_USERNAME or SERVICENOW_PASSWORD wrong)")
	ErrForbidden    = errors.New("servicenow: forbidden (the user's roles cannot read incidents)")
	ErrNotFound     = errors.New("servicenow: not found")
	ErrRateLimited  = errors.New("servicenow: rate limited")
)

// APIError is a non-2xx answer; errors.Is matches the sentinels above.
type APIError struct {
	Status     int
	Message    string
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("servicenow: incident table: %d %s", e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	}
	return false
}

// Options configures the source (SERVICENOW_URL, SERVICENOW_USERNAME,
// SERVICENOW_PASSWORD).
type Options struct {
	BaseURL, Username, Password string
	HTTP                        *http.Client // the netpolicy's client; default 30 s timeout
	WindowDays                  int          // incidents opened in the last N days (default 180)
	MaxIncidents                int          // default 2000
	RateLimitWait               time.Duration
	Now                         func() time.Time
}

// Source is the ServiceNow connector.
type Source struct{ o Options }

// New returns the source.
func New(o Options) *Source {
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	if o.WindowDays <= 0 {
		o.WindowDays = 180
	}
	if o.MaxIncidents <= 0 {
		o.MaxIncidents = 2000
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
func (s *Source) Name() string { return "servicenow" }

const (
	pageSize       = 100
	recurWindow    = 90 * 24 * time.Hour
	recurAtLeast   = 3
	maxRecurFacts  = 20
	maxOpenP1Facts = 20
)

var (
	priorities = map[string]string{"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low", "5": "5 - Planning"}
	states     = map[string]string{"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed", "8": "Canceled"}
	numberRe   = regexp.MustCompile(`^[A-Z]{2,8}[0-9]{4,12}$`)
)

type incident struct {
	Number           string `json:"number"`
	ShortDescription string `json:"short_description"`
	Priority         string `json:"priority"`
	State            string `json:"state"`
	OpenedAt         string `json:"opened_at"`
	Problem          string `json:"problem_id"`
	SysID            string `json:"sys_id"`
}

// Gather reads the incidents of t.ServiceNowCI.
func (s *Source) Gather(ctx context.Context, t connector.Target) ([]connector.Fact, error) {
	ci := strings.TrimSpace(t.ServiceNowCI)
	if ci == "" {
		return nil, fmt.Errorf("%w: no ServiceNow configuration item asked", connector.ErrSkip)
	}
	if s.o.BaseURL == "" || s.o.Username == "" || s.o.Password == "" {
		return nil, fmt.Errorf("%w: SERVICENOW_URL, SERVICENOW_USERNAME and SERVICENOW_PASSWORD must all be set", connector.ErrSkip)
	}
	// ^ separates encoded-query terms, so a CI name carrying one could
	// rewrite the query.
	if strings.ContainsAny(ci, "^\n\r") || len(ci) > 200 {
		return nil, fmt.Errorf("servicenow: invalid configuration item name %q", ci)
	}
	base, err := url.Parse(s.o.BaseURL)
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, errors.New("servicenow: SERVICENOW_URL is not an http(s) URL")
	}
	since := s.o.Now().UTC().AddDate(0, 0, -s.o.WindowDays).Format("2006-01-02 15:04:05")
	q := url.Values{
		"sysparm_query":                  {fmt.Sprintf("cmdb_ci.name=%s^ORshort_descriptionLIKE%s^opened_at>=%s^ORDERBYDESCopened_at", ci, ci, since)},
		"sysparm_fields":                 {"number,short_description,priority,state,opened_at,problem_id,sys_id"},
		"sysparm_exclude_reference_link": {"true"},
		"sysparm_display_value":          {"false"},
		"sysparm_limit":                  {strconv.Itoa(pageSize)},
		"sysparm_offset":                 {"0"},
	}
	next := s.o.BaseURL + "/api/now/table/incident?" + q.Encode()
	var all []incident
	truncated := false
	for next != "" {
		page, link, err := s.get(ctx, next)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(all) >= s.o.MaxIncidents {
			all, truncated = all[:s.o.MaxIncidents], true
			break
		}
		switch {
		case link != "":
			next, err = s.sameHost(link)
			if err != nil {
				return nil, err
			}
		case len(page) == pageSize:
			q.Set("sysparm_offset", strconv.Itoa(len(all)))
			next = s.o.BaseURL + "/api/now/table/incident?" + q.Encode()
		default:
			next = ""
		}
	}
	return s.facts(ci, all, truncated), nil
}

// sameHost accepts a Link only on the configured instance: the password
// must not follow a link elsewhere.
func (s *Source) sameHost(link string) (string, error) {
	u, err := url.Parse(link)
	b, _ := url.Parse(s.o.BaseURL)
	if err != nil || u.Scheme != b.Scheme || u.Host != b.Host {
		return "", errors.New("servicenow: refusing a next link to another host")
	}
	return u.String(), nil
}

var linkNext = regexp.MustCompile(`<([^>]+)>\s*;\s*rel="?next"?`)

func (s *Source) get(ctx context.Context, u string) ([]incident, string, error) {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, "", fmt.Errorf("servicenow: %w", err)
		}
		req.SetBasicAuth(s.o.Username, s.o.Password)
		req.Header.Set("Accept", "application/json")
		resp, err := s.o.HTTP.Do(req)
		if err != nil {
			return nil, "", fmt.Errorf("servicenow: %w", err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
		resp.Body.Close()
		if err != nil {
			return nil, "", fmt.Errorf("servicenow: read: %w", err)
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			wait := retryAfter(resp.Header.Get("Retry-After"))
			if wait <= s.o.RateLimitWait {
				if err := sleep(ctx, wait); err != nil {
					return nil, "", fmt.Errorf("servicenow: waiting out a rate limit: %w", err)
				}
				continue
			}
			return nil, "", &APIError{Status: resp.StatusCode, RetryAfter: wait, Message: fmt.Sprintf("retry after %s", wait)}
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			e := &APIError{Status: resp.StatusCode}
			var eb struct {
				Error struct {
					Message string `json:"message"`
					Detail  string `json:"detail"`
				} `json:"error"`
			}
			if json.Unmarshal(data, &eb) == nil {
				e.Message = strings.TrimSpace(strings.TrimSuffix(eb.Error.Message+": "+eb.Error.Detail, ": "))
				e.Message = strings.ReplaceAll(e.Message, s.o.Password, "[REDACTED]")
			}
			return nil, "", e
		}
		var out struct {
			Result []incident `json:"result"`
		}
		if err := json.Unmarshal(data, &out); err != nil {
			return nil, "", fmt.Errorf("servicenow: decode table answer: %w", err)
		}
		link := ""
		for _, part := range strings.Split(resp.Header.Get("Link"), ",") {
			if m := linkNext.FindStringSubmatch(part); m != nil {
				link = m[1]
			}
		}
		return out.Result, link, nil
	}
}

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

var digits = regexp.MustCompile(`[0-9]+`)
var nonWord = regexp.MustCompile(`[^a-z#]+`)

// normalise makes "Disk full on srv-12 at 03:00" and "disk FULL on srv-7
// at 04:10" the same: lower case, numbers as #, punctuation as spaces.
func normalise(s string) string {
	s = digits.ReplaceAllString(strings.ToLower(s), "#")
	return strings.TrimSpace(nonWord.ReplaceAllString(s, " "))
}

func label(m map[string]string, code string) string {
	if l, ok := m[code]; ok {
		return l
	}
	if code == "" {
		return "none"
	}
	return code
}

func (s *Source) facts(ci string, all []incident, truncated bool) []connector.Fact {
	now := s.o.Now()
	byPriority, byState := map[string]int{}, map[string]int{}
	groups := map[string][]incident{}
	var out []connector.Fact
	for _, in := range all {
		byPriority[label(priorities, in.Priority)]++
		byState[label(states, in.State)]++
		opened, err := time.Parse("2006-01-02 15:04:05", in.OpenedAt)
		if err != nil || now.Sub(opened) > recurWindow {
			continue
		}
		if in.Problem != "" {
			groups["problem:"+in.Problem] = append(groups["problem:"+in.Problem], in)
		} else if n := normalise(in.ShortDescription); n != "" {
			groups["text:"+n] = append(groups["text:"+n], in)
		}
	}
	more := ""
	if truncated {
		more = fmt.Sprintf(" (first %d read)", len(all))
	}
	out = append(out, connector.Fact{ID: "servicenow.incident_summary", Source: "servicenow", Kind: connector.KindIncidentSummary,
		Summary: fmt.Sprintf("%d incidents for %s in the last %d days%s; %d critical, %d high", len(all), ci, s.o.WindowDays, more, byPriority[priorities["1"]], byPriority[priorities["2"]]),
		Value:   map[string]any{"by_priority": byPriority, "by_state": byState, "total": len(all), "window_days": s.o.WindowDays, "truncated": truncated},
		Where:   &connector.Location{Ref: ci}})

	type group struct {
		key string
		in  []incident
	}
	var recurring []group
	for k, g := range groups {
		if len(g) >= recurAtLeast {
			sort.Slice(g, func(i, j int) bool { return g[i].Number < g[j].Number })
			recurring = append(recurring, group{k, g})
		}
	}
	sort.Slice(recurring, func(i, j int) bool {
		if len(recurring[i].in) != len(recurring[j].in) {
			return len(recurring[i].in) > len(recurring[j].in)
		}
		return recurring[i].in[0].Number < recurring[j].in[0].Number
	})
	for i, g := range recurring {
		if i == maxRecurFacts {
			break
		}
		best := g.in[0]
		var numbers []string
		for _, in := range g.in {
			numbers = append(numbers, safeNumber(in.Number))
			if in.Priority != "" && (best.Priority == "" || in.Priority < best.Priority) {
				best = in
			}
		}
		by := "the same short description"
		problem := ""
		if p, ok := strings.CutPrefix(g.key, "problem:"); ok {
			by, problem = "the same problem", p
		}
		out = append(out, connector.Fact{ID: fmt.Sprintf("servicenow.incident.recurring-%d", i+1), Source: "servicenow", Kind: connector.KindIncident,
			Summary: fmt.Sprintf("%d incidents with %s in 90 days (highest priority %s): %s", len(g.in), by, label(priorities, best.Priority), strings.Join(first(numbers, 5), ", ")),
			Value: map[string]any{"number": numbers[0], "priority": label(priorities, best.Priority), "priority_code": best.Priority,
				"state": label(states, g.in[len(g.in)-1].State), "recurring": len(g.in), "numbers": numbers, "problem": problem,
				"short_description": title(g.in[0].ShortDescription)},
			Where: s.where(g.in[0])})
	}
	p1 := 0
	for _, in := range all {
		if in.Priority != "1" || in.State == "6" || in.State == "7" || in.State == "8" || !numberRe.MatchString(in.Number) {
			continue
		}
		if p1 == maxOpenP1Facts {
			break
		}
		p1++
		out = append(out, connector.Fact{ID: "servicenow.incident." + in.Number, Source: "servicenow", Kind: connector.KindIncident,
			Summary: fmt.Sprintf("open critical incident %s (%s), opened %s", in.Number, label(states, in.State), in.OpenedAt),
			Value: map[string]any{"number": in.Number, "priority": label(priorities, in.Priority), "priority_code": in.Priority,
				"state": label(states, in.State), "recurring": 0, "short_description": title(in.ShortDescription)},
			Where: s.where(in)})
	}
	return out
}

func (s *Source) where(in incident) *connector.Location {
	l := &connector.Location{Ref: safeNumber(in.Number)}
	if regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(in.SysID) {
		l.URL = s.o.BaseURL + "/nav_to.do?uri=incident.do?sys_id=" + in.SysID
	}
	return l
}

func safeNumber(n string) string {
	if numberRe.MatchString(n) {
		return n
	}
	return "(invalid number)"
}

func title(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "…")
	}
	return s
}
