package tasks

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

// CreateProject stores p as a's: a becomes its owner.
func (s *Service) CreateProject(ctx context.Context, a Actor, p domain.Project) (domain.Project, error) {
	if ScopeOf(a).None() {
		return p, fmt.Errorf("%w: no actor", domain.ErrInvalid)
	}
	p.OwnerID = a.ID
	p.MyRole = ""
	if err := s.opt.Store.CreateProject(ctx, p); err != nil {
		return p, err
	}
	p.MyRole = domain.RoleOwner
	return p, nil
}

// Project returns a project a may see, with a's role in it.
func (s *Service) Project(ctx context.Context, a Actor, id string) (domain.Project, error) {
	return s.access(ctx, a, id, domain.RoleViewer, "read", "project", id)
}

// Projects returns a page of the projects a may see.
func (s *Service) Projects(ctx context.Context, a Actor, page store.Page) ([]domain.Project, string, error) {
	items, next, err := s.opt.Store.ListProjects(ctx, ScopeOf(a), page)
	if err == nil {
		for _, p := range items {
			if p.MyRole == domain.RoleAdminAccess {
				s.audit(ctx, a, "list", "project", p.ID)
			}
		}
	}
	return items, next, err
}

// UpdateProject applies mutate to a project a may edit. Changing the
// status (archiving, unarchiving) or the owner is the owner's.
func (s *Service) UpdateProject(ctx context.Context, a Actor, id string, mutate func(*domain.Project) error) (domain.Project, error) {
	before, err := s.access(ctx, a, id, domain.RoleEditor, "update", "project", id)
	if err != nil {
		return before, err
	}
	p, err := s.opt.Store.UpdateProject(ctx, id, func(p *domain.Project) error {
		status, owner := p.Status, p.OwnerID
		if err := mutate(p); err != nil {
			return err
		}
		if p.OwnerID != owner {
			return fmt.Errorf("%w: a project's owner cannot be changed", domain.ErrInvalid)
		}
		if p.Status != status && !before.MyRole.Allows(domain.RoleOwner) {
			return fmt.Errorf("%w: only the owner of project %s may archive or unarchive it (you are %s)", domain.ErrForbidden, id, before.MyRole)
		}
		return nil
	})
	p.MyRole = before.MyRole
	return p, err
}

// DefaultProject returns a's project for tasks submitted without one,
// creating it on first use. Each user has their own; the installation's
// token holder and Catalyst share the one from before accounts.
func (s *Service) DefaultProject(ctx context.Context, a Actor) (domain.Project, error) {
	id := DefaultProjectID
	if a.Kind == ActorUser {
		id = uuid.NewSHA1(uuid.NameSpaceURL, []byte("catalyst:default-project:"+a.ID)).String()
	}
	p, err := s.Project(ctx, a, id)
	if !isNotFound(err) {
		return p, err
	}
	now := s.now()
	p, err = s.CreateProject(ctx, a, domain.Project{ID: id, Name: "Default", Description: "Tasks submitted without a project_id.",
		Status: domain.ProjectActive, CreatedAt: now, UpdatedAt: now})
	if err != nil && !isConflict(err) {
		return p, err
	}
	return s.Project(ctx, a, id)
}

// DefaultProjectID is the project of tasks submitted without a project_id
// from before accounts, and still the installation token holder's.
var DefaultProjectID = uuid.NewSHA1(uuid.NameSpaceURL, []byte("catalyst:default-project")).String()

// Members returns the members of a project a may see.
func (s *Service) Members(ctx context.Context, a Actor, projectID string) ([]domain.Member, error) {
	if _, err := s.access(ctx, a, projectID, domain.RoleViewer, "read", "project_members", projectID); err != nil {
		return nil, err
	}
	ms, err := s.opt.Store.ListMembers(ctx, projectID)
	if ms == nil && err == nil {
		ms = []domain.Member{}
	}
	return ms, err
}

// AddMember gives userID role on a project a owns (or changes it).
func (s *Service) AddMember(ctx context.Context, a Actor, projectID, userID string, role domain.ProjectRole) (domain.Member, error) {
	if !role.MemberRole() {
		return domain.Member{}, fmt.Errorf("%w: role must be viewer or editor, got %q", domain.ErrInvalid, role)
	}
	userID = strings.TrimSpace(userID)
	if userID == "" {
		return domain.Member{}, fmt.Errorf("%w: no user given", domain.ErrInvalid)
	}
	p, err := s.access(ctx, a, projectID, domain.RoleOwner, "add_member", "project", projectID)
	if err != nil {
		return domain.Member{}, err
	}
	if userID == p.OwnerID {
		return domain.Member{}, fmt.Errorf("%w: user %s owns project %s already", domain.ErrConflict, userID, projectID)
	}
	now := s.now()
	return s.opt.Store.PutMember(ctx, domain.Member{ProjectID: projectID, UserID: userID, Role: role, AddedBy: a.ID, CreatedAt: now, UpdatedAt: now})
}

// RemoveMember takes userID off a project: its owner may remove anyone, a
// member may remove themselves (leave).
func (s *Service) RemoveMember(ctx context.Context, a Actor, projectID, userID string) error {
	need := domain.RoleOwner
	if a.Kind == ActorUser && userID == a.ID {
		need = domain.RoleViewer
	}
	if _, err := s.access(ctx, a, projectID, need, "remove_member", "project", projectID); err != nil {
		return err
	}
	return s.opt.Store.DeleteMember(ctx, projectID, userID)
}
