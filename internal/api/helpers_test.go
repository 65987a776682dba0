package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/catalyst/catalyst/internal/accounts"
	"github.com/catalyst/catalyst/internal/audit"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
	"github.com/catalyst/catalyst/internal/graph"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/storetest/teststore"
	"github.com/catalyst/catalyst/internal/tasks"
)

// testToken is the API token of every test server; requests of the
// helpers carry it, as every real client must.
const testToken = "test-token-0123456789abcdef"

// bearer is the Authorization header value of testToken.
const bearer = "Bearer " + testToken

// env is a really listening server on a real SQLite store in t.TempDir(),
// with its previews on a second listener (their own origin).
type env struct {
	t       *testing.T
	srv     *httptest.Server
	preview *httptest.Server
	store   store.Store
	broker  *events.Broker
	runner  *fakeRunner
	api     *server
	wsRoot  string
	clock   *fakeClock
}

// fakeClock is the accounts' clock: real time plus what a test skipped.
type fakeClock struct {
	mu   sync.Mutex
	skip time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.skip)
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.skip += d
	c.mu.Unlock()
}

type envOption func(*Options, *server)

func withConfig(mut func(*Settings)) envOption {
	return func(o *Options, _ *server) { mut(&o.Settings) }
}

func withoutRunner() envOption { return func(o *Options, _ *server) { o.Tasks = nil } }

func withStore(wrap func(store.Store) store.Store) envOption {
	return func(o *Options, _ *server) { o.Store = wrap(o.Store) }
}

func withServer(mut func(*server)) envOption {
	return func(_ *Options, s *server) {
		if s != nil {
			mut(s)
		}
	}
}

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	st := teststore.Open(t, "")
	e := &env{t: t, store: st, broker: events.NewBroker(), wsRoot: t.TempDir(), clock: &fakeClock{}}
	e.runner = &fakeRunner{}
	o := Options{
		Store:        st,
		Broker:       e.broker,
		Tasks:        &tasks.Service{}, // replaced below, once the store is final
		WorkspaceDir: func(id string) string { return filepath.Join(e.wsRoot, id) },
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Version:      "test",
	}
	acc, err := accounts.New(accounts.Options{Store: st, SessionTimeout: time.Hour, Signup: accounts.SignupOpen,
		BcryptCost: bcrypt.MinCost, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	o.Accounts = acc
	o.Audit = audit.New(audit.Options{Store: st})
	for _, opt := range opts {
		opt(&o, nil)
	}
	if o.Tasks == nil {
		e.runner = nil
	} else {
		o.Tasks = tasks.New(tasks.Options{Store: o.Store, Graphs: graph.Builtin(), Dispatcher: e.runner,
			Recorder: &events.Recorder{Store: o.Store, Broker: e.broker}})
	}
	// The preview origin's address must be known to the API (redirects,
	// refused origin) before either serves.
	e.preview = httptest.NewUnstartedServer(nil)
	t.Cleanup(e.preview.Close)
	cfg := o.Settings
	// What config's defaults give a real server.
	if len(cfg.CORSOrigins) == 0 {
		cfg.CORSOrigins = []string{"*"}
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.WebSocketPingInterval == 0 {
		cfg.WebSocketPingInterval = 30 * time.Second
	}
	if cfg.APIToken == "" {
		cfg.APIToken = testToken
	}
	if cfg.PreviewURL == "" {
		cfg.PreviewURL = "http://" + e.preview.Listener.Addr().String()
	}
	o.Settings = cfg
	s, err := newServer(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range opts {
		opt(&o, s)
	}
	e.store = o.Store
	e.api = s
	e.srv = httptest.NewServer(s.handler())
	t.Cleanup(e.srv.Close)
	e.preview.Config.Handler = s.previewHandler()
	e.preview.Start()
	return e
}

// response is a finished HTTP exchange.
type response struct {
	*http.Response
	body []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v\n%s", r.Request.URL, err, r.body)
	}
}

// problem decodes an RFC 9457 body and checks its media type.
func (r response) problem(t *testing.T) map[string]any {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("%s %s: Content-Type %q, want application/problem+json; body %s", r.Request.Method, r.Request.URL, ct, r.body)
	}
	var p map[string]any
	r.json(t, &p)
	if p["status"] != float64(r.StatusCode) || p["title"] == "" {
		t.Fatalf("problem without status/title: %s", r.body)
	}
	return p
}

// do sends a request as a script would: with the API token as a Bearer
// header and, on requests that change something, Content-Type:
// application/json. Paths below /apps/ go to the preview origin. headers
// override (an empty value removes the header: do(..., "Authorization", "")
// is an anonymous request).
func (e *env) do(method, path string, body any, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	url := path
	switch {
	case strings.HasPrefix(path, "/apps/"):
		url = e.preview.URL + e.withGrant(path, tasks.Local())
	case !strings.HasPrefix(path, "http"):
		url = e.srv.URL + path
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", bearer)
	if rd != nil || mutating(method) {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		switch {
		case headers[i] == "Host":
			req.Host = headers[i+1]
		case headers[i+1] == "":
			req.Header.Del(headers[i])
		default:
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	client := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if strings.HasPrefix(path, "/apps/") {
		// Redirects within a preview keep its grant; tests compare them
		// without it.
		if loc := resp.Header.Get("Location"); loc != "" {
			resp.Header.Set("Location", grantSegment.ReplaceAllString(loc, ""))
		}
	}
	return response{Response: resp, body: b}
}

// grantSegment matches the grant of a preview path.
var grantSegment = regexp.MustCompile(`/g1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)

// withGrant puts a preview grant for a into a preview path: /apps/ID/rest
// becomes /apps/ID/GRANT/rest, as the links the API hands out are.
func (e *env) withGrant(path string, a tasks.Actor) string {
	rest := strings.TrimPrefix(path, "/apps/")
	id, tail, _ := strings.Cut(rest, "/")
	if i := strings.IndexAny(id, "?"); i >= 0 {
		id, tail = id[:i], id[i:]
	} else if tail != "" || strings.HasSuffix(rest, "/") {
		tail = "/" + tail
	}
	return "/apps/" + id + "/" + e.api.mintPreviewGrant(a, id) + tail
}

// must asserts a status and returns the response.
func (e *env) must(status int, method, path string, body any, headers ...string) response {
	e.t.Helper()
	r := e.do(method, path, body, headers...)
	if r.StatusCode != status {
		e.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.StatusCode, status, r.body)
	}
	return r
}

func (e *env) createProject(name string) domain.Project {
	e.t.Helper()
	var p domain.Project
	e.must(200, "POST", "/api/projects", map[string]any{"name": name, "description": "d"}).json(e.t, &p)
	return p
}

func (e *env) createTask(projectID, prompt string) domain.Task {
	e.t.Helper()
	var task domain.Task
	e.must(200, "POST", "/api/tasks", map[string]any{"project_id": projectID, "prompt": prompt}).json(e.t, &task)
	return task
}

// counts returns how many projects, tasks and scans are stored.
func (e *env) counts() string {
	e.t.Helper()
	ctx := context.Background()
	ps, _, err := e.store.ListProjects(ctx, store.All(), store.Page{Limit: store.MaxLimit})
	if err != nil {
		e.t.Fatal(err)
	}
	ts, _, err := e.store.ListTasks(ctx, store.TaskFilter{Scope: store.All()}, store.Page{Limit: store.MaxLimit})
	if err != nil {
		e.t.Fatal(err)
	}
	ss, _, err := e.store.ListScans(ctx, store.All(), store.Page{Limit: store.MaxLimit})
	if err != nil {
		e.t.Fatal(err)
	}
	return fmt.Sprintf("projects=%d tasks=%d scans=%d", len(ps), len(ts), len(ss))
}

// fakeRunner stands in for the executor: it records enqueued tasks and
// implements the executor's state rules for cancel and retry.
// fakeRunner records dispatched tasks (tasks.Dispatcher) without running them.
type fakeRunner struct {
	mu    sync.Mutex
	queue []string
	fail  error
}

func (f *fakeRunner) Dispatch(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.queue = append(f.queue, id)
	return nil
}

func (f *fakeRunner) enqueued() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.queue...)
}

// setStatus forces a task's status in the store (as the executor would).
func (e *env) setStatus(id string, st domain.TaskStatus) {
	e.t.Helper()
	if _, err := e.store.UpdateTask(context.Background(), id, func(t *domain.Task) error {
		t.Status = st
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
}
