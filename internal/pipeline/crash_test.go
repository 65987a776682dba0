package pipeline

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/llm/offline"
)

// pricedOffline is the offline provider with a price: one cent per call,
// so that a double-counted node would show in the task's cost.
type pricedOffline struct{ m *offline.Model }

func (p pricedOffline) For(string) llm.Model { return p }
func (p pricedOffline) Generate(ctx context.Context, req llm.Request) (*llm.Response, error) {
	r, err := p.m.Generate(ctx, req)
	if r != nil {
		r.Cost = 0.01
	}
	return r, err
}

const helperEnv = "CATALYST_PIPELINE_CRASH_HELPER"

// TestCrashHelper is not a test: the crash test runs this binary again with
// helperEnv set, as the process it kills with SIGKILL.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashAndResume")
	}
	e := newEnv(t, dir)
	x := e.start(pricedOffline{offline.New(500 * time.Millisecond)}, nil)
	idFile := filepath.Join(dir, "task-id")
	id, err := os.ReadFile(idFile)
	if err != nil {
		task := e.submit("Build a todo app")
		os.WriteFile(idFile, []byte(task.ID), 0o644)
		id = []byte(task.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := x.Wait(ctx, string(id)); err != nil {
		t.Fatal(err)
	}
}

func TestCrashAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline in three processes")
	}
	dir := t.TempDir()
	e := newEnv(t, dir) // the observer: the same SQLite file, another connection
	spawn := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.v")
		cmd.Env = append(os.Environ(), helperEnv+"="+dir)
		out, _ := os.OpenFile(filepath.Join(dir, "helper.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	taskID := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "task-id"))
		return string(b)
	}
	// nodeStarts counts the node_state "running" events of each node.
	nodeStarts := func(logs []domain.AgentLog) map[string]int {
		starts := map[string]int{}
		for _, l := range logs {
			if l.Type == domain.EventNodeState {
				var d struct{ Node, State string }
				json.Unmarshal(l.Data, &d)
				if d.State == "running" {
					starts[d.Node]++
				}
			}
		}
		return starts
	}
	// A node runs its step once its graph_state says running AND its start
	// event is stored (the executor records the event right after the state
	// change, then launches the step): kill only then, so that the count of
	// starts below is deterministic.
	killWhen := func(what string, cond func(domain.Task, map[string]int) bool) domain.Task {
		t.Helper()
		cmd := spawn()
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if id := taskID(); id != "" {
				if task, err := e.store.GetTask(context.Background(), id); err == nil && cond(task, nodeStarts(e.logs(id))) {
					cmd.Process.Signal(syscall.SIGKILL)
					cmd.Wait()
					after, _ := e.store.GetTask(context.Background(), id)
					t.Logf("killed %s: graph_state %v", what, after.GraphState)
					return after
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		cmd.Process.Kill()
		cmd.Wait()
		log, _ := os.ReadFile(filepath.Join(dir, "helper.log"))
		t.Fatalf("never reached %s\n%s", what, log)
		return domain.Task{}
	}

	mid := killWhen("while the coder runs", func(t domain.Task, starts map[string]int) bool {
		return t.GraphState["coder"] == domain.NodeRunning && starts["coder"] == 1
	})
	if mid.Status != domain.TaskRunning || mid.GraphState["planner"] != domain.NodeCompleted || mid.GraphState["architect"] != domain.NodeCompleted {
		t.Fatalf("after the first kill: %s %v", mid.Status, mid.GraphState)
	}
	killWhen("while tester/reviewer run", func(t domain.Task, starts map[string]int) bool {
		return t.GraphState["tester"] == domain.NodeRunning && starts["tester"] == 1 ||
			t.GraphState["reviewer"] == domain.NodeRunning && starts["reviewer"] == 1
	})

	cmd := spawn()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "helper.log"))
			t.Fatalf("final run: %v\n%s", err, log)
		}
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the resumed task did not finish")
	}

	id := taskID()
	final, err := e.store.GetTask(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if final.Status != domain.TaskCompleted {
		t.Fatalf("status %s: %s", final.Status, final.Error)
	}
	arts := e.artifacts(id)
	if len(arts["planner"]) != 1 || len(arts["architect"]) != 1 || len(arts["deployer"]) != 1 {
		t.Fatalf("artifacts: planner %d architect %d deployer %d", len(arts["planner"]), len(arts["architect"]), len(arts["deployer"]))
	}
	logs := e.logs(id)
	checkLogs(t, logs, domain.TaskCompleted)
	starts := nodeStarts(logs)
	resumes := 0
	for _, l := range logs {
		if strings.HasPrefix(l.Message, "Resuming at") {
			resumes++
		}
	}
	if starts["planner"] != 1 || starts["architect"] != 1 || starts["coder"] < 2 || resumes != 2 {
		t.Fatalf("node starts %v, resumes %d", starts, resumes)
	}
	// Cost: one cent per model call of a completed node run, counted once.
	// The offline coder's tool loop makes two calls (write the files,
	// finish); a call its killed run made and saved in its transcript is
	// not made again by the resumed run.
	want := map[string]float64{"planner": 0.01, "architect": 0.01, "coder": 0.02, "reviewer": 0.01, "tester": 0, "deployer": 0}
	sum := 0.0
	for n, c := range final.NodeCosts {
		if d := c - want[n]; d > 1e-9 || d < -1e-9 {
			t.Fatalf("node %s cost %v, want %v (node costs %v)", n, c, want[n], final.NodeCosts)
		}
		sum += c
	}
	if d := final.Cost - sum; d > 1e-9 || d < -1e-9 || sum < 0.0499 {
		t.Fatalf("task cost %v, node costs sum to %v", final.Cost, sum)
	}
	dep, err := e.store.GetDeployment(context.Background(), id)
	if err != nil || len(dep.CommitSHA) != 40 {
		t.Fatalf("deployment %+v %v", dep, err)
	}
}
