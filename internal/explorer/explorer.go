// Package explorer runs Explorer scans: a scan is a task of kind explore
// (graph gather -> analyse -> report), so it has the lifecycle's live events,
// cancel, retry, cost and leases. gather asks the connectors for facts,
// analyse computes risks from the facts by explicit rules and then has the
// model write brief, risks and proposals that cite facts by id, and report
// stores the result on the scan (collection explorer_scans).
//
// Everything a scanned system says is data: it reaches the model inside
// <untrusted-data> blocks, and the rule risks are kept whatever the model
// answers.
package explorer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/connector"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/tasks"
)

// AgentName selects the explorer's model (per-agent overrides in
// config.yaml use it).
const AgentName = "explorer"

// DefaultSourceTimeout bounds one source's Gather when Options leave it 0.
const DefaultSourceTimeout = 2 * time.Minute

// Models picks the model of an agent and says which one it would be
// (llm.Router satisfies it).
type Models interface {
	For(agent string) llm.Model
	Describe(agent string) llm.Selection
}

// Options configure the Service. Store and Tasks are needed to start and
// read scans; Sources and Models only to run them (Steps).
type Options struct {
	Store store.Store
	Tasks *tasks.Service
	// Sources are the connectors; each runs when its input is given (git:
	// repo_url, github: github_repo or a github.com repo_url, jira:
	// jira_project, servicenow: servicenow_ci), others always.
	Sources []connector.Source
	Models  Models
	// SourceTimeout bounds each source (0: DefaultSourceTimeout).
	SourceTimeout time.Duration
	// Now is the clock of the rules (stale, inactive); nil: time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Service starts, reads and runs scans.
type Service struct {
	opt Options
}

// New returns the Service.
func New(opt Options) *Service {
	if opt.SourceTimeout <= 0 {
		opt.SourceTimeout = DefaultSourceTimeout
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Service{opt: opt}
}

// ProjectID is the id of the project explore tasks belong to. Tasks need a
// project (a foreign key in SQLite, the scope of every task view); one
// fixed, visible "Explorer" project per installation keeps the task list,
// its filters, retry and /ws working for scans without a special case.
var ProjectID = uuid.NewSHA1(uuid.NameSpaceURL, []byte("catalyst:explorer-project")).String()

// QueuedBrief is what a scan says until its task has run.
const QueuedBrief = "Scan queued: gathering facts has not started yet; brief, risks and proposals appear here when the scan has run."

// Start stores a scan of r and submits its explore task as a. The scan and
// its task share one id.
func (s *Service) Start(ctx context.Context, a tasks.Actor, r Request) (domain.ExplorerScan, error) {
	r, err := r.Normalize()
	if err != nil {
		return domain.ExplorerScan{}, err
	}
	if s.opt.Tasks == nil {
		return domain.ExplorerScan{}, fmt.Errorf("%w: explorer: no task service", tasks.ErrUnavailable)
	}
	projectID, err := s.project(ctx, a, r.ProjectID)
	if err != nil {
		return domain.ExplorerScan{}, err
	}
	now := time.Now().UTC()
	id := uuid.NewString()
	sc := domain.ExplorerScan{
		ID: id, TaskID: id, SystemName: r.SystemName, RepoURL: r.RepoURL, JiraProject: r.JiraProject,
		ServiceNowCI: r.ServiceNowCI, GitHubRepo: r.GitHubRepo, Status: domain.ScanPending, Brief: QueuedBrief,
		Risks: []string{}, Proposals: []string{}, RiskDetails: []domain.ScanRisk{}, Facts: []domain.ScanFact{},
		Sources: []domain.ScanSource{}, CreatedAt: now, UpdatedAt: now, OwnerID: a.ID, ProjectID: projectID,
	}
	if err := s.opt.Store.CreateScan(ctx, sc); err != nil {
		return sc, err
	}
	_, err = s.opt.Tasks.Submit(ctx, a, tasks.Submission{ID: id, ProjectID: projectID, Prompt: r.prompt(), Kind: domain.KindExplore})
	if err != nil {
		// A scan whose task was never stored would stay pending for ever.
		if _, terr := s.opt.Tasks.Get(context.WithoutCancel(ctx), a, id); errors.Is(terr, domain.ErrNotFound) {
			_, _ = s.opt.Store.UpdateScan(context.WithoutCancel(ctx), id, func(sc *domain.ExplorerScan) error {
				sc.Status, sc.Error, sc.TaskID = domain.ScanFailed, "the scan's task could not be created: "+err.Error(), ""
				return nil
			})
		}
		return sc, err
	}
	return s.Get(ctx, a, id)
}

// project returns the project a scan of a runs in: the one asked for, if a
// may submit tasks to it, else a's own Explorer project (each user has one,
// so a scan is seen by whoever asked for it, its project's members and
// admins); the installation's token holder and Catalyst share ProjectID.
func (s *Service) project(ctx context.Context, a tasks.Actor, asked string) (string, error) {
	if asked != "" {
		p, err := s.opt.Tasks.Project(ctx, a, asked)
		if err != nil {
			return "", err
		}
		if !p.MyRole.Allows(domain.RoleEditor) {
			return "", fmt.Errorf("%w: scans of project %s are its editors' to start (you are %s)", domain.ErrForbidden, p.ID, p.MyRole)
		}
		return p.ID, nil
	}
	if a.Kind != tasks.ActorUser {
		return ProjectID, s.ensureProject(ctx)
	}
	id := uuid.NewSHA1(uuid.NameSpaceURL, []byte("catalyst:explorer-project:"+a.ID)).String()
	if _, err := s.opt.Tasks.Project(ctx, a, id); !errors.Is(err, domain.ErrNotFound) {
		return id, err
	}
	now := time.Now().UTC()
	_, err := s.opt.Tasks.CreateProject(ctx, a, domain.Project{ID: id, Name: "Explorer",
		Description: "Your scans of existing systems: each Explorer scan runs as one task of kind explore here.",
		Status:      domain.ProjectActive, CreatedAt: now, UpdatedAt: now})
	if errors.Is(err, domain.ErrConflict) {
		err = nil // created meanwhile by another request or process
	}
	return id, err
}

func (s *Service) ensureProject(ctx context.Context) error {
	_, err := s.opt.Store.GetProject(ctx, ProjectID)
	if !errors.Is(err, domain.ErrNotFound) {
		return err
	}
	now := time.Now().UTC()
	err = s.opt.Store.CreateProject(ctx, domain.Project{ID: ProjectID, Name: "Explorer",
		Description: "Scans of existing systems: each Explorer scan runs as one task of kind explore here.",
		Status:      domain.ProjectActive, CreatedAt: now, UpdatedAt: now})
	if errors.Is(err, domain.ErrConflict) {
		return nil // created meanwhile by another request or process
	}
	return err
}

// Get returns scan id if a may see it: a scan is visible to whoever may
// see its task. A scan whose task failed or was cancelled says so.
func (s *Service) Get(ctx context.Context, a tasks.Actor, id string) (domain.ExplorerScan, error) {
	sc, err := s.opt.Store.GetScanIn(ctx, tasks.ScopeOf(a), id)
	if err != nil {
		return sc, err
	}
	return s.Reconcile(ctx, a, sc)
}

// Reconcile brings sc, which a has read in its scope, in line with its task.
// Only the report step marks a scan completed; a failed,
// cancelled or retried task is reflected here, on read, because no step
// runs when a task ends that way.
func (s *Service) Reconcile(ctx context.Context, a tasks.Actor, sc domain.ExplorerScan) (domain.ExplorerScan, error) {
	if sc.TaskID == "" || s.opt.Tasks == nil {
		return sc, nil // the original's scans, and scans whose task was never created
	}
	// The scan was read in a's scope already (store.GetScanIn, ListScans);
	// its task is read as the explorer, so an admin's read of someone
	// else's scan is audited once, as a scan read, not again as a task read.
	t, err := s.opt.Tasks.Get(ctx, tasks.System("explorer"), sc.TaskID)
	if errors.Is(err, domain.ErrNotFound) {
		return sc, nil
	}
	if err != nil {
		return sc, err
	}
	want, reason := sc.Status, sc.Error
	switch t.Status {
	case domain.TaskFailed:
		want, reason = domain.ScanFailed, t.Error
	case domain.TaskCancelled:
		want, reason = domain.ScanCancelled, t.Error
	case domain.TaskPending:
		if sc.Status != domain.ScanPending {
			want, reason = domain.ScanPending, ""
		}
	case domain.TaskRunning:
		// Not from completed: the report step stores the scan completed
		// just before its task is stored completed, so a read in between
		// sees a completed scan of a running task. A retried run goes
		// through pending, and its steps mark the scan running themselves.
		if sc.Status == domain.ScanFailed || sc.Status == domain.ScanCancelled {
			want, reason = domain.ScanRunning, ""
		}
	}
	if want == sc.Status && reason == sc.Error {
		return sc, nil
	}
	return s.opt.Store.UpdateScan(ctx, sc.ID, func(cur *domain.ExplorerScan) error {
		if cur.Status != sc.Status || cur.Error != sc.Error {
			// The scan moved on since it was read (the report step stored
			// it meanwhile): what was decided from the stale read must not
			// overwrite it; the next read reconciles again.
			return nil
		}
		if cur.Status == domain.ScanCompleted && t.Status != domain.TaskPending {
			return nil // the report was stored; only a retry (pending) reopens it
		}
		cur.Status, cur.Error = want, reason
		return nil
	})
}

// Wait returns scan id once its task has ended, or as it stands when ctx
// ends first (the caller's limit): then err is nil and the status says it
// is still running.
func (s *Service) Wait(ctx context.Context, a tasks.Actor, id string) (domain.ExplorerScan, error) {
	sc, err := s.Get(ctx, a, id)
	if err != nil || sc.TaskID == "" || sc.Status.Terminal() {
		return sc, err
	}
	if _, err := s.opt.Tasks.Wait(ctx, a, sc.TaskID); err != nil && ctx.Err() == nil {
		return sc, err
	}
	return s.Get(context.WithoutCancel(ctx), a, id)
}

// Steps binds the explore graph's nodes.
func (s *Service) Steps() map[string]agent.Step {
	return map[string]agent.Step{
		domain.NodeGather:  agent.StepFunc(s.gather),
		domain.NodeAnalyse: agent.StepFunc(s.analyse),
		domain.NodeReport:  agent.StepFunc(s.report),
	}
}

// scanOf returns the scan an explore task runs.
func (s *Service) scanOf(ctx context.Context, t domain.Task) (domain.ExplorerScan, error) {
	sc, err := s.opt.Store.GetScan(ctx, t.ID)
	if errors.Is(err, domain.ErrNotFound) {
		return sc, fmt.Errorf("task %s has no Explorer scan: scans are started with POST /api/explorer/scan or `catalyst explore`", t.ID)
	}
	return sc, err
}

// markRunning records that a step of sc's task runs (a retried task runs
// again from its first unfinished step).
func (s *Service) markRunning(ctx context.Context, id string, mut func(*domain.ExplorerScan)) (domain.ExplorerScan, error) {
	return s.opt.Store.UpdateScan(ctx, id, func(sc *domain.ExplorerScan) error {
		sc.Status, sc.Error = domain.ScanRunning, ""
		if mut != nil {
			mut(sc)
		}
		return nil
	})
}
