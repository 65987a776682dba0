package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/catalyst/catalyst/internal/domain"
)

type patchOutput struct {
	ContentType        string `header:"Content-Type"`
	ContentDisposition string `header:"Content-Disposition"`
	Body               []byte
}

// registerPatch serves a change task's commit as git format-patch text.
func (s *server) registerPatch(api huma.API) {
	op := s.op(http.MethodGet, "/api/tasks/{id}/patch", "get-task-patch",
		"The change of a task of kind change as a patch (git format-patch; apply with git am), once the deployer has committed it", "tasks")
	op.Responses = map[string]*huma.Response{"200": {Description: "git format-patch text",
		Content: map[string]*huma.MediaType{"text/x-patch": {Schema: &huma.Schema{Type: huma.TypeString}}}}}
	huma.Register(api, withErrors(op, 404, 409),
		func(ctx context.Context, in *taskIDInput) (*patchOutput, error) {
			t, err := s.tasks.Get(ctx, actor(ctx), in.ID)
			if err != nil {
				return nil, s.apiError(ctx, "task "+in.ID, err)
			}
			if t.KindOf() != domain.KindChange {
				return nil, huma.Error404NotFound("task " + in.ID + " is a " + t.KindOf() + " task: only tasks of kind change have a patch")
			}
			d, err := s.store.GetDeployment(ctx, in.ID)
			if statusOf(err) == http.StatusNotFound || err == nil && d.CommitSHA == "" {
				return nil, huma.Error409Conflict("task " + in.ID + " has no commit yet: the patch exists once the deployer has run")
			}
			if err != nil {
				return nil, s.apiError(ctx, "deployment of task "+in.ID, err)
			}
			ws, err := s.openWorkspace(in.ID)
			if err != nil || ws == nil {
				return nil, huma.Error404NotFound("the workspace of task " + in.ID + " is not available")
			}
			patch, err := ws.FormatPatch(ctx, d.CommitSHA)
			if err != nil {
				return nil, s.apiError(ctx, "patch of task "+in.ID, err)
			}
			return &patchOutput{
				ContentType:        "text/x-patch; charset=utf-8",
				ContentDisposition: `attachment; filename="catalyst-task-` + safeFilename(in.ID) + `.patch"`,
				Body:               []byte(patch),
			}, nil
		})
}
