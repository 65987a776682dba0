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
	"errors"
	"io"
	"time"

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
	Snapshots
	Users
	Sessions
	APIKeys
	Invites
	AuditLogs

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

// MaxSnapshotSize is the largest workspace archive, in bytes, that
// PutSnapshot stores (256 MiB). A generated app's archive is far smaller; a
// bigger one is refused with ErrSnapshotTooLarge rather than filling the
// database.
const MaxSnapshotSize = 256 << 20

// ErrSnapshotTooLarge is wrapped by PutSnapshot when the data exceeds
// MaxSnapshotSize; nothing is stored then.
var ErrSnapshotTooLarge = errors.New("workspace snapshot exceeds the size cap")

// ErrSnapshotCorrupt is wrapped by a snapshot reader whose data does not
// match the size or SHA-256 recorded when it was put.
var ErrSnapshotCorrupt = errors.New("workspace snapshot corrupt")

// SnapshotInfo describes one stored workspace archive: the tree a task's
// workspace had when a node run (Node, Iteration) completed.
type SnapshotInfo struct {
	// ID is new with every put, even one that replaces the same
	// (TaskID, Node, Iteration): readers may cache what they extract by it.
	ID        string    `json:"id"`
	TaskID    string    `json:"task_id"`
	Node      string    `json:"node"`
	Iteration int       `json:"iteration"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"` // lowercase hex of the data
	CreatedAt time.Time `json:"created_at"`
}

// Snapshots keeps the workspace archives of tasks, so that a worker taking a
// task over and every API node find the workspace where the last completed
// node left it, with no disk in common. The store treats the data as opaque
// bytes.
type Snapshots interface {
	// PutSnapshot stores data as the snapshot of (info.TaskID, info.Node,
	// info.Iteration), replacing one put before under the same key, and
	// returns what it stored. The store sets ID, Size, SHA256 and CreatedAt;
	// when the caller sets SHA256 or Size, the data must match them. Data
	// beyond MaxSnapshotSize fails with ErrSnapshotTooLarge; an unknown task
	// with domain.ErrNotFound. A failed put leaves the previous snapshot.
	PutSnapshot(ctx context.Context, info SnapshotInfo, data io.Reader) (SnapshotInfo, error)
	// LatestSnapshot returns the snapshot of taskID put last, and its data;
	// domain.ErrNotFound when the task has none. The data is fetched on the
	// first Read (a caller that only needs the info closes it at once) and
	// checked as it is read: the Read that reaches its end fails with
	// ErrSnapshotCorrupt if the size or SHA-256 differ, so a caller must
	// read to io.EOF before trusting what it extracted. A snapshot replaced
	// or deleted while it is read fails with domain.ErrNotFound.
	LatestSnapshot(ctx context.Context, taskID string) (SnapshotInfo, io.ReadCloser, error)
	// ListSnapshots returns the snapshots of taskID, newest put first.
	ListSnapshots(ctx context.Context, taskID string) ([]SnapshotInfo, error)
	// PruneSnapshots deletes all but the keep newest snapshots of taskID
	// and returns how many it deleted.
	PruneSnapshots(ctx context.Context, taskID string, keep int) (int, error)
	// DeleteSnapshots deletes every snapshot of taskID (none is no error).
	DeleteSnapshots(ctx context.Context, taskID string) error
}
