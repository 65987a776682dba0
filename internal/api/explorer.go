package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/explorer"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/tasks"
)

// defaultScanWait bounds ?wait=true: like the original's synchronous
// answer, but a slow scan answers as it stands instead of holding the
// connection for ever.
const defaultScanWait = 120 * time.Second

type createScanBody struct {
	SystemName   string `json:"system_name" minLength:"1" maxLength:"200" example:"SailPoint IdentityIQ"`
	RepoURL      string `json:"repo_url,omitempty" maxLength:"2048" example:"https://github.com/sailpoint/identityiq" doc:"Git repository to read: http(s)://, git://, ssh:// or git@host:path"`
	JiraProject  string `json:"jira_project,omitempty" maxLength:"200" example:"SAILPOINT-IIQ"`
	ServiceNowCI string `json:"servicenow_ci,omitempty" maxLength:"200" example:"IdentityIQ Production" doc:"ServiceNow configuration item (cmdb_ci) whose incidents are read"`
	GitHubRepo   string `json:"github_repo,omitempty" maxLength:"200" example:"sailpoint/identityiq" doc:"owner/name; derived from a github.com repo_url when omitted"`
	ProjectID    string `json:"project_id,omitempty" maxLength:"200" doc:"Run the scan in this project, shared with its members (you must be an editor of it); omitted: your own Explorer project"`
}

type createScanInput struct {
	Wait bool `query:"wait" doc:"Answer when the scan has ended, or after 120 s with the scan as it stands (status still running)"`
	Body createScanBody
}

type scanOutput struct{ Body domain.ExplorerScan }

type scanIDInput struct {
	ID string `path:"id" maxLength:"200"`
}

type listScansInput struct{ PageParams }

func (s *server) registerExplorer(api huma.API) {
	huma.Register(api, withErrors(s.op(http.MethodPost, "/api/explorer/scan", "create-scan",
		"Scan an existing system: a task of kind explore gathers facts, computes risks and writes the brief (follow it on /ws/{task_id})", "explorer"), 400, 403, 404, 413, 422, 503),
		func(ctx context.Context, in *createScanInput) (*scanOutput, error) {
			b := in.Body
			a := actor(ctx)
			sc, err := s.explorer.Start(ctx, a, explorer.Request{SystemName: b.SystemName, RepoURL: b.RepoURL,
				JiraProject: b.JiraProject, ServiceNowCI: b.ServiceNowCI, GitHubRepo: b.GitHubRepo, ProjectID: b.ProjectID})
			switch {
			case errors.Is(err, domain.ErrInvalid):
				return nil, huma.Error422UnprocessableEntity(err.Error())
			case errors.Is(err, tasks.ErrUnavailable):
				s.log.ErrorContext(ctx, "scan could not be queued", "scan_id", sc.ID, "err", err)
				return nil, huma.Error503ServiceUnavailable(err.Error())
			case err != nil:
				return nil, s.apiError(ctx, "scan", err)
			}
			if in.Wait {
				wctx, cancel := context.WithTimeout(ctx, s.scanWait)
				defer cancel()
				if got, err := s.explorer.Wait(wctx, a, sc.ID); err == nil {
					sc = got
				} else if ctx.Err() == nil {
					return nil, s.apiError(ctx, "scan "+sc.ID, err)
				}
			}
			return &scanOutput{Body: withArrays(sc)}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/explorer/scans", "list-scans",
		"List the scans you asked for or that belong to projects you see (admins: all), newest first", "explorer"), 400, 422),
		func(ctx context.Context, in *listScansInput) (*listOutput[domain.ExplorerScan], error) {
			a := actor(ctx)
			out, err := listPage(ctx, s, &in.PageParams, "scans page", func(ctx context.Context, p store.Page) ([]domain.ExplorerScan, string, error) {
				return s.store.ListScans(ctx, tasks.ScopeOf(a), p)
			})
			if err != nil {
				return nil, err
			}
			kept := out.Body[:0]
			for _, sc := range out.Body {
				sc, err := s.explorer.Reconcile(ctx, a, sc)
				if errors.Is(err, domain.ErrNotFound) {
					continue
				}
				if err != nil {
					return nil, s.apiError(ctx, "scans page", err)
				}
				s.auditScan(ctx, a, "list", sc)
				kept = append(kept, withArrays(sc))
			}
			out.Body = kept
			return out, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/explorer/scans/{id}", "get-scan", "Get a scan", "explorer"), 404),
		func(ctx context.Context, in *scanIDInput) (*scanOutput, error) {
			a := actor(ctx)
			sc, err := s.explorer.Get(ctx, a, in.ID)
			if err != nil {
				return nil, s.apiError(ctx, "scan "+in.ID, err)
			}
			s.auditScan(ctx, a, "read", sc)
			return &scanOutput{Body: withArrays(sc)}, nil
		})
}

// auditScan records an admin's read of a scan that is neither theirs nor
// of a project they have a role in.
func (s *server) auditScan(ctx context.Context, a tasks.Actor, action string, sc domain.ExplorerScan) {
	if !a.Admin || sc.OwnerID == a.ID {
		return
	}
	if sc.ProjectID != "" {
		if p, err := s.store.GetProjectIn(ctx, tasks.ScopeOf(a), sc.ProjectID); err == nil && p.MyRole != domain.RoleAdminAccess {
			return
		}
	}
	s.tasks.Audit(ctx, a, action, "scan", sc.ID)
}

// withArrays keeps the array fields JSON arrays (never null), as the
// original's documents had risks and proposals.
func withArrays(sc domain.ExplorerScan) domain.ExplorerScan {
	if sc.Risks == nil {
		sc.Risks = []string{}
	}
	if sc.Proposals == nil {
		sc.Proposals = []string{}
	}
	if sc.RiskDetails == nil {
		sc.RiskDetails = []domain.ScanRisk{}
	}
	if sc.Facts == nil {
		sc.Facts = []domain.ScanFact{}
	}
	if sc.Sources == nil {
		sc.Sources = []domain.ScanSource{}
	}
	return sc
}
