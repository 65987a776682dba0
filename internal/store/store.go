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

// Scope is whose resources a read may return: a tenant's, or all of them.
// Reads that take one filter by it in the query itself (SQL WHERE, Mongo
// filter), never by reading and then dropping. The zero Scope sees nothing,
// so a read that forgot to say whose it is returns nothing rather than
// everything.
type Scope struct {
	all    bool
	userID string
}

// All is the scope of Catalyst itself: every tenant.
func All() Scope { return Scope{all: true} }

// Admin is the scope of an admin user: every tenant, with roles (MyRole)
// told from userID's point of view: owner of their own projects, admin of
// the others'.
func Admin(userID string) Scope { return Scope{all: true, userID: userID} }

// User is the scope of one user: the projects they own or are a member of,
// the tasks of those projects, and the scans they asked for or that belong
// to those projects.
func User(id string) Scope { return Scope{userID: id} }

// IsAll reports whether s sees every tenant.
func (s Scope) IsAll() bool { return s.all }

// UserID is the user s is limited to, or the admin of Admin ("" for All
// and for the zero Scope).
func (s Scope) UserID() string { return s.userID }

// None reports whether s sees nothing (the zero Scope).
func (s Scope) None() bool { return !s.all && s.userID == "" }

// TaskFilter narrows ListTasks. Zero values of ProjectID and Statuses match
// everything; Scope must be set (its zero value matches nothing).
type TaskFilter struct {
	Scope     Scope
	ProjectID string
	Statuses  []domain.TaskStatus
}

// UserStats is what per-user limits need of a user's tasks.
type UserStats struct {
	// Queued counts their pending and running tasks.
	Queued int
	// Spent is the sum of the cost of all their tasks, in USD.
	Spent float64
}

// Store is everything Catalyst persists.
type Store interface {
	Projects
	Members
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
	// GetProject returns a project whoever owns it (Catalyst's own use:
	// the runner, the deployer); requests go through GetProjectIn.
	GetProject(ctx context.Context, id string) (domain.Project, error)
	// GetProjectIn returns the project if scope sees it, with MyRole set
	// (owner, editor, viewer; admin for All on a project the scope's user
	// has no role in); domain.ErrNotFound otherwise, the same error as for
	// an unknown id.
	GetProjectIn(ctx context.Context, scope Scope, id string) (domain.Project, error)
	// ListProjects returns a page of the projects scope sees (MyRole set)
	// and the cursor of the next page ("" at the end).
	ListProjects(ctx context.Context, scope Scope, page Page) ([]domain.Project, string, error)
	// UpdateProject loads the project, applies mutate and stores the result
	// atomically (optimistic concurrency, retried on a lost race).
	UpdateProject(ctx context.Context, id string, mutate func(*domain.Project) error) (domain.Project, error)
}

// Members are the users a project is shared with, and their roles.
type Members interface {
	// PutMember adds m, or changes the role of the member it names; an
	// unknown project is domain.ErrNotFound.
	PutMember(ctx context.Context, m domain.Member) (domain.Member, error)
	// ListMembers returns a project's members, oldest first.
	ListMembers(ctx context.Context, projectID string) ([]domain.Member, error)
	// DeleteMember removes userID from the project; domain.ErrNotFound
	// when they were no member.
	DeleteMember(ctx context.Context, projectID, userID string) error
}

type Tasks interface {
	CreateTask(ctx context.Context, t domain.Task) error
	// GetTask returns a task whoever may see it (Catalyst's own use);
	// requests go through GetTaskIn.
	GetTask(ctx context.Context, id string) (domain.Task, error)
	// GetTaskIn returns the task if scope sees its project;
	// domain.ErrNotFound otherwise, the same error as for an unknown id.
	GetTaskIn(ctx context.Context, scope Scope, id string) (domain.Task, error)
	ListTasks(ctx context.Context, filter TaskFilter, page Page) ([]domain.Task, string, error)
	// UserStats counts the tasks userID created (Task.CreatedBy).
	UserStats(ctx context.Context, userID string) (UserStats, error)
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
	// GetScanIn returns the scan if scope sees it (its owner, or a
	// project scope sees); domain.ErrNotFound otherwise.
	GetScanIn(ctx context.Context, scope Scope, id string) (domain.ExplorerScan, error)
	ListScans(ctx context.Context, scope Scope, page Page) ([]domain.ExplorerScan, string, error)
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
