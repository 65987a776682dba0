// Package pipeline holds the drivers that run task graphs: the local
// executor here, and the JetStream worker that feeds it from a work queue.
// What runs next is decided by the pure scheduler of package graph; the
// state changes are the transitions of package domain; this package
// performs them: it claims a task's lease, runs the steps, stores their
// artifacts and records the events.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
	"github.com/catalyst/catalyst/internal/graph"
	"github.com/catalyst/catalyst/internal/store"
)

// Options configure the local executor. Every field is explicit: the
// executor applies no defaults of the configuration (app maps Config).
type Options struct {
	Store    store.Store
	Recorder *events.Recorder
	Graphs   *graph.Registry
	// Steps binds the nodes of a kind's graph to what runs there.
	Steps func(kind string) map[string]agent.Step
	// Owner names this process in leases; empty: a unique id is made.
	Owner string
	// LeaseTTL is how long a lease outlives its last heartbeat.
	LeaseTTL time.Duration
	// MaxConcurrent tasks run at once; the rest wait in order.
	MaxConcurrent int
	// Limits bound each run: fix rounds (0 = none) and cost (0 = none).
	Limits graph.Limits
	// AgentTimeout bounds one step (0 = none).
	AgentTimeout time.Duration
	// Recover makes Start resume the tasks nobody runs (pending, or running
	// with an expired lease) and keep sweeping for them. `catalyst run`
	// leaves it off: it runs only what it submits.
	Recover bool
	// Served names the model a task will be served by before any call.
	Served func() domain.Served
	// Snapshots keep each completed node's workspace in the store and
	// restore it when a task resumes in a process without it; optional.
	Snapshots Snapshotter
	Logger    *slog.Logger
}

// Snapshotter saves and restores a task's workspace.
type Snapshotter interface {
	// Save stores the workspace as node left it.
	Save(ctx context.Context, t domain.Task, node string, iteration int) error
	// Restore makes the local workspace the latest stored one, if newer.
	Restore(ctx context.Context, t domain.Task) error
}

// Executor runs tasks in this process, at most MaxConcurrent at once. It is
// durable and shareable: everything a resume needs is in the store, and a
// task is run only while this process holds its lease, renewed by a
// heartbeat that also notices within a second a cancel stored by any
// process.
type Executor struct {
	opt Options
	log *slog.Logger

	mu      sync.Mutex
	started bool
	closed  bool
	queue   []string
	queued  map[string]bool
	active  map[string]*activeRun
	waiters map[string]map[chan struct{}]struct{}
	wg      sync.WaitGroup
	stop    chan struct{}
	// failures counts the consecutive runs of a task that broke off on an
	// error (the store went away); retries holds their pending re-runs.
	failures map[string]int
	retries  map[string]*time.Timer
	// onDone is told when a run of a task ends (the JetStream driver acks).
	onDone func(taskID string, err error)

	// Tests shorten these; zero means the default.
	retryFirst  time.Duration
	runAttempts int
	pollEvery   time.Duration
}

type activeRun struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

var (
	errCancelled = errors.New("task cancelled")
	errShutdown  = errors.New("executor shutting down")
	errCrash     = errors.New("process killed")
	errLeaseLost = errors.New("task lease lost")
	errClosed    = errors.New("pipeline: executor is shut down")
)

// DefaultLeaseTTL is used when Options.LeaseTTL is zero.
const DefaultLeaseTTL = 15 * time.Second

// New returns a local executor.
func New(opt Options) *Executor {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Owner == "" {
		opt.Owner = NewOwnerID()
	}
	if opt.LeaseTTL <= 0 {
		opt.LeaseTTL = DefaultLeaseTTL
	}
	if opt.MaxConcurrent <= 0 {
		opt.MaxConcurrent = 1
	}
	return &Executor{
		opt:      opt,
		log:      opt.Logger.With("component", "pipeline", "owner", opt.Owner),
		queued:   map[string]bool{},
		active:   map[string]*activeRun{},
		waiters:  map[string]map[chan struct{}]struct{}{},
		failures: map[string]int{},
		retries:  map[string]*time.Timer{},
		stop:     make(chan struct{}),
	}
}

// NewOwnerID names a process uniquely: host, pid and a random suffix, so
// that a restarted process never mistakes its predecessor's lease for its
// own.
func NewOwnerID() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "host"
	}
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), uuid.NewString()[:8])
}

// SetRecover sets Options.Recover before Start.
func (e *Executor) SetRecover(on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.opt.Recover = on
}

// Owner returns this executor's lease owner id.
func (e *Executor) Owner() string { return e.opt.Owner }

// OnDone registers f, called when a run of a task ends; err is nil when the
// task reached a terminal state or is no longer ours to run.
func (e *Executor) OnDone(f func(taskID string, err error)) {
	e.mu.Lock()
	e.onDone = f
	e.mu.Unlock()
}

// Start serves the queue; with Recover it first queues, in created order,
// the tasks nobody runs, then keeps sweeping for them.
func (e *Executor) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.started || e.closed {
		e.mu.Unlock()
		return errors.New("pipeline: executor already started")
	}
	e.mu.Unlock()
	var ids []string
	if e.opt.Recover {
		var err error
		if ids, err = e.orphans(ctx); err != nil {
			return fmt.Errorf("pipeline: start: %w", err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range ids {
		e.pushLocked(id)
	}
	e.started = true
	if n := len(ids); n > 0 {
		e.log.Info("recovered tasks", "count", n)
	}
	if e.opt.Recover {
		e.wg.Add(1)
		go e.sweep()
	}
	e.dispatchLocked()
	return nil
}

// orphans lists, oldest first, the pending and running tasks whose lease
// is not live: nobody runs them.
func (e *Executor) orphans(ctx context.Context) ([]string, error) {
	now := time.Now()
	var all []domain.Task
	cursor := ""
	for {
		page, next, err := e.opt.Store.ListTasks(ctx, store.TaskFilter{Scope: store.All(), Statuses: []domain.TaskStatus{domain.TaskRunning, domain.TaskPending}},
			store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	slices.SortStableFunc(all, func(a, b domain.Task) int { return a.CreatedAt.Compare(b.CreatedAt) })
	var ids []string
	for _, t := range all {
		if !t.LeaseLive(now) || t.LeaseOwner == e.opt.Owner {
			ids = append(ids, t.ID)
		}
	}
	return ids, nil
}

// sweep queues orphaned tasks every half lease: a process that died
// holding a task has it taken over once its lease expires.
func (e *Executor) sweep() {
	defer e.wg.Done()
	tick := time.NewTicker(max(e.opt.LeaseTTL/2, 200*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-tick.C:
		}
		ids, err := e.orphans(context.Background())
		if err != nil {
			e.log.Warn("sweep for orphaned tasks", "err", err)
			continue
		}
		e.mu.Lock()
		for _, id := range ids {
			if e.retries[id] == nil {
				e.pushLocked(id)
			}
		}
		e.dispatchLocked()
		e.mu.Unlock()
	}
}

// Dispatch queues a task (tasks.Dispatcher).
func (e *Executor) Dispatch(ctx context.Context, taskID string) error { return e.Enqueue(ctx, taskID) }

// Reserve gives this process the lease of a task it is about to be handed
// (tasks.Reserver), so that no other process claims it first.
func (e *Executor) Reserve(t *domain.Task) { t.Reserve(e.opt.Owner, time.Now().UTC(), e.opt.LeaseTTL) }

// Stop cancels this process's run of a task at once (tasks.Stopper); the
// stored cancel is the truth, this only saves the heartbeat's delay.
func (e *Executor) Stop(taskID string) {
	e.mu.Lock()
	if e.queued[taskID] {
		delete(e.queued, taskID)
		e.queue = slices.DeleteFunc(e.queue, func(id string) bool { return id == taskID })
	}
	r := e.active[taskID]
	e.notifyLocked(taskID)
	e.mu.Unlock()
	if r != nil {
		r.cancel(errCancelled)
		<-r.done
	}
}

// Enqueue schedules taskID; a task already queued or running is left alone.
func (e *Executor) Enqueue(ctx context.Context, taskID string) error {
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

// Free returns how many more tasks could run now.
func (e *Executor) Free() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return max(e.opt.MaxConcurrent-len(e.active)-len(e.queue), 0)
}

// dispatchLocked starts queued tasks while there is room.
func (e *Executor) dispatchLocked() {
	for e.started && !e.closed && len(e.active) < e.opt.MaxConcurrent && len(e.queue) > 0 {
		id := e.queue[0]
		e.queue[0] = ""
		e.queue = e.queue[1:]
		delete(e.queued, id)
		ctx, cancel := context.WithCancelCause(context.Background())
		r := &activeRun{cancel: cancel, done: make(chan struct{})}
		e.active[id] = r
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer close(r.done)
			err := e.execute(ctx, cancel, id)
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
			done := e.onDone
			e.dispatchLocked()
			e.mu.Unlock()
			if done != nil {
				done(id, err)
			}
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
	reason := fmt.Sprintf("stopped after %d attempts: the run kept breaking off: %v", e.maxRunAttempts(), cause)
	var changes []domain.Change
	t, err := e.opt.Store.UpdateTask(ctx, id, func(t *domain.Task) error {
		var err error
		changes, err = t.Fail(reason, time.Now().UTC())
		return err
	})
	switch {
	case errors.Is(err, domain.ErrConflict):
		return nil
	case err != nil:
		return cause
	}
	e.log.Error("task failed: its run kept breaking off", "task", id, "err", cause)
	e.record(ctx, t, changes)
	return nil
}

// retryLocked runs a task again after its run failed with err, which is not
// the task's own failure (that is a status) but the executor's: the store
// went away, say. It resumes at its first unfinished node once the store
// answers again, with a capped backoff.
func (e *Executor) retryLocked(id string, err error) {
	if e.closed {
		return
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

// Running returns the number of tasks running now in this process.
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
		if err != nil || t.Status.Terminal() {
			e.dropWaiter(taskID, ch)
			return t, err
		}
		timer := time.NewTimer(250 * time.Millisecond) // another process may finish it
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

// crash stops every run at once without a word to the store, as a killed
// process would (tests of takeover).
func (e *Executor) crash() {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		close(e.stop)
	}
	for _, r := range e.active {
		r.cancel(errCrash)
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// Shutdown stops running tasks where they are and releases their leases
// without changing their status, so that the next process to look resumes
// them at once.
func (e *Executor) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		close(e.stop)
	}
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

// record records the events of a transition; a failure is logged, not
// returned: the task's state is stored, and a follower reads that.
func (e *Executor) record(ctx context.Context, t domain.Task, changes []domain.Change) {
	if e.opt.Recorder == nil || len(changes) == 0 {
		return
	}
	if err := e.opt.Recorder.RecordChanges(ctx, t, changes); err != nil {
		e.log.Error("record event", "task", t.ID, "err", err)
	}
}

// log records a plain log line of a task.
func (e *Executor) logLine(ctx context.Context, t domain.Task, agentName, level, msg string) {
	e.record(ctx, t, []domain.Change{{Type: domain.EventLog, Agent: agentName, Level: level, Message: msg}})
}
