package tasks_test

import (
	"context"
	"errors"
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

type auditRec struct {
	mu      sync.Mutex
	entries []string
}

func (r *auditRec) AdminAccess(_ context.Context, a tasks.Actor, action, typ, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, a.ID+" "+action+" "+typ+" "+id)
}

func (r *auditRec) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries
	r.entries = nil
	return e
}

func user(id string) tasks.Actor { return tasks.Actor{Kind: tasks.ActorUser, ID: id, Name: id} }

func tenantSetup(t *testing.T, lim tasks.Limits) (*tasks.Service, store.Store, *auditRec) {
	st := teststore.Open(t, "")
	rec := &auditRec{}
	svc := tasks.New(tasks.Options{Store: st, Graphs: graph.Builtin(), Dispatcher: &runner{}, Limits: lim, Auditor: rec,
		Recorder: &events.Recorder{Store: st, Broker: events.NewBroker()}})
	return svc, st, rec
}

func newProject(t *testing.T, svc *tasks.Service, a tasks.Actor) domain.Project {
	t.Helper()
	now := time.Now().UTC()
	p, err := svc.CreateProject(context.Background(), a, domain.Project{ID: "p-" + a.ID + "-" + now.Format("150405.000000000"),
		Name: a.ID + "'s", Status: domain.ProjectActive, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	if p.OwnerID != a.ID || p.MyRole != domain.RoleOwner {
		t.Fatalf("created project owner %q role %q", p.OwnerID, p.MyRole)
	}
	return p
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: %v, want %v", what, err, target)
	}
}

func TestTenantIsolation(t *testing.T) {
	ctx := context.Background()
	svc, _, rec := tenantSetup(t, tasks.Limits{})
	alice, bob := user("alice"), user("bob")
	admin := tasks.Actor{Kind: tasks.ActorUser, ID: "root", Name: "root", Admin: true}
	pa := newProject(t, svc, alice)
	ta, err := svc.Submit(ctx, alice, tasks.Submission{ProjectID: pa.ID, Prompt: "Build a todo app"})
	if err != nil {
		t.Fatal(err)
	}
	if ta.CreatedBy != "alice" {
		t.Errorf("created_by = %q", ta.CreatedBy)
	}

	// Bob sees none of it: every use case answers as for an unknown id.
	_, err = svc.Get(ctx, bob, ta.ID)
	wantErr(t, "bob Get", err, domain.ErrNotFound)
	_, err = svc.Cancel(ctx, bob, ta.ID)
	wantErr(t, "bob Cancel", err, domain.ErrNotFound)
	_, err = svc.Retry(ctx, bob, ta.ID)
	wantErr(t, "bob Retry", err, domain.ErrNotFound)
	_, err = svc.Submit(ctx, bob, tasks.Submission{ProjectID: pa.ID, Prompt: "x"})
	wantErr(t, "bob Submit", err, domain.ErrNotFound)
	_, err = svc.Project(ctx, bob, pa.ID)
	wantErr(t, "bob Project", err, domain.ErrNotFound)
	_, err = svc.UpdateProject(ctx, bob, pa.ID, func(p *domain.Project) error { p.Name = "mine"; return nil })
	wantErr(t, "bob UpdateProject", err, domain.ErrNotFound)
	_, err = svc.Members(ctx, bob, pa.ID)
	wantErr(t, "bob Members", err, domain.ErrNotFound)
	_, err = svc.AddMember(ctx, bob, pa.ID, "bob", domain.RoleEditor)
	wantErr(t, "bob adds himself", err, domain.ErrNotFound)
	if items, _, err := svc.List(ctx, bob, store.TaskFilter{Scope: store.All()}, store.Page{}); err != nil || len(items) != 0 {
		t.Errorf("bob List (asking for all) = %d tasks, %v", len(items), err)
	}
	if items, _, err := svc.Projects(ctx, bob, store.Page{}); err != nil || len(items) != 0 {
		t.Errorf("bob Projects = %v, %v", items, err)
	}

	// As a viewer, bob reads but changes nothing.
	if _, err := svc.AddMember(ctx, alice, pa.ID, "bob", domain.RoleViewer); err != nil {
		t.Fatal(err)
	}
	if got, err := svc.Get(ctx, bob, ta.ID); err != nil || got.ID != ta.ID {
		t.Fatalf("viewer Get: %v", err)
	}
	if p, err := svc.Project(ctx, bob, pa.ID); err != nil || p.MyRole != domain.RoleViewer {
		t.Errorf("viewer Project: role %q, %v", p.MyRole, err)
	}
	_, err = svc.Cancel(ctx, bob, ta.ID)
	wantErr(t, "viewer Cancel", err, domain.ErrForbidden)
	_, err = svc.Submit(ctx, bob, tasks.Submission{ProjectID: pa.ID, Prompt: "x"})
	wantErr(t, "viewer Submit", err, domain.ErrForbidden)
	_, err = svc.UpdateProject(ctx, bob, pa.ID, func(p *domain.Project) error { p.Name = "mine"; return nil })
	wantErr(t, "viewer UpdateProject", err, domain.ErrForbidden)
	_, err = svc.AddMember(ctx, bob, pa.ID, "carol", domain.RoleViewer)
	wantErr(t, "viewer AddMember", err, domain.ErrForbidden)

	// As an editor he submits, cancels and edits, but neither archives nor
	// manages members.
	if _, err := svc.AddMember(ctx, alice, pa.ID, "bob", domain.RoleEditor); err != nil {
		t.Fatal(err)
	}
	tb, err := svc.Submit(ctx, bob, tasks.Submission{ProjectID: pa.ID, Prompt: "Add a button"})
	if err != nil {
		t.Fatalf("editor Submit: %v", err)
	}
	if _, err := svc.Cancel(ctx, bob, tb.ID); err != nil {
		t.Errorf("editor Cancel: %v", err)
	}
	if p, err := svc.UpdateProject(ctx, bob, pa.ID, func(p *domain.Project) error { p.Description = "shared"; return nil }); err != nil || p.Description != "shared" {
		t.Errorf("editor UpdateProject: %v", err)
	}
	_, err = svc.UpdateProject(ctx, bob, pa.ID, func(p *domain.Project) error { p.Status = domain.ProjectArchived; return nil })
	wantErr(t, "editor archives", err, domain.ErrForbidden)
	_, err = svc.UpdateProject(ctx, bob, pa.ID, func(p *domain.Project) error { p.OwnerID = "bob"; return nil })
	if err == nil {
		t.Error("editor took the project over")
	}
	_, err = svc.AddMember(ctx, bob, pa.ID, "carol", domain.RoleViewer)
	wantErr(t, "editor AddMember", err, domain.ErrForbidden)
	_, err = svc.AddMember(ctx, alice, pa.ID, "alice", domain.RoleViewer)
	wantErr(t, "owner as member", err, domain.ErrConflict)
	_, err = svc.AddMember(ctx, alice, pa.ID, "carol", domain.RoleOwner)
	wantErr(t, "member role owner", err, domain.ErrInvalid)

	// Bob leaves; the project is out of his sight again.
	if err := svc.RemoveMember(ctx, bob, pa.ID, "bob"); err != nil {
		t.Fatalf("leave: %v", err)
	}
	_, err = svc.Get(ctx, bob, tb.ID)
	wantErr(t, "Get after leaving", err, domain.ErrNotFound)

	// The admin sees everything, and each read of alice's data is audited;
	// reads of the admin's own project are not.
	rec.take()
	if _, err := svc.Get(ctx, admin, ta.ID); err != nil {
		t.Fatalf("admin Get: %v", err)
	}
	if got := rec.take(); len(got) != 1 || got[0] != "root read task "+ta.ID {
		t.Errorf("audit of admin Get = %q", got)
	}
	if p, err := svc.Project(ctx, admin, pa.ID); err != nil || p.MyRole != domain.RoleAdminAccess {
		t.Errorf("admin Project: role %q, %v", p.MyRole, err)
	}
	if got := rec.take(); len(got) != 1 || got[0] != "root read project "+pa.ID {
		t.Errorf("audit of admin Project = %q", got)
	}
	if items, _, err := svc.List(ctx, admin, store.TaskFilter{}, store.Page{}); err != nil || len(items) != 2 {
		t.Errorf("admin List = %d, %v", len(items), err)
	}
	if got := rec.take(); len(got) != 1 || got[0] != "root list task project:"+pa.ID {
		t.Errorf("audit of admin List = %q", got)
	}
	own := newProject(t, svc, admin)
	if _, err := svc.Project(ctx, admin, own.ID); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); len(got) != 0 {
		t.Errorf("admin's own project audited: %q", got)
	}
	// Owners archive.
	if p, err := svc.UpdateProject(ctx, alice, pa.ID, func(p *domain.Project) error { p.Status = domain.ProjectArchived; return nil }); err != nil || p.Status != domain.ProjectArchived {
		t.Errorf("owner archives: %v", err)
	}
	// An actor without kind or id sees nothing.
	_, err = svc.Get(ctx, tasks.Actor{}, ta.ID)
	wantErr(t, "no actor", err, domain.ErrNotFound)
}

func TestDefaultProjectPerUser(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := tenantSetup(t, tasks.Limits{})
	pa, err := svc.DefaultProject(ctx, user("alice"))
	if err != nil {
		t.Fatal(err)
	}
	pb, err := svc.DefaultProject(ctx, user("bob"))
	if err != nil {
		t.Fatal(err)
	}
	if pa.ID == pb.ID || pa.OwnerID != "alice" || pb.OwnerID != "bob" {
		t.Fatalf("default projects %+v %+v: each user needs their own", pa, pb)
	}
	again, err := svc.DefaultProject(ctx, user("alice"))
	if err != nil || again.ID != pa.ID {
		t.Fatalf("second DefaultProject = %v, %v", again.ID, err)
	}
}

func TestQueueCap(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := tenantSetup(t, tasks.Limits{MaxQueuedPerUser: 3})
	alice := user("alice")
	p := newProject(t, svc, alice)
	// A burst of parallel submissions: exactly the cap gets through.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, full int
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := svc.Submit(ctx, alice, tasks.Submission{ProjectID: p.ID, Prompt: "x"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, tasks.ErrQueueFull):
				full++
				if !strings.Contains(err.Error(), "you have 3 tasks pending or running") || !strings.Contains(err.Error(), "CATALYST_MAX_QUEUED_TASKS_PER_USER=3") {
					t.Errorf("message %q lacks the figures", err)
				}
			default:
				t.Errorf("Submit: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 3 || full != 7 {
		t.Fatalf("%d accepted, %d refused; want 3 and 7", ok, full)
	}
	// Another user is not held by alice's queue; nor is the token holder.
	bob := user("bob")
	pb := newProject(t, svc, bob)
	if _, err := svc.Submit(ctx, bob, tasks.Submission{ProjectID: pb.ID, Prompt: "x"}); err != nil {
		t.Errorf("bob: %v", err)
	}
	for range 4 {
		if _, err := svc.Submit(ctx, tasks.Local(), tasks.Submission{ProjectID: p.ID, Prompt: "x"}); err != nil {
			t.Fatalf("local: %v", err)
		}
	}
	// Cancelling one frees a place.
	items, _, _ := svc.List(ctx, alice, store.TaskFilter{}, store.Page{Limit: 100})
	for _, x := range items {
		if x.CreatedBy == "alice" {
			if _, err := svc.Cancel(ctx, alice, x.ID); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	mine, _, _ := svc.List(ctx, alice, store.TaskFilter{Statuses: []domain.TaskStatus{domain.TaskPending}}, store.Page{Limit: 100})
	var queuedByAlice int
	for _, x := range mine {
		if x.CreatedBy == "alice" {
			queuedByAlice++
		}
	}
	if queuedByAlice != 2 {
		t.Fatalf("alice has %d pending after a cancel", queuedByAlice)
	}
	if _, err := svc.Submit(ctx, alice, tasks.Submission{ProjectID: p.ID, Prompt: "x"}); err != nil {
		t.Errorf("after a cancel: %v", err)
	}
}

func TestUserBudget(t *testing.T) {
	ctx := context.Background()
	svc, st, _ := tenantSetup(t, tasks.Limits{UserBudgetUSD: 1})
	alice := user("alice")
	p := newProject(t, svc, alice)
	first, err := svc.Submit(ctx, alice, tasks.Submission{ProjectID: p.ID, Prompt: "x"})
	if err != nil {
		t.Fatal(err)
	}
	// The task ran and cost what the budget allows.
	if _, err := st.UpdateTask(ctx, first.ID, func(t *domain.Task) error {
		t.Cost, t.Status = 1.0625, domain.TaskFailed
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, err = svc.Submit(ctx, alice, tasks.Submission{ProjectID: p.ID, Prompt: "x"})
	wantErr(t, "Submit over budget", err, tasks.ErrBudgetSpent)
	if err != nil && (!strings.Contains(err.Error(), "$1.0625") || !strings.Contains(err.Error(), "$1.00 budget")) {
		t.Errorf("message %q lacks the figures", err)
	}
	_, err = svc.Retry(ctx, alice, first.ID)
	wantErr(t, "Retry over budget", err, tasks.ErrBudgetSpent)
	// Another user's budget is their own.
	bob := user("bob")
	if _, err := svc.Submit(ctx, bob, tasks.Submission{ProjectID: newProject(t, svc, bob).ID, Prompt: "x"}); err != nil {
		t.Errorf("bob: %v", err)
	}
}
