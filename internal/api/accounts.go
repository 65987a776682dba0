package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/catalyst/catalyst/internal/accounts"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/tasks"
)

// Audit actions of the accounts endpoints.
const (
	ActionLogin         = "auth.login"
	ActionLoginFailed   = "auth.login_failed"
	ActionLogout        = "auth.logout"
	ActionRegister      = "auth.register"
	ActionUserCreate    = "user.create"
	ActionInviteCreate  = "invite.create"
	ActionKeyCreate     = "apikey.create"
	ActionKeyRevoke     = "apikey.revoke"
	ActionSessionRevoke = "session.revoke"
)

// userView is a user as the API shows it (never the password hash).
type userView struct {
	ID        string      `json:"id"`
	Email     string      `json:"email"`
	Name      string      `json:"name"`
	Role      domain.Role `json:"role" enum:"admin,user"`
	CreatedAt time.Time   `json:"created_at"`
}

func viewOf(u domain.User) userView {
	return userView{ID: u.ID, Email: u.Email, Name: u.Name, Role: u.Role, CreatedAt: u.CreatedAt}
}

type credentialsBody struct {
	Email    string `json:"email" maxLength:"254" example:"ada@example.com"`
	Password string `json:"password" maxLength:"1024" doc:"10 characters at least, 1024 bytes at most"`
}

type registerBody struct {
	credentialsBody
	Name   string `json:"name,omitempty" maxLength:"200"`
	Invite string `json:"invite,omitempty" maxLength:"200" doc:"the invite token, when sign-up is by invitation"`
}

type loginBody struct {
	AccessToken string   `json:"access_token" doc:"a session token: send it as Authorization: Bearer"`
	TokenType   string   `json:"token_type" example:"bearer"`
	ExpiresIn   int      `json:"expires_in" doc:"seconds of inactivity after which the session ends (every use renews it)"`
	User        userView `json:"user"`
}

type loginOutput struct {
	SetCookie    string `header:"Set-Cookie" doc:"the dashboard's session cookie, for same-origin browser requests only"`
	CacheControl string `header:"Cache-Control"`
	Body         loginBody
}

type userOutput struct{ Body userView }

type authConfigBody struct {
	Signup   accounts.SignupMode `json:"signup" enum:"open,invite,closed"`
	HasUsers bool                `json:"has_users" doc:"false until the first user registers (and becomes admin)"`
}

type createUserBody struct {
	credentialsBody
	Name string      `json:"name,omitempty" maxLength:"200"`
	Role domain.Role `json:"role,omitempty" enum:"admin,user"`
}

type inviteBody struct {
	Email string `json:"email,omitempty" maxLength:"254" doc:"only this address may use the invite"`
}

type inviteView struct {
	domain.Invite
	Token string `json:"token" doc:"shown once: give it to the person invited"`
}

type keyBody struct {
	Name      string     `json:"name" minLength:"1" maxLength:"100"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

type keyCreated struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Key       string     `json:"key" doc:"shown once: only its hash is stored"`
	Prefix    string     `json:"prefix"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
}

type idInput struct {
	ID string `path:"id" maxLength:"200"`
}

type sessionView struct {
	domain.Session
	Current bool `json:"current" doc:"the session this request was made with"`
}

// accountsError maps the accounts errors; everything else goes the usual way.
func (s *server) accountsError(ctx context.Context, what string, err error) error {
	switch {
	case errors.Is(err, accounts.ErrBadCredentials):
		return newProblem(http.StatusUnauthorized, "wrong e-mail address or password")
	case errors.Is(err, accounts.ErrSignupClosed):
		return newProblem(http.StatusForbidden, err.Error()+"; an administrator can create your account")
	case errors.Is(err, accounts.ErrInvite):
		return newProblem(http.StatusForbidden, err.Error())
	case errors.Is(err, accounts.ErrEmailTaken):
		return newProblem(http.StatusConflict, err.Error())
	case errors.Is(err, domain.ErrInvalid):
		return newProblem(http.StatusUnprocessableEntity, err.Error())
	}
	return s.apiError(ctx, what, err)
}

// currentUser is the signed-in user, or a problem: 401 without one, 400 for
// the server token (it is no account).
func currentUser(ctx context.Context) (*domain.User, *reqState, error) {
	st := stateOf(ctx)
	if st.id.user == nil {
		if st.id.actor.Kind == "" {
			return nil, st, newProblem(http.StatusUnauthorized, "this request needs a credential")
		}
		return nil, st, newProblem(http.StatusBadRequest, "the server token is not a user account: sign in as a user (POST /api/auth/login) for this")
	}
	return st.id.user, st, nil
}

func (s *server) registerAccounts(api huma.API) {
	tags := []string{"auth"}
	huma.Register(api, s.op(http.MethodGet, "/api/auth/config", "get-auth-config", "Sign-up mode and whether anyone has registered (public)", tags...),
		func(ctx context.Context, _ *struct{}) (*struct{ Body authConfigBody }, error) {
			has, err := s.accounts.HasUsers(ctx)
			if err != nil {
				return nil, s.apiError(ctx, "users", err)
			}
			return &struct{ Body authConfigBody }{authConfigBody{Signup: s.accounts.Signup(), HasUsers: has}}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodPost, "/api/auth/register", "register", "Sign up: the first user becomes admin; later ones as CATALYST_SIGNUP allows", tags...), 403, 409, 422),
		func(ctx context.Context, in *struct{ Body registerBody }) (*userOutput, error) {
			u, err := s.accounts.Register(ctx, accounts.Registration{Email: in.Body.Email, Password: in.Body.Password,
				Name: in.Body.Name, Invite: in.Body.Invite})
			e := domain.AuditEntry{Action: ActionRegister, ResourceType: "users"}
			if err != nil {
				out := s.accountsError(ctx, "registration", err)
				e.Result, e.Status, e.Detail = resultOf(statusOfProblem(out)), statusOfProblem(out), "refused: "+errText(err)
				s.audit(ctx, e)
				return nil, out
			}
			e.ResourceID, e.Status, e.ActorID, e.ActorKind, e.ActorEmail = u.ID, http.StatusOK, u.ID, string(tasks.ActorUser), u.Email
			e.Detail = "role " + string(u.Role)
			s.audit(ctx, e)
			return &userOutput{Body: viewOf(u)}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodPost, "/api/auth/login", "login", "Sign in with e-mail and password", tags...), 401, 422),
		func(ctx context.Context, in *struct{ Body credentialsBody }) (*loginOutput, error) {
			st := stateOf(ctx)
			u, tok, sess, err := s.accounts.Login(ctx, in.Body.Email, in.Body.Password,
				accounts.Client{UserAgent: st.userAgent, RemoteAddr: st.remote})
			if err != nil {
				out := s.accountsError(ctx, "sign-in", err)
				// The typed address is recorded only when it is a user's:
				// people type passwords into the e-mail field.
				e := domain.AuditEntry{Action: ActionLoginFailed, ResourceType: "sessions", Status: statusOfProblem(out),
					Result: resultOf(statusOfProblem(out)), Detail: "unknown account"}
				if u.ID != "" {
					e.ActorID, e.ActorKind, e.ActorEmail, e.Detail = u.ID, string(tasks.ActorUser), u.Email, "wrong password"
				}
				s.audit(ctx, e)
				return nil, out
			}
			s.audit(ctx, domain.AuditEntry{Action: ActionLogin, ResourceType: "sessions", ResourceID: sess.ID,
				ActorID: u.ID, ActorKind: string(tasks.ActorUser), ActorEmail: u.Email, Status: http.StatusOK})
			out := &loginOutput{CacheControl: "no-store", Body: loginBody{AccessToken: tok, TokenType: "bearer",
				ExpiresIn: int(s.accounts.SessionTimeout() / time.Second), User: viewOf(u)}}
			if st.firstParty && st.browser {
				out.SetCookie = s.sessionCookie(tok, st.secure).String()
			}
			return out, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodPost, "/api/auth/logout", "logout", "Sign out: end this session", tags...), 401),
		func(ctx context.Context, _ *struct{}) (*struct {
			SetCookie string `header:"Set-Cookie"`
		}, error,
		) {
			st := stateOf(ctx)
			e := domain.AuditEntry{Action: ActionLogout, ResourceType: "sessions", ResourceID: st.id.sessionID, Status: http.StatusOK}
			if st.id.sessionID != "" {
				if err := s.accounts.Logout(ctx, st.id.user.ID, st.id.sessionID); err != nil && !errors.Is(err, domain.ErrNotFound) {
					return nil, s.apiError(ctx, "session", err)
				}
			}
			s.audit(ctx, e)
			clear := s.sessionCookie("", st.secure)
			clear.MaxAge = -1
			return &struct {
				SetCookie string `header:"Set-Cookie"`
			}{clear.String()}, nil
		})

	huma.Register(api, s.op(http.MethodGet, "/api/auth/me", "get-me", "Who this request is made by", tags...),
		func(ctx context.Context, _ *struct{}) (*userOutput, error) {
			st := stateOf(ctx)
			if st.id.user == nil {
				if st.id.actor.Kind == "" {
					return nil, newProblem(http.StatusUnauthorized, "this request needs a credential")
				}
				// The server token: the installation's bootstrap admin.
				return &userOutput{Body: userView{ID: st.id.actor.ID, Name: st.id.actor.Name, Role: domain.RoleAdmin}}, nil
			}
			return &userOutput{Body: viewOf(*st.id.user)}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/auth/sessions", "list-sessions", "Your live sessions", tags...), 400),
		func(ctx context.Context, _ *struct{}) (*struct{ Body []sessionView }, error) {
			u, st, err := currentUser(ctx)
			if err != nil {
				return nil, err
			}
			list, err := s.accounts.Sessions(ctx, u.ID)
			if err != nil {
				return nil, s.apiError(ctx, "sessions", err)
			}
			out := make([]sessionView, 0, len(list))
			for _, x := range list {
				out = append(out, sessionView{Session: x, Current: x.ID == st.id.sessionID})
			}
			return &struct{ Body []sessionView }{out}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodDelete, "/api/auth/sessions/{id}", "revoke-session", "End one of your sessions", tags...), 400, 404),
		func(ctx context.Context, in *idInput) (*struct{}, error) {
			u, _, err := currentUser(ctx)
			if err != nil {
				return nil, err
			}
			e := domain.AuditEntry{Action: ActionSessionRevoke, ResourceType: "sessions", ResourceID: in.ID, Status: http.StatusNoContent}
			if err := s.accounts.RevokeSession(ctx, u.ID, in.ID); err != nil {
				out := s.apiError(ctx, "session "+in.ID, err)
				e.Status = statusOfProblem(out)
				e.Result = resultOf(e.Status)
				s.audit(ctx, e)
				return nil, out
			}
			s.audit(ctx, e)
			return nil, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodPost, "/api/auth/keys", "create-api-key", "Create an API key (shown once)", tags...), 400, 422),
		func(ctx context.Context, in *struct{ Body keyBody }) (*struct{ Body keyCreated }, error) {
			u, _, err := currentUser(ctx)
			if err != nil {
				return nil, err
			}
			k, key, err := s.accounts.CreateAPIKey(ctx, u.ID, in.Body.Name, in.Body.ExpiresAt)
			if err != nil {
				return nil, s.accountsError(ctx, "API key", err)
			}
			s.audit(ctx, domain.AuditEntry{Action: ActionKeyCreate, ResourceType: "api_keys", ResourceID: k.ID,
				Status: http.StatusOK, Detail: "prefix " + k.Prefix})
			return &struct{ Body keyCreated }{keyCreated{ID: k.ID, Name: k.Name, Key: key, Prefix: k.Prefix,
				CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt}}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/auth/keys", "list-api-keys", "Your API keys (without the keys)", tags...), 400),
		func(ctx context.Context, _ *struct{}) (*struct{ Body []domain.APIKey }, error) {
			u, _, err := currentUser(ctx)
			if err != nil {
				return nil, err
			}
			keys, err := s.accounts.APIKeys(ctx, u.ID)
			if err != nil {
				return nil, s.apiError(ctx, "API keys", err)
			}
			if keys == nil {
				keys = []domain.APIKey{}
			}
			return &struct{ Body []domain.APIKey }{keys}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodDelete, "/api/auth/keys/{id}", "revoke-api-key", "Revoke one of your API keys", tags...), 400, 404),
		func(ctx context.Context, in *idInput) (*struct{}, error) {
			u, _, err := currentUser(ctx)
			if err != nil {
				return nil, err
			}
			e := domain.AuditEntry{Action: ActionKeyRevoke, ResourceType: "api_keys", ResourceID: in.ID, Status: http.StatusNoContent}
			if err := s.accounts.RevokeAPIKey(ctx, u.ID, in.ID); err != nil {
				out := s.apiError(ctx, "API key "+in.ID, err)
				e.Status = statusOfProblem(out)
				e.Result = resultOf(e.Status)
				s.audit(ctx, e)
				return nil, out
			}
			s.audit(ctx, e)
			return nil, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodPost, "/api/auth/invites", "create-invite", "Create a one-time sign-up invite (admins)", tags...), 403, 422),
		func(ctx context.Context, in *struct{ Body inviteBody }) (*struct{ Body inviteView }, error) {
			if err := requireAdmin(ctx); err != nil {
				return nil, err
			}
			inv, tok, err := s.accounts.CreateInvite(ctx, stateOf(ctx).id.actor.ID, in.Body.Email)
			if err != nil {
				return nil, s.accountsError(ctx, "invite", err)
			}
			s.audit(ctx, domain.AuditEntry{Action: ActionInviteCreate, ResourceType: "invites", ResourceID: inv.ID, Status: http.StatusOK})
			return &struct{ Body inviteView }{inviteView{Invite: inv, Token: tok}}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodPost, "/api/users", "create-user", "Create a user (admins), whatever the sign-up mode", "users"), 403, 409, 422),
		func(ctx context.Context, in *struct{ Body createUserBody }) (*userOutput, error) {
			if err := requireAdmin(ctx); err != nil {
				return nil, err
			}
			u, err := s.accounts.CreateUser(ctx, accounts.NewUser{Email: in.Body.Email, Password: in.Body.Password,
				Name: in.Body.Name, Role: in.Body.Role})
			e := domain.AuditEntry{Action: ActionUserCreate, ResourceType: "users"}
			if err != nil {
				out := s.accountsError(ctx, "user", err)
				e.Status = statusOfProblem(out)
				e.Result = resultOf(e.Status)
				s.audit(ctx, e)
				return nil, out
			}
			e.ResourceID, e.Status, e.Detail = u.ID, http.StatusOK, "role "+string(u.Role)
			s.audit(ctx, e)
			return &userOutput{Body: viewOf(u)}, nil
		})

	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/users", "list-users", "List users, newest first (admins)", "users"), 403),
		func(ctx context.Context, in *struct{ PageParams }) (*listOutput[userView], error) {
			if err := requireAdmin(ctx); err != nil {
				return nil, err
			}
			return listPage(ctx, s, &in.PageParams, "users page", func(ctx context.Context, p store.Page) ([]userView, string, error) {
				users, next, err := s.accounts.Users(ctx, p)
				views := make([]userView, 0, len(users))
				for _, u := range users {
					views = append(views, viewOf(u))
				}
				return views, next, err
			})
		})
}

// sessionCookie is the dashboard's cookie carrying a user's session token.
// No Max-Age: the server ends the session after SESSION_TIMEOUT idle, and
// a browser-session cookie also dies with the browser.
func (s *server) sessionCookie(tok string, tls bool) *http.Cookie {
	return &http.Cookie{Name: s.auth.cookieName, Value: tok, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.auth.secure || tls}
}

func statusOfProblem(err error) int {
	var m *huma.ErrorModel
	if errors.As(err, &m) {
		return m.Status
	}
	return http.StatusInternalServerError
}

func errText(err error) string {
	switch {
	case errors.Is(err, accounts.ErrSignupClosed), errors.Is(err, accounts.ErrInvite), errors.Is(err, accounts.ErrEmailTaken):
		return err.Error()
	case errors.Is(err, domain.ErrInvalid):
		return "invalid input"
	}
	return "error"
}
