package pipeline

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/tasks"
	"github.com/catalyst/catalyst/internal/workspace"
)

// Two executors share one store, as two processes would: one is killed
// after its coder completed; the other, with its own data directory,
// takes the task over once the lease expired and finishes it from the
// coder's files (restored from the store), without running a completed
// node again or counting its cost twice.
func TestTakeoverAfterAProcessDies(t *testing.T) {
	a := newEnv(t, "")
	a.leaseTTL, a.owner = time.Second, "process-a"
	var runs sync.Map // node -> *atomic.Int32
	count := func(n string) int32 {
		v, _ := runs.LoadOrStore(n, new(atomic.Int32))
		return v.(*atomic.Int32).Load()
	}
	coderDone := make(chan struct{})
	var once sync.Once
	steps := func(e *env, hang bool) *testGraph {
		return stubGraph(func(ctx context.Context, in agent.Input) (agent.Output, error) {
			v, _ := runs.LoadOrStore(in.Node, new(atomic.Int32))
			v.(*atomic.Int32).Add(1)
			ws, err := workspace.Open(e.workspaceDir(in.Task.ID))
			if err != nil {
				return agent.Output{}, err
			}
			switch in.Node {
			case domain.NodeCoder:
				if err := ws.WriteFile("app.js", []byte("console.log('from the coder')\n")); err != nil {
					return agent.Output{}, err
				}
			case domain.NodeTester:
				if hang {
					once.Do(func() { close(coderDone) })
					<-ctx.Done()
					return agent.Output{}, ctx.Err()
				}
				b, err := ws.ReadFile("app.js")
				if err != nil {
					return agent.Output{}, err
				}
				out, _ := json.Marshal(map[string]string{"saw": string(b)})
				return agent.Output{Artifact: out, Cost: 0.01}, nil
			}
			return agent.Output{Artifact: json.RawMessage(`{}`), Cost: 0.01}, nil
		})
	}
	a.start(nil, steps(a, true))
	task := a.submit("take me over")
	select {
	case <-coderDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the tester never started")
	}
	a.exec.crash()
	mid, _ := a.store.GetTask(context.Background(), task.ID)
	if mid.Status != domain.TaskRunning || mid.LeaseOwner != "process-a" {
		t.Fatalf("after the kill: %s owned by %q", mid.Status, mid.LeaseOwner)
	}

	// Process b: the same store, its own data directory.
	b := &env{t: t, dir: t.TempDir(), store: a.store, broker: a.broker, rec: a.rec, cfg: a.cfg, leaseTTL: time.Second, owner: "process-b"}
	took := time.Now()
	b.start(nil, steps(b, false))
	final := b.wait(task.ID, 30*time.Second)
	t.Logf("taken over and finished %s after the kill (lease TTL 1s)", time.Since(took).Round(time.Millisecond))
	if final.Status != domain.TaskCompleted {
		t.Fatalf("%s: %s", final.Status, final.Error)
	}
	for _, n := range []string{"planner", "architect", "coder", "deployer"} {
		if c := count(n); c != 1 {
			t.Errorf("%s ran %d times", n, c)
		}
	}
	arts := a.artifacts(task.ID)
	for _, n := range buildNodes() {
		if len(arts[n]) != 1 {
			t.Errorf("%s has %d artifacts", n, len(arts[n]))
		}
	}
	var saw struct{ Saw string }
	json.Unmarshal(arts["tester"][0].Output, &saw)
	if saw.Saw != "console.log('from the coder')\n" {
		t.Fatalf("the tester on process b saw %q, not the coder's file", saw.Saw)
	}
	if _, err := os.Stat(filepath.Join(b.workspaceDir(task.ID), "app.js")); err != nil {
		t.Fatalf("process b's workspace: %v", err)
	}
	if final.Cost < 0.0599 || final.Cost > 0.0601 {
		t.Fatalf("cost %v, want 6 nodes × 0.01 (nothing counted twice)", final.Cost)
	}
	resumed := false
	for _, l := range a.logs(task.ID) {
		if l.Type == domain.EventLog && len(l.Message) > 11 && l.Message[:11] == "Resuming at" {
			resumed = true
		}
	}
	if !resumed {
		t.Fatal("no \"Resuming at\" line for the takeover")
	}
	checkLogs(t, a.logs(task.ID), domain.TaskCompleted)
}

// A live lease is never taken: a second process sweeping the store leaves
// a running task alone, and a cancel it stores stops the owner's run
// within a second.
func TestAnotherProcessNeverStealsButCanCancel(t *testing.T) {
	a := newEnv(t, "")
	a.leaseTTL, a.owner = 2*time.Second, "process-a"
	var bRan atomic.Int32
	started := make(chan struct{})
	var once sync.Once
	a.start(nil, stubGraph(func(ctx context.Context, in agent.Input) (agent.Output, error) {
		if in.Node == domain.NodeArchitect {
			once.Do(func() { close(started) })
			<-ctx.Done() // runs until stopped
			return agent.Output{}, ctx.Err()
		}
		return instant(ctx, in)
	}))
	task := a.submit("mine")
	<-started
	b := &env{t: t, dir: t.TempDir(), store: a.store, broker: a.broker, rec: a.rec, cfg: a.cfg, leaseTTL: 2 * time.Second, owner: "process-b"}
	b.start(nil, stubGraph(func(ctx context.Context, in agent.Input) (agent.Output, error) {
		bRan.Add(1)
		return instant(ctx, in)
	}))
	time.Sleep(5 * time.Second) // several sweeps and lease renewals of b and a
	if n := bRan.Load(); n != 0 {
		t.Fatalf("process b ran %d steps of a task whose lease a holds", n)
	}
	cancelled := time.Now()
	if _, err := b.svc.Cancel(context.Background(), tasks.Local(), task.ID); err != nil {
		t.Fatal(err)
	}
	a.exec.mu.Lock()
	r := a.exec.active[task.ID]
	a.exec.mu.Unlock()
	if r != nil {
		select {
		case <-r.done:
		case <-time.After(2 * time.Second):
			t.Fatal("process a did not stop the cancelled task")
		}
	}
	stop := time.Since(cancelled)
	t.Logf("process a stopped %s after process b stored the cancel", stop.Round(time.Millisecond))
	if stop > time.Second {
		t.Errorf("stopped after %s, want within a second", stop)
	}
	final, _ := a.store.GetTask(context.Background(), task.ID)
	if final.Status != domain.TaskCancelled || final.LeaseOwner != "" || final.GraphState[domain.NodeArchitect] != domain.NodePending {
		t.Fatalf("after cancel: %+v", final)
	}
	if n := bRan.Load(); n != 0 {
		t.Fatalf("process b ran %d steps", n)
	}
}
