package domain

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Task kinds select a graph from the registry (package graph).
const (
	KindBuild   = "build"
	KindExplore = "explore"
	KindChange  = "change"
)

// KindOf returns t's kind; documents written before kinds existed are builds.
func (t Task) KindOf() string {
	if t.Kind == "" {
		return KindBuild
	}
	return t.Kind
}

// Errors of the transitions. ErrLeaseHeld and ErrLeaseLost wrap ErrConflict,
// so the API answers 409 for them like for any other refused transition.
var (
	// ErrLeaseHeld: another process holds a live lease on the task.
	ErrLeaseHeld = fmt.Errorf("%w: task is owned by another process", ErrConflict)
	// ErrLeaseLost: the caller no longer owns the task (it was cancelled,
	// finished, or taken over after the caller's lease expired).
	ErrLeaseLost = fmt.Errorf("%w: task is no longer owned by this process", ErrConflict)
)

// Change is an event implied by a transition. The caller stores the task
// first, then records its changes in order (package events gives them their
// sequence numbers).
type Change struct {
	Type    EventType
	Agent   string
	Level   string
	Message string
	Data    map[string]any
}

// Levels of events.
const (
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
)

// System is the agent name of events no agent produced.
const System = "System"

// Served names the LLM that answered a step.
type Served struct {
	Provider, Model string
	Offline         bool
}

// Label is how people read it: "anthropic/claude-...", or the offline label.
func (s Served) Label() string {
	switch {
	case s.Offline:
		return OfflineLabel
	case s.Provider == "":
		return ""
	case s.Model == "":
		return s.Provider
	}
	return s.Provider + "/" + s.Model
}

// OfflineLabel is how every UI names the offline provider.
const OfflineLabel = "offline provider (no LLM configured)"

// Served returns who answered t.
func (t Task) Served() Served {
	return Served{Provider: t.Provider, Model: t.Model, Offline: t.Offline}
}

// NormalizeServed reads documents written when who served a task was one
// label ("anthropic/claude-...", or the offline label) into the fields.
func (t *Task) NormalizeServed() {
	switch {
	case t.Provider == OfflineLabel:
		t.Provider, t.Model, t.Offline = "offline", "", true
	case t.Model == "" && strings.Contains(t.Provider, "/"):
		t.Provider, t.Model, _ = strings.Cut(t.Provider, "/")
	}
}

// SetServed records who answered; a zero Served changes nothing.
func (t *Task) SetServed(s Served) {
	if s.Provider == "" && !s.Offline {
		return
	}
	t.Provider, t.Model, t.Offline = s.Provider, s.Model, s.Offline
}

// NewTask returns a pending task of kind whose graph has nodes, every node
// pending.
func NewTask(id, projectID, prompt, kind string, nodes []string, now time.Time) Task {
	return Task{
		ID: id, ProjectID: projectID, Prompt: prompt, Kind: kind,
		GraphState: NewGraphState(nodes),
		Status:     TaskPending,
		CreatedAt:  now, UpdatedAt: now,
	}
}

// LeaseLive reports whether someone holds t's lease at now.
func (t Task) LeaseLive(now time.Time) bool {
	return t.LeaseOwner != "" && t.LeaseExpiresAt != nil && now.Before(*t.LeaseExpiresAt)
}

// Reserve gives owner the lease of a pending task it is about to run, so
// that no other process claims the task first (the submitting process runs
// what it submitted). Claim by the same owner then succeeds.
func (t *Task) Reserve(owner string, now time.Time, ttl time.Duration) {
	exp := now.Add(ttl)
	t.LeaseOwner, t.LeaseExpiresAt = owner, &exp
}

// Claim makes owner the runner of a pending or running task. A live lease of
// another owner is never taken (ErrLeaseHeld); an expired one is, and the
// task resumes at its first unfinished node: nodes left running were
// interrupted and are pending again. order is the graph's nodes in
// topological order.
func (t *Task) Claim(owner string, now time.Time, ttl time.Duration, order []string) ([]Change, error) {
	if t.Status != TaskPending && t.Status != TaskRunning {
		return nil, fmt.Errorf("%w: task %s is %s, not runnable", ErrConflict, t.ID, t.Status)
	}
	if t.LeaseLive(now) && t.LeaseOwner != owner {
		return nil, ErrLeaseHeld
	}
	previous := t.LeaseOwner
	resumed := t.Status == TaskRunning
	t.Status = TaskRunning
	if t.StartedAt == nil {
		at := now
		t.StartedAt = &at
	}
	t.Reserve(owner, now, ttl)
	if t.GraphState == nil {
		t.GraphState = map[string]NodeState{}
	}
	for _, n := range order {
		if s := t.GraphState[n]; s == "" || s == NodeRunning {
			t.GraphState[n] = NodePending
		}
	}
	first := t.FirstUnfinished(order)
	var msg string
	switch {
	case resumed && previous != "" && previous != owner:
		msg = fmt.Sprintf("Resuming at %s: the previous runner's lease expired, this process took the task over (completed nodes are not run again)", first)
	case resumed:
		msg = fmt.Sprintf("Resuming at %s (completed nodes are not run again)", first)
	case len(order) > 0 && first != order[0]:
		msg = "Starting at " + first
	default:
		msg = "Task started"
		if l := t.Served().Label(); l != "" {
			msg += " with " + l
		}
	}
	return []Change{
		{Type: EventLog, Agent: System, Level: LevelInfo, Message: msg},
		t.stateChange(),
	}, nil
}

// FirstUnfinished names the first node of order that is neither completed
// nor skipped ("the end" when there is none).
func (t Task) FirstUnfinished(order []string) string {
	for _, id := range order {
		if s := t.GraphState[id]; s != NodeCompleted && s != NodeSkipped {
			return id
		}
	}
	return "the end"
}

// owned checks that owner runs t.
func (t *Task) owned(owner string) error {
	if t.Status != TaskRunning || t.LeaseOwner != owner {
		return ErrLeaseLost
	}
	return nil
}

// Renew extends owner's lease (the heartbeat).
func (t *Task) Renew(owner string, now time.Time, ttl time.Duration) error {
	if err := t.owned(owner); err != nil {
		return err
	}
	t.Reserve(owner, now, ttl)
	return nil
}

// Release gives up owner's lease without changing the status: a running
// task is then free for any process to resume at once (a clean shutdown).
func (t *Task) Release(owner string) error {
	if t.LeaseOwner != owner {
		return ErrLeaseLost
	}
	t.LeaseOwner, t.LeaseExpiresAt = "", nil
	return nil
}

// StartNode marks node running.
func (t *Task) StartNode(owner, node, agent string, iteration int) ([]Change, error) {
	if err := t.owned(owner); err != nil {
		return nil, err
	}
	if t.GraphState[node] != NodePending {
		return nil, fmt.Errorf("%w: node %s is %s, not pending", ErrConflict, node, t.GraphState[node])
	}
	t.GraphState[node] = NodeRunning
	msg := agent + " started"
	if iteration > 1 {
		msg += fmt.Sprintf(" (run %d)", iteration)
	}
	return []Change{nodeChange(node, agent, NodeRunning, iteration, msg)}, nil
}

// CompleteNode marks node completed and adds its cost, once: completing a
// node that is already completed changes nothing, so a resumed run never
// counts a cost twice. note is appended to the message ("in 1.2s").
func (t *Task) CompleteNode(owner, node, agent string, iteration int, cost float64, served Served, note string) ([]Change, error) {
	if err := t.owned(owner); err != nil {
		return nil, err
	}
	if t.GraphState[node] == NodeCompleted {
		return nil, nil
	}
	t.GraphState[node] = NodeCompleted
	if t.NodeCosts == nil {
		t.NodeCosts = map[string]float64{}
	}
	t.NodeCosts[node] += cost
	t.Cost = 0
	for _, c := range t.NodeCosts {
		t.Cost += c
	}
	t.SetServed(served)
	msg := agent + " completed"
	if note != "" {
		msg += " " + note
	}
	out := []Change{nodeChange(node, agent, NodeCompleted, iteration, msg)}
	if cost != 0 {
		out = append(out, Change{Type: EventCost, Agent: agent, Level: LevelInfo,
			Message: fmt.Sprintf("Cost so far $%.4f (%s $%.4f)", t.Cost, node, t.NodeCosts[node]),
			Data:    map[string]any{"cost": t.Cost, "node": node, "node_cost": t.NodeCosts[node]}})
	}
	return out, nil
}

// FixRound describes the checks that sent the work back.
type FixRound struct {
	Target   string   // the node the work goes back to (coder)
	Failing  []string // the checks that failed
	Findings []string // their findings, summarized
	Reset    []string // the loop body: nodes pending again
	Max      int      // the bound (MAX_FIX_ITERATIONS)
}

// StartFixRound sends the work back: the fix iteration goes from round to
// round+1 and the loop body's nodes are pending again, which a fix_round
// event says, so no client has to guess why completed nodes run again.
func (t *Task) StartFixRound(owner string, round int, fr FixRound) ([]Change, error) {
	if err := t.owned(owner); err != nil {
		return nil, err
	}
	if t.FixIteration != round {
		return nil, fmt.Errorf("%w: fix round %d already started", ErrConflict, t.FixIteration)
	}
	t.FixIteration = round + 1
	reset := slices.Clone(fr.Reset)
	slices.Sort(reset)
	for _, id := range reset {
		t.GraphState[id] = NodePending
	}
	msg := fmt.Sprintf("Fix round %d of %d: %s sent the work back to %s: %s",
		t.FixIteration, fr.Max, joinAnd(fr.Failing), fr.Target, Summarize(fr.Findings))
	return []Change{{Type: EventFixRound, Agent: System, Level: LevelWarn, Message: msg, Data: map[string]any{
		"round": t.FixIteration, "max": fr.Max, "target": fr.Target, "failing": fr.Failing,
		"reset": reset, "findings": fr.Findings,
	}}}, nil
}

// Finish ends a running task with status; failNodes are marked failed and
// nodes still running go back to pending. note is the closing log line
// (elapsed time, cost); the task_state event is always the last change.
func (t *Task) Finish(owner string, status TaskStatus, reason string, failNodes []string, now time.Time, note string) ([]Change, error) {
	if err := t.owned(owner); err != nil {
		return nil, err
	}
	if !status.Terminal() {
		return nil, fmt.Errorf("%w: %s is not a terminal status", ErrInvalid, status)
	}
	t.end(status, reason, now, NodePending)
	for _, n := range failNodes {
		t.GraphState[n] = NodeFailed
	}
	level := LevelInfo
	if status != TaskCompleted {
		level = LevelError
	}
	var out []Change
	if note != "" {
		out = append(out, Change{Type: EventLog, Agent: System, Level: level, Message: note})
	}
	return append(out, t.stateChange()), nil
}

// Fail ends a pending or running task from outside its run (it could not be
// queued; its runs kept breaking off): any process may do it.
func (t *Task) Fail(reason string, now time.Time) ([]Change, error) {
	if t.Status != TaskPending && t.Status != TaskRunning {
		return nil, fmt.Errorf("%w: task %s is %s", ErrConflict, t.ID, t.Status)
	}
	t.end(TaskFailed, reason, now, NodeFailed)
	return []Change{
		{Type: EventLog, Agent: System, Level: LevelError, Message: "Task failed: " + reason},
		t.stateChange(),
	}, nil
}

// Cancel is the stored request to stop a pending or running task: any
// process may make it, and the task's owner stops within a second of
// seeing it. Nodes that were running are pending again, so a retry runs
// them.
func (t *Task) Cancel(reason string, now time.Time) ([]Change, error) {
	if t.Status != TaskPending && t.Status != TaskRunning {
		return nil, fmt.Errorf("%w: task %s is %s, only pending or running tasks can be cancelled", ErrConflict, t.ID, t.Status)
	}
	t.end(TaskCancelled, reason, now, NodePending)
	return []Change{
		{Type: EventLog, Agent: System, Level: LevelWarn, Message: "Task cancelled"},
		t.stateChange(),
	}, nil
}

// Retry puts a failed or cancelled task back to pending. reset are the nodes
// to run again (the unfinished ones, or with an extra round the loop body);
// extraRound grants one more fix round to a task whose fix loop ran out.
func (t *Task) Retry(reset []string, extraRound bool, resumeAt string) ([]Change, error) {
	if t.Status != TaskFailed && t.Status != TaskCancelled {
		return nil, fmt.Errorf("%w: task %s is %s, only failed or cancelled tasks can be retried", ErrConflict, t.ID, t.Status)
	}
	t.Status = TaskPending
	t.Error = ""
	t.FinishedAt = nil
	t.LeaseOwner, t.LeaseExpiresAt = "", nil
	if t.GraphState == nil {
		t.GraphState = map[string]NodeState{}
	}
	for _, id := range reset {
		t.GraphState[id] = NodePending
	}
	if extraRound {
		t.FixIteration++
	}
	return []Change{
		{Type: EventLog, Agent: System, Level: LevelInfo, Message: "Retry requested: resuming at " + resumeAt},
		t.stateChange(),
	}, nil
}

// end moves t to a terminal status; running nodes become running.
func (t *Task) end(status TaskStatus, reason string, now time.Time, running NodeState) {
	t.Status = status
	t.Error = reason
	at := now
	t.FinishedAt = &at
	t.LeaseOwner, t.LeaseExpiresAt = "", nil
	for n, s := range t.GraphState {
		if s == NodeRunning {
			t.GraphState[n] = running
		}
	}
}

func (t *Task) stateChange() Change {
	level := LevelInfo
	msg := "Task " + string(t.Status)
	switch t.Status {
	case TaskFailed:
		level = LevelError
	case TaskCancelled:
		level = LevelWarn
	}
	if t.Error != "" {
		msg += ": " + t.Error
	}
	return Change{Type: EventTaskState, Agent: System, Level: level, Message: msg,
		Data: map[string]any{"status": t.Status, "error": t.Error}}
}

func nodeChange(node, agent string, state NodeState, iteration int, msg string) Change {
	level := LevelInfo
	if state == NodeFailed {
		level = LevelError
	}
	return Change{Type: EventNodeState, Agent: agent, Level: level, Message: msg,
		Data: map[string]any{"node": node, "state": state, "iteration": iteration}}
}

// FailNode marks a node failed (its step returned an error) and reports it.
// The task's end follows with Finish.
func (t *Task) FailNode(owner, node, agent string, iteration int, msg string) ([]Change, error) {
	if err := t.owned(owner); err != nil {
		return nil, err
	}
	t.GraphState[node] = NodeFailed
	return []Change{nodeChange(node, agent, NodeFailed, iteration, agent+" failed: "+msg)}, nil
}

// Summarize joins findings for one line, at most five of them.
func Summarize(findings []string) string {
	const show = 5
	s := ""
	for i, f := range findings[:min(len(findings), show)] {
		if i > 0 {
			s += "; "
		}
		s += f
	}
	if len(findings) > show {
		s += fmt.Sprintf("; and %d more", len(findings)-show)
	}
	return s
}

func joinAnd(xs []string) string {
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += " and "
		}
		s += x
	}
	return s
}

// IsLeaseError reports whether err says the caller does not own the task.
func IsLeaseError(err error) bool {
	return errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrLeaseHeld)
}
