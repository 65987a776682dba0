package storetest

import (
	"cmp"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

func testProjects(t *testing.T, s store.Store) {
	p := mustProject(t, s, T0)
	got, err := s.GetProject(t.Context(), p.ID)
	must(t, "GetProject", err)
	assertEqual(t, "project", got, p)

	before := time.Now().Truncate(time.Millisecond)
	up, err := s.UpdateProject(t.Context(), p.ID, func(p *domain.Project) error {
		p.Status = domain.ProjectArchived
		p.Name = "Renamed"
		p.ID = "ignored"
		return nil
	})
	must(t, "UpdateProject", err)
	want := p
	want.Status, want.Name, want.UpdatedAt = domain.ProjectArchived, "Renamed", up.UpdatedAt
	assertEqual(t, "updated project", up, want)
	if up.UpdatedAt.Before(before) {
		t.Errorf("UpdatedAt %v not set by the store (update began %v)", up.UpdatedAt, before)
	}
	got, err = s.GetProject(t.Context(), p.ID)
	must(t, "GetProject", err)
	assertEqual(t, "stored project", got, up)
}

func testTasks(t *testing.T, s store.Store) {
	p := mustProject(t, s, T0)
	started := at(5)
	task := newTask(p.ID, at(1))
	task.Status = domain.TaskRunning
	task.GraphState[domain.NodePlanner] = domain.NodeCompleted
	task.NodeCosts = map[string]float64{domain.NodePlanner: 0.25}
	task.Cost = 0.25
	task.Error = "none yet"
	task.FixIteration = 2
	task.Provider, task.Model = "anthropic", "claude-3-7-sonnet-20250219"
	task.Kind = "explore"
	lease := at(7)
	task.LeaseOwner, task.LeaseExpiresAt = "host:42:abcd", &lease
	task.StartedAt = &started
	must(t, "CreateTask", s.CreateTask(t.Context(), task))
	got, err := s.GetTask(t.Context(), task.ID)
	must(t, "GetTask", err)
	assertEqual(t, "task", got, task)

	// A lease is taken and given up through UpdateTask like any field.
	upd, err := s.UpdateTask(t.Context(), task.ID, func(x *domain.Task) error {
		x.LeaseOwner, x.LeaseExpiresAt, x.Offline, x.Provider, x.Model = "", nil, true, "offline", ""
		return nil
	})
	must(t, "UpdateTask lease", err)
	got, err = s.GetTask(t.Context(), task.ID)
	must(t, "GetTask", err)
	if got.LeaseOwner != "" || got.LeaseExpiresAt != nil || !got.Offline || got.Kind != "explore" || got.Version != upd.Version {
		t.Fatalf("after giving up the lease: %+v", got)
	}

	// A label stored by an earlier version reads as fields.
	legacy := newTask(p.ID, at(3))
	legacy.Provider = domain.OfflineLabel
	must(t, "CreateTask", s.CreateTask(t.Context(), legacy))
	got, err = s.GetTask(t.Context(), legacy.ID)
	must(t, "GetTask", err)
	if !got.Offline || got.Provider != "offline" {
		t.Fatalf("legacy label read as %+v", got.Served())
	}

	// An empty graph and no node costs round-trip too.
	bare := newTask(p.ID, at(2))
	bare.GraphState = map[string]domain.NodeState{}
	must(t, "CreateTask", s.CreateTask(t.Context(), bare))
	got, err = s.GetTask(t.Context(), bare.ID)
	must(t, "GetTask", err)
	if len(got.GraphState) != 0 || got.StartedAt != nil || got.FinishedAt != nil || got.NodeCosts != nil {
		t.Errorf("bare task came back as %+v", got)
	}
}

func testTaskNeedsProject(t *testing.T, s store.Store) {
	err := s.CreateTask(t.Context(), newTask(uuid.NewString(), T0))
	assertIs(t, "CreateTask with an unknown project", err, domain.ErrNotFound)
}

func testScans(t *testing.T, s store.Store) {
	sc := newScan(T0)
	sc.ServiceNowCI, sc.GitHubRepo, sc.TaskID = "IIQ Prod", "sailpoint/identityiq", sc.ID
	sc.Facts = []domain.ScanFact{
		{ID: "git.languages", Source: "git", Kind: "languages", Summary: "Go 75%, Python 25%",
			Value: map[string]any{"Go": float64(750), "Python": float64(250)}},
		{ID: "git.secret.1", Source: "git", Kind: "secret", Summary: "AWS access key",
			Value: map[string]any{"rule": "aws-access-key"}, Where: &domain.ScanLocation{Path: "config.yaml", Line: 3}},
	}
	sc.Sources = []domain.ScanSource{{Source: "git", Status: "ok", Facts: 2, DurationMS: 1200},
		{Source: "jira", Status: "failed", Error: "401 Unauthorized"}}
	must(t, "CreateScan", s.CreateScan(t.Context(), sc))
	got, err := s.GetScan(t.Context(), sc.ID)
	must(t, "GetScan", err)
	assertEqual(t, "scan", got, sc)

	up, err := s.UpdateScan(t.Context(), sc.ID, func(sc *domain.ExplorerScan) error {
		sc.Status = domain.ScanCompleted
		sc.Brief = "An identity governance system."
		sc.Risks = []string{"risk1", "risk2"}
		sc.Proposals = []string{"proposal1"}
		sc.RiskDetails = []domain.ScanRisk{{Title: "risk1", Severity: "critical", Rule: "committed-secret", By: "rule",
			Evidence: []domain.ScanEvidence{{FactID: "git.secret.1", Summary: "AWS access key", Where: &domain.ScanLocation{Path: "config.yaml", Line: 3}}}}}
		sc.Cost = 0.5
		return nil
	})
	must(t, "UpdateScan", err)
	got, err = s.GetScan(t.Context(), sc.ID)
	must(t, "GetScan", err)
	assertEqual(t, "updated scan", got, up)
	if got.Status != domain.ScanCompleted || len(got.Risks) != 2 || got.Brief == "" || got.Cost != 0.5 ||
		len(got.RiskDetails) != 1 || got.RiskDetails[0].Evidence[0].Where.Line != 3 || len(got.Sources) != 2 || got.TaskID != sc.ID {
		t.Errorf("update not stored: %+v", got)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	ctx, id := t.Context(), uuid.NewString()
	_, err := s.GetProject(ctx, id)
	assertIs(t, "GetProject", err, domain.ErrNotFound)
	_, err = s.GetTask(ctx, id)
	assertIs(t, "GetTask", err, domain.ErrNotFound)
	_, err = s.GetScan(ctx, id)
	assertIs(t, "GetScan", err, domain.ErrNotFound)
	_, err = s.GetDeployment(ctx, id)
	assertIs(t, "GetDeployment", err, domain.ErrNotFound)

	called := false
	_, err = s.UpdateProject(ctx, id, func(*domain.Project) error { called = true; return nil })
	assertIs(t, "UpdateProject", err, domain.ErrNotFound)
	_, err = s.UpdateTask(ctx, id, func(*domain.Task) error { called = true; return nil })
	assertIs(t, "UpdateTask", err, domain.ErrNotFound)
	_, err = s.UpdateScan(ctx, id, func(*domain.ExplorerScan) error { called = true; return nil })
	assertIs(t, "UpdateScan", err, domain.ErrNotFound)
	if called {
		t.Error("mutate was called for a missing entity")
	}
}

func testDuplicateID(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := mustProject(t, s, T0)
	dup := p
	dup.Name = "other"
	assertIs(t, "CreateProject twice", s.CreateProject(ctx, dup), domain.ErrConflict)
	got, err := s.GetProject(ctx, p.ID)
	must(t, "GetProject", err)
	assertEqual(t, "project after a duplicate create", got, p)

	task := mustTask(t, s, p.ID, T0)
	dupTask := task
	dupTask.Prompt = "other"
	assertIs(t, "CreateTask twice", s.CreateTask(ctx, dupTask), domain.ErrConflict)
	gotTask, err := s.GetTask(ctx, task.ID)
	must(t, "GetTask", err)
	assertEqual(t, "task after a duplicate create", gotTask, task)

	sc := newScan(T0)
	must(t, "CreateScan", s.CreateScan(ctx, sc))
	dupScan := sc
	dupScan.SystemName = "other"
	assertIs(t, "CreateScan twice", s.CreateScan(ctx, dupScan), domain.ErrConflict)
	gotScan, err := s.GetScan(ctx, sc.ID)
	must(t, "GetScan", err)
	assertEqual(t, "scan after a duplicate create", gotScan, sc)
}

// pageTimes are creation offsets with ties, so the id order decides some pages.
var pageTimes = []int{3, 1, 2, 2, 5, 2, 5, 4}

// testPaginate creates len(pageTimes) items, reads them back three at a
// time while a newer item is inserted between pages, and checks that the
// pages are newest first (created_at desc, id desc), without gap, duplicate
// or the newcomer, and that the last page has no cursor.
func testPaginate[T any](t *testing.T, create func(created time.Time) T,
	list func(store.Page) ([]T, string, error), key func(T) (time.Time, string),
) {
	var want []T
	for _, i := range pageTimes {
		want = append(want, create(at(i)))
	}
	slices.SortFunc(want, func(a, b T) int {
		ta, ia := key(a)
		tb, ib := key(b)
		return cmp.Or(tb.Compare(ta), strings.Compare(ib, ia))
	})
	var got []T
	cursor, pages := "", 0
	for {
		items, next, err := list(store.Page{Limit: 3, Cursor: cursor})
		must(t, label("list page %d", pages+1), err)
		got = append(got, items...)
		pages++
		if pages == 1 {
			create(at(100)) // newer than everything listed: must not show up on later pages
		}
		if next == "" {
			break
		}
		if pages > len(pageTimes) {
			t.Fatalf("pagination does not end")
		}
		cursor = next
	}
	if wantPages := (len(pageTimes) + 2) / 3; pages != wantPages {
		t.Errorf("got %d pages, want %d", pages, wantPages)
	}
	assertEqual(t, "paginated items", got, want)

	first, _, err := list(store.Page{Limit: 1})
	must(t, "list first page", err)
	if len(first) != 1 {
		t.Fatalf("first page has %d items, want 1", len(first))
	}
	if ts, _ := key(first[0]); !ts.Equal(at(100)) {
		t.Errorf("first page starts with an item created at %v, want the newest (%v)", ts, at(100))
	}
}

func testPaginateProjects(t *testing.T, s store.Store) {
	testPaginate(t, func(c time.Time) domain.Project { return mustProject(t, s, c) },
		func(p store.Page) ([]domain.Project, string, error) {
			return withoutRole(s.ListProjects(t.Context(), store.All(), p))
		},
		func(p domain.Project) (time.Time, string) { return p.CreatedAt, p.ID })
}

func testPaginateTasks(t *testing.T, s store.Store) {
	p := mustProject(t, s, T0)
	testPaginate(t, func(c time.Time) domain.Task { return mustTask(t, s, p.ID, c) },
		func(pg store.Page) ([]domain.Task, string, error) {
			return s.ListTasks(t.Context(), store.TaskFilter{Scope: store.All()}, pg)
		},
		func(t domain.Task) (time.Time, string) { return t.CreatedAt, t.ID })
}

func testPaginateScans(t *testing.T, s store.Store) {
	testPaginate(t, func(c time.Time) domain.ExplorerScan {
		sc := newScan(c)
		must(t, "CreateScan", s.CreateScan(t.Context(), sc))
		return sc
	},
		func(p store.Page) ([]domain.ExplorerScan, string, error) {
			return s.ListScans(t.Context(), store.All(), p)
		},
		func(sc domain.ExplorerScan) (time.Time, string) { return sc.CreatedAt, sc.ID })
}

func testLimitClamping(t *testing.T, s store.Store) {
	for i := range store.MaxLimit + 1 {
		mustProject(t, s, at(i))
	}
	for _, c := range []struct {
		limit, want int
		more        bool
	}{
		{0, store.DefaultLimit, true},
		{-3, store.DefaultLimit, true},
		{7, 7, true},
		{store.MaxLimit + 1000, store.MaxLimit, true},
	} {
		items, next, err := s.ListProjects(t.Context(), store.All(), store.Page{Limit: c.limit})
		must(t, label("ListProjects limit %d", c.limit), err)
		if len(items) != c.want || (next != "") != c.more {
			t.Errorf("limit %d: got %d items, next cursor %q; want %d items, more=%v", c.limit, len(items), next, c.want, c.more)
		}
		if c.limit == store.MaxLimit+1000 {
			rest, next, err := s.ListProjects(t.Context(), store.All(), store.Page{Limit: c.limit, Cursor: next})
			must(t, "ListProjects last page", err)
			if len(rest) != 1 || next != "" || !rest[0].CreatedAt.Equal(at(0)) {
				t.Errorf("last page: %d items, cursor %q; want the oldest project and no cursor", len(rest), next)
			}
		}
	}
}

func testMalformedCursor(t *testing.T, s store.Store) {
	mustTask(t, s, "", T0)
	for _, cursor := range []string{"not a cursor!", "bm90IGpzb24", "e30", "eyJ0IjoiMjAyNSJ9"} {
		_, _, err := s.ListProjects(t.Context(), store.All(), store.Page{Cursor: cursor})
		assertIs(t, label("ListProjects cursor %q", cursor), err, domain.ErrInvalid)
		_, _, err = s.ListTasks(t.Context(), store.TaskFilter{Scope: store.All()}, store.Page{Cursor: cursor})
		assertIs(t, label("ListTasks cursor %q", cursor), err, domain.ErrInvalid)
		_, _, err = s.ListScans(t.Context(), store.All(), store.Page{Cursor: cursor})
		assertIs(t, label("ListScans cursor %q", cursor), err, domain.ErrInvalid)
	}
}

func testTaskFilter(t *testing.T, s store.Store) {
	a, b := mustProject(t, s, T0), mustProject(t, s, T0)
	ids := map[string]string{}
	for i, c := range []struct {
		project, name string
		status        domain.TaskStatus
	}{
		{a.ID, "a-pending", domain.TaskPending},
		{a.ID, "a-running", domain.TaskRunning},
		{a.ID, "a-failed", domain.TaskFailed},
		{b.ID, "b-running", domain.TaskRunning},
		{b.ID, "b-completed", domain.TaskCompleted},
	} {
		task := newTask(c.project, at(i))
		task.Status = c.status
		must(t, "CreateTask", s.CreateTask(t.Context(), task))
		ids[task.ID] = c.name
	}
	for _, c := range []struct {
		filter store.TaskFilter
		want   []string // newest first
	}{
		{store.TaskFilter{Scope: store.All()}, []string{"b-completed", "b-running", "a-failed", "a-running", "a-pending"}},
		{store.TaskFilter{Scope: store.All(), ProjectID: a.ID}, []string{"a-failed", "a-running", "a-pending"}},
		{store.TaskFilter{Scope: store.All(), Statuses: []domain.TaskStatus{domain.TaskRunning}}, []string{"b-running", "a-running"}},
		{store.TaskFilter{Scope: store.All(), ProjectID: a.ID, Statuses: []domain.TaskStatus{domain.TaskRunning, domain.TaskFailed}},
			[]string{"a-failed", "a-running"}},
		{store.TaskFilter{Scope: store.All(), Statuses: []domain.TaskStatus{domain.TaskCancelled}}, nil},
		{store.TaskFilter{Scope: store.All(), ProjectID: uuid.NewString()}, nil},
	} {
		// Page one at a time so the cursor is combined with the filter.
		var got []string
		for cursor, pages := "", 0; ; pages++ {
			if pages > 5 {
				t.Fatalf("ListTasks %+v: pagination does not end", c.filter)
			}
			items, next, err := s.ListTasks(t.Context(), c.filter, store.Page{Limit: 1, Cursor: cursor})
			must(t, "ListTasks", err)
			for _, it := range items {
				got = append(got, ids[it.ID])
			}
			if cursor = next; next == "" {
				break
			}
		}
		assertEqual(t, label("ListTasks %+v", c.filter), got, c.want)
	}
}

func testUpdateTask(t *testing.T, s store.Store) {
	task := mustTask(t, s, "", T0)
	started := at(3)
	before := time.Now().Truncate(time.Millisecond)
	up, err := s.UpdateTask(t.Context(), task.ID, func(t *domain.Task) error {
		t.ID = "ignored"
		t.Status = domain.TaskRunning
		t.GraphState[domain.NodePlanner] = domain.NodeRunning
		t.NodeCosts = map[string]float64{domain.NodePlanner: 0.5}
		t.Cost = 0.5
		t.StartedAt = &started
		t.Version = 42 // set by the store, not by mutate
		return nil
	})
	must(t, "UpdateTask", err)
	want := task
	want.Status = domain.TaskRunning
	want.GraphState = domain.NewGraphState([]string{domain.NodePlanner, domain.NodeArchitect, domain.NodeCoder, domain.NodeTester, domain.NodeReviewer, domain.NodeDeployer})
	want.GraphState[domain.NodePlanner] = domain.NodeRunning
	want.NodeCosts = map[string]float64{domain.NodePlanner: 0.5}
	want.Cost = 0.5
	want.StartedAt = &started
	assertEqual(t, "updated task", up, want, ignoreStoreSet)
	if up.Version != task.Version+1 {
		t.Errorf("Version = %d after one update of version %d", up.Version, task.Version)
	}
	if up.UpdatedAt.Before(before) {
		t.Errorf("UpdatedAt %v not set by the store (update began %v)", up.UpdatedAt, before)
	}
	got, err := s.GetTask(t.Context(), task.ID)
	must(t, "GetTask", err)
	assertEqual(t, "stored task", got, up)

	up2, err := s.UpdateTask(t.Context(), task.ID, func(t *domain.Task) error {
		t.Status = domain.TaskCompleted
		return nil
	})
	must(t, "UpdateTask", err)
	if up2.Version != task.Version+2 || up2.Cost != 0.5 || up2.Status != domain.TaskCompleted {
		t.Errorf("second update: version %d cost %v status %s", up2.Version, up2.Cost, up2.Status)
	}
}

// hammer runs workers goroutines that each call update times times.
func hammer(t *testing.T, workers, times int, update func() error) {
	var wg sync.WaitGroup
	errs := make(chan error, workers*times)
	for range workers {
		wg.Go(func() {
			for range times {
				if err := update(); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent update: %v", err)
	}
}

const workers, times = 8, 10

func testUpdateTaskConcurrent(t *testing.T, s store.Store) {
	task := mustTask(t, s, "", T0)
	hammer(t, workers, times, func() error {
		_, err := s.UpdateTask(t.Context(), task.ID, func(t *domain.Task) error {
			t.FixIteration++
			t.Cost += 1
			return nil
		})
		return err
	})
	got, err := s.GetTask(t.Context(), task.ID)
	must(t, "GetTask", err)
	if n := workers * times; got.FixIteration != n || got.Cost != float64(n) || got.Version != task.Version+int64(n) {
		t.Errorf("after %d concurrent increments: fix_iteration %d, cost %v, version %d", n, got.FixIteration, got.Cost, got.Version)
	}
}

func testUpdateProjectConcurrent(t *testing.T, s store.Store) {
	p := mustProject(t, s, T0)
	hammer(t, workers, times, func() error {
		_, err := s.UpdateProject(t.Context(), p.ID, func(p *domain.Project) error {
			p.Description += "x"
			return nil
		})
		return err
	})
	got, err := s.GetProject(t.Context(), p.ID)
	must(t, "GetProject", err)
	if want := p.Description + strings.Repeat("x", workers*times); got.Description != want {
		t.Errorf("after concurrent appends: description %q, want %q", got.Description, want)
	}
}

func testUpdateScanConcurrent(t *testing.T, s store.Store) {
	sc := newScan(T0)
	must(t, "CreateScan", s.CreateScan(t.Context(), sc))
	hammer(t, workers, times, func() error {
		_, err := s.UpdateScan(t.Context(), sc.ID, func(sc *domain.ExplorerScan) error {
			sc.Risks = append(sc.Risks, "r")
			return nil
		})
		return err
	})
	got, err := s.GetScan(t.Context(), sc.ID)
	must(t, "GetScan", err)
	if len(got.Risks) != workers*times {
		t.Errorf("after %d concurrent appends: %d risks", workers*times, len(got.Risks))
	}
}

func testUpdateMutateError(t *testing.T, s store.Store) {
	ctx := t.Context()
	task := mustTask(t, s, "", T0)
	checkAborted(t, "task", task,
		func(m func(*domain.Task) error) error { _, err := s.UpdateTask(ctx, task.ID, m); return err },
		func() (domain.Task, error) { return s.GetTask(ctx, task.ID) },
		func(t *domain.Task) { t.Status = domain.TaskFailed })

	p, err := s.GetProject(ctx, task.ProjectID)
	must(t, "GetProject", err)
	checkAborted(t, "project", p,
		func(m func(*domain.Project) error) error { _, err := s.UpdateProject(ctx, p.ID, m); return err },
		func() (domain.Project, error) { return s.GetProject(ctx, p.ID) },
		func(p *domain.Project) { p.Name = "changed" })

	sc := newScan(T0)
	must(t, "CreateScan", s.CreateScan(ctx, sc))
	checkAborted(t, "scan", sc,
		func(m func(*domain.ExplorerScan) error) error { _, err := s.UpdateScan(ctx, sc.ID, m); return err },
		func() (domain.ExplorerScan, error) { return s.GetScan(ctx, sc.ID) },
		func(sc *domain.ExplorerScan) { sc.Brief = "changed" })
}

// checkAborted updates with a mutate that changes the value and then fails:
// the update must return that error and leave stored unchanged.
func checkAborted[T any](t *testing.T, what string, stored T,
	update func(mutate func(*T) error) error, get func() (T, error), change func(*T),
) {
	t.Helper()
	boom := errors.New("boom")
	err := update(func(v *T) error { change(v); return boom })
	assertIs(t, "update of a "+what+" with a failing mutate", err, boom)
	got, err := get()
	must(t, "get "+what, err)
	assertEqual(t, what+" after an aborted update", got, stored)
}

func testAppendLog(t *testing.T, s store.Store) {
	task := mustTask(t, s, "", T0)
	before := time.Now().Add(-time.Second)
	first, err := s.AppendLog(t.Context(), domain.AgentLog{
		TaskID: task.ID, Type: domain.EventLog, AgentName: "Planner", Message: "Analyzing requirements", Level: "info",
	})
	must(t, "AppendLog", err)
	if first.ID == "" || first.Seq != 1 || first.Timestamp.Before(before) {
		t.Errorf("first log: id %q seq %d timestamp %v; want an id, seq 1 and the current time", first.ID, first.Seq, first.Timestamp)
	}
	second, err := s.AppendLog(t.Context(), domain.AgentLog{
		ID: uuid.NewString(), TaskID: task.ID, Type: domain.EventNodeState, AgentName: "Planner",
		Message: "planner running", Data: json.RawMessage(`{"node":"planner","state":"running"}`), Timestamp: at(7),
	})
	must(t, "AppendLog", err)
	if second.Seq != 2 || !second.Timestamp.Equal(at(7)) {
		t.Errorf("second log: seq %d timestamp %v; want 2 and the given %v", second.Seq, second.Timestamp, at(7))
	}
	got, err := s.ListLogs(t.Context(), task.ID, 0, 0)
	must(t, "ListLogs", err)
	assertEqual(t, "stored logs", got, []domain.AgentLog{first, second})
}

func testAppendLogConcurrent(t *testing.T, s store.Store) {
	a, b := mustTask(t, s, "", T0), mustTask(t, s, "", T0)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for w := range 6 {
		task := a
		if w%3 == 2 {
			task = b // 4 writers on a, 2 on b, interleaved
		}
		wg.Go(func() {
			for i := range 20 {
				_, err := s.AppendLog(t.Context(), domain.AgentLog{
					TaskID: task.ID, Type: domain.EventLog, AgentName: "Coder", Message: label("w%d-%d", w, i),
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent AppendLog: %v", err)
	}
	for task, n := range map[string]int{a.ID: 80, b.ID: 40} {
		logs, err := s.ListLogs(t.Context(), task, 0, 0)
		must(t, "ListLogs", err)
		msgs := map[string]bool{}
		for i, l := range logs {
			if l.Seq != int64(i+1) || l.TaskID != task {
				t.Fatalf("log %d of %d has seq %d (task %s): want 1..%d without gap", i, n, l.Seq, l.TaskID, n)
			}
			msgs[l.Message] = true
		}
		if len(logs) != n || len(msgs) != n {
			t.Errorf("task got %d logs (%d distinct), want %d", len(logs), len(msgs), n)
		}
	}
}

func testAppendLogIdempotent(t *testing.T, s store.Store) {
	task := mustTask(t, s, "", T0)
	id := uuid.NewString()
	first, err := s.AppendLog(t.Context(), domain.AgentLog{ID: id, TaskID: task.ID, Type: domain.EventLog, Message: "first"})
	must(t, "AppendLog", err)
	_, err = s.AppendLog(t.Context(), domain.AgentLog{TaskID: task.ID, Type: domain.EventLog, Message: "other"})
	must(t, "AppendLog", err)
	again, err := s.AppendLog(t.Context(), domain.AgentLog{ID: id, TaskID: task.ID, Type: domain.EventLog, Message: "retried"})
	must(t, "AppendLog retry", err)
	assertEqual(t, "retried append", again, first)
	next, err := s.AppendLog(t.Context(), domain.AgentLog{TaskID: task.ID, Type: domain.EventLog, Message: "next"})
	must(t, "AppendLog", err)
	if next.Seq != 3 {
		t.Errorf("append after a retried one got seq %d, want 3 (no gap)", next.Seq)
	}
	logs, err := s.ListLogs(t.Context(), task.ID, 0, 0)
	must(t, "ListLogs", err)
	if len(logs) != 3 {
		t.Errorf("got %d logs, want 3: a retried append must not store twice", len(logs))
	}
}

func testListLogs(t *testing.T, s store.Store) {
	task := mustTask(t, s, "", T0)
	for i := range 10 {
		_, err := s.AppendLog(t.Context(), domain.AgentLog{TaskID: task.ID, Type: domain.EventLog, Message: label("m%d", i+1)})
		must(t, "AppendLog", err)
	}
	seqs := func(after int64, limit int) []int64 {
		logs, err := s.ListLogs(t.Context(), task.ID, after, limit)
		must(t, "ListLogs", err)
		out := []int64{}
		for _, l := range logs {
			if l.Message != label("m%d", l.Seq) {
				t.Errorf("log seq %d has message %q", l.Seq, l.Message)
			}
			out = append(out, l.Seq)
		}
		return out
	}
	assertEqual(t, "after 3 limit 2", seqs(3, 2), []int64{4, 5})
	assertEqual(t, "after 8", seqs(8, 0), []int64{9, 10})
	assertEqual(t, "after 10", seqs(10, 0), []int64{})
	assertEqual(t, "all", seqs(0, 0), []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	assertEqual(t, "limit 1", seqs(0, 1), []int64{1})
	other, err := s.ListLogs(t.Context(), uuid.NewString(), 0, 0)
	must(t, "ListLogs of an unknown task", err)
	if len(other) != 0 {
		t.Errorf("unknown task has %d logs", len(other))
	}
}

func testLogNeedsTask(t *testing.T, s store.Store) {
	ctx, id := t.Context(), uuid.NewString()
	_, err := s.AppendLog(ctx, domain.AgentLog{TaskID: id, Type: domain.EventLog, Message: "orphan"})
	assertIs(t, "AppendLog for an unknown task", err, domain.ErrNotFound)
	err = s.PutArtifact(ctx, domain.Artifact{TaskID: id, Node: domain.NodePlanner, Output: json.RawMessage(`{}`), CreatedAt: T0})
	assertIs(t, "PutArtifact for an unknown task", err, domain.ErrNotFound)
	err = s.PutDeployment(ctx, domain.Deployment{ID: uuid.NewString(), TaskID: id, CreatedAt: T0})
	assertIs(t, "PutDeployment for an unknown task", err, domain.ErrNotFound)
}

func testArtifacts(t *testing.T, s store.Store) {
	task, other := mustTask(t, s, "", T0), mustTask(t, s, "", T0)
	art := func(taskID, node string, iter, sec int, output string) domain.Artifact {
		return domain.Artifact{
			TaskID: taskID, Node: node, Iteration: iter, Output: json.RawMessage(output), Cost: float64(sec) / 100,
			Usage: domain.Usage{InputTokens: 1000, OutputTokens: int64(sec), CacheReadTokens: 3, CacheWriteTokens: 4}, CreatedAt: at(sec),
		}
	}
	planner := art(task.ID, domain.NodePlanner, 0, 1, `{"requirements":["a","b"]}`)
	coder0 := art(task.ID, domain.NodeCoder, 0, 2, `{"files":[{"path":"main.go"}]}`)
	coder1 := art(task.ID, domain.NodeCoder, 1, 3, `{"files":[]}`)
	for _, a := range []domain.Artifact{coder1, planner, coder0, art(other.ID, domain.NodeCoder, 0, 0, `{}`)} {
		must(t, "PutArtifact", s.PutArtifact(t.Context(), a))
	}
	coder0.Output, coder0.Cost = json.RawMessage(`{"files":[{"path":"main.go"},{"path":"go.mod"}]}`), 0.9
	must(t, "PutArtifact again", s.PutArtifact(t.Context(), coder0))
	got, err := s.ListArtifacts(t.Context(), task.ID)
	must(t, "ListArtifacts", err)
	assertEqual(t, "artifacts", got, []domain.Artifact{planner, coder0, coder1})
}

func testDeployments(t *testing.T, s store.Store) {
	task := mustTask(t, s, "", T0)
	d := domain.Deployment{
		ID: uuid.NewString(), TaskID: task.ID, URL: "http://localhost:8001/apps/" + task.ID + "/",
		CommitSHA: "abc123", Cost: 0.25, Report: "deployed", Mock: true, CreatedAt: at(1),
	}
	must(t, "PutDeployment", s.PutDeployment(t.Context(), d))
	got, err := s.GetDeployment(t.Context(), task.ID)
	must(t, "GetDeployment", err)
	assertEqual(t, "deployment", got, d)

	d2 := domain.Deployment{
		ID: uuid.NewString(), TaskID: task.ID, URL: "https://github.com/acme/todo/pull/1", CommitSHA: "def456",
		Cost: 0.5, Report: "published", Branch: "catalyst/todo", PullRequestURL: "https://github.com/acme/todo/pull/1",
		CreatedAt: at(2),
	}
	must(t, "PutDeployment again", s.PutDeployment(t.Context(), d2))
	got, err = s.GetDeployment(t.Context(), task.ID)
	must(t, "GetDeployment", err)
	assertEqual(t, "replaced deployment", got, d2)
}

func testTimestamps(t *testing.T, s store.Store) {
	zone := time.FixedZone("CEST", 2*60*60)
	local := time.Date(2025, 10, 14, 11, 30, 12, 987_000_000, zone)
	p := newProject(local)
	must(t, "CreateProject", s.CreateProject(t.Context(), p))
	got, err := s.GetProject(t.Context(), p.ID)
	must(t, "GetProject", err)
	if !got.CreatedAt.Equal(local) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("created_at %v came back as %v (%v); want the same instant in UTC", local, got.CreatedAt, got.CreatedAt.Location())
	}

	finished := local.Add(time.Hour + 456*time.Millisecond)
	task := newTask(p.ID, local)
	task.StartedAt, task.FinishedAt = &local, &finished
	must(t, "CreateTask", s.CreateTask(t.Context(), task))
	gotT, err := s.GetTask(t.Context(), task.ID)
	must(t, "GetTask", err)
	assertEqual(t, "task timestamps", gotT, task)
	if gotT.FinishedAt.Location() != time.UTC {
		t.Errorf("finished_at came back in %v, want UTC", gotT.FinishedAt.Location())
	}
}

func testPingAndClose(t *testing.T, s store.Store) {
	must(t, "Ping", s.Ping(t.Context()))
	must(t, "Close", s.Close())
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping after Close succeeded")
	}
}
