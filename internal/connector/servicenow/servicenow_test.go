package servicenow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/connector"
)

const (
	user = "svc.explorer"
	pass = "sn-Pa55word-secret"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func at(daysAgo int) string { return now.AddDate(0, 0, -daysAgo).Format("2006-01-02 15:04:05") }

// fakeSN follows the Table API: {"result":[...]}, X-Total-Count, Link
// rel="next" with sysparm_offset, errors as {"error":{"message","detail"},"status":"failure"}.
type fakeSN struct {
	mu        sync.Mutex
	rows      []map[string]string
	queries   []url.Values
	rateLimit int
	sendLink  bool
}

func (f *fakeSN) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
		w.WriteHeader(401)
		fmt.Fprint(w, `{"error":{"message":"User Not Authenticated","detail":"Required to provide Auth information"},"status":"failure"}`)
		return
	}
	if r.URL.Path != "/api/now/table/incident" {
		w.WriteHeader(400)
		fmt.Fprint(w, `{"error":{"message":"Invalid table","detail":null},"status":"failure"}`)
		return
	}
	if f.rateLimit > 0 {
		f.rateLimit--
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(429)
		return
	}
	q := r.URL.Query()
	f.queries = append(f.queries, q)
	limit, _ := strconv.Atoi(q.Get("sysparm_limit"))
	offset, _ := strconv.Atoi(q.Get("sysparm_offset"))
	end := min(offset+limit, len(f.rows))
	w.Header().Set("X-Total-Count", strconv.Itoa(len(f.rows)))
	if f.sendLink && end < len(f.rows) {
		q.Set("sysparm_offset", strconv.Itoa(end))
		w.Header().Set("Link", fmt.Sprintf(`<http://%s/api/now/table/incident?%s>;rel="next",<http://%s/api/now/table/incident?sysparm_offset=0>;rel="first"`, r.Host, q.Encode(), r.Host))
	}
	page := f.rows[min(offset, len(f.rows)):end]
	json.NewEncoder(w).Encode(map[string]any{"result": page})
}

func rows() []map[string]string {
	var out []map[string]string
	add := func(num, desc, pri, state string, days int, problem string) {
		out = append(out, map[string]string{"number": num, "short_description": desc, "priority": pri, "state": state,
			"opened_at": at(days), "problem_id": problem, "sys_id": fmt.Sprintf("%032x", len(out)+1)})
	}
	add("INC0010001", "Disk full on iiq-app-01 at 03:00", "2", "7", 10, "")
	add("INC0010002", "disk FULL on iiq-app-07 at 04:10", "1", "6", 30, "")
	add("INC0010003", "Disk full on iiq-app-02 at 05:55!", "3", "2", 60, "")
	add("INC0010004", "Disk full on iiq-app-09", "3", "7", 150, "") // outside 90 days: not recurring
	add("INC0010005", "Aggregation task hangs", "1", "2", 5, "")
	for i := 0; i < 3; i++ {
		add(fmt.Sprintf("INC002000%d", i), fmt.Sprintf("Login error variant %c", 'A'+i), "2", "7", 20+i, "a1b2c3d4e5f60718293a4b5c6d7e8f90")
	}
	for i := 0; i < 120; i++ { // enough for more than one page
		add(fmt.Sprintf("INC003%04d", i), fmt.Sprintf("Request %d for access", i*7), "4", "7", 100+i%50, "")
	}
	return out
}

func setup(t *testing.T, f *fakeSN) *Source {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return New(Options{BaseURL: srv.URL, Username: user, Password: pass, Now: func() time.Time { return now }})
}

func check(t *testing.T, f *fakeSN, facts []connector.Fact) {
	t.Helper()
	q := f.queries[0]
	if q.Get("sysparm_query") != "cmdb_ci.name=SailPoint IdentityIQ^ORshort_descriptionLIKESailPoint IdentityIQ^opened_at>="+at(180)+"^ORDERBYDESCopened_at" ||
		q.Get("sysparm_limit") != "100" || q.Get("sysparm_exclude_reference_link") != "true" {
		t.Errorf("query %v", q)
	}
	if len(f.queries) != 2 || f.queries[1].Get("sysparm_offset") != "100" {
		t.Errorf("pages asked: %d, second offset %q", len(f.queries), f.queries[len(f.queries)-1].Get("sysparm_offset"))
	}
	sum := facts[0].Value.(map[string]any)
	if sum["total"] != 128 || sum["by_priority"].(map[string]int)["1 - Critical"] != 2 || sum["by_state"].(map[string]int)["Closed"] != 125 {
		t.Errorf("summary %v", sum)
	}
	byID := map[string]map[string]any{}
	for _, fa := range facts[1:] {
		byID[fa.ID] = fa.Value.(map[string]any)
	}
	r1, r2 := byID["servicenow.incident.recurring-1"], byID["servicenow.incident.recurring-2"]
	if r1 == nil || r2 == nil || byID["servicenow.incident.recurring-3"] != nil {
		t.Fatalf("recurring groups %v", byID)
	}
	// Both groups have 3; ordered by first number.
	if r1["recurring"] != 3 || r1["priority"] != "1 - Critical" || strings.Join(r1["numbers"].([]string), ",") != "INC0010001,INC0010002,INC0010003" {
		t.Errorf("disk group %v", r1)
	}
	if r2["problem"] != "a1b2c3d4e5f60718293a4b5c6d7e8f90" || r2["recurring"] != 3 {
		t.Errorf("problem group %v", r2)
	}
	if p1 := byID["servicenow.incident.INC0010005"]; p1 == nil || p1["state"] != "In Progress" {
		t.Errorf("open P1 %v", byID)
	}
	if byID["servicenow.incident.INC0010002"] != nil {
		t.Error("a resolved P1 reported as open")
	}
}

func TestOffsetPagination(t *testing.T) {
	f := &fakeSN{rows: rows()}
	facts, err := setup(t, f).Gather(context.Background(), connector.Target{ServiceNowCI: "SailPoint IdentityIQ"})
	if err != nil {
		t.Fatal(err)
	}
	check(t, f, facts)
}

func TestLinkHeaderPagination(t *testing.T) {
	f := &fakeSN{rows: rows(), sendLink: true}
	facts, err := setup(t, f).Gather(context.Background(), connector.Target{ServiceNowCI: "SailPoint IdentityIQ"})
	if err != nil {
		t.Fatal(err)
	}
	check(t, f, facts)
}

func TestErrors(t *testing.T) {
	f := &fakeSN{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	_, err := New(Options{BaseURL: srv.URL, Username: user, Password: "bad-password-123"}).Gather(context.Background(), connector.Target{ServiceNowCI: "x"})
	if !errors.Is(err, ErrUnauthorized) || strings.Contains(err.Error(), "bad-password-123") || !strings.Contains(err.Error(), "User Not Authenticated") {
		t.Fatalf("got %v", err)
	}
	if _, err := setup(t, f).Gather(context.Background(), connector.Target{ServiceNowCI: "x^ORactive=true"}); err == nil {
		t.Fatal("encoded-query injection accepted")
	}
	if _, err := New(Options{}).Gather(context.Background(), connector.Target{ServiceNowCI: "x"}); !errors.Is(err, connector.ErrSkip) {
		t.Fatalf("unconfigured: %v", err)
	}
	f.rateLimit = 1
	if _, err := setup(t, f).Gather(context.Background(), connector.Target{ServiceNowCI: "x"}); err != nil {
		t.Fatalf("one 429 then ok: %v", err)
	}
	f.rateLimit = 100
	_, err = New(Options{BaseURL: srv.URL, Username: user, Password: pass, RateLimitWait: time.Millisecond}).Gather(context.Background(), connector.Target{ServiceNowCI: "x"})
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("got %v, want ErrRateLimited", err)
	}
}

func TestNextLinkToAnotherHostRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<http://attacker.example/api/now/table/incident?sysparm_offset=100>;rel="next"`)
		fmt.Fprint(w, `{"result":[]}`)
	}))
	defer srv.Close()
	_, err := New(Options{BaseURL: srv.URL, Username: user, Password: pass}).Gather(context.Background(), connector.Target{ServiceNowCI: "x"})
	if err == nil || !strings.Contains(err.Error(), "another host") {
		t.Fatalf("got %v", err)
	}
}
