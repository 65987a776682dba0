package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

// testTenants: every scoped read returns exactly what its scope sees —
// owned projects, shared ones with the member's role, their tasks and
// scans — and another tenant's resource is ErrNotFound, as an unknown id.
func testTenants(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol := "user-alice", "user-bob", "user-carol"
	project := func(owner string, i int) domain.Project {
		p := newProject(at(i))
		p.OwnerID = owner
		must(t, "CreateProject", s.CreateProject(ctx, p))
		return p
	}
	pa := project(alice, 1)
	pb := project(bob, 2)
	legacy := project("", 3) // from before accounts: admins only
	ta := mustTask(t, s, pa.ID, at(4))
	tb := mustTask(t, s, pb.ID, at(5))
	tl := mustTask(t, s, legacy.ID, at(6))

	// Bob shares his project with Carol as viewer, then makes her editor.
	m, err := s.PutMember(ctx, domain.Member{ProjectID: pb.ID, UserID: carol, Role: domain.RoleViewer, AddedBy: bob, CreatedAt: at(7), UpdatedAt: at(7)})
	must(t, "PutMember", err)
	assertEqual(t, "stored member", m, domain.Member{ProjectID: pb.ID, UserID: carol, Role: domain.RoleViewer, AddedBy: bob, CreatedAt: at(7), UpdatedAt: at(7)})
	m, err = s.PutMember(ctx, domain.Member{ProjectID: pb.ID, UserID: carol, Role: domain.RoleEditor, AddedBy: bob, CreatedAt: at(8), UpdatedAt: at(8)})
	must(t, "PutMember again", err)
	if m.Role != domain.RoleEditor || !m.CreatedAt.Equal(at(7)) || !m.UpdatedAt.Equal(at(8)) {
		t.Errorf("changed member = %+v, want role editor, created_at kept, updated_at new", m)
	}
	if _, err := s.PutMember(ctx, domain.Member{ProjectID: pb.ID, UserID: alice, Role: domain.RoleOwner}); !isErr(err, domain.ErrInvalid) {
		t.Errorf("PutMember role owner: %v, want ErrInvalid", err)
	}
	_, err = s.PutMember(ctx, domain.Member{ProjectID: uuid.NewString(), UserID: alice, Role: domain.RoleViewer, CreatedAt: at(9), UpdatedAt: at(9)})
	assertIs(t, "PutMember of an unknown project", err, domain.ErrNotFound)

	projectIDs := func(scope store.Scope) map[string]domain.ProjectRole {
		t.Helper()
		items, _, err := s.ListProjects(ctx, scope, store.Page{Limit: store.MaxLimit})
		must(t, "ListProjects", err)
		out := map[string]domain.ProjectRole{}
		for _, p := range items {
			out[p.ID] = p.MyRole
		}
		return out
	}
	assertEqual(t, "alice's projects", projectIDs(store.User(alice)), map[string]domain.ProjectRole{pa.ID: domain.RoleOwner})
	assertEqual(t, "carol's projects", projectIDs(store.User(carol)), map[string]domain.ProjectRole{pb.ID: domain.RoleEditor})
	assertEqual(t, "admin alice's projects", projectIDs(store.Admin(alice)),
		map[string]domain.ProjectRole{pa.ID: domain.RoleOwner, pb.ID: domain.RoleAdminAccess, legacy.ID: domain.RoleAdminAccess})
	assertEqual(t, "the zero scope's projects", projectIDs(store.Scope{}), map[string]domain.ProjectRole{})
	// A user id that matches the owner of legacy projects ("") sees nothing.
	assertEqual(t, "user \"\" projects", projectIDs(store.User("")), map[string]domain.ProjectRole{})

	got, err := s.GetProjectIn(ctx, store.User(carol), pb.ID)
	must(t, "GetProjectIn as member", err)
	if got.MyRole != domain.RoleEditor || got.OwnerID != bob {
		t.Errorf("carol's view of bob's project: role %q owner %q", got.MyRole, got.OwnerID)
	}
	for _, c := range []struct {
		scope store.Scope
		id    string
	}{{store.User(alice), pb.ID}, {store.User(carol), pa.ID}, {store.User(bob), legacy.ID}, {store.Scope{}, pa.ID}, {store.User(alice), uuid.NewString()}} {
		_, err := s.GetProjectIn(ctx, c.scope, c.id)
		assertIs(t, "GetProjectIn of another tenant's project", err, domain.ErrNotFound)
	}

	taskIDs := func(f store.TaskFilter) []string {
		t.Helper()
		items, _, err := s.ListTasks(ctx, f, store.Page{Limit: store.MaxLimit})
		must(t, "ListTasks", err)
		var out []string
		for _, x := range items {
			out = append(out, x.ID)
		}
		slices.Sort(out)
		return out
	}
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
	assertEqual(t, "alice's tasks", taskIDs(store.TaskFilter{Scope: store.User(alice)}), []string{ta.ID})
	assertEqual(t, "carol's tasks", taskIDs(store.TaskFilter{Scope: store.User(carol)}), []string{tb.ID})
	assertEqual(t, "alice's tasks of bob's project", taskIDs(store.TaskFilter{Scope: store.User(alice), ProjectID: pb.ID}), []string(nil))
	assertEqual(t, "admin's tasks", taskIDs(store.TaskFilter{Scope: store.Admin(alice)}), sorted(ta.ID, tb.ID, tl.ID))
	assertEqual(t, "the zero scope's tasks", taskIDs(store.TaskFilter{}), []string(nil))
	if _, err := s.GetTaskIn(ctx, store.User(carol), tb.ID); err != nil {
		t.Errorf("GetTaskIn as member: %v", err)
	}
	for _, c := range []struct {
		scope store.Scope
		id    string
	}{{store.User(alice), tb.ID}, {store.User(carol), ta.ID}, {store.User(bob), tl.ID}, {store.Scope{}, ta.ID}} {
		_, err := s.GetTaskIn(ctx, c.scope, c.id)
		assertIs(t, "GetTaskIn of another tenant's task", err, domain.ErrNotFound)
	}

	// Removing carol takes bob's project and its tasks out of her scope.
	must(t, "DeleteMember", s.DeleteMember(ctx, pb.ID, carol))
	assertIs(t, "DeleteMember again", s.DeleteMember(ctx, pb.ID, carol), domain.ErrNotFound)
	assertEqual(t, "carol's tasks after removal", taskIDs(store.TaskFilter{Scope: store.User(carol)}), []string(nil))
	if _, err := s.GetProjectIn(ctx, store.User(carol), pb.ID); !isErr(err, domain.ErrNotFound) {
		t.Errorf("GetProjectIn after removal: %v, want ErrNotFound", err)
	}
	members, err := s.ListMembers(ctx, pb.ID)
	must(t, "ListMembers", err)
	if len(members) != 0 {
		t.Errorf("members after removal: %+v", members)
	}

	// Scans: the owner's, and those of a project the scope sees.
	scan := func(owner, projectID string, i int) domain.ExplorerScan {
		sc := newScan(at(i))
		sc.OwnerID, sc.ProjectID = owner, projectID
		must(t, "CreateScan", s.CreateScan(ctx, sc))
		return sc
	}
	sa := scan(alice, "", 10)
	sb := scan(bob, pb.ID, 11)
	_, err = s.PutMember(ctx, domain.Member{ProjectID: pb.ID, UserID: carol, Role: domain.RoleViewer, AddedBy: bob, CreatedAt: at(12), UpdatedAt: at(12)})
	must(t, "PutMember", err)
	scanIDs := func(scope store.Scope) []string {
		t.Helper()
		items, _, err := s.ListScans(ctx, scope, store.Page{Limit: store.MaxLimit})
		must(t, "ListScans", err)
		var out []string
		for _, x := range items {
			out = append(out, x.ID)
		}
		slices.Sort(out)
		return out
	}
	assertEqual(t, "alice's scans", scanIDs(store.User(alice)), []string{sa.ID})
	assertEqual(t, "carol's scans", scanIDs(store.User(carol)), []string{sb.ID})
	assertEqual(t, "all scans", scanIDs(store.All()), sorted(sa.ID, sb.ID))
	assertEqual(t, "the zero scope's scans", scanIDs(store.Scope{}), []string(nil))
	got2, err := s.GetScanIn(ctx, store.User(alice), sa.ID)
	must(t, "GetScanIn", err)
	if got2.OwnerID != alice {
		t.Errorf("scan owner = %q", got2.OwnerID)
	}
	_, err = s.GetScanIn(ctx, store.User(alice), sb.ID)
	assertIs(t, "GetScanIn of another tenant's scan", err, domain.ErrNotFound)
	_, err = s.GetScanIn(ctx, store.User(carol), sa.ID)
	assertIs(t, "GetScanIn of another tenant's scan", err, domain.ErrNotFound)
}

// testUserStats: queued counts a user's pending and running tasks, spent
// sums the cost of all of them, and nobody else's.
func testUserStats(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := mustProject(t, s, T0)
	add := func(user string, status domain.TaskStatus, cost float64) {
		task := newTask(p.ID, T0)
		task.CreatedBy, task.Status, task.Cost = user, status, cost
		must(t, "CreateTask", s.CreateTask(ctx, task))
	}
	add("u1", domain.TaskPending, 0)
	add("u1", domain.TaskRunning, 0.25)
	add("u1", domain.TaskCompleted, 1.5)
	add("u1", domain.TaskFailed, 0.125)
	add("u2", domain.TaskPending, 7)
	st, err := s.UserStats(ctx, "u1")
	must(t, "UserStats", err)
	assertEqual(t, "u1 stats", st, store.UserStats{Queued: 2, Spent: 1.875})
	st, err = s.UserStats(ctx, "nobody")
	must(t, "UserStats of nobody", err)
	assertEqual(t, "nobody's stats", st, store.UserStats{})
}

func isErr(err, target error) bool { return errors.Is(err, target) }
