// Package store defines Catalyst's persistence interface in terms of the
// domain types. Implementations live in sqlite/ (the embedded default) and
// mongo/ (scaled out); storetest/ is the conformance suite both must pass.
//
// Nothing outside store/... knows which implementation is in use.
//
// Rules every implementation follows:
//   - Methods return domain.ErrNotFound (wrapped) for unknown ids and
//     domain.ErrConflict (wrapped) for a duplicate id or a lost optimistic
//     update; callers test with errors.Is.
//   - No multi-document transactions are needed: every state transition is a
//     single-document conditional update, which MongoDB without a replica
//     set (and FerretDB) honour.
//   - Lists are newest first (created_at desc, id desc) and paginate with an
//     opaque cursor.
package store

import (
	"context"

	"github.com/catalyst/catalyst/internal/domain"
)

// Page asks for one page of a list.
type Page struct {
	// Limit is the page size; 0 means DefaultLimit, values above MaxLimit are clamped.
	Limit int
	// Cursor is the NextCursor of the previous page; empty for the first page.
	Cursor string
}

const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Normalized returns the page with Limit clamped to 1..MaxLimit.
func (p Page) Normalized() Page {
	if p.Limit <= 0 {
		p.Limit = DefaultLimit
	}
	if p.Limit > MaxLimit {
		p.Limit = MaxLimit
	}
	return p
}

// TaskFilter narrows ListTasks. Zero values match everything.
type TaskFilter struct {
	ProjectID string
	Statuses  []domain.TaskStatus
}

// Store is everything Catalyst persists.
type Store interface {
	Projects
	Tasks
	Logs
	Artifacts
	Deployments
	Scans

	// Ping checks that the store answers; the health endpoint reports its error.
	Ping(ctx context.Context) error
	// Close releases connections; the store is unusable afterwards.
	Close() error
}

type Projects interface {
	// CreateProject inserts p as given (the caller sets ID and timestamps).
	CreateProject(ctx context.Context, p domain.Project) error
	GetProject(ctx context.Context, id string) (domain.Project, error)
	// ListProjects returns a page and the cursor of the next page ("" at the end).
	ListProjects(ctx context.Context, page Page) ([]domain.Project, string, error)
	// UpdateProject loads the project, applies mutate and stores the result
	// atomically (optimistic concurrency, retried on a lost race).
	UpdateProject(ctx context.Context, id string, mutate func(*domain.Project) error) (domain.Project, error)
}

type Tasks interface {
	CreateTask(ctx context.Context, t domain.Task) error
	GetTask(ctx context.Context, id string) (domain.Task, error)
	ListTasks(ctx context.Context, filter TaskFilter, page Page) ([]domain.Task, string, error)
	// UpdateTask loads the task, applies mutate and stores the result only if
	// nobody changed it in between (Version compare-and-set); on a lost race
	// it reloads and applies mutate again, so mutate must be a pure function
	// of the task it is given. An error from mutate aborts with that error.
	// The stored Version and UpdatedAt are set by the store.
	UpdateTask(ctx context.Context, id string, mutate func(*domain.Task) error) (domain.Task, error)
}

type Logs interface {
	// AppendLog stores l with the next sequence number of its task and
	// returns the stored log (ID and Timestamp filled in when empty, Seq
	// assigned). A log whose ID already exists is not stored twice: the
	// stored one is returned, so a retried append is idempotent.
	AppendLog(ctx context.Context, l domain.AgentLog) (domain.AgentLog, error)
	// ListLogs returns the logs of a task with Seq > afterSeq in Seq order,
	// at most limit (0: all).
	ListLogs(ctx context.Context, taskID string, afterSeq int64, limit int) ([]domain.AgentLog, error)
}

type Artifacts interface {
	// PutArtifact stores the output of one node run; putting the same
	// (task, node, iteration) again replaces it.
	PutArtifact(ctx context.Context, a domain.Artifact) error
	// ListArtifacts returns the artifacts of a task ordered by creation.
	ListArtifacts(ctx context.Context, taskID string) ([]domain.Artifact, error)
}

type Deployments interface {
	// PutDeployment inserts or replaces the deployment of d.TaskID (one per task).
	PutDeployment(ctx context.Context, d domain.Deployment) error
	GetDeployment(ctx context.Context, taskID string) (domain.Deployment, error)
}

type Scans interface {
	CreateScan(ctx context.Context, s domain.ExplorerScan) error
	GetScan(ctx context.Context, id string) (domain.ExplorerScan, error)
	ListScans(ctx context.Context, page Page) ([]domain.ExplorerScan, string, error)
	UpdateScan(ctx context.Context, id string, mutate func(*domain.ExplorerScan) error) (domain.ExplorerScan, error)
}
