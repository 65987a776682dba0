package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/catalyst/catalyst/internal/accounts"
	"github.com/catalyst/catalyst/internal/domain"
)

// memberBody is a member as the API shows it: the stored role and who the
// user is.
type memberBody struct {
	ProjectID string             `json:"project_id"`
	UserID    string             `json:"user_id"`
	Email     string             `json:"email,omitempty"`
	Name      string             `json:"name,omitempty"`
	Role      domain.ProjectRole `json:"role" enum:"viewer,editor"`
	AddedBy   string             `json:"added_by"`
	CreatedAt time.Time          `json:"created_at"`
	UpdatedAt time.Time          `json:"updated_at"`
}

type addMemberBody struct {
	Email  string             `json:"email,omitempty" maxLength:"254" doc:"The user's e-mail address (or give user_id)"`
	UserID string             `json:"user_id,omitempty" maxLength:"200"`
	Role   domain.ProjectRole `json:"role" enum:"viewer,editor" doc:"viewer reads; editor also submits, cancels and retries tasks and edits the project"`
}

type addMemberInput struct {
	ID   string `path:"id" maxLength:"200"`
	Body addMemberBody
}

type memberInput struct {
	ID   string `path:"id" maxLength:"200"`
	User string `path:"user" maxLength:"254" doc:"user id or e-mail address"`
}

type memberOutput struct{ Body memberBody }
type membersOutput struct{ Body []memberBody }

func (s *server) registerMembers(api huma.API) {
	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/projects/{id}/members", "list-project-members",
		"The users a project is shared with, and their roles (anyone who sees the project)", "projects"), 404),
		func(ctx context.Context, in *projectIDInput) (*membersOutput, error) {
			ms, err := s.tasks.Members(ctx, actor(ctx), in.ID)
			if err != nil {
				return nil, s.apiError(ctx, "project "+in.ID, err)
			}
			out := make([]memberBody, len(ms))
			for i, m := range ms {
				out[i] = s.memberBody(ctx, m)
			}
			return &membersOutput{Body: out}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodPost, "/api/projects/{id}/members", "add-project-member",
		"Share a project with a user as viewer or editor, or change their role (the owner only)", "projects"), 400, 403, 404, 409, 422),
		func(ctx context.Context, in *addMemberInput) (*memberOutput, error) {
			b := in.Body
			if (b.Email == "") == (b.UserID == "") {
				return nil, huma.Error422UnprocessableEntity("give either email or user_id")
			}
			// Whether the project may be shared by the actor is decided
			// before the user is looked up, so that only the project's
			// owner learns whether an address has an account.
			if err := s.mayShare(ctx, in.ID); err != nil {
				return nil, err
			}
			u, err := s.lookupUser(ctx, b.Email, b.UserID)
			if err != nil {
				return nil, err
			}
			m, err := s.tasks.AddMember(ctx, actor(ctx), in.ID, u.ID, b.Role)
			if err != nil {
				return nil, s.apiError(ctx, "member of project "+in.ID, err)
			}
			return &memberOutput{Body: s.memberBody(ctx, m)}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodDelete, "/api/projects/{id}/members/{user}", "remove-project-member",
		"Stop sharing a project with a user (the owner; members may remove themselves)", "projects"), 403, 404),
		func(ctx context.Context, in *memberInput) (*struct{}, error) {
			userID := in.User
			if strings.Contains(userID, "@") {
				if err := s.mayShare(ctx, in.ID); err != nil {
					return nil, err
				}
				u, err := s.lookupUser(ctx, userID, "")
				if err != nil {
					return nil, err
				}
				userID = u.ID
			}
			if err := s.tasks.RemoveMember(ctx, actor(ctx), in.ID, userID); err != nil {
				return nil, s.apiError(ctx, "member "+in.User+" of project "+in.ID, err)
			}
			return nil, nil
		})
}

// mayShare answers 404 when the actor does not see the project and 403
// when they are not its owner: only an owner learns from a lookup whether
// an address has an account.
func (s *server) mayShare(ctx context.Context, projectID string) error {
	p, err := s.tasks.Project(ctx, actor(ctx), projectID)
	if err != nil {
		return s.apiError(ctx, "project "+projectID, err)
	}
	if !p.MyRole.Allows(domain.RoleOwner) {
		return huma.Error403Forbidden("only the owner of project " + projectID + " manages its members (you are " + string(p.MyRole) + ")")
	}
	return nil
}

// lookupUser finds a user by e-mail address or id (404 when none).
func (s *server) lookupUser(ctx context.Context, email, id string) (domain.User, error) {
	if email != "" {
		norm, err := accounts.NormalizeEmail(email)
		if err != nil {
			return domain.User{}, huma.Error422UnprocessableEntity(err.Error())
		}
		u, err := s.store.GetUserByEmail(ctx, norm)
		if err != nil {
			return u, s.apiError(ctx, "user "+norm, err)
		}
		return u, nil
	}
	u, err := s.store.GetUser(ctx, id)
	if err != nil {
		return u, s.apiError(ctx, "user "+id, err)
	}
	return u, nil
}

func (s *server) memberBody(ctx context.Context, m domain.Member) memberBody {
	b := memberBody{ProjectID: m.ProjectID, UserID: m.UserID, Role: m.Role, AddedBy: m.AddedBy, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
	if u, err := s.store.GetUser(ctx, m.UserID); err == nil {
		b.Email, b.Name = u.Email, u.Name
	}
	return b
}
