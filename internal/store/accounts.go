package store

import (
	"context"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
)

// Users are the accounts. E-mail addresses are stored as given (the
// accounts package normalises them) and are unique: a second user with the
// same address is domain.ErrConflict.
type Users interface {
	CreateUser(ctx context.Context, u domain.User) error
	// CreateFirstUser stores u only if no user exists yet, atomically, so
	// that of two simultaneous first registrations one becomes admin and the
	// other gets domain.ErrConflict.
	CreateFirstUser(ctx context.Context, u domain.User) error
	GetUser(ctx context.Context, id string) (domain.User, error)
	GetUserByEmail(ctx context.Context, email string) (domain.User, error)
	ListUsers(ctx context.Context, page Page) ([]domain.User, string, error)
	CountUsers(ctx context.Context) (int64, error)
}

// Sessions are signed-in clients, found by the hash of their token.
type Sessions interface {
	CreateSession(ctx context.Context, s domain.Session) error
	GetSessionByHash(ctx context.Context, tokenHash string) (domain.Session, error)
	// TouchSession moves LastSeenAt forward to at (never back).
	TouchSession(ctx context.Context, id string, at time.Time) error
	// ListSessions returns userID's sessions, newest first.
	ListSessions(ctx context.Context, userID string) ([]domain.Session, error)
	// DeleteSession removes userID's session id; domain.ErrNotFound when
	// userID has no such session (another user's session is not found).
	DeleteSession(ctx context.Context, userID, id string) error
	// DeleteIdleSessions removes the sessions last seen before cutoff and
	// returns how many.
	DeleteIdleSessions(ctx context.Context, cutoff time.Time) (int64, error)
}

// APIKeys are users' credentials for automation, found by their hash.
type APIKeys interface {
	CreateAPIKey(ctx context.Context, k domain.APIKey) error
	GetAPIKeyByHash(ctx context.Context, keyHash string) (domain.APIKey, error)
	// TouchAPIKey records a use (LastUsedAt moves forward only).
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
	// ListAPIKeys returns userID's keys, newest first.
	ListAPIKeys(ctx context.Context, userID string) ([]domain.APIKey, error)
	// DeleteAPIKey revokes userID's key id; domain.ErrNotFound when userID
	// has no such key.
	DeleteAPIKey(ctx context.Context, userID, id string) error
}

// Invites are one-time sign-up tokens, found by their hash.
type Invites interface {
	CreateInvite(ctx context.Context, inv domain.Invite) error
	GetInviteByHash(ctx context.Context, tokenHash string) (domain.Invite, error)
	// UseInvite marks the invite used by userID at at, atomically: of two
	// concurrent uses one wins, the other gets domain.ErrConflict, as does
	// a use of an invite already used or expired at at.
	UseInvite(ctx context.Context, id, userID string, at time.Time) error
}

// AuditFilter narrows ListAudit. Zero values match everything.
type AuditFilter struct {
	ActorID      string
	Action       string
	ResourceType string
	ResourceID   string
	Result       domain.AuditResult
	Since, Until time.Time // Since inclusive, Until exclusive
}

// AuditLogs is the append-only audit log: there is deliberately no way to
// change or delete an entry through the store.
type AuditLogs interface {
	// AppendAudit stores e (the caller sets ID and Time); an existing ID is
	// domain.ErrConflict, never an overwrite.
	AppendAudit(ctx context.Context, e domain.AuditEntry) error
	// ListAudit returns a page of entries, newest first.
	ListAudit(ctx context.Context, f AuditFilter, page Page) ([]domain.AuditEntry, string, error)
}
