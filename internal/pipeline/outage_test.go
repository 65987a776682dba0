package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/llm/offline"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/mongo"
	"github.com/catalyst/catalyst/internal/store/mongo/mongotest"
)

// The database goes away while a task runs: the run breaks off, and once
// the database is back the task resumes at its first unfinished node and
// completes, without a restart of Catalyst. Before, it stayed "running"
// with nobody running it.
func TestTaskResumesAfterADatabaseOutage(t *testing.T) {
	srv := mongotest.StartFerretDB(t)
	ctx := context.Background()
	// Fail store calls after 1 s instead of the driver's 30 s, so that the
	// outage below surfaces as errors rather than a long wait.
	st, err := mongo.Open(ctx, srv.URI+"?serverSelectionTimeoutMS=1000&heartbeatFrequencyMS=500", mongotest.DBName(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now().UTC()
	if err := st.CreateProject(ctx, domain.Project{ID: "p1", Name: "p", Status: domain.ProjectActive, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "")
	e.store, e.rec = st, &events.Recorder{Store: st, Broker: e.broker}
	// The coder's model call waits for the test: the database goes away
	// while it runs, whatever the machine's speed.
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	models := newScripted()
	models.on("coder", func(ctx context.Context, _ int, req llm.Request) (*llm.Response, error) {
		once.Do(func() { close(entered) })
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return models.fall.Generate(ctx, req)
	})
	opt := e.options(models, nil)
	opt.Logger = slog.New(slog.DiscardHandler)
	x := New(opt)
	if err := x.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		x.Shutdown(c)
	})
	task := domain.NewTask(uuid.NewString(), "p1", "Build a todo app", domain.KindBuild, buildNodes(), now)
	if err := st.CreateTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	if err := x.Enqueue(ctx, task.ID); err != nil {
		t.Fatal(err)
	}

	poll := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("never: %s", what)
			}
		}
	}
	select {
	case <-entered:
	case <-time.After(60 * time.Second):
		t.Fatal("the coder never started")
	}
	srv.Stop()
	if x.Running() != 1 {
		t.Fatal("the task is not running while the database is away")
	}
	close(release)
	// The run breaks off at its next store call; nothing runs it meanwhile.
	poll("the run broke off", 60*time.Second, func() bool { return x.Running() == 0 })
	down, err := st.GetTask(ctx, task.ID)
	if err == nil {
		t.Fatalf("the store answered while stopped: %s", down.Status)
	}
	srv.Restart()

	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	final, err := x.Wait(wctx, task.ID)
	if err != nil {
		t.Fatalf("waiting after the outage: %v", err)
	}
	if final.Status != domain.TaskCompleted {
		t.Fatalf("status %s: %s (graph %v)", final.Status, final.Error, final.GraphState)
	}
	arts, err := st.ListArtifacts(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, a := range arts {
		per[a.Node]++
	}
	if per["planner"] != 1 || per["architect"] != 1 || per["deployer"] != 1 {
		t.Fatalf("artifacts per node %v: completed nodes ran again", per)
	}
	logs, err := st.ListLogs(ctx, task.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	resumed := false
	for _, l := range logs {
		resumed = resumed || strings.HasPrefix(l.Message, "Resuming at")
	}
	if !resumed {
		for _, l := range logs {
			t.Log(l.Seq, l.AgentName, l.Message)
		}
		t.Fatal("no \"Resuming at\" log line after the outage")
	}
}

// brokenArtifacts is a store whose artifact listing always fails while
// everything else works: a persistent error, not an outage.
type brokenArtifacts struct {
	store.Store
	calls atomic.Int32
}

func (b *brokenArtifacts) ListArtifacts(context.Context, string) ([]domain.Artifact, error) {
	b.calls.Add(1)
	return nil, errors.New("artifact index corrupt")
}

// A run that keeps breaking off although the store answers is not retried
// for ever: after the attempts run out the task fails with the error, so it
// does not stay "running" with nothing happening.
func TestPersistentRunErrorFailsTheTask(t *testing.T) {
	e := newEnv(t, "")
	st := &brokenArtifacts{Store: e.store}
	e.store = st
	opt := e.options(offlineModels{offline.New(0)}, nil)
	opt.Logger = slog.New(slog.DiscardHandler)
	x := New(opt)
	x.retryFirst, x.runAttempts = time.Millisecond, 3
	if err := x.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Shutdown(context.Background()) })
	e.exec = x
	task := e.submit("Build a todo app")
	final := e.wait(task.ID, 30*time.Second)
	if final.Status != domain.TaskFailed || !strings.Contains(final.Error, "kept breaking off") || !strings.Contains(final.Error, "artifact index corrupt") {
		t.Fatalf("%s: %q", final.Status, final.Error)
	}
	if n := st.calls.Load(); n != 3 {
		t.Fatalf("the run was attempted %d times, want 3", n)
	}
	logs := e.logs(task.ID)
	if last := logs[len(logs)-1]; last.Type != domain.EventTaskState || !strings.Contains(string(last.Data), "failed") {
		t.Fatalf("last event %+v, want the failed task_state", last)
	}
}
