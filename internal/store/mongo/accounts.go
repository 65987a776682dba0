package mongo

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

// Collections of the accounts and the audit log.
const (
	collUsers    = "users"
	collSessions = "sessions"
	collAPIKeys  = "api_keys"
	collInvites  = "invites"
	collAudit    = "audit_logs"
)

func init() {
	indexes[collUsers] = []index{
		{"id_unique", bson.D{{Key: "id", Value: 1}}, true},
		{"email_unique", bson.D{{Key: "email", Value: 1}}, true},
		{"created_at_id", newest, false},
	}
	indexes[collSessions] = []index{
		{"id_unique", bson.D{{Key: "id", Value: 1}}, true},
		{"token_hash_unique", bson.D{{Key: "token_hash", Value: 1}}, true},
		{"user_created_at", bson.D{{Key: "user_id", Value: 1}, {Key: "created_at", Value: -1}}, false},
		{"last_seen_at", bson.D{{Key: "last_seen_at", Value: 1}}, false},
	}
	indexes[collAPIKeys] = []index{
		{"id_unique", bson.D{{Key: "id", Value: 1}}, true},
		{"key_hash_unique", bson.D{{Key: "key_hash", Value: 1}}, true},
		{"user_created_at", bson.D{{Key: "user_id", Value: 1}, {Key: "created_at", Value: -1}}, false},
	}
	indexes[collInvites] = []index{
		{"id_unique", bson.D{{Key: "id", Value: 1}}, true},
		{"token_hash_unique", bson.D{{Key: "token_hash", Value: 1}}, true},
	}
	indexes[collAudit] = []index{
		{"id_unique", bson.D{{Key: "id", Value: 1}}, true},
		{"created_at_id", newest, false},
		{"actor_created_at_id", prepend("actor_id", newest), false},
		{"action_created_at_id", prepend("action", newest), false},
	}
}

type userDoc struct {
	ID           string   `bson:"id"`
	Email        string   `bson:"email"`
	Name         string   `bson:"name"`
	Role         string   `bson:"role"`
	PasswordHash string   `bson:"password_hash"`
	CreatedAt    flexTime `bson:"created_at"`
}

func toUserDoc(u *domain.User) userDoc {
	return userDoc{ID: u.ID, Email: u.Email, Name: u.Name, Role: string(u.Role), PasswordHash: u.PasswordHash,
		CreatedAt: newFlexTime(u.CreatedAt)}
}

func (d *userDoc) domain() domain.User {
	return domain.User{ID: d.ID, Email: d.Email, Name: d.Name, Role: domain.Role(d.Role), PasswordHash: d.PasswordHash,
		CreatedAt: d.CreatedAt.t}
}

type sessionDoc struct {
	ID         string   `bson:"id"`
	UserID     string   `bson:"user_id"`
	TokenHash  string   `bson:"token_hash"`
	CreatedAt  flexTime `bson:"created_at"`
	LastSeenAt flexTime `bson:"last_seen_at"`
	UserAgent  string   `bson:"user_agent"`
	RemoteAddr string   `bson:"remote_addr"`
}

func (d *sessionDoc) domain() domain.Session {
	return domain.Session{ID: d.ID, UserID: d.UserID, TokenHash: d.TokenHash, CreatedAt: d.CreatedAt.t,
		LastSeenAt: d.LastSeenAt.t, UserAgent: d.UserAgent, RemoteAddr: d.RemoteAddr}
}

type apiKeyDoc struct {
	ID         string    `bson:"id"`
	UserID     string    `bson:"user_id"`
	Name       string    `bson:"name"`
	Prefix     string    `bson:"prefix"`
	KeyHash    string    `bson:"key_hash"`
	CreatedAt  flexTime  `bson:"created_at"`
	ExpiresAt  *flexTime `bson:"expires_at"`
	LastUsedAt *flexTime `bson:"last_used_at"`
}

func (d *apiKeyDoc) domain() domain.APIKey {
	return domain.APIKey{ID: d.ID, UserID: d.UserID, Name: d.Name, Prefix: d.Prefix, KeyHash: d.KeyHash,
		CreatedAt: d.CreatedAt.t, ExpiresAt: d.ExpiresAt.ptr(), LastUsedAt: d.LastUsedAt.ptr()}
}

type inviteDoc struct {
	ID        string    `bson:"id"`
	TokenHash string    `bson:"token_hash"`
	Email     string    `bson:"email"`
	CreatedBy string    `bson:"created_by"`
	CreatedAt flexTime  `bson:"created_at"`
	ExpiresAt flexTime  `bson:"expires_at"`
	UsedAt    *flexTime `bson:"used_at"`
	UsedBy    string    `bson:"used_by"`
}

func (d *inviteDoc) domain() domain.Invite {
	return domain.Invite{ID: d.ID, TokenHash: d.TokenHash, Email: d.Email, CreatedBy: d.CreatedBy,
		CreatedAt: d.CreatedAt.t, ExpiresAt: d.ExpiresAt.t, UsedAt: d.UsedAt.ptr(), UsedBy: d.UsedBy}
}

// auditDoc names its time created_at, like every listed collection, so the
// shared paging applies.
type auditDoc struct {
	ID           string   `bson:"id"`
	CreatedAt    flexTime `bson:"created_at"`
	ActorID      string   `bson:"actor_id"`
	ActorKind    string   `bson:"actor_kind"`
	ActorEmail   string   `bson:"actor_email"`
	Action       string   `bson:"action"`
	ResourceType string   `bson:"resource_type"`
	ResourceID   string   `bson:"resource_id"`
	RemoteAddr   string   `bson:"remote_addr"`
	UserAgent    string   `bson:"user_agent"`
	Result       string   `bson:"result"`
	Status       int      `bson:"status"`
	Detail       string   `bson:"detail"`
}

func (d *auditDoc) domain() domain.AuditEntry {
	return domain.AuditEntry{ID: d.ID, Time: d.CreatedAt.t, ActorID: d.ActorID, ActorKind: d.ActorKind,
		ActorEmail: d.ActorEmail, Action: d.Action, ResourceType: d.ResourceType, ResourceID: d.ResourceID,
		RemoteAddr: d.RemoteAddr, UserAgent: d.UserAgent, Result: domain.AuditResult(d.Result), Status: d.Status,
		Detail: d.Detail}
}

func (s *Store) coll(name string) *mongo.Collection { return s.db.Collection(name) }

// ---- users

func (s *Store) CreateUser(ctx context.Context, u domain.User) error {
	if _, err := s.coll(collUsers).InsertOne(ctx, toUserDoc(&u)); err != nil {
		return mapErr(err, "create user "+u.ID)
	}
	return nil
}

// firstUserClaim is held forever once a first user was registered: inserts
// into a unique index are atomic on MongoDB and FerretDB alike, a count
// followed by an insert is not.
const firstUserClaim = "users/first"

func (s *Store) CreateFirstUser(ctx context.Context, u domain.User) error {
	what := "create first user " + u.ID
	_, err := s.claims.InsertOne(ctx, bson.D{{Key: "_id", Value: firstUserClaim}, {Key: "at", Value: bson.NewDateTimeFromTime(time.Now())}})
	if mongo.IsDuplicateKeyError(err) {
		// A claimant that died before storing its user would block every
		// first registration; once stale and with no user, drop the claim.
		if n, cerr := s.CountUsers(ctx); cerr == nil && n == 0 {
			_ = s.dropStaleClaim(ctx, firstUserClaim)
		}
		return fmt.Errorf("mongo: %s: %w: a first user was registered already", what, domain.ErrConflict)
	}
	if err != nil {
		return mapErr(err, what+": claim")
	}
	n, err := s.CountUsers(ctx)
	if err != nil {
		return err
	}
	if n > 0 { // created by other means (catalyst user create)
		return fmt.Errorf("mongo: %s: %w: a user exists already", what, domain.ErrConflict)
	}
	return s.CreateUser(ctx, u)
}

func (s *Store) GetUser(ctx context.Context, id string) (domain.User, error) {
	d, err := findOne[userDoc](ctx, s.coll(collUsers), byID(id), "user "+id)
	return d.domain(), err
}

func (s *Store) GetUserByEmail(ctx context.Context, email string) (domain.User, error) {
	d, err := findOne[userDoc](ctx, s.coll(collUsers), bson.D{{Key: "email", Value: email}}, "user by e-mail")
	return d.domain(), err
}

func (s *Store) ListUsers(ctx context.Context, page store.Page) ([]domain.User, string, error) {
	return list(ctx, s.coll(collUsers), bson.D{}, page, ok((*userDoc).domain),
		func(d *userDoc) (flexTime, string) { return d.CreatedAt, d.ID })
}

func (s *Store) CountUsers(ctx context.Context) (int64, error) {
	n, err := s.coll(collUsers).CountDocuments(ctx, bson.D{})
	if err != nil {
		return 0, mapErr(err, "count users")
	}
	return n, nil
}

// ---- sessions

func (s *Store) CreateSession(ctx context.Context, x domain.Session) error {
	what := "create session"
	if err := exists(ctx, s.coll(collUsers), x.UserID, what+": user "+x.UserID); err != nil {
		return err
	}
	_, err := s.coll(collSessions).InsertOne(ctx, sessionDoc{ID: x.ID, UserID: x.UserID, TokenHash: x.TokenHash,
		CreatedAt: newFlexTime(x.CreatedAt), LastSeenAt: newFlexTime(x.LastSeenAt), UserAgent: x.UserAgent, RemoteAddr: x.RemoteAddr})
	if err != nil {
		return mapErr(err, what)
	}
	return nil
}

func (s *Store) GetSessionByHash(ctx context.Context, tokenHash string) (domain.Session, error) {
	d, err := findOne[sessionDoc](ctx, s.coll(collSessions), bson.D{{Key: "token_hash", Value: tokenHash}}, "session")
	return d.domain(), err
}

func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	return s.touch(ctx, collSessions, "last_seen_at", id, at)
}

// touch moves a time field of document id forward to at.
func (s *Store) touch(ctx context.Context, coll, field, id string, at time.Time) error {
	t := newFlexTime(at)
	_, err := s.coll(coll).UpdateOne(ctx,
		bson.D{{Key: "id", Value: id}, {Key: "$or", Value: bson.A{
			bson.D{{Key: field, Value: nil}},
			bson.D{{Key: field, Value: bson.D{{Key: "$lt", Value: t}}}},
		}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: field, Value: t}}}})
	if err != nil {
		return mapErr(err, "touch "+coll+" "+id)
	}
	return nil
}

var byCreation = options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}, {Key: "id", Value: -1}})

func (s *Store) ListSessions(ctx context.Context, userID string) ([]domain.Session, error) {
	return findAll(ctx, s.coll(collSessions), bson.D{{Key: "user_id", Value: userID}}, byCreation,
		ok((*sessionDoc).domain), "list sessions")
}

func (s *Store) DeleteSession(ctx context.Context, userID, id string) error {
	return s.deleteOwned(ctx, collSessions, "session "+id, userID, id)
}

func (s *Store) deleteOwned(ctx context.Context, coll, what, userID, id string) error {
	res, err := s.coll(coll).DeleteOne(ctx, bson.D{{Key: "id", Value: id}, {Key: "user_id", Value: userID}})
	if err != nil {
		return mapErr(err, "delete "+what)
	}
	if res.DeletedCount != 1 {
		return fmt.Errorf("mongo: delete %s: %w", what, domain.ErrNotFound)
	}
	return nil
}

func (s *Store) DeleteIdleSessions(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.coll(collSessions).DeleteMany(ctx, bson.D{{Key: "last_seen_at", Value: bson.D{{Key: "$lt", Value: newFlexTime(cutoff)}}}})
	if err != nil {
		return 0, mapErr(err, "delete idle sessions")
	}
	return res.DeletedCount, nil
}

// ---- API keys

func (s *Store) CreateAPIKey(ctx context.Context, k domain.APIKey) error {
	what := "create API key"
	if err := exists(ctx, s.coll(collUsers), k.UserID, what+": user "+k.UserID); err != nil {
		return err
	}
	_, err := s.coll(collAPIKeys).InsertOne(ctx, apiKeyDoc{ID: k.ID, UserID: k.UserID, Name: k.Name, Prefix: k.Prefix,
		KeyHash: k.KeyHash, CreatedAt: newFlexTime(k.CreatedAt), ExpiresAt: newFlexTimePtr(k.ExpiresAt),
		LastUsedAt: newFlexTimePtr(k.LastUsedAt)})
	if err != nil {
		return mapErr(err, what)
	}
	return nil
}

func (s *Store) GetAPIKeyByHash(ctx context.Context, keyHash string) (domain.APIKey, error) {
	d, err := findOne[apiKeyDoc](ctx, s.coll(collAPIKeys), bson.D{{Key: "key_hash", Value: keyHash}}, "API key")
	return d.domain(), err
}

func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	return s.touch(ctx, collAPIKeys, "last_used_at", id, at)
}

func (s *Store) ListAPIKeys(ctx context.Context, userID string) ([]domain.APIKey, error) {
	return findAll(ctx, s.coll(collAPIKeys), bson.D{{Key: "user_id", Value: userID}}, byCreation,
		ok((*apiKeyDoc).domain), "list API keys")
}

func (s *Store) DeleteAPIKey(ctx context.Context, userID, id string) error {
	return s.deleteOwned(ctx, collAPIKeys, "API key "+id, userID, id)
}

// ---- invites

func (s *Store) CreateInvite(ctx context.Context, inv domain.Invite) error {
	_, err := s.coll(collInvites).InsertOne(ctx, inviteDoc{ID: inv.ID, TokenHash: inv.TokenHash, Email: inv.Email,
		CreatedBy: inv.CreatedBy, CreatedAt: newFlexTime(inv.CreatedAt), ExpiresAt: newFlexTime(inv.ExpiresAt),
		UsedAt: newFlexTimePtr(inv.UsedAt), UsedBy: inv.UsedBy})
	if err != nil {
		return mapErr(err, "create invite")
	}
	return nil
}

func (s *Store) GetInviteByHash(ctx context.Context, tokenHash string) (domain.Invite, error) {
	d, err := findOne[inviteDoc](ctx, s.coll(collInvites), bson.D{{Key: "token_hash", Value: tokenHash}}, "invite")
	return d.domain(), err
}

// UseInvite claims the use in update_claims first (see CreateFirstUser):
// FerretDB's conditional updates are not atomic, a unique insert is.
func (s *Store) UseInvite(ctx context.Context, id, userID string, at time.Time) error {
	what := "use invite " + id
	inv, err := findOne[inviteDoc](ctx, s.coll(collInvites), byID(id), "invite "+id)
	if err != nil {
		return fmt.Errorf("mongo: %s: %w: unknown", what, domain.ErrConflict)
	}
	if inv.UsedAt.ptr() != nil || !inv.ExpiresAt.t.After(at) {
		return fmt.Errorf("mongo: %s: %w: used or expired", what, domain.ErrConflict)
	}
	_, err = s.claims.InsertOne(ctx, bson.D{{Key: "_id", Value: "invites/" + id + "/used"}, {Key: "at", Value: bson.NewDateTimeFromTime(time.Now())}})
	if mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("mongo: %s: %w: used", what, domain.ErrConflict)
	}
	if err != nil {
		return mapErr(err, what+": claim")
	}
	t := newFlexTime(at)
	if _, err := s.coll(collInvites).UpdateOne(ctx, byID(id),
		bson.D{{Key: "$set", Value: bson.D{{Key: "used_at", Value: t}, {Key: "used_by", Value: userID}}}}); err != nil {
		return mapErr(err, what)
	}
	return nil
}

// ---- audit log

func (s *Store) AppendAudit(ctx context.Context, e domain.AuditEntry) error {
	_, err := s.coll(collAudit).InsertOne(ctx, auditDoc{ID: e.ID, CreatedAt: newFlexTime(e.Time), ActorID: e.ActorID,
		ActorKind: e.ActorKind, ActorEmail: e.ActorEmail, Action: e.Action, ResourceType: e.ResourceType,
		ResourceID: e.ResourceID, RemoteAddr: e.RemoteAddr, UserAgent: e.UserAgent, Result: string(e.Result),
		Status: e.Status, Detail: e.Detail})
	if err != nil {
		return mapErr(err, "append audit entry "+e.ID)
	}
	return nil
}

func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter, page store.Page) ([]domain.AuditEntry, string, error) {
	filter := bson.D{}
	eq := func(field, v string) {
		if v != "" {
			filter = append(filter, bson.E{Key: field, Value: v})
		}
	}
	eq("actor_id", f.ActorID)
	eq("action", f.Action)
	eq("resource_type", f.ResourceType)
	eq("resource_id", f.ResourceID)
	eq("result", string(f.Result))
	var span bson.D
	if !f.Since.IsZero() {
		span = append(span, bson.E{Key: "$gte", Value: newFlexTime(f.Since)})
	}
	if !f.Until.IsZero() {
		span = append(span, bson.E{Key: "$lt", Value: newFlexTime(f.Until)})
	}
	if span != nil {
		filter = append(filter, bson.E{Key: "created_at", Value: span})
	}
	return list(ctx, s.coll(collAudit), filter, page, ok((*auditDoc).domain),
		func(d *auditDoc) (flexTime, string) { return d.CreatedAt, d.ID })
}
