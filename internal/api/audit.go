package api

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/tasks"
)

// reqState is what the outer middlewares learn about a request and the
// handlers need: who it is (set by the guard), where it comes from, and
// whether a handler audited it itself.
type reqState struct {
	id         identity
	firstParty bool
	browser    bool // sent by a browser page (it said where from)
	remote     string
	userAgent  string
	secure     bool
	audited    bool
}

type stateKey struct{}

// withState returns r carrying a reqState (the existing one if any).
func withState(r *http.Request) (*http.Request, *reqState) {
	if st, ok := r.Context().Value(stateKey{}).(*reqState); ok {
		return r, st
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	st := &reqState{remote: host, userAgent: r.UserAgent(), secure: r.TLS != nil,
		browser: r.Header.Get("Sec-Fetch-Site") != "" || r.Header.Get("Origin") != ""}
	return r.WithContext(context.WithValue(r.Context(), stateKey{}, st)), st
}

// stateOf returns ctx's reqState; a fresh one when none (direct calls in
// tests), so callers never check for nil.
func stateOf(ctx context.Context) *reqState {
	if st, ok := ctx.Value(stateKey{}).(*reqState); ok {
		return st
	}
	return &reqState{}
}

// audit records an entry about the current request, filling in the actor
// and the client, and marks the request audited so that auditRequests does
// not record it twice.
func (s *server) audit(ctx context.Context, e domain.AuditEntry) {
	st := stateOf(ctx)
	st.audited = true
	if e.ActorID == "" {
		fillActor(&e, st.id)
	}
	e.RemoteAddr, e.UserAgent = st.remote, st.userAgent
	s.recorder.Record(ctx, e)
}

func fillActor(e *domain.AuditEntry, id identity) {
	e.ActorID, e.ActorKind = id.actor.ID, string(id.actor.Kind)
	if id.user != nil {
		e.ActorEmail = id.user.Email
	}
	if e.ActorID == "" {
		e.ActorKind = "anonymous"
	}
}

func resultOf(status int) domain.AuditResult {
	switch {
	case status < 400:
		return domain.AuditOK
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return domain.AuditDenied
	}
	return domain.AuditError
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// auditRequests records every request that changes something (any method
// but GET, HEAD and OPTIONS), refused ones included, unless its handler
// recorded a more precise entry itself. It wraps the guard, so that
// requests the guard refuses are recorded too, as denied. Bodies are never
// recorded (they carry passwords and prompts), nor query strings (tokens).
func (s *server) auditRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, st := withState(r)
		if !mutating(r.Method) || !s.auditOn {
			next.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if st.audited {
			return
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		typ, id := resourceOf(r.URL.Path)
		e := domain.AuditEntry{Action: "http." + strings.ToLower(r.Method), ResourceType: typ, ResourceID: id,
			Result: resultOf(rec.status), Status: rec.status, Detail: r.Method + " " + clip(r.URL.Path, 300)}
		fillActor(&e, st.id)
		e.RemoteAddr, e.UserAgent = st.remote, st.userAgent
		s.recorder.Record(r.Context(), e)
	})
}

// resourceOf names what a path acts on: /api/projects/abc/... is
// ("projects", "abc").
func resourceOf(p string) (typ, id string) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	if len(parts) > 0 && parts[0] == "api" {
		parts = parts[1:]
	}
	if len(parts) > 0 {
		typ = parts[0]
	}
	if len(parts) > 1 {
		id = parts[1]
	}
	return typ, id
}

type listAuditInput struct {
	PageParams
	ActorID      string `query:"actor" maxLength:"200" doc:"actor id (a user id, local or system:...)"`
	Action       string `query:"action" maxLength:"200" doc:"auth.login, auth.login_failed, auth.logout, apikey.create, apikey.revoke, http.post, ..."`
	ResourceType string `query:"resource_type" maxLength:"200"`
	ResourceID   string `query:"resource_id" maxLength:"200"`
	Result       string `query:"result" enum:"ok,denied,error"`
	Since        string `query:"since" doc:"RFC 3339 time, inclusive"`
	Until        string `query:"until" doc:"RFC 3339 time, exclusive"`
}

func (s *server) registerAudit(api huma.API) {
	huma.Register(api, withErrors(s.op(http.MethodGet, "/api/audit", "list-audit", "The audit log, newest first (admins)", "audit"), 400, 403, 404),
		func(ctx context.Context, in *listAuditInput) (*listOutput[domain.AuditEntry], error) {
			if err := requireAdmin(ctx); err != nil {
				return nil, err
			}
			if s.auditLog == nil {
				return nil, newProblem(http.StatusNotFound, "the audit log is off (ENABLE_AUDIT_LOGS=false)")
			}
			f := store.AuditFilter{ActorID: in.ActorID, Action: in.Action, ResourceType: in.ResourceType,
				ResourceID: in.ResourceID, Result: domain.AuditResult(in.Result)}
			for _, t := range []struct {
				name string
				v    string
				dst  *time.Time
			}{{"since", in.Since, &f.Since}, {"until", in.Until, &f.Until}} {
				if t.v == "" {
					continue
				}
				at, err := time.Parse(time.RFC3339Nano, t.v)
				if err != nil {
					return nil, newProblem(http.StatusBadRequest, t.name+": not an RFC 3339 time such as 2025-10-14T09:30:00Z")
				}
				*t.dst = at
			}
			return listPage(ctx, s, &in.PageParams, "audit page", func(ctx context.Context, p store.Page) ([]domain.AuditEntry, string, error) {
				return s.auditLog.List(ctx, f, p)
			})
		})
}

// requireAdmin refuses non-admins with 403: the endpoint's existence is
// public (it is in the OpenAPI document), its content is not. It reads the
// identity the guard authenticated, never a default.
func requireAdmin(ctx context.Context) error {
	a := stateOf(ctx).id.actor
	if a.Kind == "" {
		return newProblem(http.StatusUnauthorized, "this request needs a credential")
	}
	if !a.Admin || a.Kind == tasks.ActorSystem {
		return newProblem(http.StatusForbidden, "only administrators may do this")
	}
	return nil
}

// adminAuditor records an admin's access to another tenant's resource
// (tasks.Auditor) with the request's client. It does not mark the request
// audited: a mutating request still gets its own entry.
type adminAuditor struct{ s *server }

func (a adminAuditor) AdminAccess(ctx context.Context, who tasks.Actor, action, resourceType, resourceID string) {
	st := stateOf(ctx)
	e := domain.AuditEntry{Action: "admin." + action, ResourceType: resourceType, ResourceID: resourceID,
		Result: domain.AuditOK, Status: http.StatusOK, Detail: "an admin's access to a tenant's " + resourceType + " they have no role in"}
	fillActor(&e, st.id)
	if e.ActorID == "" || e.ActorKind == "anonymous" {
		e.ActorID, e.ActorKind = who.ID, string(who.Kind)
	}
	e.RemoteAddr, e.UserAgent = st.remote, st.userAgent
	a.s.recorder.Record(ctx, e)
}

// withAdminAudit has the task use cases record admins' accesses through
// this request's audit trail.
func (s *server) withAdminAudit(next http.Handler) http.Handler {
	if !s.auditOn {
		return next
	}
	aud := adminAuditor{s}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(tasks.WithAuditor(r.Context(), aud)))
	})
}
