package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/sandbox"
	"github.com/catalyst/catalyst/internal/store"
)

// Runner executes tasks. The local Executor is the embedded implementation;
// a Temporal-backed one will satisfy the same interface.
type Runner interface {
	// Start resumes the tasks left running, re-queues the pending ones and
	// serves the queue until Shutdown.
	Start(ctx context.Context) error
	// Enqueue schedules a pending task.
	Enqueue(ctx context.Context, taskID string) error
	// Cancel stops a pending or running task (domain.ErrConflict otherwise).
	Cancel(ctx context.Context, taskID string) (domain.Task, error)
	// Retry restarts a failed or cancelled task from its first unfinished
	// node (domain.ErrConflict otherwise).
	Retry(ctx context.Context, taskID string) (domain.Task, error)
	// Wait returns the task once it is completed, failed or cancelled.
	Wait(ctx context.Context, taskID string) (domain.Task, error)
	// Shutdown stops every running task where it is (they resume on the
	// next Start) and waits for them to stop.
	Shutdown(ctx context.Context) error
}

var _ Runner = (*Executor)(nil)

// Options configure the local executor.
type Options struct {
	Store    store.Store
	Recorder *events.Recorder
	// Models picks each agent's model (llm.Router).
	Models agent.Models
	// Config is read once by New; nil means the defaults.
	Config *config.Config
	Logger *slog.Logger
	// WorkspaceDir is the directory (and git repository) of a task's files.
	WorkspaceDir func(taskID string) string
	// Graph replaces the standard graph (tests, other pipelines).
	Graph *Graph
	// GitHub publishes pull requests when MOCK_DEPLOYMENT=false (optional).
	GitHub agent.PullRequests
	// Sandbox runs the tester's tests; nil means the standard sandbox.
	Sandbox func(context.Context, sandbox.Spec) (sandbox.Result, error)
}

// Executor runs tasks in this process, at most Config.MaxConcurrentTasks at
// once, the rest waiting in order. It is durable: everything a restart needs
// is in the store (graph_state, fix round, node costs, one artifact per node
// run), so a task interrupted at any moment resumes at its first unfinished
// node.
type Executor struct {
	opt     Options
	cfg     config.Config
	plan    *plan
	planErr error
	log     *slog.Logger
	max     int

	mu      sync.Mutex
	started bool
	closed  bool
	queue   []string
	queued  map[string]bool
	active  map[string]*run
	waiters map[string]map[chan struct{}]struct{}
	wg      sync.WaitGroup
	// failures counts the consecutive runs of a task that ended in an
	// error (the store went away); retries holds their pending re-runs.
	failures map[string]int
	retries  map[string]*time.Timer
	// Tests shorten the backoff and the attempts; zero means the default.
	retryFirst  time.Duration
	runAttempts int
}

type run struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

var (
	errCancelled  = errors.New("task cancelled")
	errShutdown   = errors.New("executor shutting down")
	errNotRunning = errors.New("task is no longer running")
	errClosed     = errors.New("pipeline: executor is shut down")
)

// New returns a local executor. Without Options.Graph it runs the standard
// graph of agents built from the options.
func New(opt Options) *Executor {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	var cfg config.Config
	if opt.Config != nil {
		cfg = *opt.Config
	}
	if cfg.MaxFixIterations <= 0 {
		cfg.MaxFixIterations = 3
	}
	g := opt.Graph
	if g == nil {
		g = Standard(agent.Steps(agent.Deps{
			Models:       opt.Models,
			Store:        opt.Store,
			Config:       cfg,
			WorkspaceDir: opt.WorkspaceDir,
			GitHub:       opt.GitHub,
			Sandbox:      opt.Sandbox,
		}))
	}
	p, err := compile(g)
	e := &Executor{
		opt:     opt,
		cfg:     cfg,
		plan:    p,
		planErr: err,
		log:     opt.Logger.With("component", "pipeline"),
		max:     cfg.MaxConcurrentTasks,
		queued:  map[string]bool{},
		active:  map[string]*run{},
		waiters: map[string]map[chan struct{}]struct{}{},

		failures: map[string]int{},
		retries:  map[string]*time.Timer{},
	}
	if e.max <= 0 {
		e.max = 5
	}
	return e
}

func (e *Executor) maxFixRounds() int {
	if e.plan.g.MaxFixRounds > 0 {
		return e.plan.g.MaxFixRounds
	}
	return e.cfg.MaxFixIterations
}

// Start resumes every running task at its first unfinished node, re-queues
// pending tasks in created order, then serves the queue.
func (e *Executor) Start(ctx context.Context) error {
	if e.planErr != nil {
		return e.planErr
	}
	e.mu.Lock()
	if e.started || e.closed {
		e.mu.Unlock()
		return errors.New("pipeline: executor already started")
	}
	e.mu.Unlock()
	var ids []string
	for _, st := range []domain.TaskStatus{domain.TaskRunning, domain.TaskPending} {
		tasks, err := e.listAll(ctx, st)
		if err != nil {
			return fmt.Errorf("pipeline: start: %w", err)
		}
		// Lists are newest first; the queue is oldest first.
		slices.SortStableFunc(tasks, func(a, b domain.Task) int { return a.CreatedAt.Compare(b.CreatedAt) })
		for _, t := range tasks {
			ids = append(ids, t.ID)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// Tasks enqueued before Start go after the recovered ones (they are
	// pending, so they are in ids too, in created order).
	e.queue, e.queued = nil, map[string]bool{}
	for _, id := range ids {
		e.pushLocked(id)
	}
	e.started = true
	if n := len(ids); n > 0 {
		e.log.Info("recovered tasks", "count", n)
	}
	e.dispatchLocked()
	return nil
}

func (e *Executor) listAll(ctx context.Context, st domain.TaskStatus) ([]domain.Task, error) {
	var all []domain.Task
	cursor := ""
	for {
		page, next, err := e.opt.Store.ListTasks(ctx, store.TaskFilter{Statuses: []domain.TaskStatus{st}}, store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" {
			return all, nil
		}
		cursor = next
	}
}

// Enqueue schedules taskID; a task already queued or running is left alone.
func (e *Executor) Enqueue(ctx context.Context, taskID string) error {
	if e.planErr != nil {
		return e.planErr
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errClosed
	}
	e.pushLocked(taskID)
	e.dispatchLocked()
	return nil
}

func (e *Executor) pushLocked(id string) {
	if e.queued[id] || e.active[id] != nil {
		return
	}
	e.queued[id] = true
	e.queue = append(e.queue, id)
}

// dispatchLocked starts queued tasks while there is room.
func (e *Executor) dispatchLocked() {
	for e.started && !e.closed && len(e.active) < e.max && len(e.queue) > 0 {
		id := e.queue[0]
		e.queue[0] = ""
		e.queue = e.queue[1:]
		delete(e.queued, id)
		ctx, cancel := context.WithCancelCause(context.Background())
		r := &run{cancel: cancel, done: make(chan struct{})}
		e.active[id] = r
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer close(r.done)
			err := e.execute(ctx, id)
			cancel(nil)
			if err != nil && e.failureCount(id)+1 >= e.maxRunAttempts() {
				err = e.giveUp(id, err)
			}
			e.mu.Lock()
			delete(e.active, id)
			if err != nil {
				e.retryLocked(id, err)
			} else {
				delete(e.failures, id)
			}
			e.notifyLocked(id)
			e.dispatchLocked()
			e.mu.Unlock()
		}()
	}
}

// Backoff of a task whose run ended in an error, and how many runs in a
// row may break off before the task is failed with the error.
const (
	retryFirst     = time.Second
	retryMax       = 30 * time.Second
	maxRunAttempts = 12 // about 4 minutes of backoff
)

func (e *Executor) failureCount(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.failures[id]
}

func (e *Executor) maxRunAttempts() int {
	if e.runAttempts > 0 {
		return e.runAttempts
	}
	return maxRunAttempts
}

// giveUp fails a task whose runs keep breaking off although the store
// answers (a persistent error, not an outage), so that it does not stay
// "running" for ever. It returns nil once the task is failed, or the error
// that stopped that too (the store is down: keep retrying).
func (e *Executor) giveUp(id string, cause error) error {
	ctx := context.Background()
	now := time.Now().UTC()
	reason := fmt.Sprintf("stopped after %d attempts: the run kept breaking off: %v", e.maxRunAttempts(), cause)
	t, err := e.opt.Store.UpdateTask(ctx, id, func(t *domain.Task) error {
		if t.Status != domain.TaskPending && t.Status != domain.TaskRunning {
			return errNotRunning
		}
		t.Status = domain.TaskFailed
		t.Error = reason
		t.FinishedAt = &now
		for n, s := range t.GraphState {
			if s == domain.NodeRunning {
				t.GraphState[n] = domain.NodeFailed
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, errNotRunning):
		return nil
	case err != nil:
		return cause
	}
	e.log.Error("task failed: its run kept breaking off", "task", id, "err", cause)
	em := e.emitter(t)
	em.log(ctx, "System", agent.Error, "Task failed: "+reason)
	em.taskState(ctx, t)
	return nil
}

// retryLocked runs a task again after its run failed with err, which is not
// the task's own failure (that is a status) but the executor's: the store
// went away, say. Left alone, the task would stay "running" with nobody
// running it until the next restart; instead it resumes at its first
// unfinished node once the store answers again, with a capped backoff.
func (e *Executor) retryLocked(id string, err error) {
	if e.closed {
		return // Start resumes it
	}
	n := e.failures[id] + 1
	e.failures[id] = n
	first := retryFirst
	if e.retryFirst > 0 {
		first = e.retryFirst
	}
	delay := min(first<<min(n-1, 10), retryMax)
	e.log.Error("task run stopped by an error; it resumes at its first unfinished node", "task", id, "err", err, "attempt", n, "retry_in", delay)
	if t := e.retries[id]; t != nil {
		t.Stop()
	}
	e.retries[id] = time.AfterFunc(delay, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		delete(e.retries, id)
		if !e.closed {
			e.pushLocked(id)
			e.dispatchLocked()
		}
	})
}

func (e *Executor) notifyLocked(id string) {
	for ch := range e.waiters[id] {
		close(ch)
	}
	delete(e.waiters, id)
}

// Running returns the number of tasks running now.
func (e *Executor) Running() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.active)
}

// Wait returns the task once it is completed, failed or cancelled.
func (e *Executor) Wait(ctx context.Context, taskID string) (domain.Task, error) {
	for {
		ch := make(chan struct{})
		e.mu.Lock()
		if e.waiters[taskID] == nil {
			e.waiters[taskID] = map[chan struct{}]struct{}{}
		}
		e.waiters[taskID][ch] = struct{}{}
		e.mu.Unlock()
		t, err := e.opt.Store.GetTask(ctx, taskID)
		if err == nil && t.Status.Terminal() {
			e.dropWaiter(taskID, ch)
			return t, nil
		}
		if err != nil {
			e.dropWaiter(taskID, ch)
			return t, err
		}
		timer := time.NewTimer(time.Second) // a safety net; notifications are the norm
		select {
		case <-ch:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			e.dropWaiter(taskID, ch)
			return t, ctx.Err()
		}
		timer.Stop()
		e.dropWaiter(taskID, ch)
	}
}

func (e *Executor) dropWaiter(id string, ch chan struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if set := e.waiters[id]; set != nil {
		delete(set, ch)
		if len(set) == 0 {
			delete(e.waiters, id)
		}
	}
}

// Cancel stops a pending or running task within moments: its context is
// cancelled, so in-flight model calls and sandbox processes die, and it is
// marked cancelled. task_state is its last event.
func (e *Executor) Cancel(ctx context.Context, taskID string) (domain.Task, error) {
	now := time.Now().UTC()
	t, err := e.opt.Store.UpdateTask(ctx, taskID, func(t *domain.Task) error {
		if t.Status != domain.TaskPending && t.Status != domain.TaskRunning {
			return fmt.Errorf("%w: task %s is %s, only pending or running tasks can be cancelled", domain.ErrConflict, t.ID, t.Status)
		}
		t.Status = domain.TaskCancelled
		t.Error = "cancelled by request"
		t.FinishedAt = &now
		for n, s := range t.GraphState {
			if s == domain.NodeRunning {
				t.GraphState[n] = domain.NodePending
			}
		}
		return nil
	})
	if err != nil {
		return t, err
	}
	e.mu.Lock()
	if e.queued[taskID] {
		delete(e.queued, taskID)
		e.queue = slices.DeleteFunc(e.queue, func(id string) bool { return id == taskID })
	}
	r := e.active[taskID]
	e.mu.Unlock()
	if r != nil {
		r.cancel(errCancelled)
		select {
		case <-r.done:
		case <-ctx.Done():
		}
	}
	em := e.emitter(t)
	em.log(ctx, "System", agent.Warn, "Task cancelled")
	em.taskState(ctx, t)
	e.mu.Lock()
	e.notifyLocked(taskID)
	e.mu.Unlock()
	return t, nil
}

// Retry restarts a failed or cancelled task from its first unfinished node.
// A task that failed because its fix loop ran out (or stalled) gets one more
// fix round with the last findings.
func (e *Executor) Retry(ctx context.Context, taskID string) (domain.Task, error) {
	if e.planErr != nil {
		return domain.Task{}, e.planErr
	}
	t, err := e.opt.Store.GetTask(ctx, taskID)
	if err != nil {
		return t, err
	}
	extraRound := false
	if p := e.plan; p.target != "" && t.GraphState[p.target] == domain.NodeCompleted {
		arts, err := e.loadArtifacts(ctx, taskID)
		if err != nil {
			return t, err
		}
		for _, c := range p.checks {
			if t.GraphState[c] != domain.NodeFailed {
				continue
			}
			if a, ok := arts[c][p.iteration(c, t.FixIteration)]; ok {
				if pass, _ := p.nodes[c].Check(a.Output); !pass {
					extraRound = true
				}
			}
		}
	}
	t, err = e.opt.Store.UpdateTask(ctx, taskID, func(t *domain.Task) error {
		if t.Status != domain.TaskFailed && t.Status != domain.TaskCancelled {
			return fmt.Errorf("%w: task %s is %s, only failed or cancelled tasks can be retried", domain.ErrConflict, t.ID, t.Status)
		}
		t.Status = domain.TaskPending
		t.Error = ""
		t.FinishedAt = nil
		if t.GraphState == nil {
			t.GraphState = map[string]domain.NodeState{}
		}
		for _, id := range e.plan.order {
			if s := t.GraphState[id]; s == domain.NodeFailed || s == domain.NodeRunning || s == "" {
				t.GraphState[id] = domain.NodePending
			}
		}
		if extraRound {
			t.FixIteration++
			for id := range e.plan.body {
				t.GraphState[id] = domain.NodePending
			}
		}
		return nil
	})
	if err != nil {
		return t, err
	}
	e.emitter(t).log(ctx, "System", agent.Info, "Retry requested: resuming at "+e.firstUnfinished(t))
	return t, e.Enqueue(ctx, taskID)
}

// Shutdown stops running tasks where they are, without changing their
// status: the next Start resumes them.
func (e *Executor) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true
	for _, r := range e.active {
		r.cancel(errShutdown)
	}
	for id, t := range e.retries {
		t.Stop()
		delete(e.retries, id)
	}
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Executor) firstUnfinished(t domain.Task) string {
	for _, id := range e.plan.order {
		if t.GraphState[id] != domain.NodeCompleted && t.GraphState[id] != domain.NodeSkipped {
			return id
		}
	}
	return "the end"
}

// loadArtifacts returns the stored artifacts by node and iteration.
func (e *Executor) loadArtifacts(ctx context.Context, taskID string) (map[string]map[int]domain.Artifact, error) {
	list, err := e.opt.Store.ListArtifacts(ctx, taskID)
	if err != nil {
		return nil, err
	}
	arts := map[string]map[int]domain.Artifact{}
	for _, a := range list {
		if arts[a.Node] == nil {
			arts[a.Node] = map[int]domain.Artifact{}
		}
		arts[a.Node][a.Iteration] = a
	}
	return arts, nil
}

// providerLabel names the model that will serve the task before any call,
// when the models can tell (the router, the offline provider).
func (e *Executor) providerLabel() string {
	if d, ok := e.opt.Models.(interface{ Describe(string) llm.Selection }); ok {
		return d.Describe(domain.NodePlanner).Label()
	}
	if e.opt.Models != nil {
		if m, ok := e.opt.Models.For(domain.NodePlanner).(interface{ Offline() bool }); ok && m.Offline() {
			return llm.OfflineLabel
		}
	}
	return ""
}

// emitter records the events of one task through the Recorder.
type emitter struct {
	e       *Executor
	taskID  string
	offline bool
}

func (e *Executor) emitter(t domain.Task) *emitter {
	return &emitter{e: e, taskID: t.ID, offline: t.Provider == llm.OfflineLabel}
}

func (m *emitter) record(ctx context.Context, typ domain.EventType, agentName, level, msg string, data any) {
	if m.offline && !strings.Contains(msg, llm.OfflineLabel) {
		msg += " [" + llm.OfflineLabel + "]"
	}
	l := domain.AgentLog{TaskID: m.taskID, Type: typ, AgentName: agentName, Level: level, Message: msg}
	if data != nil {
		b, err := json.Marshal(data)
		if err == nil {
			l.Data = b
		}
	}
	if m.e.opt.Recorder == nil {
		return
	}
	// Events are recorded even while the task is being cancelled.
	if _, err := m.e.opt.Recorder.Record(context.WithoutCancel(ctx), l); err != nil {
		m.e.log.Error("record event", "task", m.taskID, "type", typ, "err", err)
	}
}

func (m *emitter) log(ctx context.Context, agentName, level, msg string) {
	m.record(ctx, domain.EventLog, agentName, level, msg, nil)
}

func (m *emitter) nodeState(ctx context.Context, n *Node, state domain.NodeState, iteration int, msg string) {
	level := agent.Info
	if state == domain.NodeFailed {
		level = agent.Error
	}
	m.record(ctx, domain.EventNodeState, n.Agent, level, msg, map[string]any{"node": n.ID, "state": state, "iteration": iteration})
}

func (m *emitter) cost(ctx context.Context, t domain.Task, n *Node) {
	m.record(ctx, domain.EventCost, n.Agent, agent.Info,
		fmt.Sprintf("Cost so far $%.4f (%s $%.4f)", t.Cost, n.ID, t.NodeCosts[n.ID]),
		map[string]any{"cost": t.Cost, "node": n.ID, "node_cost": t.NodeCosts[n.ID]})
}

func (m *emitter) taskState(ctx context.Context, t domain.Task) {
	level := agent.Info
	msg := "Task " + string(t.Status)
	if t.Status == domain.TaskFailed {
		level = agent.Error
	}
	if t.Error != "" {
		msg += ": " + t.Error
	}
	m.record(ctx, domain.EventTaskState, "System", level, msg, map[string]any{"status": t.Status, "error": t.Error})
}
