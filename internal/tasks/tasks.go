// Package tasks holds the use cases of tasks: submit, cancel, retry, read
// and wait, each on behalf of an Actor. The API, `catalyst run` and the
// Explorer all go through it, so a rule (who may do what, which transition,
// which events) lives here once. State changes themselves are the
// transitions of package domain; this package loads, applies, stores and
// records them.
package tasks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
	"github.com/catalyst/catalyst/internal/graph"
	"github.com/catalyst/catalyst/internal/store"
)

// ActorKind says who an Actor is.
type ActorKind string

const (
	// ActorLocal is the person at this installation (no accounts yet).
	ActorLocal ActorKind = "local"
	// ActorSystem is Catalyst itself (the Explorer, recovery).
	ActorSystem ActorKind = "system"
	// ActorUser is a signed-in account (session, bearer token or API key).
	ActorUser ActorKind = "user"
)

// Actor is who asks. Every use case takes one and reads the store in its
// scope (ScopeOf).
type Actor struct {
	Kind ActorKind
	ID   string // user id for ActorUser
	Name string
	// Admin sees and changes every tenant's resources (audited). The local
	// actor (the installation's token holder) is an admin.
	Admin bool
}

// Local returns the actor of an installation without accounts.
func Local() Actor { return Actor{Kind: ActorLocal, ID: "local", Name: "local user", Admin: true} }

// System returns Catalyst acting on its own behalf as name.
func System(name string) Actor { return Actor{Kind: ActorSystem, ID: "system:" + name, Name: name} }

// Errors the API maps to statuses.
var (
	// ErrUnknownKind: no graph is registered for the kind (422).
	ErrUnknownKind = errors.New("unknown task kind")
	// ErrUnavailable: the task was stored but no runner took it (503).
	ErrUnavailable = errors.New("task could not be queued")
)

// Dispatcher hands pending tasks to a runner: the local executor, or the
// JetStream work queue.
type Dispatcher interface {
	Dispatch(ctx context.Context, taskID string) error
}

// Reserver is implemented by dispatchers that run tasks in this process:
// a task they are handed is created with their lease, so that no other
// process sharing the store claims it first.
type Reserver interface {
	Reserve(t *domain.Task)
}

// Stopper is implemented by dispatchers that can stop a task they run at
// once; other processes see the stored cancel within a second anyway.
type Stopper interface {
	Stop(taskID string)
}

// Options configure the Service.
type Options struct {
	Store    store.Store
	Recorder *events.Recorder
	Graphs   *graph.Registry
	// Dispatcher runs submitted and retried tasks; nil leaves them pending
	// for whichever runner looks next.
	Dispatcher Dispatcher
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Limits bound each user's queued tasks and spending.
	Limits Limits
	// Auditor records admins' access to other tenants' resources; nil
	// records nothing.
	Auditor Auditor
}

// Service is the task use cases.
type Service struct {
	opt   Options
	users userLocks
}

// New returns the Service.
func New(opt Options) *Service {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Service{opt: opt}
}

// Graphs returns the graph registry.
func (s *Service) Graphs() *graph.Registry { return s.opt.Graphs }

func (s *Service) now() time.Time { return s.opt.Now().UTC() }

// Submission is a new task.
type Submission struct {
	ProjectID string
	Prompt    string
	// Kind selects the graph; "" means build.
	Kind string
	// ID, when set, is the new task's id (a UUID): an Explorer scan's task
	// shares the scan's id, so that its steps find their scan and no other.
	ID string
}

// Submit creates a pending task of the submission's kind, every node of its
// graph pending, and hands it to the dispatcher.
func (s *Service) Submit(ctx context.Context, a Actor, sub Submission) (domain.Task, error) {
	prompt := strings.TrimSpace(sub.Prompt)
	if prompt == "" {
		return domain.Task{}, fmt.Errorf("%w: prompt must not be blank", domain.ErrInvalid)
	}
	if err := domain.CheckText("prompt", prompt); err != nil {
		return domain.Task{}, fmt.Errorf("%w: %v", domain.ErrInvalid, err)
	}
	kind := sub.Kind
	if kind == "" {
		kind = domain.KindBuild
	}
	p, ok := s.opt.Graphs.Lookup(kind)
	if !ok {
		return domain.Task{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownKind, kind, strings.Join(s.opt.Graphs.Kinds(), ", "))
	}
	project, err := s.access(ctx, a, sub.ProjectID, domain.RoleEditor, "submit_task", "project", sub.ProjectID)
	if err != nil {
		return domain.Task{}, err
	}
	if project.Status == domain.ProjectArchived {
		return domain.Task{}, fmt.Errorf("%w: project %s is archived; unarchive it (PATCH status=active) to add tasks", domain.ErrConflict, project.ID)
	}
	if kind == domain.KindChange && project.RepoURL == "" {
		return domain.Task{}, fmt.Errorf("%w: a task of kind change needs a repository: set the project's repo_url (PATCH /api/projects/%s)", domain.ErrInvalid, project.ID)
	}
	id := sub.ID
	if id == "" {
		id = uuid.NewString()
	} else if _, err := uuid.Parse(id); err != nil {
		return domain.Task{}, fmt.Errorf("%w: task id %q is not a UUID", domain.ErrInvalid, id)
	}
	t := domain.NewTask(id, project.ID, prompt, kind, p.Order, s.now())
	t.CreatedBy = a.ID
	if limited(a) {
		defer s.users.lock(a.ID)()
		if err := s.checkLimits(ctx, a); err != nil {
			return domain.Task{}, err
		}
	}
	if r, ok := s.opt.Dispatcher.(Reserver); ok {
		r.Reserve(&t)
	}
	if err := s.opt.Store.CreateTask(ctx, t); err != nil {
		return domain.Task{}, err
	}
	return s.dispatch(ctx, t)
}

// dispatch hands t to the runner; a task no runner takes is failed with the
// reason (it can be retried), never left pending in silence.
func (s *Service) dispatch(ctx context.Context, t domain.Task) (domain.Task, error) {
	if s.opt.Dispatcher == nil {
		return t, nil
	}
	if err := s.opt.Dispatcher.Dispatch(ctx, t.ID); err != nil {
		reason := "could not be queued: " + err.Error()
		failed, uerr := s.transition(context.WithoutCancel(ctx), t.ID, func(t *domain.Task) ([]domain.Change, error) {
			return t.Fail(reason, s.now())
		})
		if uerr != nil {
			return t, errors.Join(fmt.Errorf("%w: task %s %s", ErrUnavailable, t.ID, reason), uerr)
		}
		return failed, fmt.Errorf("%w: task %s %s", ErrUnavailable, t.ID, reason)
	}
	// What is stored now: the runner may already have started it.
	if cur, err := s.opt.Store.GetTask(ctx, t.ID); err == nil {
		return cur, nil
	}
	return t, nil
}

// Get returns a task the actor may see; another tenant's task is
// domain.ErrNotFound, as an unknown one.
func (s *Service) Get(ctx context.Context, a Actor, id string) (domain.Task, error) {
	return s.task(ctx, a, id, domain.RoleViewer, "read")
}

// List returns a page of the tasks the actor may see; f.Scope is set from
// the actor, whatever the caller put there.
func (s *Service) List(ctx context.Context, a Actor, f store.TaskFilter, page store.Page) ([]domain.Task, string, error) {
	f.Scope = ScopeOf(a)
	items, next, err := s.opt.Store.ListTasks(ctx, f, page)
	if err == nil && a.Admin {
		ids := make([]string, len(items))
		for i, t := range items {
			ids[i] = t.ProjectID
		}
		s.auditList(ctx, a, "task", ids)
	}
	return items, next, err
}

// Cancel stores the request to stop a pending or running task. Its owner,
// in this process or another, stops it within a second.
func (s *Service) Cancel(ctx context.Context, a Actor, id string) (domain.Task, error) {
	if _, err := s.task(ctx, a, id, domain.RoleEditor, "cancel"); err != nil {
		return domain.Task{}, err
	}
	t, err := s.transition(ctx, id, func(t *domain.Task) ([]domain.Change, error) {
		return t.Cancel("cancelled by "+a.Name, s.now())
	})
	if err != nil {
		return t, err
	}
	if st, ok := s.opt.Dispatcher.(Stopper); ok {
		st.Stop(id)
	}
	return t, nil
}

// Retry resumes a failed or cancelled task at its first unfinished node. A
// task whose fix loop ran out (or stalled) gets one more fix round.
func (s *Service) Retry(ctx context.Context, a Actor, id string) (domain.Task, error) {
	cur, err := s.task(ctx, a, id, domain.RoleEditor, "retry")
	if err != nil {
		return cur, err
	}
	// A retry queues the task again and spends again: the retrying user's
	// limits apply as to a new task.
	if limited(a) {
		defer s.users.lock(a.ID)()
		if err := s.checkLimits(ctx, a); err != nil {
			return cur, err
		}
	}
	p, ok := s.opt.Graphs.Lookup(cur.KindOf())
	if !ok {
		return cur, fmt.Errorf("%w %q", ErrUnknownKind, cur.KindOf())
	}
	list, err := s.opt.Store.ListArtifacts(ctx, id)
	if err != nil {
		return cur, err
	}
	arts := graph.Index(list)
	t, err := s.transition(ctx, id, func(t *domain.Task) ([]domain.Change, error) {
		reset, extra, at := graph.RetryPlan(p, *t, arts)
		ch, err := t.Retry(reset, extra, at)
		if err == nil {
			if r, ok := s.opt.Dispatcher.(Reserver); ok {
				r.Reserve(t)
			}
		}
		return ch, err
	})
	if err != nil {
		return t, err
	}
	return s.dispatch(ctx, t)
}

// Wait returns the task once it is completed, failed or cancelled, whoever
// runs it.
func (s *Service) Wait(ctx context.Context, a Actor, id string) (domain.Task, error) {
	delay := 50 * time.Millisecond
	for {
		t, err := s.Get(ctx, a, id)
		if err != nil || t.Status.Terminal() {
			return t, err
		}
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 500*time.Millisecond)
	}
}

// transition applies a domain transition to the stored task (compare-and-
// set, reapplied on a lost race) and records the events it implied.
func (s *Service) transition(ctx context.Context, id string, apply func(*domain.Task) ([]domain.Change, error)) (domain.Task, error) {
	var changes []domain.Change
	t, err := s.opt.Store.UpdateTask(ctx, id, func(t *domain.Task) error {
		var err error
		changes, err = apply(t)
		return err
	})
	if err != nil {
		return t, err
	}
	if s.opt.Recorder != nil {
		if err := s.opt.Recorder.RecordChanges(ctx, t, changes); err != nil {
			return t, fmt.Errorf("recording events of task %s: %w", id, err)
		}
	}
	return t, nil
}

func isNotFound(err error) bool { return errors.Is(err, domain.ErrNotFound) }
func isConflict(err error) bool { return errors.Is(err, domain.ErrConflict) }
