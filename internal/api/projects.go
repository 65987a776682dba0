package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

type createProjectBody struct {
	Name        string `json:"name" minLength:"1" maxLength:"200" example:"My Project"`
	Description string `json:"description,omitempty" maxLength:"10000" example:"A test project"`
	GitHubRepo  string `json:"github_repo,omitempty" pattern:"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$" patternDescription:"owner/name" doc:"GitHub repository (owner/name) the deployer may publish to when MOCK_DEPLOYMENT=false"`
	RepoURL     string `json:"repo_url,omitempty" maxLength:"2048" example:"https://github.com/acme/app.git" doc:"Git repository tasks of kind change start from: http(s)://, git://, ssh:// or git@host:path; no password in it"`
	// Write-only: the project never returns it.
	RepoCredential string `json:"repo_credential,omitempty" maxLength:"100" example:"CATALYST_REPO_TOKEN_ACME" doc:"Write-only. Name of the server environment variable (CATALYST_REPO_TOKEN_<NAME>) holding the token for repo_url; the token itself is never sent or stored. Without it, GITHUB_TOKEN is used for https://github.com URLs only"`
}

type createProjectInput struct{ Body createProjectBody }

type updateProjectBody struct {
	Name        *string               `json:"name,omitempty" minLength:"1" maxLength:"200"`
	Description *string               `json:"description,omitempty" maxLength:"10000"`
	Status      *domain.ProjectStatus `json:"status,omitempty" enum:"active,archived"`
	GitHubRepo  *string               `json:"github_repo,omitempty" pattern:"^([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)?$" doc:"owner/name; empty unlinks"`
	RepoURL     *string               `json:"repo_url,omitempty" maxLength:"2048" doc:"Git repository for tasks of kind change; empty unlinks"`
	// Write-only: the project never returns it.
	RepoCredential *string `json:"repo_credential,omitempty" maxLength:"100" doc:"Write-only. CATALYST_REPO_TOKEN_<NAME>; empty removes it"`
}

type updateProjectInput struct {
	ID   string `path:"id" maxLength:"200"`
	Body updateProjectBody
}

type projectIDInput struct {
	ID string `path:"id" maxLength:"200"`
}

type projectOutput struct{ Body domain.Project }

type listProjectsInput struct{ PageParams }

func (s *server) registerProjects(api huma.API) {
	huma.Register(api, withErrors(s.op(http.MethodPost, "/api/projects", "create-project", "Create a project", "projects"), 400, 413, 422),
		func(ctx context.Context, in *createProjectInput) (*projectOutput, error) {
			if err := checkProjectFields(&in.Body.Name, &in.Body.Description); err != nil {
				return nil, err
			}
			repo := strings.TrimSpace(in.Body.RepoURL)
			if err := checkRepoFields(&repo, &in.Body.RepoCredential); err != nil {
				return nil, err
			}
			name := strings.TrimSpace(in.Body.Name)
			now := time.Now().UTC()
			p := domain.Project{
				ID:          uuid.NewString(),
				Name:        name,
				Description: in.Body.Description,
				Status:      domain.ProjectActive,
				GitHubRepo:  in.Body.GitHubRepo,
				RepoURL:     repo,
				// Only the name of the variable holding the token.
				RepoCredential: in.Body.RepoCredential,
				CreatedAt:      now,
				UpdatedAt:      now,
			}
			p, err := s.tasks.CreateProject(ctx, actor(ctx), p)
			if err != nil {
				return nil, s.apiError(ctx, "project "+p.ID, err)
			}
			return &projectOutput{Body: p}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/projects", "list-projects",
		"List the projects you own or are a member of (admins: all), newest first, each with my_role", "projects"), 400, 422),
		func(ctx context.Context, in *listProjectsInput) (*listOutput[domain.Project], error) {
			return listPage(ctx, s, &in.PageParams, "projects page", func(ctx context.Context, p store.Page) ([]domain.Project, string, error) {
				return s.tasks.Projects(ctx, actor(ctx), p)
			})
		})

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/projects/{id}", "get-project", "Get a project", "projects"), 404),
		func(ctx context.Context, in *projectIDInput) (*projectOutput, error) {
			p, err := s.tasks.Project(ctx, actor(ctx), in.ID)
			if err != nil {
				return nil, s.apiError(ctx, "project "+in.ID, err)
			}
			return &projectOutput{Body: p}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodPatch, "/api/projects/{id}", "update-project", "Update a project's name, description, status or repository (editors; archiving and unarchiving: the owner)", "projects"), 400, 403, 404, 413, 422),
		func(ctx context.Context, in *updateProjectInput) (*projectOutput, error) {
			b := in.Body
			if err := checkProjectFields(b.Name, b.Description); err != nil {
				return nil, err
			}
			if b.RepoURL != nil {
				trimmed := strings.TrimSpace(*b.RepoURL)
				b.RepoURL = &trimmed
			}
			if err := checkRepoFields(b.RepoURL, b.RepoCredential); err != nil {
				return nil, err
			}
			p, err := s.tasks.UpdateProject(ctx, actor(ctx), in.ID, func(p *domain.Project) error {
				if b.Name != nil {
					p.Name = strings.TrimSpace(*b.Name)
				}
				if b.Description != nil {
					p.Description = *b.Description
				}
				if b.Status != nil {
					p.Status = *b.Status
				}
				if b.GitHubRepo != nil {
					p.GitHubRepo = *b.GitHubRepo
				}
				if b.RepoURL != nil {
					p.RepoURL = *b.RepoURL
				}
				if b.RepoCredential != nil {
					p.RepoCredential = *b.RepoCredential
				}
				p.UpdatedAt = time.Now().UTC()
				return nil
			})
			if err != nil {
				return nil, s.apiError(ctx, "project "+in.ID, err)
			}
			return &projectOutput{Body: p}, nil
		})

	s.registerMembers(api)

	huma.Register(api, withErrors(s.op(http.MethodDelete, "/api/projects/{id}", "archive-project", "Archive a project (its tasks stay readable; it takes no new tasks); the owner only", "projects"), 403, 404),
		func(ctx context.Context, in *projectIDInput) (*projectOutput, error) {
			p, err := s.tasks.UpdateProject(ctx, actor(ctx), in.ID, func(p *domain.Project) error {
				if p.Status != domain.ProjectArchived {
					p.Status = domain.ProjectArchived
					p.UpdatedAt = time.Now().UTC()
				}
				return nil
			})
			if err != nil {
				return nil, s.apiError(ctx, "project "+in.ID, err)
			}
			return &projectOutput{Body: p}, nil
		})
}

// checkProjectFields refuses a name that is blank or holds a NUL, another
// control character or a bidi override, and a description holding a NUL or
// a control character (422). Absent fields (nil) are not checked.
func checkProjectFields(name, description *string) error {
	if name != nil {
		if err := domain.CheckName("name", *name); err != nil {
			return huma.Error422UnprocessableEntity(err.Error())
		}
	}
	if description != nil {
		if err := domain.CheckText("description", *description); err != nil {
			return huma.Error422UnprocessableEntity(err.Error())
		}
	}
	return nil
}

// checkRepoFields refuses a repository URL git should not be pointed at
// and a credential reference naming anything but a CATALYST_REPO_TOKEN_
// variable (422). Absent fields (nil) are not checked.
func checkRepoFields(repoURL, credential *string) error {
	if repoURL != nil {
		if err := domain.CheckRepoURL(*repoURL); err != nil {
			return huma.Error422UnprocessableEntity(err.Error())
		}
	}
	if credential != nil {
		if err := domain.CheckCredentialRef(*credential); err != nil {
			return huma.Error422UnprocessableEntity(err.Error())
		}
	}
	return nil
}

// projectForTask returns the id of the project a new task goes into: the
// given one, or the actor's default project (created on first use) when id
// is empty. Whether the actor may add tasks to it is Submit's to check.
func (s *server) projectForTask(ctx context.Context, id string) (string, error) {
	if id != "" {
		return id, nil
	}
	p, err := s.tasks.DefaultProject(ctx, actor(ctx))
	return p.ID, err
}
