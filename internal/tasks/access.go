package tasks

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

// Tenancy: a project belongs to its owner and is shared with members
// (viewer, editor). Every read goes to the store with the actor's Scope, so
// another tenant's resource comes back as domain.ErrNotFound — the same
// error as an unknown id — and a list never holds it. What an actor may do
// to a project it sees is its role (domain.ProjectRole.Allows).

// Auditor records an admin's access to a tenant's resource in which the
// admin has no role (accounts' audit Recorder implements it).
type Auditor interface {
	AdminAccess(ctx context.Context, a Actor, action, resourceType, resourceID string)
}

// ScopeOf is what a may see: an admin (and the installation's token
// holder) every tenant, Catalyst itself every tenant, a user their own and
// shared projects. An actor that is none of these sees nothing.
func ScopeOf(a Actor) store.Scope {
	switch {
	case a.Admin && a.ID != "":
		return store.Admin(a.ID)
	case a.Kind == ActorSystem:
		return store.All()
	case a.Kind == ActorUser && a.ID != "":
		return store.User(a.ID)
	}
	return store.Scope{}
}

// Errors of the per-user limits (the API answers 429 and 402).
var (
	// ErrQueueFull: the user has as many pending and running tasks as they may.
	ErrQueueFull = errors.New("too many queued tasks")
	// ErrBudgetSpent: the user's tasks have cost their whole budget.
	ErrBudgetSpent = errors.New("cost budget spent")
)

// Limits bound what one user may queue and spend. They apply to signed-in
// users (admins included), not to the installation's token holder or to
// Catalyst itself.
type Limits struct {
	// MaxQueuedPerUser is the most pending plus running tasks a user may
	// have (CATALYST_MAX_QUEUED_TASKS_PER_USER); 0: no cap.
	MaxQueuedPerUser int
	// UserBudgetUSD is the most a user's tasks may cost together
	// (CATALYST_USER_BUDGET_USD); 0: no budget.
	UserBudgetUSD float64
}

// userLocks serialises the limit check and the insert of one user's
// submissions in this process, so that a burst of parallel submissions
// cannot all pass the check before any is stored. Across processes the cap
// can be exceeded by at most one task per process.
type userLocks struct{ m sync.Map }

func (l *userLocks) lock(id string) func() {
	v, _ := l.m.LoadOrStore(id, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// limited reports whether a's submissions are bounded by Limits.
func limited(a Actor) bool { return a.Kind == ActorUser && a.ID != "" }

// checkLimits refuses a new or retried task of a when it would pass a
// limit. The caller holds a's user lock.
func (s *Service) checkLimits(ctx context.Context, a Actor) error {
	lim := s.opt.Limits
	if !limited(a) || (lim.MaxQueuedPerUser <= 0 && lim.UserBudgetUSD <= 0) {
		return nil
	}
	st, err := s.opt.Store.UserStats(ctx, a.ID)
	if err != nil {
		return err
	}
	if lim.MaxQueuedPerUser > 0 && st.Queued >= lim.MaxQueuedPerUser {
		return fmt.Errorf("%w: you have %d tasks pending or running, the most one user may queue (CATALYST_MAX_QUEUED_TASKS_PER_USER=%d); wait for one to finish or cancel one",
			ErrQueueFull, st.Queued, lim.MaxQueuedPerUser)
	}
	if lim.UserBudgetUSD > 0 && st.Spent >= lim.UserBudgetUSD {
		return fmt.Errorf("%w: your tasks have cost $%.4f of your $%.2f budget (CATALYST_USER_BUDGET_USD); no new tasks until an admin raises it",
			ErrBudgetSpent, st.Spent, lim.UserBudgetUSD)
	}
	return nil
}

// access returns project id as a sees it, if a's role there allows need;
// domain.ErrNotFound when a may not see it, domain.ErrForbidden when a
// sees it with too small a role. An admin's access to a project in which
// they have no role is audited as action on (resourceType, resourceID).
func (s *Service) access(ctx context.Context, a Actor, id string, need domain.ProjectRole, action, resourceType, resourceID string) (domain.Project, error) {
	p, err := s.opt.Store.GetProjectIn(ctx, ScopeOf(a), id)
	if err != nil {
		return p, err
	}
	if !p.MyRole.Allows(need) {
		return p, fmt.Errorf("%w: you are %s of project %s; this needs %s", domain.ErrForbidden, p.MyRole, p.ID, need)
	}
	if p.MyRole == domain.RoleAdminAccess {
		s.audit(ctx, a, action, resourceType, resourceID)
	}
	return p, nil
}

// Audit records an admin's access to another tenant's resource that the
// caller read itself (scans, until they are tasks).
func (s *Service) Audit(ctx context.Context, a Actor, action, resourceType, resourceID string) {
	s.audit(ctx, a, action, resourceType, resourceID)
}

func (s *Service) audit(ctx context.Context, a Actor, action, resourceType, resourceID string) {
	if aud, ok := ctx.Value(auditorKey{}).(Auditor); ok {
		aud.AdminAccess(ctx, a, action, resourceType, resourceID)
		return
	}
	if s.opt.Auditor != nil {
		s.opt.Auditor.AdminAccess(ctx, a, action, resourceType, resourceID)
	}
}

type auditorKey struct{}

// WithAuditor returns ctx whose admin accesses are recorded by aud instead
// of Options.Auditor: the API records them with the request's client.
func WithAuditor(ctx context.Context, aud Auditor) context.Context {
	return context.WithValue(ctx, auditorKey{}, aud)
}

// auditList records an admin's list holding resources of projects in
// which the admin has no role: once per project, so the trail says whose
// data was read.
func (s *Service) auditList(ctx context.Context, a Actor, resourceType string, projectIDs []string) {
	if !a.Admin {
		return
	}
	seen := map[string]bool{}
	for _, id := range projectIDs {
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		if p, err := s.opt.Store.GetProjectIn(ctx, ScopeOf(a), id); err == nil && p.MyRole == domain.RoleAdminAccess {
			s.audit(ctx, a, "list", resourceType, "project:"+id)
		}
	}
}

// Task returns a task a may see, checking that a's role on its project
// allows need. Another tenant's task is domain.ErrNotFound.
func (s *Service) task(ctx context.Context, a Actor, id string, need domain.ProjectRole, action string) (domain.Task, error) {
	t, err := s.opt.Store.GetTaskIn(ctx, ScopeOf(a), id)
	if err != nil {
		return t, err
	}
	if need == domain.RoleViewer && !a.Admin {
		return t, nil // seeing the task is seeing its project: no second query
	}
	if _, err := s.access(ctx, a, t.ProjectID, need, action, "task", t.ID); err != nil {
		return t, err
	}
	return t, nil
}
