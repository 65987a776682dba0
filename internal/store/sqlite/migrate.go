package sqlite

import (
	"context"
	"fmt"
)

// migrations is the ordered schema history. Each entry runs once, in its own
// transaction, and the database remembers the highest version applied in
// schema_version; never edit an entry that has shipped, append a new one.
var migrations = []string{
	// 1: the collections of the original backend, plus node_artifacts.
	`
CREATE TABLE projects (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL,
	description TEXT NOT NULL,
	status      TEXT NOT NULL,
	github_repo TEXT NOT NULL DEFAULT '',
	created_at  TEXT NOT NULL,
	updated_at  TEXT NOT NULL,
	version     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX projects_created ON projects (created_at DESC, id DESC);

CREATE TABLE tasks (
	id            TEXT PRIMARY KEY,
	project_id    TEXT NOT NULL REFERENCES projects (id),
	prompt        TEXT NOT NULL,
	graph_state   TEXT NOT NULL,
	status        TEXT NOT NULL,
	cost          REAL NOT NULL,
	node_costs    TEXT NOT NULL,
	error         TEXT NOT NULL DEFAULT '',
	fix_iteration INTEGER NOT NULL DEFAULT 0,
	provider      TEXT NOT NULL DEFAULT '',
	created_at    TEXT NOT NULL,
	updated_at    TEXT NOT NULL,
	started_at    TEXT,
	finished_at   TEXT,
	version       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tasks_created ON tasks (created_at DESC, id DESC);
CREATE INDEX tasks_project_created ON tasks (project_id, created_at DESC, id DESC);
CREATE INDEX tasks_status_created ON tasks (status, created_at DESC, id DESC);

CREATE TABLE agent_logs (
	id         TEXT PRIMARY KEY,
	task_id    TEXT NOT NULL REFERENCES tasks (id),
	seq        INTEGER NOT NULL,
	type       TEXT NOT NULL,
	agent_name TEXT NOT NULL,
	message    TEXT NOT NULL,
	level      TEXT NOT NULL DEFAULT '',
	data       TEXT,
	timestamp  TEXT NOT NULL,
	UNIQUE (task_id, seq)
);

CREATE TABLE deployments (
	task_id          TEXT PRIMARY KEY REFERENCES tasks (id),
	id               TEXT NOT NULL UNIQUE,
	url              TEXT NOT NULL,
	commit_sha       TEXT NOT NULL,
	cost             REAL NOT NULL,
	report           TEXT NOT NULL,
	mock             INTEGER NOT NULL,
	branch           TEXT NOT NULL DEFAULT '',
	pull_request_url TEXT NOT NULL DEFAULT '',
	created_at       TEXT NOT NULL
);

CREATE TABLE explorer_scans (
	id           TEXT PRIMARY KEY,
	system_name  TEXT NOT NULL,
	repo_url     TEXT NOT NULL DEFAULT '',
	jira_project TEXT NOT NULL DEFAULT '',
	status       TEXT NOT NULL,
	brief        TEXT NOT NULL,
	risks        TEXT NOT NULL,
	proposals    TEXT NOT NULL,
	facts        TEXT NOT NULL,
	error        TEXT NOT NULL DEFAULT '',
	cost         REAL NOT NULL,
	created_at   TEXT NOT NULL,
	updated_at   TEXT NOT NULL,
	version      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX explorer_scans_created ON explorer_scans (created_at DESC, id DESC);

CREATE TABLE node_artifacts (
	task_id    TEXT NOT NULL REFERENCES tasks (id),
	node       TEXT NOT NULL,
	iteration  INTEGER NOT NULL,
	output     TEXT,
	cost       REAL NOT NULL,
	usage      TEXT NOT NULL,
	created_at TEXT NOT NULL,
	PRIMARY KEY (task_id, node, iteration)
);
`,
	// 2: task kinds, who served a task as fields, and leases.
	`
ALTER TABLE tasks ADD COLUMN kind TEXT NOT NULL DEFAULT 'build';
ALTER TABLE tasks ADD COLUMN model TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN offline INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN lease_expires_at TEXT;
`,
	// 3: workspace snapshots. seq orders puts (AUTOINCREMENT never reuses a
	// value, so a replacement is newer than everything before it). The data
	// is split into chunks keyed by the snapshot id, so that a put writes one
	// chunk per short transaction instead of holding the single writer for a
	// whole archive, and a reader of a replaced snapshot sees its chunks
	// vanish rather than a mix of two archives.
	`
CREATE TABLE workspace_snapshots (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	id         TEXT NOT NULL UNIQUE,
	task_id    TEXT NOT NULL REFERENCES tasks (id),
	node       TEXT NOT NULL,
	iteration  INTEGER NOT NULL,
	size       INTEGER NOT NULL,
	sha256     TEXT NOT NULL,
	created_at TEXT NOT NULL,
	UNIQUE (task_id, node, iteration)
);
CREATE INDEX workspace_snapshots_task_seq ON workspace_snapshots (task_id, seq);

CREATE TABLE workspace_snapshot_chunks (
	snapshot_id TEXT NOT NULL,
	n           INTEGER NOT NULL,
	task_id     TEXT NOT NULL,
	data        BLOB NOT NULL,
	PRIMARY KEY (snapshot_id, n)
);
CREATE INDEX workspace_snapshot_chunks_task ON workspace_snapshot_chunks (task_id);
`,
	// 4: explorer scans run as explore tasks: their other inputs, their
	// task, how each source fared and the risks with their evidence.
	`
ALTER TABLE explorer_scans ADD COLUMN servicenow_ci TEXT NOT NULL DEFAULT '';
ALTER TABLE explorer_scans ADD COLUMN github_repo TEXT NOT NULL DEFAULT '';
ALTER TABLE explorer_scans ADD COLUMN task_id TEXT NOT NULL DEFAULT '';
ALTER TABLE explorer_scans ADD COLUMN sources TEXT NOT NULL DEFAULT '[]';
ALTER TABLE explorer_scans ADD COLUMN risk_details TEXT NOT NULL DEFAULT '[]';
`,
	// 5: accounts (users, sessions, API keys, invites) and the append-only
	// audit log. Tokens and keys are stored only as SHA-256 hashes. The
	// triggers make the audit log append-only for every writer of the file,
	// not only for this code.
	`
CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	email         TEXT NOT NULL UNIQUE,
	name          TEXT NOT NULL,
	role          TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	created_at    TEXT NOT NULL
);
CREATE INDEX users_created ON users (created_at DESC, id DESC);

CREATE TABLE sessions (
	id           TEXT PRIMARY KEY,
	user_id      TEXT NOT NULL REFERENCES users (id),
	token_hash   TEXT NOT NULL UNIQUE,
	created_at   TEXT NOT NULL,
	last_seen_at TEXT NOT NULL,
	user_agent   TEXT NOT NULL,
	remote_addr  TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id, created_at DESC);
CREATE INDEX sessions_last_seen ON sessions (last_seen_at);

CREATE TABLE api_keys (
	id           TEXT PRIMARY KEY,
	user_id      TEXT NOT NULL REFERENCES users (id),
	name         TEXT NOT NULL,
	prefix       TEXT NOT NULL,
	key_hash     TEXT NOT NULL UNIQUE,
	created_at   TEXT NOT NULL,
	expires_at   TEXT,
	last_used_at TEXT
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at DESC);

CREATE TABLE invites (
	id         TEXT PRIMARY KEY,
	token_hash TEXT NOT NULL UNIQUE,
	email      TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_at TEXT NOT NULL,
	expires_at TEXT NOT NULL,
	used_at    TEXT,
	used_by    TEXT NOT NULL DEFAULT ''
);

CREATE TABLE audit_logs (
	id            TEXT PRIMARY KEY,
	created_at    TEXT NOT NULL,
	actor_id      TEXT NOT NULL,
	actor_kind    TEXT NOT NULL,
	actor_email   TEXT NOT NULL,
	action        TEXT NOT NULL,
	resource_type TEXT NOT NULL,
	resource_id   TEXT NOT NULL,
	remote_addr   TEXT NOT NULL,
	user_agent    TEXT NOT NULL,
	result        TEXT NOT NULL,
	status        INTEGER NOT NULL,
	detail        TEXT NOT NULL
);
CREATE INDEX audit_logs_created ON audit_logs (created_at DESC, id DESC);
CREATE INDEX audit_logs_actor ON audit_logs (actor_id, created_at DESC, id DESC);
CREATE INDEX audit_logs_action ON audit_logs (action, created_at DESC, id DESC);
CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs
BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only'); END;
CREATE TRIGGER audit_logs_no_delete BEFORE DELETE ON audit_logs
BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only'); END;
`,
	// 6: a project's linked repository for tasks of kind change, and the
	// name of the environment variable holding its credential (never the
	// secret).
	`
ALTER TABLE projects ADD COLUMN repo_url TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN repo_credential TEXT NOT NULL DEFAULT '';
`,
	// 7: tenants. Projects have an owner and members; tasks record who
	// created them (per-user limits); scans have an owner and may belong to
	// a project. Rows from before have no owner: only admins see them.
	`
ALTER TABLE projects ADD COLUMN owner_id TEXT NOT NULL DEFAULT '';
CREATE INDEX projects_owner_created ON projects (owner_id, created_at DESC, id DESC);

CREATE TABLE project_members (
	project_id TEXT NOT NULL REFERENCES projects (id),
	user_id    TEXT NOT NULL,
	role       TEXT NOT NULL,
	added_by   TEXT NOT NULL,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members (user_id, project_id);

ALTER TABLE tasks ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
CREATE INDEX tasks_created_by_status ON tasks (created_by, status);

ALTER TABLE explorer_scans ADD COLUMN owner_id TEXT NOT NULL DEFAULT '';
ALTER TABLE explorer_scans ADD COLUMN project_id TEXT NOT NULL DEFAULT '';
CREATE INDEX explorer_scans_owner_created ON explorer_scans (owner_id, created_at DESC, id DESC);
CREATE INDEX explorer_scans_project_created ON explorer_scans (project_id, created_at DESC, id DESC);
`,
}

// migrate applies the migrations the file has not seen, in order.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx,
		`CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", s.path, err)
	}
	for {
		done, err := s.migrateOne(ctx)
		if err != nil || done {
			return err
		}
	}
}

// migrateOne applies the next pending migration, if any, and reports whether
// none was left. Reading the version and applying happen in one immediate
// transaction, so two processes opening the same file cannot both apply it.
func (s *Store) migrateOne(ctx context.Context) (done bool, err error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("sqlite: migrate %s: %w", s.path, err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return false, fmt.Errorf("sqlite: migrate %s: read version: %w", s.path, err)
	}
	if v > len(migrations) {
		return false, fmt.Errorf("sqlite: migrate %s: schema version %d is newer than this binary knows (%d)", s.path, v, len(migrations))
	}
	if v == len(migrations) {
		return true, nil
	}
	if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
		return false, fmt.Errorf("sqlite: migrate %s to version %d: %w", s.path, v+1, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, v+1); err != nil {
		return false, fmt.Errorf("sqlite: migrate %s to version %d: %w", s.path, v+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("sqlite: migrate %s to version %d: %w", s.path, v+1, err)
	}
	return false, nil
}
