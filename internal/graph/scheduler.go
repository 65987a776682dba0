package graph

import (
	"fmt"
	"slices"
	"strings"

	"github.com/catalyst/catalyst/internal/domain"
)

// Artifacts are a task's stored artifacts by node and iteration.
type Artifacts map[string]map[int]domain.Artifact

// Index groups a task's artifact list.
func Index(list []domain.Artifact) Artifacts {
	arts := Artifacts{}
	for _, a := range list {
		arts.Put(a)
	}
	return arts
}

// Put adds a.
func (a Artifacts) Put(x domain.Artifact) {
	if a[x.Node] == nil {
		a[x.Node] = map[int]domain.Artifact{}
	}
	a[x.Node][x.Iteration] = x
}

// Limits bound a run. Zero values are meaningful: MaxFixRounds 0 means no
// fix round at all, MaxCost 0 means no budget.
type Limits struct {
	MaxFixRounds int
	MaxCost      float64
}

// ActionKind is what the driver does next.
type ActionKind int

const (
	// Wait for a running node to return.
	Wait ActionKind = iota
	// Start the nodes in Action.Nodes.
	Start
	// StartFixRound sends the work back to the fix target (Action.Fix).
	StartFixRound
	// Finish ends the task with Action.Status, Action.Reason, failing
	// Action.FailNodes; running nodes are stopped first.
	Finish
)

// Action is the scheduler's decision.
type Action struct {
	Kind      ActionKind
	Nodes     []string
	Fix       domain.FixRound
	Round     int
	Status    domain.TaskStatus
	Reason    string
	FailNodes []string
}

// Next decides what happens to t: running holds the nodes in flight in
// this run. It is a pure function of its arguments.
func Next(p *Plan, t domain.Task, arts Artifacts, running map[string]bool, lim Limits) Action {
	if lim.MaxCost > 0 && t.Cost > lim.MaxCost {
		return Action{Kind: Finish, Status: domain.TaskFailed,
			Reason: fmt.Sprintf("budget exceeded: task cost $%.4f is over MAX_TASK_COST $%.4f", t.Cost, lim.MaxCost)}
	}
	if len(running) == 0 {
		if allDone(p, t) {
			return Action{Kind: Finish, Status: domain.TaskCompleted}
		}
		if a, ok := fixLoop(p, t, arts, lim); ok {
			return a
		}
	}
	if ready := Ready(p, t, arts, running); len(ready) > 0 {
		return Action{Kind: Start, Nodes: ready}
	}
	if len(running) > 0 {
		return Action{Kind: Wait}
	}
	return Action{Kind: Finish, Status: domain.TaskFailed, Reason: "no node can run: " + blocked(p, t)}
}

func allDone(p *Plan, t domain.Task) bool {
	for _, id := range p.Order {
		if s := t.GraphState[id]; s != domain.NodeCompleted && s != domain.NodeSkipped {
			return false
		}
	}
	return true
}

// Ready lists the pending nodes, not running, whose incoming edges are
// satisfied.
func Ready(p *Plan, t domain.Task, arts Artifacts, running map[string]bool) []string {
	var out []string
	for _, id := range p.Order {
		if t.GraphState[id] != domain.NodePending || running[id] {
			continue
		}
		ok := true
		for _, e := range p.Graph.Edges {
			if e.To != id || e.When == Fail {
				continue
			}
			if t.GraphState[e.From] != domain.NodeCompleted {
				ok = false
				break
			}
			if e.When == Pass {
				if pass, _ := Verdict(p, t, arts, e.From); !pass {
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

func blocked(p *Plan, t domain.Task) string {
	var parts []string
	for _, id := range p.Order {
		if s := t.GraphState[id]; s != domain.NodeCompleted {
			parts = append(parts, id+" "+string(s))
		}
	}
	return strings.Join(parts, ", ")
}

// Latest returns node's artifact at t's current fix round.
func Latest(p *Plan, t domain.Task, arts Artifacts, node string) (domain.Artifact, bool) {
	a, ok := arts[node][p.Iteration(node, t.FixIteration)]
	return a, ok
}

// Verdict applies node's check to its current artifact.
func Verdict(p *Plan, t domain.Task, arts Artifacts, node string) (bool, []string) {
	n := p.nodes[node]
	if n == nil || n.Check == nil {
		return true, nil
	}
	a, ok := Latest(p, t, arts, node)
	if !ok {
		return false, []string{node + ": no output"}
	}
	return n.Check(a.Output)
}

// FindingsAt returns the sorted findings of every failing check at a round.
func FindingsAt(p *Plan, arts Artifacts, round int) []string {
	var all []string
	for _, c := range p.Checks {
		a, ok := arts[c][p.Iteration(c, round)]
		if !ok {
			continue
		}
		if pass, f := p.nodes[c].Check(a.Output); !pass {
			all = append(all, f...)
		}
	}
	slices.Sort(all)
	return all
}

// Feedback returns, for the fix target in a fix round, each failing check of
// the previous round with its findings and artifact.
func Feedback(p *Plan, t domain.Task, arts Artifacts) []CheckResult {
	if t.FixIteration == 0 {
		return nil
	}
	var out []CheckResult
	for _, c := range p.Checks {
		a, ok := arts[c][p.Iteration(c, t.FixIteration-1)]
		if !ok {
			continue
		}
		if pass, f := p.nodes[c].Check(a.Output); !pass {
			out = append(out, CheckResult{Node: c, Findings: f, Artifact: a})
		}
	}
	return out
}

// CheckResult is one failing check's verdict.
type CheckResult struct {
	Node     string
	Findings []string
	Artifact domain.Artifact
}

// fixLoop decides, once every check of the round completed with findings,
// whether the work goes back to the target or the task fails (bound
// reached, or the round left the same findings as the one before: a stall).
func fixLoop(p *Plan, t domain.Task, arts Artifacts, lim Limits) (Action, bool) {
	if p.Target == "" {
		return Action{}, false
	}
	for _, c := range p.Checks {
		if t.GraphState[c] != domain.NodeCompleted {
			return Action{}, false
		}
	}
	round := t.FixIteration
	findings := FindingsAt(p, arts, round)
	if len(findings) == 0 {
		return Action{}, false
	}
	var failing []string
	for _, c := range p.Checks {
		if pass, _ := Verdict(p, t, arts, c); !pass {
			failing = append(failing, c)
		}
	}
	max := lim.MaxFixRounds
	switch {
	case round >= max:
		return Action{Kind: Finish, Status: domain.TaskFailed, FailNodes: failing,
			Reason: fmt.Sprintf("still failing after %d fix rounds (MAX_FIX_ITERATIONS=%d): %s", round, max, domain.Summarize(findings))}, true
	case round > 0 && slices.Equal(findings, FindingsAt(p, arts, round-1)):
		return Action{Kind: Finish, Status: domain.TaskFailed, FailNodes: failing,
			Reason: fmt.Sprintf("fix loop stalled: fix round %d left the same failures as the round before, stopping early: %s", round, domain.Summarize(findings))}, true
	}
	return Action{Kind: StartFixRound, Round: round, Fix: domain.FixRound{
		Target: p.Target, Failing: failing, Findings: findings, Reset: p.BodyNodes(), Max: max}}, true
}

// RetryPlan decides how a failed or cancelled task resumes: the nodes to run
// again (unfinished ones) and whether it gets one more fix round (its fix
// loop ran out or stalled: a check failed with findings after the target
// completed), in which case the loop body runs again.
func RetryPlan(p *Plan, t domain.Task, arts Artifacts) (reset []string, extraRound bool, resumeAt string) {
	if p.Target != "" && t.GraphState[p.Target] == domain.NodeCompleted {
		for _, c := range p.Checks {
			if t.GraphState[c] != domain.NodeFailed {
				continue
			}
			if a, ok := arts[c][p.Iteration(c, t.FixIteration)]; ok {
				if pass, _ := p.nodes[c].Check(a.Output); !pass {
					extraRound = true
				}
			}
		}
	}
	after := t
	after.GraphState = map[string]domain.NodeState{}
	for _, id := range p.Order {
		s := t.GraphState[id]
		if s == domain.NodeFailed || s == domain.NodeRunning || s == "" || (extraRound && p.Body[id]) {
			reset = append(reset, id)
			s = domain.NodePending
		}
		after.GraphState[id] = s
	}
	return reset, extraRound, after.FirstUnfinished(p.Order)
}
