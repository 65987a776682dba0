package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/internal/storeutil"
)

// ---- projects

const projectCols = `id, name, description, status, github_repo, repo_url, repo_credential, created_at, updated_at, version, owner_id`

func scanProject(r rowScanner, extra ...any) (domain.Project, int64, error) {
	var p domain.Project
	var created, updated string
	var version int64
	dest := append([]any{&p.ID, &p.Name, &p.Description, &p.Status, &p.GitHubRepo, &p.RepoURL, &p.RepoCredential, &created, &updated, &version, &p.OwnerID}, extra...)
	if err := r.Scan(dest...); err != nil {
		return p, 0, err
	}
	var err error
	if p.CreatedAt, err = parseTime(created); err == nil {
		p.UpdatedAt, err = parseTime(updated)
	}
	return p, version, err
}

// roleCol computes MyRole for scope's user as an extra column: owner of
// their projects, their member role, else admin (only All scopes read
// projects the user has no role in). Its arguments come first.
func roleCol(scope store.Scope) (string, []any) {
	u := scope.UserID()
	return `, CASE WHEN ? <> '' AND owner_id = ? THEN 'owner'
		ELSE COALESCE((SELECT role FROM project_members m WHERE m.project_id = projects.id AND m.user_id = ?), 'admin') END`,
		[]any{u, u, u}
}

func scanProjectWithRole(r rowScanner) (domain.Project, error) {
	var role string
	p, _, err := scanProject(r, &role)
	p.MyRole = domain.ProjectRole(role)
	return p, err
}

func (s *Store) CreateProject(ctx context.Context, p domain.Project) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO projects (`+projectCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`,
		p.ID, p.Name, p.Description, p.Status, p.GitHubRepo, p.RepoURL, p.RepoCredential, fmtTime(p.CreatedAt), fmtTime(p.UpdatedAt), p.OwnerID)
	if err != nil {
		return mapErr(err, "create project "+p.ID, "")
	}
	return nil
}

func (s *Store) getProject(ctx context.Context, id string) (domain.Project, int64, error) {
	p, v, err := scanProject(s.r.QueryRowContext(ctx, `SELECT `+projectCols+` FROM projects WHERE id = ?`, id))
	if err != nil {
		return p, 0, mapErr(err, "project "+id, "")
	}
	return p, v, nil
}

func (s *Store) GetProject(ctx context.Context, id string) (domain.Project, error) {
	p, _, err := s.getProject(ctx, id)
	return p, err
}

func (s *Store) GetProjectIn(ctx context.Context, scope store.Scope, id string) (domain.Project, error) {
	role, roleArgs := roleCol(scope)
	cond, condArgs := inScope(scope, "id")
	args := append(append(roleArgs, id), condArgs...)
	p, err := scanProjectWithRole(s.r.QueryRowContext(ctx,
		`SELECT `+projectCols+role+` FROM projects WHERE id = ? AND `+cond, args...))
	if err != nil {
		return p, mapErr(err, "project "+id, "")
	}
	return p, nil
}

func (s *Store) ListProjects(ctx context.Context, scope store.Scope, page store.Page) ([]domain.Project, string, error) {
	role, roleArgs := roleCol(scope)
	cond, condArgs := inScope(scope, "id")
	return listCols(ctx, s, "projects", projectCols+role, roleArgs, []string{cond}, condArgs, page, scanProjectWithRole,
		func(p domain.Project) (time.Time, string) { return p.CreatedAt, p.ID })
}

func (s *Store) UpdateProject(ctx context.Context, id string, mutate func(*domain.Project) error) (domain.Project, error) {
	return storeutil.Update(ctx, "sqlite: update project "+id, func(ctx context.Context) (domain.Project, int64, error) {
		return s.getProject(ctx, id)
	}, mutate, func(ctx context.Context, p *domain.Project, version int64) (bool, error) {
		p.ID = id
		p.UpdatedAt = now()
		return s.cas(ctx, "update project "+id, `UPDATE projects SET name = ?, description = ?, status = ?,
			github_repo = ?, repo_url = ?, repo_credential = ?, created_at = ?, updated_at = ?, owner_id = ?, version = version + 1 WHERE id = ? AND version = ?`,
			p.Name, p.Description, p.Status, p.GitHubRepo, p.RepoURL, p.RepoCredential, fmtTime(p.CreatedAt), fmtTime(p.UpdatedAt), p.OwnerID, id, version)
	})
}

// ---- members

const memberCols = `project_id, user_id, role, added_by, created_at, updated_at`

func scanMember(r rowScanner) (domain.Member, error) {
	var m domain.Member
	var created, updated string
	if err := r.Scan(&m.ProjectID, &m.UserID, &m.Role, &m.AddedBy, &created, &updated); err != nil {
		return m, err
	}
	var err error
	if m.CreatedAt, err = parseTime(created); err == nil {
		m.UpdatedAt, err = parseTime(updated)
	}
	return m, err
}

func (s *Store) PutMember(ctx context.Context, m domain.Member) (domain.Member, error) {
	what := "put member " + m.UserID + " of project " + m.ProjectID
	if !m.Role.MemberRole() {
		return m, fmt.Errorf("sqlite: %s: %w: role %q is not viewer or editor", what, domain.ErrInvalid, m.Role)
	}
	stored, err := scanMember(s.w.QueryRowContext(ctx, `INSERT INTO project_members (`+memberCols+`) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role, added_by = excluded.added_by,
		updated_at = excluded.updated_at RETURNING `+memberCols,
		m.ProjectID, m.UserID, m.Role, m.AddedBy, fmtTime(m.CreatedAt), fmtTime(m.UpdatedAt)))
	if err != nil {
		return m, mapErr(err, what, "project "+m.ProjectID)
	}
	return stored, nil
}

func (s *Store) ListMembers(ctx context.Context, projectID string) ([]domain.Member, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+memberCols+` FROM project_members WHERE project_id = ?
		ORDER BY created_at, user_id`, projectID)
	if err != nil {
		return nil, mapErr(err, "list members of project "+projectID, "")
	}
	out, err := collect(rows, scanMember)
	if err != nil {
		return nil, mapErr(err, "list members of project "+projectID, "")
	}
	return out, nil
}

func (s *Store) DeleteMember(ctx context.Context, projectID, userID string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM project_members WHERE project_id = ? AND user_id = ?`, projectID, userID)
	what := "member " + userID + " of project " + projectID
	if err != nil {
		return mapErr(err, "delete "+what, "")
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err == nil {
			err = sql.ErrNoRows
		}
		return mapErr(err, what, "")
	}
	return nil
}

// cas runs a conditional UPDATE and reports whether it changed a row.
func (s *Store) cas(ctx context.Context, what, query string, args ...any) (bool, error) {
	res, err := s.w.ExecContext(ctx, query, args...)
	if err != nil {
		return false, mapErr(err, what, "")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, mapErr(err, what, "")
	}
	return n == 1, nil
}

// ---- tasks

const taskCols = `id, project_id, prompt, graph_state, status, cost, node_costs, error, fix_iteration,
	provider, created_at, updated_at, started_at, finished_at, kind, model, offline, lease_owner, lease_expires_at, created_by, version`

func scanTask(r rowScanner) (domain.Task, error) {
	var t domain.Task
	var graph, nodeCosts, created, updated string
	var started, finished, leaseExp sql.NullString
	err := r.Scan(&t.ID, &t.ProjectID, &t.Prompt, &graph, &t.Status, &t.Cost, &nodeCosts, &t.Error,
		&t.FixIteration, &t.Provider, &created, &updated, &started, &finished,
		&t.Kind, &t.Model, &t.Offline, &t.LeaseOwner, &leaseExp, &t.CreatedBy, &t.Version)
	if err != nil {
		return t, err
	}
	t.NormalizeServed()
	return t, firstErr(
		func() (err error) { t.LeaseExpiresAt, err = parseTimePtr(leaseExp); return },
		func() error { return json.Unmarshal([]byte(graph), &t.GraphState) },
		func() error { return json.Unmarshal([]byte(nodeCosts), &t.NodeCosts) },
		func() (err error) { t.CreatedAt, err = parseTime(created); return },
		func() (err error) { t.UpdatedAt, err = parseTime(updated); return },
		func() (err error) { t.StartedAt, err = parseTimePtr(started); return },
		func() (err error) { t.FinishedAt, err = parseTimePtr(finished); return },
	)
}

// taskValues returns the columns of taskCols after id, in order, up to and
// excluding version.
func taskValues(t *domain.Task) ([]any, error) {
	graph, err := json.Marshal(t.GraphState)
	if err != nil {
		return nil, fmt.Errorf("graph_state: %w", err)
	}
	nodeCosts, err := json.Marshal(t.NodeCosts)
	if err != nil {
		return nil, fmt.Errorf("node_costs: %w", err)
	}
	return []any{t.ProjectID, t.Prompt, string(graph), t.Status, t.Cost, string(nodeCosts), t.Error,
		t.FixIteration, t.Provider, fmtTime(t.CreatedAt), fmtTime(t.UpdatedAt),
		fmtTimePtr(t.StartedAt), fmtTimePtr(t.FinishedAt),
		t.KindOf(), t.Model, t.Offline, t.LeaseOwner, fmtTimePtr(t.LeaseExpiresAt), t.CreatedBy}, nil
}

func (s *Store) CreateTask(ctx context.Context, t domain.Task) error {
	vals, err := taskValues(&t)
	if err != nil {
		return fmt.Errorf("sqlite: create task %s: %w: %v", t.ID, domain.ErrInvalid, err)
	}
	args := append(append([]any{t.ID}, vals...), t.Version)
	_, err = s.w.ExecContext(ctx, `INSERT INTO tasks (`+taskCols+`) VALUES (?`+strings.Repeat(", ?", len(args)-1)+`)`, args...)
	if err != nil {
		return mapErr(err, "create task "+t.ID, "project "+t.ProjectID)
	}
	return nil
}

func (s *Store) GetTask(ctx context.Context, id string) (domain.Task, error) {
	t, err := scanTask(s.r.QueryRowContext(ctx, `SELECT `+taskCols+` FROM tasks WHERE id = ?`, id))
	if err != nil {
		return t, mapErr(err, "task "+id, "")
	}
	return t, nil
}

func (s *Store) GetTaskIn(ctx context.Context, scope store.Scope, id string) (domain.Task, error) {
	cond, args := inScope(scope, "project_id")
	t, err := scanTask(s.r.QueryRowContext(ctx, `SELECT `+taskCols+` FROM tasks WHERE id = ? AND `+cond, append([]any{id}, args...)...))
	if err != nil {
		return t, mapErr(err, "task "+id, "")
	}
	return t, nil
}

func (s *Store) UserStats(ctx context.Context, userID string) (store.UserStats, error) {
	var st store.UserStats
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(CASE WHEN status IN ('pending', 'running') THEN 1 END),
		COALESCE(SUM(cost), 0) FROM tasks WHERE created_by = ?`, userID).Scan(&st.Queued, &st.Spent)
	if err != nil {
		return st, mapErr(err, "task stats of user "+userID, "")
	}
	return st, nil
}

func (s *Store) ListTasks(ctx context.Context, f store.TaskFilter, page store.Page) ([]domain.Task, string, error) {
	cond, args := inScope(f.Scope, "project_id")
	conds := []string{cond}
	if f.ProjectID != "" {
		conds = append(conds, "project_id = ?")
		args = append(args, f.ProjectID)
	}
	if len(f.Statuses) > 0 {
		conds = append(conds, "status IN (?"+strings.Repeat(", ?", len(f.Statuses)-1)+")")
		for _, st := range f.Statuses {
			args = append(args, st)
		}
	}
	return list(ctx, s, "tasks", taskCols, conds, args, page, scanTask,
		func(t domain.Task) (time.Time, string) { return t.CreatedAt, t.ID })
}

func (s *Store) UpdateTask(ctx context.Context, id string, mutate func(*domain.Task) error) (domain.Task, error) {
	return storeutil.Update(ctx, "sqlite: update task "+id, func(ctx context.Context) (domain.Task, int64, error) {
		t, err := s.GetTask(ctx, id)
		return t, t.Version, err
	}, mutate, func(ctx context.Context, t *domain.Task, version int64) (bool, error) {
		t.ID = id
		t.UpdatedAt = now()
		t.Version = version + 1
		vals, err := taskValues(t)
		if err != nil {
			return false, fmt.Errorf("sqlite: update task %s: %w: %v", id, domain.ErrInvalid, err)
		}
		return s.cas(ctx, "update task "+id, `UPDATE tasks SET project_id = ?, prompt = ?, graph_state = ?,
			status = ?, cost = ?, node_costs = ?, error = ?, fix_iteration = ?, provider = ?, created_at = ?,
			updated_at = ?, started_at = ?, finished_at = ?, kind = ?, model = ?, offline = ?, lease_owner = ?,
			lease_expires_at = ?, created_by = ?, version = version + 1 WHERE id = ? AND version = ?`,
			append(vals, id, version)...)
	})
}

// ---- logs

const logCols = `id, task_id, seq, type, agent_name, message, level, data, timestamp`

func scanLog(r rowScanner) (domain.AgentLog, error) {
	var l domain.AgentLog
	var data sql.NullString
	var ts string
	if err := r.Scan(&l.ID, &l.TaskID, &l.Seq, &l.Type, &l.AgentName, &l.Message, &l.Level, &data, &ts); err != nil {
		return l, err
	}
	if data.Valid {
		l.Data = json.RawMessage(data.String)
	}
	var err error
	l.Timestamp, err = parseTime(ts)
	return l, err
}

func (s *Store) AppendLog(ctx context.Context, l domain.AgentLog) (domain.AgentLog, error) {
	if l.ID == "" {
		l.ID = newID()
	}
	if l.Timestamp.IsZero() {
		l.Timestamp = now()
	}
	var data any
	if l.Data != nil {
		if !json.Valid(l.Data) {
			return l, fmt.Errorf("sqlite: append log %s: %w: data is not JSON", l.ID, domain.ErrInvalid)
		}
		data = string(l.Data)
	}
	// One statement on the single writer connection: the next seq is read
	// and used atomically. An existing id inserts nothing and returns no row.
	err := s.w.QueryRowContext(ctx, `INSERT INTO agent_logs (`+logCols+`)
		SELECT ?, ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, ?, ? FROM agent_logs WHERE task_id = ?
		ON CONFLICT (id) DO NOTHING RETURNING seq`,
		l.ID, l.TaskID, l.Type, l.AgentName, l.Message, l.Level, data, fmtTime(l.Timestamp), l.TaskID).Scan(&l.Seq)
	if err == sql.ErrNoRows { // already stored: return what was stored
		stored, err := scanLog(s.w.QueryRowContext(ctx, `SELECT `+logCols+` FROM agent_logs WHERE id = ?`, l.ID))
		if err != nil {
			return l, mapErr(err, "append log "+l.ID, "")
		}
		return stored, nil
	}
	if err != nil {
		return l, mapErr(err, "append log "+l.ID, "task "+l.TaskID)
	}
	return l, nil
}

func (s *Store) ListLogs(ctx context.Context, taskID string, afterSeq int64, limit int) ([]domain.AgentLog, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+logCols+` FROM agent_logs WHERE task_id = ? AND seq > ?
		ORDER BY seq LIMIT ?`, taskID, afterSeq, limit)
	if err != nil {
		return nil, mapErr(err, "list logs of task "+taskID, "")
	}
	out, err := collect(rows, scanLog)
	if err != nil {
		return nil, mapErr(err, "list logs of task "+taskID, "")
	}
	return out, nil
}

// ---- artifacts

const artifactCols = `task_id, node, iteration, output, cost, usage, created_at`

func (s *Store) PutArtifact(ctx context.Context, a domain.Artifact) error {
	what := fmt.Sprintf("put artifact %s/%s/%d", a.TaskID, a.Node, a.Iteration)
	var output any
	if a.Output != nil {
		if !json.Valid(a.Output) {
			return fmt.Errorf("sqlite: %s: %w: output is not JSON", what, domain.ErrInvalid)
		}
		output = string(a.Output)
	}
	usage, err := json.Marshal(a.Usage)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO node_artifacts (`+artifactCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (task_id, node, iteration) DO UPDATE SET output = excluded.output, cost = excluded.cost,
		usage = excluded.usage, created_at = excluded.created_at`,
		a.TaskID, a.Node, a.Iteration, output, a.Cost, string(usage), fmtTime(a.CreatedAt))
	if err != nil {
		return mapErr(err, what, "task "+a.TaskID)
	}
	return nil
}

func (s *Store) ListArtifacts(ctx context.Context, taskID string) ([]domain.Artifact, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+artifactCols+` FROM node_artifacts WHERE task_id = ?
		ORDER BY created_at, iteration, node`, taskID)
	if err != nil {
		return nil, mapErr(err, "list artifacts of task "+taskID, "")
	}
	out, err := collect(rows, func(r rowScanner) (domain.Artifact, error) {
		var a domain.Artifact
		var output sql.NullString
		var usage, created string
		if err := r.Scan(&a.TaskID, &a.Node, &a.Iteration, &output, &a.Cost, &usage, &created); err != nil {
			return a, err
		}
		if output.Valid {
			a.Output = json.RawMessage(output.String)
		}
		return a, firstErr(
			func() error { return json.Unmarshal([]byte(usage), &a.Usage) },
			func() (err error) { a.CreatedAt, err = parseTime(created); return },
		)
	})
	if err != nil {
		return nil, mapErr(err, "list artifacts of task "+taskID, "")
	}
	return out, nil
}

// ---- deployments

const deploymentCols = `task_id, id, url, commit_sha, cost, report, mock, branch, pull_request_url, created_at`

func (s *Store) PutDeployment(ctx context.Context, d domain.Deployment) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO deployments (`+deploymentCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (task_id) DO UPDATE SET id = excluded.id, url = excluded.url, commit_sha = excluded.commit_sha,
		cost = excluded.cost, report = excluded.report, mock = excluded.mock, branch = excluded.branch,
		pull_request_url = excluded.pull_request_url, created_at = excluded.created_at`,
		d.TaskID, d.ID, d.URL, d.CommitSHA, d.Cost, d.Report, d.Mock, d.Branch, d.PullRequestURL, fmtTime(d.CreatedAt))
	if err != nil {
		return mapErr(err, "put deployment of task "+d.TaskID, "task "+d.TaskID)
	}
	return nil
}

func (s *Store) GetDeployment(ctx context.Context, taskID string) (domain.Deployment, error) {
	var d domain.Deployment
	var created string
	err := s.r.QueryRowContext(ctx, `SELECT `+deploymentCols+` FROM deployments WHERE task_id = ?`, taskID).
		Scan(&d.TaskID, &d.ID, &d.URL, &d.CommitSHA, &d.Cost, &d.Report, &d.Mock, &d.Branch, &d.PullRequestURL, &created)
	if err == nil {
		d.CreatedAt, err = parseTime(created)
	}
	if err != nil {
		return d, mapErr(err, "deployment of task "+taskID, "")
	}
	return d, nil
}

// ---- explorer scans

const scanCols = `id, system_name, repo_url, jira_project, servicenow_ci, github_repo, task_id, status, brief,
	risks, proposals, risk_details, facts, sources, error, cost, created_at, updated_at, owner_id, project_id, version`

func scanScan(r rowScanner) (domain.ExplorerScan, int64, error) {
	var sc domain.ExplorerScan
	var risks, proposals, details, facts, sources, created, updated string
	var version int64
	err := r.Scan(&sc.ID, &sc.SystemName, &sc.RepoURL, &sc.JiraProject, &sc.ServiceNowCI, &sc.GitHubRepo, &sc.TaskID,
		&sc.Status, &sc.Brief, &risks, &proposals, &details, &facts, &sources, &sc.Error, &sc.Cost, &created, &updated, &sc.OwnerID, &sc.ProjectID, &version)
	if err != nil {
		return sc, 0, err
	}
	return sc, version, firstErr(
		func() error { return json.Unmarshal([]byte(risks), &sc.Risks) },
		func() error { return json.Unmarshal([]byte(proposals), &sc.Proposals) },
		func() error { return json.Unmarshal([]byte(details), &sc.RiskDetails) },
		func() (err error) { sc.Facts, err = storeutil.DecodeFacts([]byte(facts)); return },
		func() error { return json.Unmarshal([]byte(sources), &sc.Sources) },
		func() (err error) { sc.CreatedAt, err = parseTime(created); return },
		func() (err error) { sc.UpdatedAt, err = parseTime(updated); return },
	)
}

// scanValues returns the columns of scanCols after id, up to and excluding version.
func scanValues(sc *domain.ExplorerScan) ([]any, error) {
	var enc [5][]byte
	for i, v := range []any{sc.Risks, sc.Proposals, sc.RiskDetails, sc.Facts, sc.Sources} {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		enc[i] = b
	}
	return []any{sc.SystemName, sc.RepoURL, sc.JiraProject, sc.ServiceNowCI, sc.GitHubRepo, sc.TaskID, sc.Status,
		sc.Brief, string(enc[0]), string(enc[1]), string(enc[2]), string(enc[3]), string(enc[4]), sc.Error, sc.Cost,
		fmtTime(sc.CreatedAt), fmtTime(sc.UpdatedAt), sc.OwnerID, sc.ProjectID}, nil
}

func (s *Store) CreateScan(ctx context.Context, sc domain.ExplorerScan) error {
	vals, err := scanValues(&sc)
	if err != nil {
		return fmt.Errorf("sqlite: create scan %s: %w: %v", sc.ID, domain.ErrInvalid, err)
	}
	args := append(append([]any{sc.ID}, vals...), 0)
	_, err = s.w.ExecContext(ctx, `INSERT INTO explorer_scans (`+scanCols+`) VALUES (?`+strings.Repeat(", ?", len(args)-1)+`)`, args...)
	if err != nil {
		return mapErr(err, "create scan "+sc.ID, "")
	}
	return nil
}

func (s *Store) getScan(ctx context.Context, id string) (domain.ExplorerScan, int64, error) {
	sc, v, err := scanScan(s.r.QueryRowContext(ctx, `SELECT `+scanCols+` FROM explorer_scans WHERE id = ?`, id))
	if err != nil {
		return sc, 0, mapErr(err, "scan "+id, "")
	}
	return sc, v, nil
}

func (s *Store) GetScan(ctx context.Context, id string) (domain.ExplorerScan, error) {
	sc, _, err := s.getScan(ctx, id)
	return sc, err
}

// scanInScope is the condition that scope sees a scan: it asked for it, or
// the scan belongs to a project scope sees.
func scanInScope(scope store.Scope) (string, []any) {
	if scope.IsAll() || scope.None() {
		return inScope(scope, "project_id")
	}
	cond, args := inScope(scope, "project_id")
	return "(owner_id = ? OR " + cond + ")", append([]any{scope.UserID()}, args...)
}

func (s *Store) GetScanIn(ctx context.Context, scope store.Scope, id string) (domain.ExplorerScan, error) {
	cond, args := scanInScope(scope)
	sc, _, err := scanScan(s.r.QueryRowContext(ctx, `SELECT `+scanCols+` FROM explorer_scans WHERE id = ? AND `+cond,
		append([]any{id}, args...)...))
	if err != nil {
		return sc, mapErr(err, "scan "+id, "")
	}
	return sc, nil
}

func (s *Store) ListScans(ctx context.Context, scope store.Scope, page store.Page) ([]domain.ExplorerScan, string, error) {
	cond, args := scanInScope(scope)
	return list(ctx, s, "explorer_scans", scanCols, []string{cond}, args, page, dropVersion(scanScan),
		func(sc domain.ExplorerScan) (time.Time, string) { return sc.CreatedAt, sc.ID })
}

func (s *Store) UpdateScan(ctx context.Context, id string, mutate func(*domain.ExplorerScan) error) (domain.ExplorerScan, error) {
	return storeutil.Update(ctx, "sqlite: update scan "+id, func(ctx context.Context) (domain.ExplorerScan, int64, error) {
		return s.getScan(ctx, id)
	}, mutate, func(ctx context.Context, sc *domain.ExplorerScan, version int64) (bool, error) {
		sc.ID = id
		sc.UpdatedAt = now()
		vals, err := scanValues(sc)
		if err != nil {
			return false, fmt.Errorf("sqlite: update scan %s: %w: %v", id, domain.ErrInvalid, err)
		}
		return s.cas(ctx, "update scan "+id, `UPDATE explorer_scans SET system_name = ?, repo_url = ?,
			jira_project = ?, servicenow_ci = ?, github_repo = ?, task_id = ?, status = ?, brief = ?, risks = ?,
			proposals = ?, risk_details = ?, facts = ?, sources = ?, error = ?, cost = ?,
			created_at = ?, updated_at = ?, owner_id = ?, project_id = ?, version = version + 1 WHERE id = ? AND version = ?`,
			append(vals, id, version)...)
	})
}
