package api

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/tasks"
)

type createScanBody struct {
	SystemName  string `json:"system_name" minLength:"1" maxLength:"200" example:"SailPoint IdentityIQ"`
	RepoURL     string `json:"repo_url,omitempty" maxLength:"2048" example:"https://github.com/sailpoint/identityiq" doc:"Git repository to read: http(s)://, git://, ssh:// or git@host:path"`
	JiraProject string `json:"jira_project,omitempty" maxLength:"200" example:"SAILPOINT-IIQ"`
	ProjectID   string `json:"project_id,omitempty" maxLength:"200" doc:"Share the scan with this project's members (you must be an editor of it); omitted: only you (and admins) see it"`
}

type createScanInput struct{ Body createScanBody }

type scanOutput struct{ Body domain.ExplorerScan }

type scanIDInput struct {
	ID string `path:"id" maxLength:"200"`
}

type listScansInput struct{ PageParams }

// scpLikeGit matches git's scp-like syntax: user@host:path.
var scpLikeGit = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._~/-]+$`)

// validRepoURL accepts the URLs git can clone from a server: http(s), git,
// ssh (URL or scp-like). Local paths and file:// are refused: the explorer
// must not be pointed at the server's own disk.
func validRepoURL(raw string) bool {
	if scpLikeGit.MatchString(raw) {
		return true
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "git", "ssh":
		return true
	}
	return false
}

// scanQueuedBrief is what a scan says until the explorer agent has run.
const scanQueuedBrief = "Scan queued: the explorer agent has not run on this system yet; " +
	"brief, risks and proposals appear here when it has."

func (s *server) registerExplorer(api huma.API) {
	huma.Register(api, withErrors(s.op(http.MethodPost, "/api/explorer/scan", "create-scan",
		"Queue a scan of an existing system (status pending until the explorer runs)", "explorer"), 400, 403, 404, 413, 422),
		func(ctx context.Context, in *createScanInput) (*scanOutput, error) {
			b := in.Body
			name := strings.TrimSpace(b.SystemName)
			if name == "" {
				return nil, huma.Error422UnprocessableEntity("system_name must not be blank")
			}
			repo := strings.TrimSpace(b.RepoURL)
			if repo != "" && !validRepoURL(repo) {
				return nil, huma.Error422UnprocessableEntity("repo_url must be an http(s), git or ssh repository URL, got " + repo)
			}
			a := actor(ctx)
			if b.ProjectID != "" {
				p, err := s.tasks.Project(ctx, a, b.ProjectID)
				if err != nil {
					return nil, s.apiError(ctx, "project "+b.ProjectID, err)
				}
				if !p.MyRole.Allows(domain.RoleEditor) {
					return nil, huma.Error403Forbidden("scans of project " + p.ID + " are its editors' to start (you are " + string(p.MyRole) + ")")
				}
			}
			now := time.Now().UTC()
			sc := domain.ExplorerScan{
				OwnerID:     a.ID,
				ProjectID:   b.ProjectID,
				ID:          uuid.NewString(),
				SystemName:  name,
				RepoURL:     repo,
				JiraProject: strings.TrimSpace(b.JiraProject),
				Status:      domain.ScanPending,
				Brief:       scanQueuedBrief,
				Risks:       []string{},
				Proposals:   []string{},
				CreatedAt:   now,
				UpdatedAt:   now,
			}
			if err := s.store.CreateScan(ctx, sc); err != nil {
				return nil, s.apiError(ctx, "scan "+sc.ID, err)
			}
			return &scanOutput{Body: sc}, nil
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
			for i := range out.Body {
				out.Body[i] = withArrays(out.Body[i])
				s.auditScan(ctx, a, "list", out.Body[i])
			}
			return out, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/explorer/scans/{id}", "get-scan", "Get a scan", "explorer"), 404),
		func(ctx context.Context, in *scanIDInput) (*scanOutput, error) {
			a := actor(ctx)
			sc, err := s.store.GetScanIn(ctx, tasks.ScopeOf(a), in.ID)
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

// withArrays keeps risks and proposals JSON arrays (never null), as the
// original's documents had them.
func withArrays(sc domain.ExplorerScan) domain.ExplorerScan {
	if sc.Risks == nil {
		sc.Risks = []string{}
	}
	if sc.Proposals == nil {
		sc.Proposals = []string{}
	}
	return sc
}
