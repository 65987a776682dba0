package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/tasks"
)

func TestCancelStopsAnInFlightModelCallWithinASecondAndRetryResumes(t *testing.T) {
	e := newEnv(t, "")
	inFlight := make(chan struct{}, 1)
	var block sync.Once
	ctxErr := make(chan error, 1)
	m := newScripted().on("coder", func(ctx context.Context, call int, req llm.Request) (*llm.Response, error) {
		if call == 1 {
			block.Do(func() { inFlight <- struct{}{} })
			select {
			case <-ctx.Done():
				ctxErr <- ctx.Err()
				return nil, ctx.Err()
			case <-time.After(30 * time.Second):
				return nil, errors.New("not cancelled")
			}
		}
		return sumFiles(true, "adds"), nil
	})
	e.start(m, nil)
	task := e.submit("Build a sum module")
	select {
	case <-inFlight:
	case <-time.After(30 * time.Second):
		t.Fatal("the coder never started")
	}
	start := time.Now()
	got, err := e.svc.Cancel(context.Background(), tasks.Local(), task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("cancel took %s", d)
	}
	select {
	case err := <-ctxErr:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("model saw %v", err)
		}
	default:
		t.Fatal("the in-flight model call was not cancelled by the time Cancel returned")
	}
	if got.Status != domain.TaskCancelled || got.GraphState["coder"] != domain.NodePending || got.GraphState["architect"] != domain.NodeCompleted {
		t.Fatalf("after cancel: %s %v", got.Status, got.GraphState)
	}
	checkLogs(t, e.logs(task.ID), domain.TaskCancelled)
	if _, err := e.svc.Cancel(context.Background(), tasks.Local(), task.ID); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("second cancel: %v", err)
	}

	if _, err := e.svc.Retry(context.Background(), tasks.Local(), task.ID); err != nil {
		t.Fatal(err)
	}
	final := e.wait(task.ID, time.Minute)
	if final.Status != domain.TaskCompleted {
		t.Fatalf("after retry: %s %s", final.Status, final.Error)
	}
	if m.count("planner") != 1 || m.count("architect") != 1 || m.count("coder") != 2 {
		t.Fatalf("retry re-ran completed nodes: planner %d architect %d coder %d", m.count("planner"), m.count("architect"), m.count("coder"))
	}
	if _, err := e.svc.Retry(context.Background(), tasks.Local(), task.ID); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("retry of a completed task: %v", err)
	}
	checkLogs(t, e.logs(task.ID), domain.TaskCompleted)
}

func TestCancelPendingTask(t *testing.T) {
	e := newEnv(t, "")
	e.cfg.MaxConcurrentTasks = 1
	release := make(chan struct{})
	e.start(nil, stubGraph(func(ctx context.Context, in agent.Input) (agent.Output, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return agent.Output{}, ctx.Err()
		}
		return instant(ctx, in)
	}))
	first := e.submit("first")
	second := e.submit("second")
	got, err := e.svc.Cancel(context.Background(), tasks.Local(), second.ID)
	if err != nil || got.Status != domain.TaskCancelled {
		t.Fatalf("%v %s", err, got.Status)
	}
	close(release)
	if f := e.wait(first.ID, 10*time.Second); f.Status != domain.TaskCompleted {
		t.Fatal(f.Status)
	}
	if s, _ := e.store.GetTask(context.Background(), second.ID); s.Status != domain.TaskCancelled || s.StartedAt != nil {
		t.Fatalf("the cancelled pending task ran: %s", s.Status)
	}
}

func TestConcurrencyBound(t *testing.T) {
	e := newEnv(t, "")
	e.cfg.MaxConcurrentTasks = 2
	var g gauge
	var mu sync.Mutex
	running := map[string]int{}
	var order []string
	x := e.start(nil, stubGraph(func(ctx context.Context, in agent.Input) (agent.Output, error) {
		mu.Lock()
		if running[in.Task.ID] == 0 {
			g.inc()
		}
		running[in.Task.ID]++
		if in.Node == "planner" {
			order = append(order, in.Task.Prompt)
		}
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		running[in.Task.ID]--
		if running[in.Task.ID] == 0 {
			g.dec()
		}
		mu.Unlock()
		return instant(ctx, in)
	}))
	var ids []string
	for _, p := range []string{"t1", "t2", "t3", "t4", "t5"} {
		ids = append(ids, e.submit(p).ID)
		if n := x.Running(); n > 2 {
			t.Fatalf("%d running", n)
		}
	}
	for _, id := range ids {
		if f := e.wait(id, 20*time.Second); f.Status != domain.TaskCompleted {
			t.Fatal(f.Status, f.Error)
		}
	}
	if g.max.Load() != 2 {
		t.Fatalf("at most %d tasks ran at once, want exactly 2", g.max.Load())
	}
	// Admission is FIFO, but the two tasks admitted together race to their
	// first node, so a task may reach its planner at most max-1 places early.
	if len(order) != 5 {
		t.Fatalf("planners ran %d times: %v", len(order), order)
	}
	for k, p := range order {
		submitted := int(p[1] - '1')
		if submitted > k+1 {
			t.Fatalf("tasks started in order %v: %s overtook a task queued before it", order, p)
		}
	}
}

func TestBudgetStopsTheTask(t *testing.T) {
	e := newEnv(t, "")
	e.cfg.MaxTaskCost = 0.12
	e.start(nil, stubGraph(func(ctx context.Context, in agent.Input) (agent.Output, error) {
		return agent.Output{Artifact: json.RawMessage(`{}`), Cost: 0.05}, nil
	}))
	task := e.submit("expensive")
	final := e.wait(task.ID, 10*time.Second)
	if final.Status != domain.TaskFailed || !strings.Contains(final.Error, "budget exceeded") || !strings.Contains(final.Error, "MAX_TASK_COST") {
		t.Fatalf("%s: %q", final.Status, final.Error)
	}
	if final.GraphState["coder"] != domain.NodeCompleted || final.GraphState["tester"] != domain.NodePending {
		t.Fatalf("graph_state %v", final.GraphState)
	}
	if final.Cost < 0.1499 || final.Cost > 0.1501 {
		t.Fatalf("cost %v, want 3 nodes × 0.05", final.Cost)
	}
	// cost events carry the running total and the node's share
	var last map[string]any
	for _, l := range e.logs(task.ID) {
		if l.Type == domain.EventCost {
			json.Unmarshal(l.Data, &last)
		}
	}
	if last["node"] != "coder" || last["node_cost"].(float64) != 0.05 || last["cost"].(float64) < 0.1499 {
		t.Fatalf("last cost event %v", last)
	}
	checkLogs(t, e.logs(task.ID), domain.TaskFailed)
}

func TestNodeTimeoutFailsTheTask(t *testing.T) {
	e := newEnv(t, "")
	e.cfg.AgentTimeout = 100 * time.Millisecond
	e.start(nil, stubGraph(func(ctx context.Context, in agent.Input) (agent.Output, error) {
		if in.Node == "architect" {
			<-ctx.Done()
			return agent.Output{}, ctx.Err()
		}
		return instant(ctx, in)
	}))
	task := e.submit("slow")
	final := e.wait(task.ID, 10*time.Second)
	if final.Status != domain.TaskFailed || !strings.Contains(final.Error, "architect: timed out after 100ms") ||
		final.GraphState["architect"] != domain.NodeFailed {
		t.Fatalf("%s %q %v", final.Status, final.Error, final.GraphState)
	}
}

func TestShutdownAndRestartResumesAtFirstUnfinishedNode(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir)
	var mu sync.Mutex
	runs := map[string]int{}
	entered := make(chan struct{}, 1)
	step := func(block bool) func(ctx context.Context, in agent.Input) (agent.Output, error) {
		return func(ctx context.Context, in agent.Input) (agent.Output, error) {
			mu.Lock()
			runs[in.Node]++
			mu.Unlock()
			if block && in.Node == "coder" {
				entered <- struct{}{}
				<-ctx.Done()
				return agent.Output{}, ctx.Err()
			}
			in.Log(agent.Info, "ran "+in.Node)
			return agent.Output{Artifact: json.RawMessage(`{}`), Cost: 0.01}, nil
		}
	}
	x := e.start(nil, stubGraph(step(true)))
	task := e.submit("resume me")
	<-entered
	if err := x.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mid, _ := e.store.GetTask(context.Background(), task.ID)
	if mid.Status != domain.TaskRunning || mid.GraphState["architect"] != domain.NodeCompleted {
		t.Fatalf("after shutdown %s %v", mid.Status, mid.GraphState)
	}
	x2 := New(e.options(nil, stubGraph(step(false))))
	if err := x2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.exec = x2
	final := e.wait(task.ID, 10*time.Second)
	if final.Status != domain.TaskCompleted {
		t.Fatal(final.Status, final.Error)
	}
	if runs["planner"] != 1 || runs["architect"] != 1 || runs["coder"] != 2 || runs["deployer"] != 1 {
		t.Fatalf("runs %v", runs)
	}
	if final.Cost < 0.0599 || final.Cost > 0.0601 {
		t.Fatalf("cost %v, want 6 completed nodes × 0.01", final.Cost)
	}
	checkLogs(t, e.logs(task.ID), domain.TaskCompleted)
	x2.Shutdown(context.Background())
}

func TestStepErrorFailsTaskAndRetryRerunsTheFailedNode(t *testing.T) {
	e := newEnv(t, "")
	var mu sync.Mutex
	runs := map[string]int{}
	e.start(nil, stubGraph(func(ctx context.Context, in agent.Input) (agent.Output, error) {
		mu.Lock()
		runs[in.Node]++
		n := runs[in.Node]
		mu.Unlock()
		if in.Node == "tester" && n == 1 {
			return agent.Output{}, errors.New("sandbox exploded")
		}
		if in.Node == "reviewer" {
			time.Sleep(50 * time.Millisecond) // still running when tester fails
		}
		return instant(ctx, in)
	}))
	task := e.submit("flaky")
	final := e.wait(task.ID, 10*time.Second)
	if final.Status != domain.TaskFailed || final.Error != "tester: sandbox exploded" || final.GraphState["tester"] != domain.NodeFailed {
		t.Fatalf("%s %q %v", final.Status, final.Error, final.GraphState)
	}
	checkLogs(t, e.logs(task.ID), domain.TaskFailed)
	if _, err := e.svc.Retry(context.Background(), tasks.Local(), task.ID); err != nil {
		t.Fatal(err)
	}
	final = e.wait(task.ID, 10*time.Second)
	if final.Status != domain.TaskCompleted || runs["coder"] != 1 || runs["tester"] != 2 {
		t.Fatalf("%s runs %v", final.Status, runs)
	}
}

func TestCancelKillsTheSandboxedTestRun(t *testing.T) {
	e := newEnv(t, "")
	m := newScripted().on("coder", func(_ context.Context, call int, _ llm.Request) (*llm.Response, error) {
		return jsonResp(map[string]any{"notes": "", "delete": []string{}, "files": []map[string]string{
			{"path": "slow.test.js", "content": "require('node:test')('hangs', () => new Promise((r) => setTimeout(r, 120000)));\n"},
		}}), nil
	})
	e.start(m, nil)
	task := e.submit("Build something slow")
	deadline := time.Now().Add(30 * time.Second)
	for {
		started := false
		for _, l := range e.logs(task.ID) {
			started = started || strings.HasPrefix(l.Message, "Running node --test")
		}
		if started {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the tests never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // node is up and waiting
	start := time.Now()
	got, err := e.svc.Cancel(context.Background(), tasks.Local(), task.ID)
	if err != nil || got.Status != domain.TaskCancelled {
		t.Fatal(err, got.Status)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("cancel took %s with a test run in the sandbox", d)
	}
	checkLogs(t, e.logs(task.ID), domain.TaskCancelled)
}
