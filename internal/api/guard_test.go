package api

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/logging"
	"github.com/catalyst/catalyst/internal/ratelimit"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/tasks"
	"github.com/catalyst/catalyst/internal/telemetry"
	"github.com/catalyst/catalyst/internal/telemetry/telemetrytest"
)

// Metrics are labelled by route template: whatever paths and methods a
// client sends, no id, file name or e-mail address becomes a label, and
// the series stay few.
func TestMetricsLabelsCarryNoUserData(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Settings) { c.EnableMetrics = true }))
	p := e.createProject("p")
	task := e.createTask(p.ID, "x")
	for i := range 40 {
		e.do("GET", fmt.Sprintf("/api/tasks/RANDOMID%d", i), nil)
		e.do("GET", fmt.Sprintf("/api/tasks/%s/files/secret-%d.txt", task.ID, i), nil)
		e.do("GET", fmt.Sprintf("/api/nope/victim%d@example.com", i), nil)
		e.do(fmt.Sprintf("BREW%d", i), "/api/projects", nil)
		e.do("GET", fmt.Sprintf("/api/projects?x=RANDOMQ%d", i), nil)
	}
	body := string(e.must(200, "GET", "/metrics", nil).body)
	for _, bad := range []string{"RANDOMID", "secret-", "victim", "@example.com", "BREW", "RANDOMQ", p.ID, task.ID} {
		if strings.Contains(body, bad) {
			t.Errorf("metrics carry %q", bad)
		}
	}
	series := strings.Count(body, "catalyst_http_requests_total{")
	if series > 10 {
		t.Errorf("%d request series after 200 distinct paths:\n%s", series, body)
	}
	for _, want := range []string{
		`route="/api/tasks/{id}",code="404"} 40`,
		`route="/api/tasks/{id}/files/{path...}",code="404"} 40`,
		`{method="GET",route="unmatched",code="404"} 40`,
		`{method="other",route="unmatched",code="405"} 40`,
		`{method="GET",route="/api/projects",code="200"} 40`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s:\n%s", want, body)
		}
	}
}

type limitRecorder struct {
	mu     sync.Mutex
	events []ratelimit.Event
}

func (l *limitRecorder) hook(_ *http.Request, ev ratelimit.Event) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
}

func (l *limitRecorder) all() []ratelimit.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ratelimit.Event(nil), l.events...)
}

func TestRateLimitPerClientAnswers429Problem(t *testing.T) {
	rec := &limitRecorder{}
	var logs bytes.Buffer
	var mu sync.Mutex
	e := newEnv(t, withConfig(func(c *Settings) { c.RateLimit = 20; c.EnableMetrics = true }),
		func(o *Options, _ *server) {
			o.RateLimited = rec.hook
			o.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
		})
	var last response
	n := 0
	for ; n < 50; n++ {
		last = e.do("GET", "/api/projects", nil)
		if last.StatusCode == http.StatusTooManyRequests {
			break
		}
	}
	if n != 20 {
		t.Fatalf("first 429 after %d requests, want 20", n)
	}
	if ra := last.Header.Get("Retry-After"); ra != "3" {
		t.Fatalf("Retry-After %q (one request per 3 s)", ra)
	}
	if p := last.problem(t); !strings.Contains(fmt.Sprint(p["detail"]), "too many requests") {
		t.Fatalf("problem %v", p)
	}
	// Refused before the credential is looked at: a token guesser is
	// limited as much as anyone.
	if r := e.do("GET", "/api/projects", nil, "Authorization", "Bearer wrong-guess"); r.StatusCode != 429 {
		t.Fatalf("token guess while limited: %d", r.StatusCode)
	}
	evs := rec.all()
	if len(evs) != 2 || evs[0].Scope != ratelimit.ScopeClient || evs[0].Client != "127.0.0.1" {
		t.Fatalf("events %+v", evs)
	}
	mu.Lock()
	logged := logs.String()
	mu.Unlock()
	if !strings.Contains(logged, "rate limited") || !strings.Contains(logged, "scope=client") {
		t.Fatalf("log:\n%s", logged)
	}
	if !strings.Contains(string(e.metricsBody(t)), `catalyst_http_rate_limited_total{scope="client"} 2`) {
		t.Fatal("rate limiting not in the metrics")
	}
}

// metricsBody reads /metrics through the handler, past the rate limit.
func (e *env) metricsBody(t *testing.T) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", "/metrics", nil)
	req = req.WithContext(withActor(req.Context(), tasks.Local())) // as the guard does for the server token
	rw := &captureWriter{header: http.Header{}}
	e.api.handleMetrics(rw, req)
	return rw.body.Bytes()
}

type captureWriter struct {
	header http.Header
	body   bytes.Buffer
}

func (c *captureWriter) Header() http.Header         { return c.header }
func (c *captureWriter) WriteHeader(int)             {}
func (c *captureWriter) Write(b []byte) (int, error) { return c.body.Write(b) }

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// A live stream opened within the allowance keeps streaming after the
// client's bucket is empty: a limit refuses new requests, it never cuts
// the dashboard's open WebSocket or SSE stream.
func TestRateLimitLeavesOpenStreamsAlone(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Settings) { c.RateLimit = 5; c.WebSocketPingInterval = time.Hour }))
	task := e.createTask(e.createProject("p").ID, "x")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/tasks/"+task.ID+"/events", nil)
	req.Header.Set("Authorization", bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("SSE: %d", resp.StatusCode)
	}
	for e.do("GET", "/api/projects", nil).StatusCode != 429 {
	}
	e.record(task.ID, domain.EventLog, "after-the-limit", "")
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "after-the-limit") {
			return
		}
	}
	t.Fatalf("the open stream stopped delivering: %v", sc.Err())
}

// Sign-in attempts are limited per client and per e-mail address before
// any other check, with growing delays, and each refused one is reported
// to the audit hook. (The routes themselves come with accounts; the
// limit already stands in front of them.)
func TestLoginBruteForceIsLimitedAndAudited(t *testing.T) {
	rec := &limitRecorder{}
	e := newEnv(t, withConfig(func(c *Settings) { c.LoginRateLimit = 5; c.RateLimit = 1000 }),
		func(o *Options, _ *server) { o.RateLimited = rec.hook })
	var codes []int
	for i := range 12 {
		r := e.do("POST", "/api/auth/login", map[string]string{"email": "victim@example.com", "password": fmt.Sprint("guess", i)},
			"Authorization", "")
		codes = append(codes, r.StatusCode)
	}
	limited := 0
	for _, c := range codes {
		if c == 429 {
			limited++
		}
	}
	if codes[0] == 429 || limited < 6 {
		t.Fatalf("codes %v", codes)
	}
	evs := rec.all()
	if len(evs) != limited {
		t.Fatalf("%d refused, %d audited", limited, len(evs))
	}
	ev := evs[0]
	if ev.Scope != ratelimit.ScopeLogin || ev.Email != "victim@example.com" || ev.Route != "POST /api/auth/login" || ev.Client != "127.0.0.1" {
		t.Fatalf("audit event %+v", ev)
	}
	// Other routes are not under the sign-in limit.
	e.must(200, "GET", "/api/projects", nil)
}

// secretPanicStore makes a real handler panic, with secrets in the panic value.
type secretPanicStore struct{ store.Store }

func (secretPanicStore) ListProjects(context.Context, store.Scope, store.Page) ([]domain.Project, string, error) {
	panic("store exploded for victim@example.com with " + bearer + " and password=hunter2-PASSWORD")
}

// A handler panic answers 500 problem+json and reaches Sentry (a local
// envelope endpoint), scrubbed; the request's trace is exported by OTLP
// with the route template for a name and without the token.
func TestPanicReportedToSentryAndTraced(t *testing.T) {
	sentrySrv := telemetrytest.NewSentry(t)
	col := telemetrytest.NewCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
	tel, err := telemetry.Setup(context.Background(), telemetry.Options{
		Tracing: true, SentryDSN: sentrySrv.DSN(), Version: "test", Environment: "test",
		Redact: logging.NewRedactor([]string{testToken}).Redact,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	e := newEnv(t, withStore(func(s store.Store) store.Store { return secretPanicStore{s} }))

	r := e.do("GET", "/api/projects?access_token="+testToken, nil, "Cookie", "catalyst_session=COOKIEVALUE")
	if r.StatusCode != 500 {
		t.Fatalf("status %d: %s", r.StatusCode, r.body)
	}
	if p := r.problem(t); strings.Contains(string(r.body), "exploded") {
		t.Fatalf("the panic leaked into the answer: %v", p)
	}
	e.must(200, "GET", "/api/graphs", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	evs := sentrySrv.Events()
	if len(evs) != 1 {
		t.Fatalf("%d Sentry events", len(evs))
	}
	if exc := fmt.Sprint(evs[0]["exception"]); !strings.Contains(exc, "store exploded for [email]") {
		t.Fatalf("exception %s", exc)
	}
	if tags := fmt.Sprint(evs[0]["tags"]); !strings.Contains(tags, "GET /api/projects") || !strings.Contains(tags, "trace_id") {
		t.Fatalf("tags %s", tags)
	}
	var names []string
	for _, s := range col.Spans() {
		// The HTTP spans only: on the MongoDB wire the in-process FerretDB
		// traces its own commands through the same global provider.
		if code, ok := s.Attrs["http.response.status_code"]; ok {
			names = append(names, s.Name+"="+code)
		}
	}
	if strings.Join(names, ",") != "GET /api/projects=500,GET /api/graphs=200" {
		t.Fatalf("spans %v", names)
	}
	for what, raw := range map[string][]byte{"Sentry": sentrySrv.Raw(), "OTLP": col.Raw()} {
		for _, bad := range []string{testToken, "COOKIEVALUE", "victim@example.com", "hunter2"} {
			if bytes.Contains(raw, []byte(bad)) {
				t.Errorf("%s export carries %q", what, bad)
			}
		}
	}
}
