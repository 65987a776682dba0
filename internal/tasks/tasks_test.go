package tasks_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
	"github.com/catalyst/catalyst/internal/graph"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/storetest/teststore"
	"github.com/catalyst/catalyst/internal/tasks"
)

// runner is a Dispatcher that also reserves and stops, like the executor.
type runner struct {
	mu         sync.Mutex
	dispatched []string
	stopped    []string
	fail       error
}

func (r *runner) Dispatch(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.dispatched = append(r.dispatched, id)
	return nil
}
func (r *runner) Reserve(t *domain.Task) { t.Reserve("me", time.Now(), time.Minute) }
func (r *runner) Stop(id string)         { r.mu.Lock(); r.stopped = append(r.stopped, id); r.mu.Unlock() }

func setup(t *testing.T) (*tasks.Service, store.Store, *runner, domain.Project) {
	st := teststore.Open(t, "")
	now := time.Now().UTC()
	p := domain.Project{ID: "p1", Name: "p", Status: domain.ProjectActive, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateProject(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	r := &runner{}
	svc := tasks.New(tasks.Options{Store: st, Graphs: graph.Builtin(), Dispatcher: r,
		Recorder: &events.Recorder{Store: st, Broker: events.NewBroker()}})
	return svc, st, r, p
}

func logs(t *testing.T, st store.Store, id string) []domain.AgentLog {
	l, err := st.ListLogs(context.Background(), id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestSubmit(t *testing.T) {
	ctx := context.Background()
	svc, st, r, p := setup(t)
	me := tasks.Local()
	tk, err := svc.Submit(ctx, me, tasks.Submission{ProjectID: p.ID, Prompt: "  Build a todo app  "})
	if err != nil {
		t.Fatal(err)
	}
	if tk.Kind != domain.KindBuild || tk.Prompt != "Build a todo app" || tk.Status != domain.TaskPending || len(tk.GraphState) != 6 {
		t.Fatalf("submitted %+v", tk)
	}
	// The submitting process reserves it: no other process claims it first.
	if tk.LeaseOwner != "me" || !slices.Equal(r.dispatched, []string{tk.ID}) {
		t.Fatalf("lease %q, dispatched %v", tk.LeaseOwner, r.dispatched)
	}
	for name, sub := range map[string]tasks.Submission{
		"unknown kind": {ProjectID: p.ID, Prompt: "x", Kind: "teleport"},
		"blank":        {ProjectID: p.ID, Prompt: " \n "},
		"NUL":          {ProjectID: p.ID, Prompt: "a\x00b"},
		"no project":   {ProjectID: "nope", Prompt: "x"},
	} {
		_, err := svc.Submit(ctx, me, sub)
		want := map[string]error{"unknown kind": tasks.ErrUnknownKind, "blank": domain.ErrInvalid, "NUL": domain.ErrInvalid, "no project": domain.ErrNotFound}[name]
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	if _, err := svc.Submit(ctx, tasks.Actor{}, tasks.Submission{ProjectID: p.ID, Prompt: "x"}); err == nil {
		t.Error("a request without an actor was accepted")
	}
	st.UpdateProject(ctx, p.ID, func(p *domain.Project) error { p.Status = domain.ProjectArchived; return nil })
	if _, err := svc.Submit(ctx, me, tasks.Submission{ProjectID: p.ID, Prompt: "x"}); !errors.Is(err, domain.ErrConflict) {
		t.Errorf("archived project: %v", err)
	}
}

// A task no runner takes is failed with the reason, never left pending in
// silence, and its last event says so.
func TestSubmitThatCannotBeQueued(t *testing.T) {
	ctx := context.Background()
	svc, st, r, p := setup(t)
	r.fail = errors.New("work queue unreachable")
	tk, err := svc.Submit(ctx, tasks.Local(), tasks.Submission{ProjectID: p.ID, Prompt: "x"})
	if !errors.Is(err, tasks.ErrUnavailable) {
		t.Fatalf("err %v", err)
	}
	got, _ := st.GetTask(ctx, tk.ID)
	if got.Status != domain.TaskFailed || got.LeaseOwner != "" {
		t.Fatalf("stored %+v", got)
	}
	l := logs(t, st, tk.ID)
	if last := l[len(l)-1]; last.Type != domain.EventTaskState || !strings.Contains(last.Message, "work queue unreachable") {
		t.Fatalf("last event %+v", last)
	}
}

func TestCancelAndRetry(t *testing.T) {
	ctx := context.Background()
	svc, st, r, p := setup(t)
	me := tasks.Local()
	tk, _ := svc.Submit(ctx, me, tasks.Submission{ProjectID: p.ID, Prompt: "x"})
	if _, err := svc.Retry(ctx, me, tk.ID); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("retry of a pending task: %v", err)
	}
	got, err := svc.Cancel(ctx, me, tk.ID)
	if err != nil || got.Status != domain.TaskCancelled || !slices.Equal(r.stopped, []string{tk.ID}) {
		t.Fatalf("cancel: %v %+v stopped %v", err, got, r.stopped)
	}
	if got.Error != "cancelled by local user" {
		t.Fatalf("reason %q does not say who", got.Error)
	}
	if _, err := svc.Cancel(ctx, me, tk.ID); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("second cancel: %v", err)
	}
	got, err = svc.Retry(ctx, me, tk.ID)
	if err != nil || got.Status != domain.TaskPending || got.LeaseOwner != "me" || len(r.dispatched) != 2 {
		t.Fatalf("retry: %v %+v %v", err, got, r.dispatched)
	}
	var states []string
	for _, l := range logs(t, st, tk.ID) {
		if l.Type == domain.EventTaskState {
			states = append(states, l.Message)
		}
	}
	if len(states) != 2 || states[0] != "Task cancelled: cancelled by local user" || states[1] != "Task pending" {
		t.Fatalf("task_state events %q", states)
	}
	if _, err := svc.Get(ctx, me, "nope"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
}

// Wait sees a task end whoever ends it (another process: here the store).
func TestWait(t *testing.T) {
	ctx := context.Background()
	svc, st, _, p := setup(t)
	tk, _ := svc.Submit(ctx, tasks.Local(), tasks.Submission{ProjectID: p.ID, Prompt: "x"})
	go func() {
		time.Sleep(200 * time.Millisecond)
		st.UpdateTask(ctx, tk.ID, func(t *domain.Task) error { _, err := t.Fail("elsewhere", time.Now()); return err })
	}()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got, err := svc.Wait(wctx, tasks.Local(), tk.ID)
	if err != nil || got.Status != domain.TaskFailed {
		t.Fatalf("%v %+v", err, got)
	}
}
