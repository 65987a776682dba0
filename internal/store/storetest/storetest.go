// Package storetest is the conformance suite every store.Store
// implementation must pass: call Run from the implementation's tests.
//
// Timestamps in the suite have millisecond precision, the finest that every
// backend stores (MongoDB's BSON dates); a backend that keeps more tests that
// separately.
package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

// Run runs every conformance case; open must return a new, empty store and
// close it when t ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Projects", testProjects},
		{"Tasks", testTasks},
		{"TaskNeedsProject", testTaskNeedsProject},
		{"Scans", testScans},
		{"NotFound", testNotFound},
		{"DuplicateID", testDuplicateID},
		{"PaginateProjects", testPaginateProjects},
		{"PaginateTasks", testPaginateTasks},
		{"PaginateScans", testPaginateScans},
		{"LimitClamping", testLimitClamping},
		{"MalformedCursor", testMalformedCursor},
		{"TaskFilter", testTaskFilter},
		{"UpdateTask", testUpdateTask},
		{"UpdateTaskConcurrent", testUpdateTaskConcurrent},
		{"UpdateProjectConcurrent", testUpdateProjectConcurrent},
		{"UpdateScanConcurrent", testUpdateScanConcurrent},
		{"UpdateMutateError", testUpdateMutateError},
		{"AppendLog", testAppendLog},
		{"AppendLogConcurrent", testAppendLogConcurrent},
		{"AppendLogIdempotent", testAppendLogIdempotent},
		{"ListLogs", testListLogs},
		{"LogNeedsTask", testLogNeedsTask},
		{"Artifacts", testArtifacts},
		{"Deployments", testDeployments},
		{"Timestamps", testTimestamps},
		{"SnapshotRoundTrip", testSnapshotRoundTrip},
		{"SnapshotReplace", testSnapshotReplace},
		{"SnapshotErrors", testSnapshotErrors},
		{"SnapshotPruneDelete", testSnapshotPruneDelete},
		{"SnapshotConcurrentPuts", testSnapshotConcurrentPuts},
		{"SnapshotReplacedWhileRead", testSnapshotReplacedWhileRead},
		{"Tenants", testTenants},
		{"UserStats", testUserStats},
		{"PingAndClose", testPingAndClose},
	}
	cases = append(cases, accountCases...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

// T0 is the base time of the suite's entities.
var T0 = time.Date(2025, 10, 14, 9, 30, 12, 123_000_000, time.UTC)

// at returns T0 plus i seconds.
func at(i int) time.Time { return T0.Add(time.Duration(i) * time.Second) }

func newProject(created time.Time) domain.Project {
	return domain.Project{
		ID: uuid.NewString(), Name: "My Project", Description: "A test project",
		Status: domain.ProjectActive, GitHubRepo: "acme/todo", RepoURL: "https://github.com/acme/todo.git", RepoCredential: "CATALYST_REPO_TOKEN_ACME",
		CreatedAt: created, UpdatedAt: created.Add(time.Millisecond),
	}
}

func newTask(projectID string, created time.Time) domain.Task {
	return domain.Task{
		ID: uuid.NewString(), ProjectID: projectID, Prompt: "Build a todo app", Kind: domain.KindBuild,
		GraphState: domain.NewGraphState([]string{domain.NodePlanner, domain.NodeArchitect, domain.NodeCoder, domain.NodeTester, domain.NodeReviewer, domain.NodeDeployer}), Status: domain.TaskPending,
		CreatedAt: created, UpdatedAt: created,
	}
}

func newScan(created time.Time) domain.ExplorerScan {
	return domain.ExplorerScan{
		ID: uuid.NewString(), SystemName: "SailPoint IdentityIQ",
		RepoURL: "https://github.com/sailpoint/identityiq", JiraProject: "SAILPOINT-IIQ",
		Status: domain.ScanPending, Risks: []string{}, Proposals: []string{},
		CreatedAt: created, UpdatedAt: created,
	}
}

// mustProject stores a new project created at the given time.
func mustProject(t *testing.T, s store.Store, created time.Time) domain.Project {
	t.Helper()
	p := newProject(created)
	if err := s.CreateProject(t.Context(), p); err != nil {
		t.Fatalf("CreateProject: %v", err)
	}
	return p
}

// mustTask stores a new task (and, when projectID is empty, a project for it).
func mustTask(t *testing.T, s store.Store, projectID string, created time.Time) domain.Task {
	t.Helper()
	if projectID == "" {
		projectID = mustProject(t, s, created).ID
	}
	task := newTask(projectID, created)
	if err := s.CreateTask(t.Context(), task); err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	return task
}

// equal compares times with time.Equal and JSON by meaning.
var equal = cmp.Options{
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
	cmp.Comparer(func(a, b json.RawMessage) bool {
		if a == nil || b == nil {
			return a == nil && b == nil
		}
		var x, y any
		return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
	}),
}

func assertEqual[T any](t *testing.T, what string, got, want T, opts ...cmp.Option) {
	t.Helper()
	if d := cmp.Diff(want, got, append(opts, equal)...); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

func assertIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want one wrapping %v", what, err, target)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// ignoreStoreSet ignores the fields an update sets itself.
var ignoreStoreSet = cmpopts.IgnoreFields(domain.Task{}, "UpdatedAt", "Version")

func label(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// withoutRole clears MyRole, which scoped reads fill in and creates do not.
func withoutRole(items []domain.Project, next string, err error) ([]domain.Project, string, error) {
	for i := range items {
		items[i].MyRole = ""
	}
	return items, next, err
}
