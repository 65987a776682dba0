package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/graph"
	"github.com/catalyst/catalyst/internal/telemetry"
)

// taskRun is one execution of a task by this process, under its lease.
type taskRun struct {
	e     *Executor
	p     *graph.Plan
	steps map[string]agent.Step
	t     domain.Task
	arts  graph.Artifacts
	// running maps the nodes in flight to their iteration.
	running map[string]int
	results chan nodeResult
	cancels map[string]context.CancelFunc
	started time.Time
}

type nodeResult struct {
	node      string
	iteration int
	out       agent.Output
	err       error
	timedOut  bool
	startedAt time.Time
}

// execute runs task id until it ends, is cancelled, loses its lease or is
// shut down; an error means the run itself broke off (the store failed) and
// the task should be run again.
func (e *Executor) execute(ctx context.Context, cancel context.CancelCauseFunc, id string) error {
	r := &taskRun{e: e, running: map[string]int{}, cancels: map[string]context.CancelFunc{}, started: time.Now()}
	ctx, span := telemetry.StartTask(ctx, id)
	err := r.run(ctx, cancel, id)
	telemetry.End(span, err)
	switch {
	case err == nil, domain.IsLeaseError(err), ctx.Err() != nil:
		return nil
	case errors.Is(err, domain.ErrNotFound):
		e.log.Warn("task run: the task no longer exists", "task", id)
		return nil
	}
	return err
}

func (r *taskRun) run(ctx context.Context, cancel context.CancelCauseFunc, id string) error {
	e := r.e
	st := e.opt.Store
	t, err := st.GetTask(ctx, id)
	if err != nil {
		return err
	}
	if t.Status != domain.TaskPending && t.Status != domain.TaskRunning {
		return nil // cancelled or finished meanwhile
	}
	if t.LeaseLive(time.Now()) && t.LeaseOwner != e.opt.Owner {
		return nil // another process runs it
	}
	p, ok := e.opt.Graphs.Lookup(t.KindOf())
	var steps map[string]agent.Step
	if ok && e.opt.Steps != nil {
		steps = e.opt.Steps(t.KindOf())
	}
	if !ok || steps == nil {
		reason := fmt.Sprintf("this process cannot run tasks of kind %q", t.KindOf())
		t, err := st.UpdateTask(ctx, id, func(t *domain.Task) error { _, err := t.Fail(reason, time.Now().UTC()); return err })
		if err == nil {
			e.record(ctx, t, []domain.Change{{Type: domain.EventTaskState, Agent: domain.System, Level: domain.LevelError,
				Message: "Task failed: " + reason, Data: map[string]any{"status": t.Status, "error": t.Error}}})
		}
		return err
	}
	r.p, r.steps = p, steps
	var served domain.Served
	if e.opt.Served != nil {
		served = e.opt.Served()
	}
	var changes []domain.Change
	r.t, err = st.UpdateTask(ctx, id, func(t *domain.Task) error {
		if t.Provider == "" && !t.Offline {
			t.SetServed(served)
		}
		var err error
		changes, err = t.Claim(e.opt.Owner, time.Now().UTC(), e.opt.LeaseTTL, p.Order)
		return err
	})
	if err != nil {
		return err
	}
	hb := r.heartbeat(ctx, cancel)
	defer hb()
	if e.opt.Snapshots != nil {
		if err := e.opt.Snapshots.Restore(ctx, r.t); err != nil {
			return fmt.Errorf("restoring the workspace: %w", err)
		}
	}
	e.record(ctx, r.t, changes)
	list, err := st.ListArtifacts(ctx, id)
	if err != nil {
		return err
	}
	r.arts = graph.Index(list)
	r.results = make(chan nodeResult)
	err = r.loop(ctx)
	if ctx.Err() != nil && errors.Is(context.Cause(ctx), errShutdown) {
		// Let the next process resume it at once instead of after the TTL.
		_, _ = st.UpdateTask(context.Background(), id, func(t *domain.Task) error { return t.Release(e.opt.Owner) })
	}
	return err
}

// heartbeat renews the lease and watches the stored task: a cancel, a
// finish or a takeover stored by any process stops this run within
// pollEvery. It returns the function that stops it.
func (r *taskRun) heartbeat(ctx context.Context, cancel context.CancelCauseFunc) func() {
	e := r.e
	poll := e.pollEvery
	if poll <= 0 {
		poll = min(500*time.Millisecond, e.opt.LeaseTTL/3)
	}
	renewEvery := e.opt.LeaseTTL / 3
	id := r.t.ID // r.t belongs to the run's goroutine
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(poll)
		defer tick.Stop()
		lastRenew := time.Now()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			t, err := e.opt.Store.GetTask(ctx, id)
			if err != nil {
				continue // the store is away; the lease lasts its TTL
			}
			if t.Status != domain.TaskRunning || t.LeaseOwner != e.opt.Owner {
				if t.Status == domain.TaskRunning {
					cancel(errLeaseLost)
				} else {
					cancel(errCancelled)
				}
				return
			}
			if time.Since(lastRenew) < renewEvery {
				continue
			}
			_, err = e.opt.Store.UpdateTask(context.WithoutCancel(ctx), id, func(t *domain.Task) error {
				return t.Renew(e.opt.Owner, time.Now().UTC(), e.opt.LeaseTTL)
			})
			switch {
			case err == nil:
				lastRenew = time.Now()
			case domain.IsLeaseError(err):
				cancel(errLeaseLost)
				return
			}
		}
	}()
	return func() { close(done); <-stopped }
}

func (r *taskRun) loop(ctx context.Context) error {
	lim := r.e.opt.Limits
	for {
		if ctx.Err() != nil {
			r.stopNodes()
			return nil
		}
		running := map[string]bool{}
		for id := range r.running {
			running[id] = true
		}
		a := graph.Next(r.p, r.t, r.arts, running, lim)
		switch a.Kind {
		case graph.Finish:
			r.stopNodes()
			return r.finish(ctx, a.Status, a.Reason, a.FailNodes)
		case graph.StartFixRound:
			if err := r.fixRound(ctx, a); err != nil {
				return err
			}
			continue
		case graph.Start:
			for _, id := range a.Nodes {
				if err := r.start(ctx, id); err != nil {
					r.stopNodes()
					return err
				}
			}
		}
		select {
		case <-ctx.Done():
			r.stopNodes()
			return nil
		case res := <-r.results:
			delete(r.running, res.node)
			r.cancels[res.node]()
			delete(r.cancels, res.node)
			if err := r.complete(ctx, res); err != nil {
				r.stopNodes()
				return err
			}
		}
	}
}

// transition applies a domain transition to the stored task and records
// the events it implied.
func (r *taskRun) transition(ctx context.Context, apply func(*domain.Task) ([]domain.Change, error)) error {
	var changes []domain.Change
	t, err := r.e.opt.Store.UpdateTask(context.WithoutCancel(ctx), r.t.ID, func(t *domain.Task) error {
		var err error
		changes, err = apply(t)
		return err
	})
	if err != nil {
		return err
	}
	r.t = t
	r.e.record(ctx, t, changes)
	return nil
}

func (r *taskRun) fixRound(ctx context.Context, a graph.Action) error {
	return r.transition(ctx, func(t *domain.Task) ([]domain.Change, error) {
		return t.StartFixRound(r.e.opt.Owner, a.Round, a.Fix)
	})
}

// start marks node running and runs its step in a goroutine.
func (r *taskRun) start(ctx context.Context, id string) error {
	n := r.p.Node(id)
	it := r.p.Iteration(id, r.t.FixIteration)
	if err := r.transition(ctx, func(t *domain.Task) ([]domain.Change, error) {
		return t.StartNode(r.e.opt.Owner, id, n.Agent, it)
	}); err != nil {
		return err
	}
	rec, taskID, t := r.e.opt.Recorder, r.t.ID, r.t
	in := agent.Input{
		Task:      r.t,
		Node:      id,
		Iteration: it,
		Artifacts: map[string]domain.Artifact{},
		Log: func(level, msg string) {
			r.e.logLine(ctx, t, n.Agent, level, msg)
		},
		Delta: func(text string) {
			if rec != nil {
				rec.Delta(taskID, n.Agent, text)
			}
		},
	}
	for _, other := range r.p.Order {
		if r.t.GraphState[other] == domain.NodeCompleted {
			if a, ok := graph.Latest(r.p, r.t, r.arts, other); ok {
				in.Artifacts[other] = a
			}
		}
	}
	if id == r.p.Target {
		for _, f := range graph.Feedback(r.p, r.t, r.arts) {
			in.Feedback = append(in.Feedback, agent.Feedback{Node: f.Node, Findings: f.Findings, Artifact: f.Artifact})
		}
	}
	step := r.steps[id]
	timeout := r.e.opt.AgentTimeout
	nctx, cancel := context.WithCancel(ctx)
	if timeout > 0 {
		nctx, cancel = context.WithTimeout(ctx, timeout)
	}
	r.running[id] = it
	r.cancels[id] = cancel
	go func() {
		started := time.Now()
		var out agent.Output
		var err error
		sctx, span := telemetry.StartNode(nctx, taskID, t.Kind, id, n.Agent, it)
		if step == nil {
			err = fmt.Errorf("no step is bound to node %s", id)
		} else {
			out, err = runStep(sctx, step, in)
		}
		telemetry.End(span, err)
		res := nodeResult{node: id, iteration: it, out: out, err: err, startedAt: started}
		if err != nil && errors.Is(nctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			res.timedOut = true
		}
		r.results <- res
	}()
	return nil
}

// runStep runs a step, turning a panic into an error.
func runStep(ctx context.Context, s agent.Step, in agent.Input) (out agent.Output, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return s.Run(ctx, in)
}

// stopNodes cancels the nodes in flight and waits for them to return.
func (r *taskRun) stopNodes() {
	for _, c := range r.cancels {
		c()
	}
	for len(r.running) > 0 {
		res := <-r.results
		delete(r.running, res.node)
	}
	r.cancels = map[string]context.CancelFunc{}
}

// complete persists a node's result: its artifact, its workspace snapshot,
// then (in one update) its completed state and its cost, so a resumed task
// never runs it or counts it twice.
func (r *taskRun) complete(ctx context.Context, res nodeResult) error {
	n := r.p.Node(res.node)
	if res.err != nil {
		if ctx.Err() != nil {
			return nil // cancelled, taken over or shutting down: the loop stops
		}
		msg := res.err.Error()
		if res.timedOut {
			msg = fmt.Sprintf("timed out after %s (AGENT_TIMEOUT)", r.e.opt.AgentTimeout)
		}
		r.stopNodes()
		if err := r.transition(ctx, func(t *domain.Task) ([]domain.Change, error) {
			return t.FailNode(r.e.opt.Owner, res.node, n.Agent, res.iteration, msg)
		}); err != nil {
			return err
		}
		return r.finish(ctx, domain.TaskFailed, res.node+": "+msg, []string{res.node})
	}
	out := res.out
	if len(out.Artifact) == 0 {
		out.Artifact = []byte("{}")
	}
	a := domain.Artifact{TaskID: r.t.ID, Node: res.node, Iteration: res.iteration, Output: out.Artifact,
		Cost: out.Cost, Usage: out.Usage, CreatedAt: time.Now().UTC()}
	if err := r.e.opt.Store.PutArtifact(context.WithoutCancel(ctx), a); err != nil {
		return fmt.Errorf("store artifact: %w", err)
	}
	if s := r.e.opt.Snapshots; s != nil {
		if err := s.Save(context.WithoutCancel(ctx), r.t, res.node, res.iteration); err != nil {
			return fmt.Errorf("store the workspace of %s: %w", res.node, err)
		}
	}
	note := fmt.Sprintf("in %s", time.Since(res.startedAt).Round(time.Millisecond))
	if n.Check != nil {
		if pass, f := n.Check(out.Artifact); !pass {
			note += fmt.Sprintf(" (%d findings)", len(f))
		}
	}
	if err := r.transition(ctx, func(t *domain.Task) ([]domain.Change, error) {
		return t.CompleteNode(r.e.opt.Owner, res.node, n.Agent, res.iteration, out.Cost, out.Served, note)
	}); err != nil {
		return err
	}
	r.arts.Put(a)
	return nil
}

// finish ends the task; task_state is its last event.
func (r *taskRun) finish(ctx context.Context, status domain.TaskStatus, reason string, failNodes []string) error {
	elapsed := time.Since(r.started).Round(time.Millisecond)
	return r.transition(ctx, func(t *domain.Task) ([]domain.Change, error) {
		note := fmt.Sprintf("Task failed after %s: %s", elapsed, reason)
		if status == domain.TaskCompleted {
			note = fmt.Sprintf("Task completed in %s, cost $%.4f", elapsed, t.Cost)
		}
		return t.Finish(r.e.opt.Owner, status, reason, failNodes, time.Now().UTC(), note)
	})
}
