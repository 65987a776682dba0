package graph

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
)

// A stub build graph whose checks fail on {"fail":true} with its findings.
func stubPlan(t *testing.T) *Plan {
	t.Helper()
	g := Build()
	for i := range g.Nodes {
		if g.Nodes[i].Check != nil {
			g.Nodes[i].Check = func(raw json.RawMessage) (bool, []string) {
				var v struct {
					Fail     bool
					Findings []string
				}
				json.Unmarshal(raw, &v)
				return !v.Fail, v.Findings
			}
		}
	}
	p, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func runningTask(p *Plan, states map[string]domain.NodeState, round int) domain.Task {
	tk := domain.NewTask("t", "p", "x", domain.KindBuild, p.Order, time.Now())
	tk.Status = domain.TaskRunning
	for n, s := range states {
		tk.GraphState[n] = s
	}
	tk.FixIteration = round
	return tk
}

func art(node string, it int, doc string) domain.Artifact {
	return domain.Artifact{Node: node, Iteration: it, Output: json.RawMessage(doc)}
}

const (
	done = domain.NodeCompleted
	pend = domain.NodePending
	run  = domain.NodeRunning
)

func TestNextWalksTheGraph(t *testing.T) {
	p := stubPlan(t)
	lim := Limits{MaxFixRounds: 3}
	tk := runningTask(p, nil, 0)
	if a := Next(p, tk, Artifacts{}, nil, lim); a.Kind != Start || !slices.Equal(a.Nodes, []string{"planner"}) {
		t.Fatalf("first: %+v", a)
	}
	// tester and reviewer start together once the coder completed.
	tk = runningTask(p, map[string]domain.NodeState{"planner": done, "architect": done, "coder": done}, 0)
	if a := Next(p, tk, Artifacts{}, nil, lim); a.Kind != Start || !slices.Equal(a.Nodes, []string{"tester", "reviewer"}) {
		t.Fatalf("checks: %+v", a)
	}
	// One check running, the other done and passing: wait.
	tk = runningTask(p, map[string]domain.NodeState{"planner": done, "architect": done, "coder": done, "tester": done, "reviewer": run}, 0)
	arts := Index([]domain.Artifact{art("tester", 1, `{}`)})
	if a := Next(p, tk, arts, map[string]bool{"reviewer": true}, lim); a.Kind != Wait {
		t.Fatalf("wait: %+v", a)
	}
	// Everything completed: finish completed.
	all := map[string]domain.NodeState{}
	for _, n := range p.Order {
		all[n] = done
	}
	if a := Next(p, runningTask(p, all, 0), Artifacts{}, nil, lim); a.Kind != Finish || a.Status != domain.TaskCompleted {
		t.Fatalf("end: %+v", a)
	}
	// Nothing can run, nothing runs: fail, naming what is stuck.
	stuck := runningTask(p, map[string]domain.NodeState{"planner": domain.NodeFailed}, 0)
	if a := Next(p, stuck, Artifacts{}, nil, lim); a.Kind != Finish || a.Status != domain.TaskFailed || !strings.Contains(a.Reason, "planner failed") {
		t.Fatalf("stuck: %+v", a)
	}
}

func checksDone(p *Plan, round int) domain.Task {
	return runningTask(p, map[string]domain.NodeState{"planner": done, "architect": done, "coder": done, "tester": done, "reviewer": done}, round)
}

func TestFixLoop(t *testing.T) {
	p := stubPlan(t)
	failing := func(round int, finding string) Artifacts {
		a := Artifacts{}
		for r := 0; r <= round; r++ {
			f := finding
			if r < round {
				f = finding + " (round " + string(rune('0'+r)) + ")"
			}
			a.Put(art("tester", r+1, `{"fail":true,"findings":["`+f+`"]}`))
			a.Put(art("reviewer", r+1, `{}`))
		}
		return a
	}
	// A failing check starts a fix round that resets the loop body.
	a := Next(p, checksDone(p, 0), failing(0, "x"), nil, Limits{MaxFixRounds: 3})
	if a.Kind != StartFixRound || a.Round != 0 || a.Fix.Target != "coder" || !slices.Equal(a.Fix.Failing, []string{"tester"}) ||
		!slices.Equal(a.Fix.Reset, []string{"coder", "tester", "reviewer"}) || a.Fix.Max != 3 {
		t.Fatalf("fix round: %+v", a)
	}
	// The bound: after MaxFixRounds rounds the task fails with the findings.
	a = Next(p, checksDone(p, 3), failing(3, "x"), nil, Limits{MaxFixRounds: 3})
	if a.Kind != Finish || a.Status != domain.TaskFailed || !strings.Contains(a.Reason, "still failing after 3 fix rounds") ||
		!slices.Equal(a.FailNodes, []string{"tester"}) {
		t.Fatalf("bound: %+v", a)
	}
	// MAX_FIX_ITERATIONS=0 means no fix round at all.
	a = Next(p, checksDone(p, 0), failing(0, "x"), nil, Limits{MaxFixRounds: 0})
	if a.Kind != Finish || !strings.Contains(a.Reason, "MAX_FIX_ITERATIONS=0") {
		t.Fatalf("no fix rounds: %+v", a)
	}
	// A stall: the round left exactly the findings of the round before.
	stall := Artifacts{}
	for r := 1; r <= 2; r++ {
		stall.Put(art("tester", r, `{"fail":true,"findings":["same"]}`))
		stall.Put(art("reviewer", r, `{}`))
	}
	a = Next(p, checksDone(p, 1), stall, nil, Limits{MaxFixRounds: 3})
	if a.Kind != Finish || !strings.Contains(a.Reason, "fix loop stalled") {
		t.Fatalf("stall: %+v", a)
	}
	// Passing checks: the deployer runs.
	ok := Artifacts{}
	ok.Put(art("tester", 1, `{}`))
	ok.Put(art("reviewer", 1, `{}`))
	if a := Next(p, checksDone(p, 0), ok, nil, Limits{}); a.Kind != Start || !slices.Equal(a.Nodes, []string{"deployer"}) {
		t.Fatalf("pass: %+v", a)
	}
}

func TestBudget(t *testing.T) {
	p := stubPlan(t)
	tk := runningTask(p, map[string]domain.NodeState{"planner": done}, 0)
	tk.Cost = 1.5
	a := Next(p, tk, Artifacts{}, map[string]bool{"architect": true}, Limits{MaxFixRounds: 3, MaxCost: 1})
	if a.Kind != Finish || a.Status != domain.TaskFailed || !strings.Contains(a.Reason, "budget exceeded") {
		t.Fatalf("over budget, even with a node running: %+v", a)
	}
	if a := Next(p, tk, Artifacts{}, nil, Limits{MaxCost: 0}); a.Kind != Start {
		t.Fatalf("no budget: %+v", a)
	}
}

func TestRetryPlanForEachEnd(t *testing.T) {
	p := stubPlan(t)
	// A step error: the failed node runs again, nothing else.
	tk := runningTask(p, map[string]domain.NodeState{"planner": done, "architect": domain.NodeFailed}, 0)
	tk.Status = domain.TaskFailed
	reset, extra, at := RetryPlan(p, tk, Artifacts{})
	if extra || at != "architect" || !slices.Contains(reset, "architect") || slices.Contains(reset, "planner") {
		t.Fatalf("step error: %v %v %s", reset, extra, at)
	}
	// Cancelled mid-run: the interrupted node resumes.
	tk = runningTask(p, map[string]domain.NodeState{"planner": done, "architect": done, "coder": pend}, 0)
	tk.Status = domain.TaskCancelled
	if _, extra, at := RetryPlan(p, tk, Artifacts{}); extra || at != "coder" {
		t.Fatalf("cancelled: %v %s", extra, at)
	}
	// The fix loop ran out: one more round, the loop body runs again.
	tk = checksDone(p, 3)
	tk.GraphState["tester"] = domain.NodeFailed
	tk.Status = domain.TaskFailed
	arts := Artifacts{}
	arts.Put(art("tester", 4, `{"fail":true,"findings":["x"]}`))
	reset, extra, at = RetryPlan(p, tk, arts)
	if !extra || at != "coder" || !slices.Equal(reset, []string{"coder", "tester", "reviewer"}) || tk.GraphState["deployer"] != pend {
		t.Fatalf("ran out: %v %v %s", reset, extra, at)
	}
}
