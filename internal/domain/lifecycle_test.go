package domain

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

var order = []string{NodePlanner, NodeArchitect, NodeCoder, NodeTester, NodeReviewer, NodeDeployer}

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

const ttl = 10 * time.Second

func task(status TaskStatus) Task {
	t := NewTask("t1", "p1", "x", KindBuild, order, t0)
	t.Status = status
	return t
}

func running(owner string) Task {
	t := task(TaskPending)
	if _, err := t.Claim(owner, t0, ttl, order); err != nil {
		panic(err)
	}
	return t
}

var statuses = []TaskStatus{TaskPending, TaskRunning, TaskCompleted, TaskFailed, TaskCancelled}

// Every status × every action from outside the run: what is allowed, what is
// a conflict, and what each allowed one leaves behind.
func TestTransitionsByStatus(t *testing.T) {
	type act struct {
		name string
		do   func(*Task) ([]Change, error)
		ok   map[TaskStatus]TaskStatus // from -> to
	}
	acts := []act{
		{"claim", func(t *Task) ([]Change, error) { return t.Claim("me", t0, ttl, order) },
			map[TaskStatus]TaskStatus{TaskPending: TaskRunning, TaskRunning: TaskRunning}},
		{"cancel", func(t *Task) ([]Change, error) { return t.Cancel("cancelled by local user", t0) },
			map[TaskStatus]TaskStatus{TaskPending: TaskCancelled, TaskRunning: TaskCancelled}},
		{"fail", func(t *Task) ([]Change, error) { return t.Fail("no runner", t0) },
			map[TaskStatus]TaskStatus{TaskPending: TaskFailed, TaskRunning: TaskFailed}},
		{"retry", func(t *Task) ([]Change, error) { return t.Retry(nil, false, NodePlanner) },
			map[TaskStatus]TaskStatus{TaskFailed: TaskPending, TaskCancelled: TaskPending}},
	}
	for _, a := range acts {
		for _, st := range statuses {
			t.Run(fmt.Sprintf("%s %s", a.name, st), func(t *testing.T) {
				tk := task(st)
				if st == TaskRunning {
					tk.LeaseOwner = "" // running, nobody's lease live (a crashed owner)
				}
				changes, err := a.do(&tk)
				want, allowed := a.ok[st]
				if !allowed {
					if !errors.Is(err, ErrConflict) {
						t.Fatalf("want a conflict, got %v", err)
					}
					if tk.Status != st {
						t.Fatalf("a refused transition changed the status to %s", tk.Status)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if tk.Status != want {
					t.Fatalf("status %s, want %s", tk.Status, want)
				}
				last := changes[len(changes)-1]
				if last.Type != EventTaskState || last.Data["status"] != want {
					t.Fatalf("the last change is %+v, want task_state %s", last, want)
				}
				if want.Terminal() && (tk.FinishedAt == nil || tk.LeaseOwner != "") {
					t.Fatalf("terminal without finished_at or with a lease: %+v", tk)
				}
			})
		}
	}
}

func TestLeases(t *testing.T) {
	tk := running("a")
	if !tk.LeaseLive(t0) || tk.LeaseOwner != "a" {
		t.Fatalf("lease %+v", tk)
	}
	// A live lease is never taken.
	if _, err := tk.Claim("b", t0.Add(ttl/2), ttl, order); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("b took a live lease: %v", err)
	}
	// Only the owner renews; renewing moves the expiry.
	if err := tk.Renew("b", t0, ttl); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("b renewed a's lease: %v", err)
	}
	if err := tk.Renew("a", t0.Add(5*time.Second), ttl); err != nil || !tk.LeaseExpiresAt.Equal(t0.Add(15*time.Second)) {
		t.Fatalf("renew: %v %v", err, tk.LeaseExpiresAt)
	}
	// Node transitions need the lease.
	if _, err := tk.StartNode("b", NodePlanner, "Planner", 1); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("b started a node of a's task: %v", err)
	}
	if _, err := tk.StartNode("a", NodePlanner, "Planner", 1); err != nil {
		t.Fatal(err)
	}
	// Expired: b takes over; the interrupted node runs again.
	changes, err := tk.Claim("b", t0.Add(time.Minute), ttl, order)
	if err != nil || tk.LeaseOwner != "b" || tk.GraphState[NodePlanner] != NodePending {
		t.Fatalf("takeover: %v %+v", err, tk)
	}
	if changes[0].Message[:len("Resuming at planner")] != "Resuming at planner" {
		t.Fatalf("takeover message %q", changes[0].Message)
	}
	// a, which lost the lease, can change nothing any more.
	if _, err := tk.CompleteNode("a", NodePlanner, "Planner", 1, 1, Served{}, ""); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("the old owner completed a node: %v", err)
	}
	if _, err := tk.Finish("a", TaskCompleted, "", nil, t0, ""); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("the old owner finished the task: %v", err)
	}
	if err := tk.Release("a"); !errors.Is(err, ErrLeaseLost) {
		t.Fatal("the old owner released b's lease")
	}
	if err := tk.Release("b"); err != nil || tk.LeaseLive(t0) || tk.Status != TaskRunning {
		t.Fatalf("release: %v %+v", err, tk)
	}
}

// A node's cost counts once, however often its completion is stored.
func TestCompleteNodeCountsCostOnce(t *testing.T) {
	tk := running("a")
	tk.StartNode("a", NodePlanner, "Planner", 1)
	ch, err := tk.CompleteNode("a", NodePlanner, "Planner", 1, 0.25, Served{Provider: "anthropic", Model: "m"}, "in 1s")
	if err != nil || len(ch) != 2 || ch[1].Type != EventCost {
		t.Fatalf("%v %+v", err, ch)
	}
	again, err := tk.CompleteNode("a", NodePlanner, "Planner", 1, 0.25, Served{}, "")
	if err != nil || len(again) != 0 || tk.Cost != 0.25 || tk.NodeCosts[NodePlanner] != 0.25 {
		t.Fatalf("second completion: %v %+v cost %v", err, again, tk.Cost)
	}
	if tk.Served().Label() != "anthropic/m" {
		t.Fatalf("served %+v", tk.Served())
	}
}

func TestFixRoundEmitsWhatItResets(t *testing.T) {
	tk := running("a")
	for _, n := range []string{NodePlanner, NodeArchitect, NodeCoder, NodeTester, NodeReviewer} {
		tk.GraphState[n] = NodeCompleted
	}
	fr := FixRound{Target: NodeCoder, Failing: []string{NodeTester}, Findings: []string{"x fails"},
		Reset: []string{NodeTester, NodeCoder, NodeReviewer}, Max: 3}
	ch, err := tk.StartFixRound("a", 0, fr)
	if err != nil || tk.FixIteration != 1 {
		t.Fatalf("%v %d", err, tk.FixIteration)
	}
	for _, n := range fr.Reset {
		if tk.GraphState[n] != NodePending {
			t.Fatalf("%s not reset: %v", n, tk.GraphState)
		}
	}
	if tk.GraphState[NodePlanner] != NodeCompleted {
		t.Fatal("a node outside the loop was reset")
	}
	if len(ch) != 1 || ch[0].Type != EventFixRound || ch[0].Data["round"] != 1 || len(ch[0].Data["reset"].([]string)) != 3 {
		t.Fatalf("changes %+v", ch)
	}
	// The same round cannot start twice (a lost race re-applied).
	if _, err := tk.StartFixRound("a", 0, fr); !errors.Is(err, ErrConflict) {
		t.Fatalf("round started twice: %v", err)
	}
	// Cancel during the fix round: running nodes pending again, no lease.
	tk.StartNode("a", NodeCoder, "Coder", 2)
	if _, err := tk.Cancel("cancelled by local user", t0); err != nil {
		t.Fatal(err)
	}
	if tk.Status != TaskCancelled || tk.GraphState[NodeCoder] != NodePending || tk.FixIteration != 1 || tk.LeaseOwner != "" {
		t.Fatalf("after cancel %+v", tk)
	}
	// Retry with an extra round.
	if _, err := tk.Retry([]string{NodeCoder, NodeTester, NodeReviewer}, true, NodeCoder); err != nil || tk.FixIteration != 2 || tk.Status != TaskPending {
		t.Fatalf("retry: %v %+v", err, tk)
	}
}

func TestNormalizeServedReadsOldLabels(t *testing.T) {
	for label, want := range map[string]Served{
		OfflineLabel:                           {Provider: "offline", Offline: true},
		"anthropic/claude-3-7-sonnet-20250219": {Provider: "anthropic", Model: "claude-3-7-sonnet-20250219"},
		"openai":                               {Provider: "openai"},
	} {
		tk := Task{Provider: label}
		tk.NormalizeServed()
		if tk.Served() != want {
			t.Errorf("%q -> %+v, want %+v", label, tk.Served(), want)
		}
	}
	if (Task{}).KindOf() != KindBuild {
		t.Error("a task without a kind is not a build")
	}
}
