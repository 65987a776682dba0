package pipeline

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/natstest"
	"github.com/catalyst/catalyst/internal/store/storetest/teststore"
	"github.com/catalyst/catalyst/internal/tasks"
)

// jsEnv is a store shared by several workers, each an executor fed by the
// JetStream work queue of one embedded NATS server, and the task use cases
// dispatching through that queue (an API node that runs nothing itself).
type jsEnv struct {
	*env
	srv   *natstest.Server
	queue *Queue
	g     *testGraph
}

func newJSEnv(t *testing.T, ttl time.Duration, g *testGraph) *jsEnv {
	t.Helper()
	e := newEnv(t, "")
	e.leaseTTL = ttl
	srv := natstest.Start(t)
	q, err := OpenQueue(context.Background(), QueueOptions{Conn: srv.Connect(t), LeaseTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	j := &jsEnv{env: e, srv: srv, queue: q, g: g}
	opt := e.options(nil, g)
	e.svc = tasks.New(tasks.Options{Store: e.store, Recorder: e.rec, Graphs: opt.Graphs, Dispatcher: q})
	return j
}

type jsWorker struct {
	exec *Executor
	w    *Worker
	nc   *nats.Conn
}

// worker starts one more worker process's worth of parts: its own NATS
// connection, executor (no sweep: the queue is the trigger) and driver.
func (j *jsEnv) worker(maxConcurrent int, poll time.Duration) *jsWorker {
	j.t.Helper()
	opt := j.options(nil, j.g)
	opt.Owner = NewOwnerID()
	opt.Recover = false
	opt.MaxConcurrent = maxConcurrent
	exec := New(opt)
	exec.pollEvery = poll
	if err := exec.Start(context.Background()); err != nil {
		j.t.Fatal(err)
	}
	nc := j.srv.Connect(j.t.(*testing.T))
	q, err := OpenQueue(context.Background(), QueueOptions{Conn: nc, LeaseTTL: j.leaseTTL})
	if err != nil {
		j.t.Fatal(err)
	}
	w := NewWorker(WorkerOptions{Queue: q, Executor: exec, Store: j.store, PullWait: 300 * time.Millisecond})
	if err := w.Start(context.Background()); err != nil {
		j.t.Fatal(err)
	}
	jw := &jsWorker{exec: exec, w: w, nc: nc}
	j.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		w.Stop(ctx)
	})
	return jw
}

func (j *jsEnv) submitN(n int) []string {
	j.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		t, err := j.svc.Submit(context.Background(), tasks.Local(), tasks.Submission{ProjectID: "p1", Prompt: "task"})
		if err != nil {
			j.t.Fatal(err)
		}
		ids[i] = t.ID
	}
	return ids
}

// slow stretches a test's patience (never its bounds on how fast something
// must happen) on the MongoDB-wire server, which is much slower than SQLite.
func slow(d time.Duration) time.Duration {
	if teststore.Mongo() {
		return 5 * d
	}
	return d
}

func (j *jsEnv) waitAll(ids []string, d time.Duration) []domain.Task {
	j.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), slow(d))
	defer cancel()
	out := make([]domain.Task, len(ids))
	for i, id := range ids {
		t, err := j.svc.Wait(ctx, tasks.Local(), id)
		if err != nil {
			j.t.Fatalf("task %s: %v (status %s, lease %q)", id, err, t.Status, t.LeaseOwner)
		}
		out[i] = t
	}
	return out
}

// drained waits until the work queue holds no message and none is pending
// acknowledgement: every task that ended was acked.
func (j *jsEnv) drained(d time.Duration) {
	j.t.Helper()
	js, _ := jetstream.New(j.srv.Connect(j.t.(*testing.T)))
	deadline := time.Now().Add(slow(d))
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		si, err := js.Stream(ctx, TaskStream)
		var msgs uint64
		var pending int
		if err == nil {
			msgs = si.CachedInfo().State.Msgs
			if c, cerr := js.Consumer(ctx, TaskStream, TaskConsumer); cerr == nil {
				pending = c.CachedInfo().NumAckPending
			}
		}
		cancel()
		if err == nil && msgs == 0 && pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			j.t.Fatalf("work queue not drained: %d messages, %d pending ack (err %v)", msgs, pending, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sleepy is a stub graph whose steps take d, counting concurrent tasks per
// owner through the step's context.
func sleepy(d time.Duration, onStep func(in agent.Input)) *testGraph {
	return stubGraph(func(ctx context.Context, in agent.Input) (agent.Output, error) {
		if onStep != nil {
			onStep(in)
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return agent.Output{}, ctx.Err()
		}
		return agent.Output{Artifact: json.RawMessage(`{"ok":true}`)}, nil
	})
}

func TestJetStreamWorkersShareTheQueue(t *testing.T) {
	var running sync.Map // task -> struct{}
	j := newJSEnv(t, 2*time.Second, nil)
	g := &gauge{}
	j.g = sleepy(40*time.Millisecond, nil)
	// Count tasks in flight per worker by wrapping the planner (first node)
	// and deployer (last node).
	planner, deployer := j.g.steps[domain.NodePlanner], j.g.steps[domain.NodeDeployer]
	j.g.steps[domain.NodePlanner] = agent.StepFunc(func(ctx context.Context, in agent.Input) (agent.Output, error) {
		if _, dup := running.LoadOrStore(in.Task.ID, struct{}{}); !dup {
			g.inc()
		}
		return planner.Run(ctx, in)
	})
	j.g.steps[domain.NodeDeployer] = agent.StepFunc(func(ctx context.Context, in agent.Input) (agent.Output, error) {
		out, err := deployer.Run(ctx, in)
		g.dec()
		return out, err
	})
	w1, w2 := j.worker(2, 0), j.worker(2, 0)
	ids := j.submitN(8)
	for _, tk := range j.waitAll(ids, 60*time.Second) {
		if tk.Status != domain.TaskCompleted {
			t.Fatalf("task %s %s: %s", tk.ID, tk.Status, tk.Error)
		}
		arts := j.artifacts(tk.ID)
		for _, n := range buildNodes() {
			if len(arts[n]) != 1 {
				t.Fatalf("task %s node %s has %d artifacts, want 1", tk.ID, n, len(arts[n]))
			}
		}
		checkLogs(t, j.logs(tk.ID), domain.TaskCompleted)
	}
	if m := g.max.Load(); m > 4 {
		t.Fatalf("%d tasks ran at once on two workers of 2 slots", m)
	}
	j.drained(10 * time.Second)
	if w1.w.Held() != 0 || w2.w.Held() != 0 {
		t.Fatalf("workers still hold messages: %d %d", w1.w.Held(), w2.w.Held())
	}
}

func TestJetStreamWorkerBoundsItsTasks(t *testing.T) {
	var cur, peak atomic.Int64
	j := newJSEnv(t, 2*time.Second, nil)
	j.g = stubGraph(func(ctx context.Context, in agent.Input) (agent.Output, error) {
		if in.Node == domain.NodePlanner {
			n := cur.Add(1)
			defer cur.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(150 * time.Millisecond)
		}
		return agent.Output{Artifact: json.RawMessage(`{"ok":true}`)}, nil
	})
	w := j.worker(2, 0)
	ids := j.submitN(6)
	// While the first two run, the worker holds only their messages: the
	// rest stay in the queue for other workers.
	time.Sleep(100 * time.Millisecond)
	if h := w.w.Held(); h > 2 {
		t.Fatalf("worker of 2 slots holds %d tasks", h)
	}
	j.waitAll(ids, 30*time.Second)
	if p := peak.Load(); p > 2 {
		t.Fatalf("%d planners ran at once on a worker of 2 slots", p)
	}
	j.drained(10 * time.Second)
}

// A worker that shuts down returns its task at once (lease released,
// message nak'd): another worker resumes it long before the lease TTL or
// AckWait would have let it.
func TestJetStreamShutdownHandsTaskOver(t *testing.T) {
	var coderRuns atomic.Int64
	release := make(chan struct{})
	j := newJSEnv(t, 10*time.Second, nil)
	j.g = stubGraph(func(ctx context.Context, in agent.Input) (agent.Output, error) {
		if in.Node == domain.NodeCoder && coderRuns.Add(1) == 1 {
			select {
			case <-release:
			case <-ctx.Done():
				return agent.Output{}, ctx.Err()
			}
		}
		return agent.Output{Artifact: json.RawMessage(`{"ok":true}`)}, nil
	})
	a := j.worker(1, 0)
	ids := j.submitN(1)
	waitFor(t, 10*time.Second, func() bool { return coderRuns.Load() == 1 })
	b := j.worker(1, 0)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		tk, err := j.store.GetTask(context.Background(), ids[0])
		return err == nil && (tk.LeaseOwner == b.exec.Owner() || tk.Status.Terminal())
	})
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("takeover after shutdown took %v (lease TTL 10s, AckWait 15s)", d)
	}
	tk := j.waitAll(ids, 8*time.Second)[0]
	if tk.Status != domain.TaskCompleted {
		t.Fatalf("task %s: %s", tk.Status, tk.Error)
	}
	if tk.LeaseOwner != "" && tk.LeaseOwner != b.exec.Owner() {
		t.Fatalf("finished by %q", tk.LeaseOwner)
	}
	arts := j.artifacts(tk.ID)
	for _, n := range []string{domain.NodePlanner, domain.NodeArchitect} {
		if len(arts[n]) != 1 {
			t.Fatalf("node %s ran %d times", n, len(arts[n]))
		}
	}
	j.drained(10 * time.Second)
}

// A worker that dies holding a message (it pulled it and stops answering,
// its lease in the store still live) has its task redelivered after
// AckWait; the next worker waits for the lease to expire, then resumes the
// task at its first unfinished node.
func TestJetStreamDeadWorkersTaskIsRedelivered(t *testing.T) {
	ttl := time.Second
	j := newJSEnv(t, ttl, sleepy(10*time.Millisecond, nil))
	ids := j.submitN(1)
	id := ids[0]

	// The dead worker: it took the message and the lease, completed the
	// planner, and vanished.
	js, _ := jetstream.New(j.srv.Connect(t))
	cons, err := js.Consumer(context.Background(), TaskStream, TaskConsumer)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got int
	for range batch.Messages() {
		got++
	}
	if got != 1 {
		t.Fatalf("dead worker pulled %d messages", got)
	}
	dead := "dead-worker"
	if _, err := j.store.UpdateTask(context.Background(), id, func(tk *domain.Task) error {
		if _, err := tk.Claim(dead, time.Now().UTC(), 3*ttl, buildNodes()); err != nil {
			return err
		}
		_, err := tk.StartNode(dead, domain.NodePlanner, "Planner", 1)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := j.store.PutArtifact(context.Background(), domain.Artifact{TaskID: id, Node: domain.NodePlanner, Iteration: 1,
		Output: json.RawMessage(`{"ok":true}`), CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	if _, err := j.store.UpdateTask(context.Background(), id, func(tk *domain.Task) error {
		_, err := tk.CompleteNode(dead, domain.NodePlanner, "Planner", 1, 0.5, domain.Served{}, "")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	died := time.Now()

	b := j.worker(1, 0)
	waitFor(t, slow(15*time.Second), func() bool {
		tk, err := j.store.GetTask(context.Background(), id)
		return err == nil && (tk.LeaseOwner == b.exec.Owner() || tk.Status.Terminal())
	})
	took := time.Since(died)
	// Lease 3s, AckWait 2s: the message is back before the lease expired,
	// waits for the expiry, and is taken soon after.
	if took < 3*ttl-200*time.Millisecond || took > 3*ttl+slow(3*time.Second) {
		t.Fatalf("takeover after %v; the lease expired after %v", took, 3*ttl)
	}
	done := j.waitAll(ids, 20*time.Second)[0]
	if done.Status != domain.TaskCompleted {
		t.Fatalf("task %s: %s", done.Status, done.Error)
	}
	if arts := j.artifacts(id); len(arts[domain.NodePlanner]) != 1 {
		t.Fatalf("planner ran again: %d artifacts", len(arts[domain.NodePlanner]))
	}
	j.drained(10 * time.Second)
}

// Cancel from the API node stops the run on its worker through the control
// subject, before the worker's own poll (set to 10 s here) would notice.
func TestJetStreamCancelStopsTheWorkerAtOnce(t *testing.T) {
	entered := make(chan struct{}, 1)
	j := newJSEnv(t, 30*time.Second, nil)
	j.g = stubGraph(func(ctx context.Context, in agent.Input) (agent.Output, error) {
		if in.Node == domain.NodeArchitect {
			entered <- struct{}{}
			<-ctx.Done()
			return agent.Output{}, ctx.Err()
		}
		return agent.Output{Artifact: json.RawMessage(`{"ok":true}`)}, nil
	})
	w := j.worker(1, 10*time.Second)
	id := j.submitN(1)[0]
	<-entered
	start := time.Now()
	if _, err := j.svc.Cancel(context.Background(), tasks.Local(), id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, func() bool { return w.exec.Running() == 0 })
	if d := time.Since(start); d > time.Second {
		t.Fatalf("run stopped %v after the cancel", d)
	}
	if tk, _ := j.store.GetTask(context.Background(), id); tk.Status != domain.TaskCancelled {
		t.Fatalf("status %s", tk.Status)
	}
	j.drained(5 * time.Second)
}

// Control and task messages are not trusted: a forged stop for a task its
// worker legitimately runs does not stop it, and a message on a subject that
// is not a task id is terminated instead of looping for ever.
func TestJetStreamHostileMessages(t *testing.T) {
	j := newJSEnv(t, 2*time.Second, sleepy(100*time.Millisecond, nil))
	w := j.worker(2, 0)
	id := j.submitN(1)[0]
	waitFor(t, 5*time.Second, func() bool { return w.exec.Running() == 1 })
	nc := j.srv.Connect(t)
	for _, subj := range []string{ControlSubjectPrefix + id, ControlSubjectPrefix + "*", ControlSubjectPrefix + "x.y"} {
		if err := nc.Publish(subj, []byte(controlStop)); err != nil {
			t.Fatal(err)
		}
	}
	js, _ := jetstream.New(nc)
	if _, err := js.Publish(context.Background(), TaskSubjectPrefix+"not-a-task", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := TaskSubject("a.b"); err == nil {
		t.Fatal("task id with a dot accepted as a subject token")
	}
	if err := j.queue.Dispatch(context.Background(), "a.>"); err == nil {
		t.Fatal("dispatch of a wildcard id accepted")
	}
	tk := j.waitAll([]string{id}, 20*time.Second)[0]
	if tk.Status != domain.TaskCompleted {
		t.Fatalf("forged stop ended the task: %s %s", tk.Status, tk.Error)
	}
	j.drained(10 * time.Second)
}

// Restarting NATS while tasks run loses none: runs go on, intake pauses and
// resumes, and every message is acknowledged in the end.
func TestJetStreamNATSRestartLosesNoTask(t *testing.T) {
	j := newJSEnv(t, 2*time.Second, sleepy(100*time.Millisecond, nil))
	j.worker(2, 0)
	j.worker(2, 0)
	ids := j.submitN(6)
	time.Sleep(300 * time.Millisecond)
	j.srv.Shutdown()
	time.Sleep(time.Second)
	j.srv.Restart()
	ids = append(ids, j.submitN(2)...)
	for _, tk := range j.waitAll(ids, 60*time.Second) {
		if tk.Status != domain.TaskCompleted {
			t.Fatalf("task %s %s: %s", tk.ID, tk.Status, tk.Error)
		}
	}
	j.drained(20 * time.Second)
}

func TestJetStreamHealth(t *testing.T) {
	j := newJSEnv(t, 2*time.Second, sleepy(0, nil))
	if err := j.queue.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	j.srv.Shutdown()
	waitFor(t, 5*time.Second, func() bool { return j.queue.Check(context.Background()) != nil })
	j.srv.Restart()
	waitFor(t, 10*time.Second, func() bool { return j.queue.Check(context.Background()) == nil })
}

func waitFor(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(slow(d))
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
