package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/domain"
)

// taskRun is one execution of a task by this process.
type taskRun struct {
	e    *Executor
	p    *plan
	t    domain.Task
	arts map[string]map[int]domain.Artifact
	em   *emitter
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

// execute runs task id until it ends, is cancelled or shut down; an error
// means the run itself broke off (the store failed) and the task should be
// run again.
func (e *Executor) execute(ctx context.Context, id string) error {
	r := &taskRun{e: e, p: e.plan, running: map[string]int{}, cancels: map[string]context.CancelFunc{}, started: time.Now()}
	err := r.run(ctx, id)
	switch {
	case err == nil, errors.Is(err, errNotRunning), ctx.Err() != nil:
		return nil
	case errors.Is(err, domain.ErrNotFound):
		e.log.Warn("task run: the task no longer exists", "task", id)
		return nil
	}
	return err
}

func (r *taskRun) run(ctx context.Context, id string) error {
	st := r.e.opt.Store
	t, err := st.GetTask(ctx, id)
	if err != nil {
		return err
	}
	if t.Status != domain.TaskPending && t.Status != domain.TaskRunning {
		return nil // cancelled or finished meanwhile
	}
	label := t.Provider
	if label == "" {
		label = r.e.providerLabel()
	}
	resumed := t.Status == domain.TaskRunning
	now := time.Now().UTC()
	r.t, err = st.UpdateTask(ctx, id, func(t *domain.Task) error {
		if t.Status != domain.TaskPending && t.Status != domain.TaskRunning {
			return errNotRunning
		}
		t.Status = domain.TaskRunning
		if t.StartedAt == nil {
			t.StartedAt = &now
		}
		if t.GraphState == nil {
			t.GraphState = map[string]domain.NodeState{}
		}
		for _, n := range r.p.order {
			// A node left running was interrupted: it runs again.
			if s := t.GraphState[n]; s == "" || s == domain.NodeRunning {
				t.GraphState[n] = domain.NodePending
			}
		}
		if t.Provider == "" {
			t.Provider = label
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.em = r.e.emitter(r.t)
	if r.arts, err = r.e.loadArtifacts(ctx, id); err != nil {
		return err
	}
	first := r.e.firstUnfinished(r.t)
	switch {
	case resumed:
		r.em.log(ctx, "System", agent.Info, fmt.Sprintf("Resuming at %s (completed nodes are not run again)", first))
	case first != r.p.order[0]:
		r.em.log(ctx, "System", agent.Info, "Starting at "+first)
	default:
		msg := "Task started"
		if r.t.Provider != "" {
			msg += " with " + r.t.Provider
		}
		r.em.log(ctx, "System", agent.Info, msg)
	}
	r.results = make(chan nodeResult)
	return r.loop(ctx)
}

func (r *taskRun) loop(ctx context.Context) error {
	for {
		if ctx.Err() != nil {
			r.stopNodes()
			return nil
		}
		if len(r.running) == 0 {
			if r.allDone() {
				return r.finish(ctx, domain.TaskCompleted, "", nil)
			}
			if err, ok := r.overBudget(); ok {
				return r.finish(ctx, domain.TaskFailed, err, nil)
			}
			again, err := r.fixLoop(ctx)
			if err != nil || !again {
				return err
			}
		}
		ready := r.ready()
		if len(ready) == 0 && len(r.running) == 0 {
			return r.finish(ctx, domain.TaskFailed, "no node can run: "+r.blocked(), nil)
		}
		for _, id := range ready {
			if err := r.start(ctx, id); err != nil {
				r.stopNodes()
				return err
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

func (r *taskRun) allDone() bool {
	for _, id := range r.p.order {
		if s := r.t.GraphState[id]; s != domain.NodeCompleted && s != domain.NodeSkipped {
			return false
		}
	}
	return true
}

// ready lists the pending nodes whose incoming edges are satisfied.
func (r *taskRun) ready() []string {
	var out []string
	for _, id := range r.p.order {
		if r.t.GraphState[id] != domain.NodePending {
			continue
		}
		if _, busy := r.running[id]; busy {
			continue
		}
		ok := true
		for _, e := range r.p.g.Edges {
			if e.To != id || e.When == Fail {
				continue
			}
			if r.t.GraphState[e.From] != domain.NodeCompleted {
				ok = false
				break
			}
			if e.When == Pass {
				if pass, _ := r.verdict(e.From); !pass {
					ok = false
					break
				}
			}
		}
		if ok {
			out = append(out, id)
		}
	}
	return out
}

func (r *taskRun) blocked() string {
	var parts []string
	for _, id := range r.p.order {
		if s := r.t.GraphState[id]; s != domain.NodeCompleted {
			parts = append(parts, id+" "+string(s))
		}
	}
	return strings.Join(parts, ", ")
}

// latest returns the artifact of node's run at the current fix round.
func (r *taskRun) latest(node string) (domain.Artifact, bool) {
	a, ok := r.arts[node][r.p.iteration(node, r.t.FixIteration)]
	return a, ok
}

// verdict applies node's check to its current artifact.
func (r *taskRun) verdict(node string) (bool, []string) {
	n := r.p.nodes[node]
	if n.Check == nil {
		return true, nil
	}
	a, ok := r.latest(node)
	if !ok {
		return false, []string{node + ": no output"}
	}
	return n.Check(a.Output)
}

// findingsAt returns the findings of every failing check at a fix round.
func (r *taskRun) findingsAt(round int) []string {
	var all []string
	for _, c := range r.p.checks {
		a, ok := r.arts[c][r.p.iteration(c, round)]
		if !ok {
			continue
		}
		if pass, f := r.p.nodes[c].Check(a.Output); !pass {
			all = append(all, f...)
		}
	}
	slices.Sort(all)
	return all
}

// fixLoop decides, once every check of the round completed, whether the work
// goes back to the fix target. It returns again=true to keep scheduling.
func (r *taskRun) fixLoop(ctx context.Context) (again bool, err error) {
	p := r.p
	if p.target == "" {
		return true, nil
	}
	for _, c := range p.checks {
		if r.t.GraphState[c] != domain.NodeCompleted {
			return true, nil
		}
	}
	round := r.t.FixIteration
	findings := r.findingsAt(round)
	if len(findings) == 0 {
		return true, nil
	}
	var failing []string
	for _, c := range p.checks {
		if pass, _ := r.verdict(c); !pass {
			failing = append(failing, c)
		}
	}
	max := r.e.maxFixRounds()
	reason := ""
	switch {
	case round >= max:
		reason = fmt.Sprintf("still failing after %d fix rounds (MAX_FIX_ITERATIONS=%d): %s", round, max, summarize(findings))
	case round > 0 && slices.Equal(findings, r.findingsAt(round-1)):
		reason = fmt.Sprintf("fix loop stalled: fix round %d left the same failures as the round before, stopping early: %s", round, summarize(findings))
	}
	if reason != "" {
		return false, r.finish(ctx, domain.TaskFailed, reason, func(t *domain.Task) {
			for _, c := range failing {
				t.GraphState[c] = domain.NodeFailed
			}
		})
	}
	t, err := r.update(ctx, func(t *domain.Task) error {
		if t.FixIteration != round {
			return nil
		}
		t.FixIteration = round + 1
		for id := range p.body {
			t.GraphState[id] = domain.NodePending
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	r.t = t
	r.em.log(ctx, "System", agent.Warn, fmt.Sprintf("Fix round %d of %d: %s sent the work back to %s: %s",
		round+1, max, strings.Join(failing, " and "), p.target, summarize(findings)))
	return true, nil
}

func summarize(findings []string) string {
	const show = 5
	s := strings.Join(findings[:min(len(findings), show)], "; ")
	if len(findings) > show {
		s += fmt.Sprintf("; and %d more", len(findings)-show)
	}
	return s
}

func (r *taskRun) overBudget() (string, bool) {
	limit := r.e.cfg.MaxTaskCost
	if limit <= 0 || r.t.Cost <= limit {
		return "", false
	}
	return fmt.Sprintf("budget exceeded: task cost $%.4f is over MAX_TASK_COST $%.4f", r.t.Cost, limit), true
}

// update applies mutate to the running task; errNotRunning if it was
// cancelled (or finished) meanwhile.
func (r *taskRun) update(ctx context.Context, mutate func(*domain.Task) error) (domain.Task, error) {
	return r.e.opt.Store.UpdateTask(context.WithoutCancel(ctx), r.t.ID, func(t *domain.Task) error {
		if t.Status != domain.TaskRunning {
			return errNotRunning
		}
		return mutate(t)
	})
}

// start marks node running and runs its step in a goroutine.
func (r *taskRun) start(ctx context.Context, id string) error {
	n := r.p.nodes[id]
	it := r.p.iteration(id, r.t.FixIteration)
	t, err := r.update(ctx, func(t *domain.Task) error {
		t.GraphState[id] = domain.NodeRunning
		return nil
	})
	if err != nil {
		return err
	}
	r.t = t
	msg := n.Agent + " started"
	if it > 1 {
		msg += fmt.Sprintf(" (run %d)", it)
	}
	r.em.nodeState(ctx, n, domain.NodeRunning, it, msg)

	em, taskID := r.em, r.t.ID
	in := agent.Input{
		Task:      r.t,
		Node:      id,
		Iteration: it,
		Artifacts: map[string]domain.Artifact{},
		Log: func(level, msg string) {
			em.log(ctx, n.Agent, level, msg)
		},
		Delta: func(text string) {
			if rec := r.e.opt.Recorder; rec != nil {
				rec.Delta(taskID, n.Agent, text)
			}
		},
	}
	for _, other := range r.p.order {
		if r.t.GraphState[other] == domain.NodeCompleted {
			if a, ok := r.latest(other); ok {
				in.Artifacts[other] = a
			}
		}
	}
	if id == r.p.target && r.t.FixIteration > 0 {
		for _, c := range r.p.checks {
			a, ok := r.arts[c][r.p.iteration(c, r.t.FixIteration-1)]
			if !ok {
				continue
			}
			if pass, f := r.p.nodes[c].Check(a.Output); !pass {
				in.Feedback = append(in.Feedback, agent.Feedback{Node: c, Findings: f, Artifact: a})
			}
		}
	}
	timeout := r.e.cfg.AgentTimeout
	nctx, cancel := context.WithCancel(ctx)
	if timeout > 0 {
		nctx, cancel = context.WithTimeout(ctx, timeout)
	}
	r.running[id] = it
	r.cancels[id] = cancel
	go func() {
		started := time.Now()
		out, err := runStep(nctx, n.Step, in)
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

// complete persists a node's result: its artifact, then (in one update) its
// completed state and its cost, so a resumed task never counts it twice.
func (r *taskRun) complete(ctx context.Context, res nodeResult) error {
	n := r.p.nodes[res.node]
	if res.err != nil {
		if ctx.Err() != nil {
			return nil // cancelled or shutting down: the loop stops
		}
		msg := res.err.Error()
		if res.timedOut {
			msg = fmt.Sprintf("timed out after %s (AGENT_TIMEOUT)", r.e.cfg.AgentTimeout)
		}
		r.stopNodes()
		r.em.nodeState(ctx, n, domain.NodeFailed, res.iteration, n.Agent+" failed: "+msg)
		return r.finish(ctx, domain.TaskFailed, res.node+": "+msg, func(t *domain.Task) {
			t.GraphState[res.node] = domain.NodeFailed
		})
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
	t, err := r.update(ctx, func(t *domain.Task) error {
		if t.GraphState[res.node] == domain.NodeCompleted {
			return nil // already counted
		}
		t.GraphState[res.node] = domain.NodeCompleted
		if t.NodeCosts == nil {
			t.NodeCosts = map[string]float64{}
		}
		t.NodeCosts[res.node] += out.Cost
		t.Cost = 0
		for _, c := range t.NodeCosts {
			t.Cost += c
		}
		if out.Provider != "" {
			t.Provider = out.Provider
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.t = t
	if r.arts[res.node] == nil {
		r.arts[res.node] = map[int]domain.Artifact{}
	}
	r.arts[res.node][res.iteration] = a
	if !r.em.offline && t.Provider != "" && strings.Contains(t.Provider, "offline") {
		r.em = r.e.emitter(t)
	}
	msg := fmt.Sprintf("%s completed in %s", n.Agent, time.Since(res.startedAt).Round(time.Millisecond))
	if n.Check != nil {
		if pass, f := n.Check(out.Artifact); !pass {
			msg += fmt.Sprintf(" (%d findings)", len(f))
		}
	}
	r.em.nodeState(ctx, n, domain.NodeCompleted, res.iteration, msg)
	if out.Cost != 0 {
		r.em.cost(ctx, t, n)
	}
	if reason, over := r.overBudget(); over {
		r.stopNodes()
		return r.finish(ctx, domain.TaskFailed, reason, nil)
	}
	return nil
}

// finish ends the task; task_state is its last event.
func (r *taskRun) finish(ctx context.Context, status domain.TaskStatus, reason string, mutate func(*domain.Task)) error {
	now := time.Now().UTC()
	t, err := r.update(ctx, func(t *domain.Task) error {
		t.Status = status
		t.Error = reason
		t.FinishedAt = &now
		if mutate != nil {
			mutate(t)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.t = t
	elapsed := time.Since(r.started).Round(time.Millisecond)
	if status == domain.TaskCompleted {
		r.em.log(ctx, "System", agent.Info, fmt.Sprintf("Task completed in %s, cost $%.4f", elapsed, t.Cost))
	} else {
		r.em.log(ctx, "System", agent.Error, fmt.Sprintf("Task failed after %s: %s", elapsed, reason))
	}
	r.em.taskState(ctx, t)
	return nil
}
