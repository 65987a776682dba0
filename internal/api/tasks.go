package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/graph"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/tasks"
	"github.com/danielgtaylor/huma/v2"
)

type createTaskBody struct {
	ProjectID string `json:"project_id,omitempty" maxLength:"200" example:"abc-123" doc:"Project the task belongs to; omitted: the built-in \"Default\" project"`
	Prompt    string `json:"prompt" minLength:"1" maxLength:"20000" example:"Build a todo app"`
	Kind      string `json:"kind,omitempty" maxLength:"64" example:"build" doc:"Graph the task runs (GET /api/graphs lists them); omitted: build. An unknown kind answers 422"`
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
		"Create a task and queue it for execution (status pending, every graph node pending); editors of the project. "+
			"429: you have as many queued tasks as a user may; 402: your tasks have spent your budget", "tasks"), 400, 402, 403, 404, 409, 413, 422, 429, 503),
		s.createTask)

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/tasks", "list-tasks", "List tasks, newest first", "tasks"), 400, 422),
		func(ctx context.Context, in *listTasksInput) (*listOutput[domain.Task], error) {
			statuses, err := parseStatuses(in.Status)
			if err != nil {
				return nil, huma.Error422UnprocessableEntity(err.Error())
			}
			filter := store.TaskFilter{ProjectID: in.ProjectID, Statuses: statuses}
			return listPage(ctx, s, &in.PageParams, "tasks page", func(ctx context.Context, p store.Page) ([]domain.Task, string, error) {
				return s.tasks.List(ctx, actor(ctx), filter, p)
			})
		})

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/tasks/{id}", "get-task", "Get a task", "tasks"), 404),
		func(ctx context.Context, in *taskIDInput) (*taskOutput, error) {
			t, err := s.tasks.Get(ctx, actor(ctx), in.ID)
			if err != nil {
				return nil, s.apiError(ctx, "task "+in.ID, err)
			}
			return &taskOutput{Body: t}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodPost, "/api/tasks/{id}/cancel", "cancel-task",
		"Cancel a pending or running task (409 otherwise); editors of its project", "tasks"), 403, 404, 409),
		func(ctx context.Context, in *taskIDInput) (*taskOutput, error) {
			t, err := s.tasks.Cancel(ctx, actor(ctx), in.ID)
			if err != nil {
				return nil, s.apiError(ctx, "task "+in.ID, err)
			}
			return &taskOutput{Body: t}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodPost, "/api/tasks/{id}/retry", "retry-task",
		"Retry a failed or cancelled task from its first unfinished node (409 otherwise); editors of its project", "tasks"), 402, 403, 404, 409, 429),
		func(ctx context.Context, in *taskIDInput) (*taskOutput, error) {
			t, err := s.tasks.Retry(ctx, actor(ctx), in.ID)
			if err != nil {
				return nil, s.apiError(ctx, "task "+in.ID, err)
			}
			return &taskOutput{Body: t}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/tasks/{id}/artifacts", "list-task-artifacts",
		"The per-node outputs of a task (plan, design, test report, review findings, ...), oldest first", "tasks"), 404),
		func(ctx context.Context, in *taskIDInput) (*artifactsOutput, error) {
			if _, err := s.tasks.Get(ctx, actor(ctx), in.ID); err != nil {
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
			if _, err := s.tasks.Get(ctx, actor(ctx), in.TaskID); err != nil {
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
		"The deployment report of a task (404 until the deployer has run); its url opens the preview for you for a while (SESSION_TIMEOUT)", "tasks"), 404),
		func(ctx context.Context, in *deploymentInput) (*deploymentOutput, error) {
			a := actor(ctx)
			if _, err := s.tasks.Get(ctx, a, in.TaskID); err != nil {
				return nil, s.apiError(ctx, "task "+in.TaskID, err)
			}
			d, err := s.store.GetDeployment(ctx, in.TaskID)
			if err != nil {
				return nil, s.apiError(ctx, "deployment of task "+in.TaskID, err)
			}
			// A preview on our preview origin is opened with a grant for
			// the reader (see previewgrant.go); other URLs are left alone.
			if s.cfg.PreviewURL != "" {
				if rest, ok := strings.CutPrefix(d.URL, strings.TrimRight(s.cfg.PreviewURL, "/")+"/apps/"+d.TaskID+"/"); ok {
					d.URL = s.previewURL(a, d.TaskID) + rest
				}
			}
			return &deploymentOutput{Body: d}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/graphs", "list-graphs",
		"The task graphs by kind: nodes, edges, labels and the fix loop (the dashboard draws tasks from these)", "tasks")),
		func(ctx context.Context, _ *struct{}) (*graphsOutput, error) {
			return &graphsOutput{Body: s.tasks.Graphs().Describe()}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/graphs/{kind}", "get-graph", "One task graph", "tasks"), 404),
		func(ctx context.Context, in *graphInput) (*graphOutput, error) {
			p, ok := s.tasks.Graphs().Lookup(in.Kind)
			if !ok {
				return nil, huma.Error404NotFound(fmt.Sprintf("graph %q not found (known: %s)", truncate(in.Kind, 64), strings.Join(s.tasks.Graphs().Kinds(), ", ")))
			}
			return &graphOutput{Body: p.Describe()}, nil
		})

	s.registerFileList(api)
	s.registerPatch(api)
}

type graphsOutput struct{ Body []graph.Description }

type graphInput struct {
	Kind string `path:"kind" maxLength:"64"`
}

type graphOutput struct{ Body graph.Description }

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
	if in.Body.Kind != "" {
		if _, ok := s.tasks.Graphs().Lookup(in.Body.Kind); !ok {
			return nil, huma.Error422UnprocessableEntity(fmt.Sprintf("unknown kind %q (known: %s)",
				truncate(in.Body.Kind, 64), strings.Join(s.tasks.Graphs().Kinds(), ", ")))
		}
	}
	projectID, err := s.projectForTask(ctx, in.Body.ProjectID)
	if err != nil {
		return nil, s.apiError(ctx, "project "+in.Body.ProjectID, err)
	}
	t, err := s.tasks.Submit(ctx, actor(ctx), tasks.Submission{ProjectID: projectID, Prompt: prompt, Kind: in.Body.Kind})
	switch {
	case errors.Is(err, tasks.ErrUnavailable):
		s.log.ErrorContext(ctx, "enqueue failed", "task_id", t.ID, "err", err)
		return nil, huma.Error503ServiceUnavailable(err.Error())
	case errors.Is(err, tasks.ErrUnknownKind):
		return nil, huma.Error422UnprocessableEntity(err.Error())
	case errors.Is(err, domain.ErrNotFound):
		return nil, s.apiError(ctx, "project "+projectID, err)
	case err != nil:
		return nil, s.apiError(ctx, "task of project "+projectID, err)
	}
	return &taskOutput{Body: t}, nil
}

type actorKey struct{}

// withActor returns ctx carrying who sends the request; the guard sets it
// once the request's credential is checked.
func withActor(ctx context.Context, a tasks.Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// actor is who sends the request, as the guard authenticated it. A request
// the guard let through without a credential (sign-in, health) is
// anonymous: it sees nothing and may do nothing, so a handler that forgets
// to check fails closed rather than acting as the installation's admin.
func actor(ctx context.Context) tasks.Actor {
	if a, ok := ctx.Value(actorKey{}).(tasks.Actor); ok {
		return a
	}
	return anonymous
}

var anonymous = tasks.Actor{Kind: "anonymous", Name: "anonymous"}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
