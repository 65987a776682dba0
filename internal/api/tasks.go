package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

type createTaskBody struct {
	ProjectID string `json:"project_id,omitempty" maxLength:"200" example:"abc-123" doc:"Project the task belongs to; omitted: the built-in \"Default\" project"`
	Prompt    string `json:"prompt" minLength:"1" maxLength:"20000" example:"Build a todo app"`
}

type createTaskInput struct{ Body createTaskBody }

type taskIDInput struct {
	ID string `path:"id" maxLength:"200"`
}

type taskOutput struct{ Body domain.Task }

type listTasksInput struct {
	PageParams
	ProjectID string `query:"project_id" maxLength:"200" doc:"Only tasks of this project"`
	Status    string `query:"status" maxLength:"200" doc:"Only tasks in these states (comma-separated: pending,running,completed,failed,cancelled)"`
}

var taskStatuses = []domain.TaskStatus{domain.TaskPending, domain.TaskRunning, domain.TaskCompleted, domain.TaskFailed, domain.TaskCancelled}

// parseStatuses parses the ?status= filter.
func parseStatuses(raw string) ([]domain.TaskStatus, error) {
	if raw == "" {
		return nil, nil
	}
	var out []domain.TaskStatus
	for _, part := range strings.Split(raw, ",") {
		st := domain.TaskStatus(strings.TrimSpace(part))
		if !slices.Contains(taskStatuses, st) {
			return nil, fmt.Errorf("unknown status %q (accepted: pending, running, completed, failed, cancelled)", part)
		}
		out = append(out, st)
	}
	return out, nil
}

type logsInput struct {
	requestURL
	TaskID string `path:"task_id" maxLength:"200"`
	After  int64  `query:"after" minimum:"0" doc:"Only events with seq greater than this"`
	Limit  int    `query:"limit" minimum:"1" maximum:"10000" doc:"At most this many events (default 1000); the Link header announces the rest"`
}

const defaultLogLimit = 1000

type deploymentInput struct {
	TaskID string `path:"task_id" maxLength:"200"`
}

type deploymentOutput struct{ Body domain.Deployment }

type artifactsOutput struct{ Body []domain.Artifact }

func (s *server) registerTasks(api huma.API) {
	huma.Register(api, withErrors(s.op(http.MethodPost, "/api/tasks", "create-task",
		"Create a task and queue it for execution (status pending, every graph node pending)", "tasks"), 400, 404, 409, 413, 422, 503),
		s.createTask)

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/tasks", "list-tasks", "List tasks, newest first", "tasks"), 400, 422),
		func(ctx context.Context, in *listTasksInput) (*listOutput[domain.Task], error) {
			statuses, err := parseStatuses(in.Status)
			if err != nil {
				return nil, huma.Error422UnprocessableEntity(err.Error())
			}
			filter := store.TaskFilter{ProjectID: in.ProjectID, Statuses: statuses}
			return listPage(ctx, s, &in.PageParams, "tasks page", func(ctx context.Context, p store.Page) ([]domain.Task, string, error) {
				return s.store.ListTasks(ctx, filter, p)
			})
		})

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/tasks/{id}", "get-task", "Get a task", "tasks"), 404),
		func(ctx context.Context, in *taskIDInput) (*taskOutput, error) {
			t, err := s.store.GetTask(ctx, in.ID)
			if err != nil {
				return nil, s.apiError(ctx, "task "+in.ID, err)
			}
			return &taskOutput{Body: t}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodPost, "/api/tasks/{id}/cancel", "cancel-task",
		"Cancel a pending or running task (409 otherwise)", "tasks"), 404, 409),
		func(ctx context.Context, in *taskIDInput) (*taskOutput, error) {
			t, err := s.cancelTask(ctx, in.ID)
			if err != nil {
				return nil, s.apiError(ctx, "task "+in.ID, err)
			}
			return &taskOutput{Body: t}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodPost, "/api/tasks/{id}/retry", "retry-task",
		"Retry a failed or cancelled task from its first unfinished node (409 otherwise)", "tasks"), 404, 409),
		func(ctx context.Context, in *taskIDInput) (*taskOutput, error) {
			t, err := s.retryTask(ctx, in.ID)
			if err != nil {
				return nil, s.apiError(ctx, "task "+in.ID, err)
			}
			return &taskOutput{Body: t}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/tasks/{id}/artifacts", "list-task-artifacts",
		"The per-node outputs of a task (plan, design, test report, review findings, ...), oldest first", "tasks"), 404),
		func(ctx context.Context, in *taskIDInput) (*artifactsOutput, error) {
			if _, err := s.store.GetTask(ctx, in.ID); err != nil {
				return nil, s.apiError(ctx, "task "+in.ID, err)
			}
			arts, err := s.store.ListArtifacts(ctx, in.ID)
			if err != nil {
				return nil, s.apiError(ctx, "artifacts of task "+in.ID, err)
			}
			if arts == nil {
				arts = []domain.Artifact{}
			}
			return &artifactsOutput{Body: arts}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/logs/{task_id}", "list-task-logs",
		"The stored events of a task in seq order (the same objects WS /ws/{task_id} streams)", "tasks"), 404, 422),
		func(ctx context.Context, in *logsInput) (*listOutput[domain.AgentLog], error) {
			if _, err := s.store.GetTask(ctx, in.TaskID); err != nil {
				return nil, s.apiError(ctx, "task "+in.TaskID, err)
			}
			limit := in.Limit
			if limit == 0 {
				limit = defaultLogLimit
			}
			logs, err := s.store.ListLogs(ctx, in.TaskID, in.After, limit)
			if err != nil {
				return nil, s.apiError(ctx, "logs of task "+in.TaskID, err)
			}
			link := ""
			if len(logs) == limit {
				link = in.nextLink(map[string]string{
					"after": strconv.FormatInt(logs[len(logs)-1].Seq, 10),
					"limit": strconv.Itoa(limit),
				})
			}
			return newList(logs, link), nil
		})

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/deployments/{task_id}", "get-deployment",
		"The deployment report of a task (404 until the deployer has run)", "tasks"), 404),
		func(ctx context.Context, in *deploymentInput) (*deploymentOutput, error) {
			if _, err := s.store.GetTask(ctx, in.TaskID); err != nil {
				return nil, s.apiError(ctx, "task "+in.TaskID, err)
			}
			d, err := s.store.GetDeployment(ctx, in.TaskID)
			if err != nil {
				return nil, s.apiError(ctx, "deployment of task "+in.TaskID, err)
			}
			return &deploymentOutput{Body: d}, nil
		})

	s.registerFileList(api)
}

func (s *server) createTask(ctx context.Context, in *createTaskInput) (*taskOutput, error) {
	if err := domain.CheckText("prompt", in.Body.Prompt); err != nil {
		return nil, huma.Error422UnprocessableEntity(err.Error())
	}
	prompt := strings.TrimSpace(in.Body.Prompt)
	if prompt == "" {
		return nil, huma.Error422UnprocessableEntity("prompt must not be blank")
	}
	if utf8.RuneCountInString(prompt) > maxPromptRunes {
		return nil, huma.Error422UnprocessableEntity(fmt.Sprintf("prompt is longer than %d characters", maxPromptRunes))
	}
	p, err := s.projectForTask(ctx, in.Body.ProjectID)
	if err != nil {
		return nil, s.apiError(ctx, "project "+in.Body.ProjectID, err)
	}
	if p.Status == domain.ProjectArchived {
		return nil, huma.Error409Conflict("project " + p.ID + " is archived; unarchive it (PATCH status=active) to add tasks")
	}
	now := time.Now().UTC()
	t := domain.Task{
		ID:         uuid.NewString(),
		ProjectID:  p.ID,
		Prompt:     prompt,
		GraphState: domain.NewGraphState(domain.StandardNodes),
		Status:     domain.TaskPending,
		CreatedAt:  now,
		UpdatedAt:  now,
	}
	if err := s.store.CreateTask(ctx, t); err != nil {
		return nil, s.apiError(ctx, "task "+t.ID, err)
	}
	if s.runner != nil {
		if err := s.runner.Enqueue(ctx, t.ID); err != nil {
			s.log.ErrorContext(ctx, "enqueue failed", "task_id", t.ID, "err", err)
			reason := "could not be queued: " + err.Error()
			// The task exists; say honestly that it will not run (it can be retried).
			if _, uerr := s.store.UpdateTask(context.WithoutCancel(ctx), t.ID, func(t *domain.Task) error {
				t.Status = domain.TaskFailed
				t.Error = reason
				return nil
			}); uerr != nil {
				s.log.ErrorContext(ctx, "marking unqueued task failed", "task_id", t.ID, "err", uerr)
			}
			return nil, huma.Error503ServiceUnavailable("task " + t.ID + " " + reason)
		}
	}
	// Return what is stored now: the runner may already have started it.
	if cur, err := s.store.GetTask(ctx, t.ID); err == nil {
		t = cur
	}
	return &taskOutput{Body: t}, nil
}

// errNoTransition is wrapped with domain.ErrConflict for invalid transitions.
func errNoTransition(from domain.TaskStatus, action string) error {
	return fmt.Errorf("%w: a %s task cannot be %s", domain.ErrConflict, from, action)
}

// cancelTask asks the runner; without one, a pending task is cancelled in the
// store directly (there is nothing running to stop).
func (s *server) cancelTask(ctx context.Context, id string) (domain.Task, error) {
	if s.runner != nil {
		return s.runner.Cancel(ctx, id)
	}
	return s.store.UpdateTask(ctx, id, func(t *domain.Task) error {
		if t.Status != domain.TaskPending && t.Status != domain.TaskRunning {
			return errNoTransition(t.Status, "cancelled")
		}
		now := time.Now().UTC()
		t.Status = domain.TaskCancelled
		t.Error = "cancelled by user"
		t.FinishedAt = &now
		return nil
	})
}

// retryTask asks the runner; without one, a failed or cancelled task is put
// back to pending (its unfinished nodes pending) where it waits for a runner.
func (s *server) retryTask(ctx context.Context, id string) (domain.Task, error) {
	if s.runner != nil {
		return s.runner.Retry(ctx, id)
	}
	return s.store.UpdateTask(ctx, id, func(t *domain.Task) error {
		if t.Status != domain.TaskFailed && t.Status != domain.TaskCancelled {
			return errNoTransition(t.Status, "retried")
		}
		t.Status = domain.TaskPending
		t.Error = ""
		t.FinishedAt = nil
		for n, st := range t.GraphState {
			if st != domain.NodeCompleted {
				t.GraphState[n] = domain.NodePending
			}
		}
		return nil
	})
}
