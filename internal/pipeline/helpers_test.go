package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
	"github.com/catalyst/catalyst/internal/graph"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/llm/offline"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/storetest/teststore"
	"github.com/catalyst/catalyst/internal/tasks"
)

// env is a test's store (SQLite, or MongoDB with CATALYST_TEST_STORE=mongo),
// broker, executor and the task use cases the API and CLI go through.
type env struct {
	t      testing.TB
	dir    string
	store  store.Store
	broker *events.Broker
	rec    *events.Recorder
	exec   *Executor
	svc    *tasks.Service
	cfg    config.Config
	// leaseTTL and owner of the next executor; zero: defaults.
	leaseTTL time.Duration
	owner    string
}

// testGraph is a graph and the steps bound to its nodes.
type testGraph struct {
	g     *graph.Graph
	steps map[string]agent.Step
}

func newEnv(t testing.TB, dir string) *env {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	st := teststore.Open(t, dir)
	now := time.Now().UTC()
	err := st.CreateProject(context.Background(), domain.Project{ID: "p1", Name: "test", Status: domain.ProjectActive, CreatedAt: now, UpdatedAt: now})
	if err != nil && !errors.Is(err, domain.ErrConflict) {
		t.Fatal(err)
	}
	b := events.NewBroker()
	return &env{
		t: t, dir: dir, store: st, broker: b,
		rec: &events.Recorder{Store: st, Broker: b},
		cfg: config.Config{
			MaxConcurrentTasks: 5,
			AgentTimeout:       time.Minute,
			MaxFixIterations:   3,
			MockDeployment:     true,
			PublicURL:          "http://localhost:8001",
		},
	}
}

func (e *env) workspaceDir(taskID string) string {
	return filepath.Join(e.dir, "tasks", taskID, "workspace")
}

// options maps the test's config to the executor's options, as app does.
func (e *env) options(models agent.Models, g *testGraph) Options {
	cfg := e.cfg
	if g == nil {
		g = &testGraph{g: graph.Build(), steps: agent.Steps(agent.Deps{
			Models: models, Store: e.store, Config: cfg, WorkspaceDir: e.workspaceDir})}
	}
	reg, err := graph.NewRegistry(g.g)
	if err != nil {
		e.t.Fatal(err)
	}
	return Options{
		Store: e.store, Recorder: e.rec, Graphs: reg,
		Steps:         func(string) map[string]agent.Step { return g.steps },
		Owner:         e.owner,
		LeaseTTL:      e.leaseTTL,
		MaxConcurrent: cfg.MaxConcurrentTasks,
		Limits:        graph.Limits{MaxFixRounds: cfg.MaxFixIterations, MaxCost: cfg.MaxTaskCost},
		AgentTimeout:  cfg.AgentTimeout,
		Recover:       true,
		Served: func() domain.Served {
			if models == nil {
				return domain.Served{}
			}
			if m, ok := models.For(domain.NodePlanner).(interface{ Offline() bool }); ok && m.Offline() {
				return domain.Served{Provider: "offline", Offline: true}
			}
			return domain.Served{}
		},
	}
}

// start builds and starts the executor; models may be nil with a custom graph.
func (e *env) start(models agent.Models, g *testGraph) *Executor {
	e.t.Helper()
	opt := e.options(models, g)
	e.exec = New(opt)
	e.svc = tasks.New(tasks.Options{Store: e.store, Recorder: e.rec, Graphs: opt.Graphs, Dispatcher: e.exec})
	if err := e.exec.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.exec.Shutdown(ctx)
	})
	return e.exec
}

func (e *env) createTask(prompt string) domain.Task {
	e.t.Helper()
	now := time.Now().UTC()
	t := domain.NewTask(uuid.NewString(), "p1", prompt, domain.KindBuild, buildNodes(), now)
	if err := e.store.CreateTask(context.Background(), t); err != nil {
		e.t.Fatal(err)
	}
	return t
}

func (e *env) submit(prompt string) domain.Task {
	e.t.Helper()
	t := e.createTask(prompt)
	if err := e.exec.Enqueue(context.Background(), t.ID); err != nil {
		e.t.Fatal(err)
	}
	return t
}

func (e *env) wait(id string, d time.Duration) domain.Task {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	t, err := e.exec.Wait(ctx, id)
	if err != nil {
		e.t.Fatalf("waiting for %s: %v (task %+v)", id, err, t)
	}
	return t
}

func (e *env) logs(id string) []domain.AgentLog {
	e.t.Helper()
	l, err := e.store.ListLogs(context.Background(), id, 0, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// artifacts returns the task's artifacts by node.
func (e *env) artifacts(id string) map[string][]domain.Artifact {
	e.t.Helper()
	list, err := e.store.ListArtifacts(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	m := map[string][]domain.Artifact{}
	for _, a := range list {
		m[a.Node] = append(m[a.Node], a)
	}
	return m
}

// checkLogs asserts log ids are unique, seqs contiguous from 1, and that
// the last event is a task_state with the task's final status.
func checkLogs(t testing.TB, logs []domain.AgentLog, final domain.TaskStatus) {
	t.Helper()
	ids := map[string]bool{}
	for i, l := range logs {
		if ids[l.ID] {
			t.Fatalf("duplicate log id %s", l.ID)
		}
		ids[l.ID] = true
		if l.Seq != int64(i+1) {
			t.Fatalf("log %d has seq %d", i, l.Seq)
		}
		if l.AgentName == "" {
			t.Fatalf("log without agent name: %+v", l)
		}
	}
	if len(logs) == 0 {
		t.Fatal("no logs")
	}
	last := logs[len(logs)-1]
	var d struct{ Status domain.TaskStatus }
	json.Unmarshal(last.Data, &d)
	if last.Type != domain.EventTaskState || d.Status != final {
		t.Fatalf("last event is %s %s %q, want task_state %s", last.Type, last.Data, last.Message, final)
	}
}

// scripted is a test double for the models: per-agent functions, with the
// offline provider answering every agent that has none.
type scripted struct {
	mu      sync.Mutex
	fns     map[string]func(ctx context.Context, call int, req llm.Request) (*llm.Response, error)
	calls   map[string]int
	reqs    map[string][]llm.Request
	fall    llm.Model
	cost    float64 // added to every answer
	perCall time.Duration
}

func newScripted() *scripted {
	return &scripted{
		fns:   map[string]func(context.Context, int, llm.Request) (*llm.Response, error){},
		calls: map[string]int{}, reqs: map[string][]llm.Request{},
		fall: offline.New(0),
	}
}

func (s *scripted) on(agentName string, fn func(ctx context.Context, call int, req llm.Request) (*llm.Response, error)) *scripted {
	s.fns[agentName] = fn
	return s
}

func (s *scripted) For(string) llm.Model { return s }

func (s *scripted) Generate(ctx context.Context, req llm.Request) (*llm.Response, error) {
	s.mu.Lock()
	s.calls[req.Agent]++
	n := s.calls[req.Agent]
	s.reqs[req.Agent] = append(s.reqs[req.Agent], req)
	fn := s.fns[req.Agent]
	s.mu.Unlock()
	if s.perCall > 0 {
		select {
		case <-time.After(s.perCall):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var resp *llm.Response
	var err error
	if fn != nil {
		resp, err = fn(ctx, n, req)
	} else {
		resp, err = s.fall.Generate(ctx, req)
	}
	if resp != nil {
		resp.Provider, resp.Model = "scripted", "test"
		resp.Cost += s.cost
		resp.Usage.InputTokens += 10
	}
	return resp, err
}

func (s *scripted) count(agentName string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[agentName]
}

func (s *scripted) requests(agentName string) []llm.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]llm.Request(nil), s.reqs[agentName]...)
}

// jsonResp answers with a JSON document.
func jsonResp(v any) *llm.Response {
	b, _ := json.Marshal(v)
	return &llm.Response{Text: string(b), JSON: b}
}

// stubGraph is the standard graph's shape with instant steps: the engine
// without agents, models or the sandbox. step runs for every node.
func stubGraph(step func(ctx context.Context, in agent.Input) (agent.Output, error)) *testGraph {
	steps := map[string]agent.Step{}
	for _, id := range buildNodes() {
		steps[id] = agent.StepFunc(step)
	}
	g := graph.Build()
	// The stub checks pass on any output without "fail": true.
	for i := range g.Nodes {
		if g.Nodes[i].Check != nil {
			g.Nodes[i].Check = func(raw json.RawMessage) (bool, []string) {
				var v struct {
					Fail     bool     `json:"fail"`
					Findings []string `json:"findings"`
				}
				json.Unmarshal(raw, &v)
				return !v.Fail, v.Findings
			}
		}
	}
	return &testGraph{g: g, steps: steps}
}

func instant(ctx context.Context, in agent.Input) (agent.Output, error) {
	return agent.Output{Artifact: json.RawMessage(`{"ok":true}`)}, nil
}

// gauge tracks a maximum of concurrent things.
type gauge struct{ cur, max atomic.Int64 }

func (g *gauge) inc() {
	n := g.cur.Add(1)
	for {
		m := g.max.Load()
		if n <= m || g.max.CompareAndSwap(m, n) {
			return
		}
	}
}
func (g *gauge) dec() { g.cur.Add(-1) }
