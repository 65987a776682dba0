package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

// ---- users

const userCols = `id, email, name, role, password_hash, created_at`

func scanUser(r rowScanner) (domain.User, error) {
	var u domain.User
	var created string
	if err := r.Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.PasswordHash, &created); err != nil {
		return u, err
	}
	var err error
	u.CreatedAt, err = parseTime(created)
	return u, err
}

func userArgs(u *domain.User) []any {
	return []any{u.ID, u.Email, u.Name, string(u.Role), u.PasswordHash, fmtTime(u.CreatedAt)}
}

func (s *Store) CreateUser(ctx context.Context, u domain.User) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?)`, userArgs(&u)...)
	if err != nil {
		return mapErr(err, "create user "+u.ID, "")
	}
	return nil
}

// CreateFirstUser: the single writer connection runs the check and the
// insert as one statement, so two first registrations cannot both pass.
func (s *Store) CreateFirstUser(ctx context.Context, u domain.User) error {
	res, err := s.w.ExecContext(ctx, `INSERT INTO users (`+userCols+`) SELECT ?, ?, ?, ?, ?, ?
		WHERE NOT EXISTS (SELECT 1 FROM users)`, userArgs(&u)...)
	if err != nil {
		return mapErr(err, "create first user "+u.ID, "")
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("sqlite: create first user: %w: a user exists already", domain.ErrConflict)
	}
	return nil
}

func (s *Store) GetUser(ctx context.Context, id string) (domain.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if err != nil {
		return u, mapErr(err, "user "+id, "")
	}
	return u, nil
}

func (s *Store) GetUserByEmail(ctx context.Context, email string) (domain.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE email = ?`, email))
	if err != nil {
		return u, mapErr(err, "user by e-mail", "")
	}
	return u, nil
}

func (s *Store) ListUsers(ctx context.Context, page store.Page) ([]domain.User, string, error) {
	return list(ctx, s, "users", userCols, nil, nil, page, scanUser,
		func(u domain.User) (time.Time, string) { return u.CreatedAt, u.ID })
}

func (s *Store) CountUsers(ctx context.Context) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, mapErr(err, "count users", "")
	}
	return n, nil
}

// ---- sessions

const sessionCols = `id, user_id, token_hash, created_at, last_seen_at, user_agent, remote_addr`

func scanSession(r rowScanner) (domain.Session, error) {
	var x domain.Session
	var created, seen string
	if err := r.Scan(&x.ID, &x.UserID, &x.TokenHash, &created, &seen, &x.UserAgent, &x.RemoteAddr); err != nil {
		return x, err
	}
	return x, firstErr(
		func() (err error) { x.CreatedAt, err = parseTime(created); return },
		func() (err error) { x.LastSeenAt, err = parseTime(seen); return },
	)
}

func (s *Store) CreateSession(ctx context.Context, x domain.Session) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO sessions (`+sessionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		x.ID, x.UserID, x.TokenHash, fmtTime(x.CreatedAt), fmtTime(x.LastSeenAt), x.UserAgent, x.RemoteAddr)
	if err != nil {
		return mapErr(err, "create session", "user "+x.UserID)
	}
	return nil
}

func (s *Store) GetSessionByHash(ctx context.Context, tokenHash string) (domain.Session, error) {
	x, err := scanSession(s.r.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM sessions WHERE token_hash = ?`, tokenHash))
	if err != nil {
		return x, mapErr(err, "session", "")
	}
	return x, nil
}

func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, `UPDATE sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?`,
		fmtTime(at), id, fmtTime(at))
	if err != nil {
		return mapErr(err, "touch session", "")
	}
	return nil
}

func (s *Store) ListSessions(ctx context.Context, userID string) ([]domain.Session, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+sessionCols+` FROM sessions WHERE user_id = ?
		ORDER BY created_at DESC, id DESC`, userID)
	if err != nil {
		return nil, mapErr(err, "list sessions", "")
	}
	out, err := collect(rows, scanSession)
	if err != nil {
		return nil, mapErr(err, "list sessions", "")
	}
	return out, nil
}

func (s *Store) DeleteSession(ctx context.Context, userID, id string) error {
	return s.deleteOwned(ctx, "sessions", "session "+id, userID, id)
}

// deleteOwned deletes the row id of table only if userID owns it.
func (s *Store) deleteOwned(ctx context.Context, table, what, userID, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM `+table+` WHERE id = ? AND user_id = ?`, id, userID)
	if err != nil {
		return mapErr(err, "delete "+what, "")
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("sqlite: delete %s: %w", what, domain.ErrNotFound)
	}
	return nil
}

func (s *Store) DeleteIdleSessions(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE last_seen_at < ?`, fmtTime(cutoff))
	if err != nil {
		return 0, mapErr(err, "delete idle sessions", "")
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// ---- API keys

const apiKeyCols = `id, user_id, name, prefix, key_hash, created_at, expires_at, last_used_at`

func scanAPIKey(r rowScanner) (domain.APIKey, error) {
	var k domain.APIKey
	var created string
	var expires, used sql.NullString
	if err := r.Scan(&k.ID, &k.UserID, &k.Name, &k.Prefix, &k.KeyHash, &created, &expires, &used); err != nil {
		return k, err
	}
	return k, firstErr(
		func() (err error) { k.CreatedAt, err = parseTime(created); return },
		func() (err error) { k.ExpiresAt, err = parseTimePtr(expires); return },
		func() (err error) { k.LastUsedAt, err = parseTimePtr(used); return },
	)
}

func (s *Store) CreateAPIKey(ctx context.Context, k domain.APIKey) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO api_keys (`+apiKeyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.UserID, k.Name, k.Prefix, k.KeyHash, fmtTime(k.CreatedAt), fmtTimePtr(k.ExpiresAt), fmtTimePtr(k.LastUsedAt))
	if err != nil {
		return mapErr(err, "create API key", "user "+k.UserID)
	}
	return nil
}

func (s *Store) GetAPIKeyByHash(ctx context.Context, keyHash string) (domain.APIKey, error) {
	k, err := scanAPIKey(s.r.QueryRowContext(ctx, `SELECT `+apiKeyCols+` FROM api_keys WHERE key_hash = ?`, keyHash))
	if err != nil {
		return k, mapErr(err, "API key", "")
	}
	return k, nil
}

func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, `UPDATE api_keys SET last_used_at = ? WHERE id = ?
		AND (last_used_at IS NULL OR last_used_at < ?)`, fmtTime(at), id, fmtTime(at))
	if err != nil {
		return mapErr(err, "touch API key", "")
	}
	return nil
}

func (s *Store) ListAPIKeys(ctx context.Context, userID string) ([]domain.APIKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+apiKeyCols+` FROM api_keys WHERE user_id = ?
		ORDER BY created_at DESC, id DESC`, userID)
	if err != nil {
		return nil, mapErr(err, "list API keys", "")
	}
	out, err := collect(rows, scanAPIKey)
	if err != nil {
		return nil, mapErr(err, "list API keys", "")
	}
	return out, nil
}

func (s *Store) DeleteAPIKey(ctx context.Context, userID, id string) error {
	return s.deleteOwned(ctx, "api_keys", "API key "+id, userID, id)
}

// ---- invites

const inviteCols = `id, token_hash, email, created_by, created_at, expires_at, used_at, used_by`

func scanInvite(r rowScanner) (domain.Invite, error) {
	var inv domain.Invite
	var created, expires string
	var used sql.NullString
	if err := r.Scan(&inv.ID, &inv.TokenHash, &inv.Email, &inv.CreatedBy, &created, &expires, &used, &inv.UsedBy); err != nil {
		return inv, err
	}
	return inv, firstErr(
		func() (err error) { inv.CreatedAt, err = parseTime(created); return },
		func() (err error) { inv.ExpiresAt, err = parseTime(expires); return },
		func() (err error) { inv.UsedAt, err = parseTimePtr(used); return },
	)
}

func (s *Store) CreateInvite(ctx context.Context, inv domain.Invite) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO invites (`+inviteCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		inv.ID, inv.TokenHash, inv.Email, inv.CreatedBy, fmtTime(inv.CreatedAt), fmtTime(inv.ExpiresAt),
		fmtTimePtr(inv.UsedAt), inv.UsedBy)
	if err != nil {
		return mapErr(err, "create invite", "")
	}
	return nil
}

func (s *Store) GetInviteByHash(ctx context.Context, tokenHash string) (domain.Invite, error) {
	inv, err := scanInvite(s.r.QueryRowContext(ctx, `SELECT `+inviteCols+` FROM invites WHERE token_hash = ?`, tokenHash))
	if err != nil {
		return inv, mapErr(err, "invite", "")
	}
	return inv, nil
}

func (s *Store) UseInvite(ctx context.Context, id, userID string, at time.Time) error {
	ok, err := s.cas(ctx, "use invite "+id, `UPDATE invites SET used_at = ?, used_by = ?
		WHERE id = ? AND used_at IS NULL AND expires_at > ?`, fmtTime(at), userID, id, fmtTime(at))
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("sqlite: use invite %s: %w: unknown, used or expired", id, domain.ErrConflict)
	}
	return nil
}

// ---- audit log

const auditCols = `id, created_at, actor_id, actor_kind, actor_email, action, resource_type, resource_id,
	remote_addr, user_agent, result, status, detail`

func scanAudit(r rowScanner) (domain.AuditEntry, error) {
	var e domain.AuditEntry
	var at string
	if err := r.Scan(&e.ID, &at, &e.ActorID, &e.ActorKind, &e.ActorEmail, &e.Action, &e.ResourceType, &e.ResourceID,
		&e.RemoteAddr, &e.UserAgent, &e.Result, &e.Status, &e.Detail); err != nil {
		return e, err
	}
	var err error
	e.Time, err = parseTime(at)
	return e, err
}

func (s *Store) AppendAudit(ctx context.Context, e domain.AuditEntry) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO audit_logs (`+auditCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, fmtTime(e.Time), e.ActorID, e.ActorKind, e.ActorEmail, e.Action, e.ResourceType, e.ResourceID,
		e.RemoteAddr, e.UserAgent, string(e.Result), e.Status, e.Detail)
	if err != nil {
		return mapErr(err, "append audit entry "+e.ID, "")
	}
	return nil
}

func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter, page store.Page) ([]domain.AuditEntry, string, error) {
	var conds []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			conds = append(conds, col+" = ?")
			args = append(args, v)
		}
	}
	eq("actor_id", f.ActorID)
	eq("action", f.Action)
	eq("resource_type", f.ResourceType)
	eq("resource_id", f.ResourceID)
	eq("result", string(f.Result))
	if !f.Since.IsZero() {
		conds = append(conds, "created_at >= ?")
		args = append(args, fmtTime(f.Since))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "created_at < ?")
		args = append(args, fmtTime(f.Until))
	}
	return list(ctx, s, "audit_logs", auditCols, conds, args, page, scanAudit,
		func(e domain.AuditEntry) (time.Time, string) { return e.Time, e.ID })
}
