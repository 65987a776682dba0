// Package accounts owns who may sign in: users with e-mail and password,
// server-side sessions that expire after inactivity, API keys for
// automation, invitations and the sign-up policy.
//
// Every credential handed out (session token, API key, invite) is 32 random
// bytes; only its SHA-256 is stored, so a copy of the database signs nobody
// in, and nothing is signed: there is no signing secret to configure or
// leak. Tokens carry a prefix saying what they are (cats_ session, catk_
// API key, cati_ invite) so that a leaked one is recognisable (secret
// scanners) and looked up in the right collection only.
package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

// SignupMode says who may register besides the first user.
type SignupMode string

const (
	SignupOpen   SignupMode = "open"   // anyone who reaches the server
	SignupInvite SignupMode = "invite" // holders of an admin's invite
	SignupClosed SignupMode = "closed" // nobody: admins create users
)

// ParseSignupMode accepts open, invite or closed.
func ParseSignupMode(s string) (SignupMode, error) {
	switch m := SignupMode(s); m {
	case SignupOpen, SignupInvite, SignupClosed:
		return m, nil
	}
	return "", fmt.Errorf("%w: sign-up mode %q: accepted values are open, invite, closed", domain.ErrInvalid, s)
}

// Token prefixes.
const (
	SessionPrefix = "cats_"
	APIKeyPrefix  = "catk_"
	InvitePrefix  = "cati_"
)

// Errors the API maps to statuses.
var (
	// ErrBadCredentials: wrong e-mail or password, or an unknown, expired
	// or revoked token. Deliberately one error: the answer never says which.
	ErrBadCredentials = errors.New("invalid credentials")
	// ErrSignupClosed: registration is not open to this caller.
	ErrSignupClosed = errors.New("sign-up is closed")
	// ErrInvite: the invite is unknown, used, expired or for another address.
	ErrInvite = errors.New("the invite is not valid")
	// ErrEmailTaken: a user with this address exists.
	ErrEmailTaken = errors.New("a user with this e-mail address exists")
)

// Store is what accounts keeps.
type Store interface {
	store.Users
	store.Sessions
	store.APIKeys
	store.Invites
}

// Options configure a Service.
type Options struct {
	Store Store
	// SessionTimeout is the inactivity after which a session ends (required).
	SessionTimeout time.Duration
	// Signup is the policy for registrations after the first (required).
	Signup SignupMode
	// BcryptCost; 0 means bcrypt.DefaultCost (10). Tests lower it.
	BcryptCost int
	// InviteTTL is how long an invite stays valid; 0 means 7 days.
	InviteTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service is the accounts use cases.
type Service struct {
	opt   Options
	now   func() time.Time
	dummy string // a hash to compare against when there is no user
}

// touchEvery bounds the writes a busy session or key causes: its last use is
// stored at most once a minute.
const touchEvery = time.Minute

// New checks the options and prepares the dummy hash.
func New(opt Options) (*Service, error) {
	if opt.Store == nil {
		return nil, errors.New("accounts: Options.Store is required")
	}
	if opt.SessionTimeout <= 0 {
		return nil, errors.New("accounts: Options.SessionTimeout must be positive")
	}
	if _, err := ParseSignupMode(string(opt.Signup)); err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	if opt.BcryptCost == 0 {
		opt.BcryptCost = bcrypt.DefaultCost
	}
	if opt.BcryptCost < bcrypt.MinCost || opt.BcryptCost > bcrypt.MaxCost {
		return nil, fmt.Errorf("accounts: bcrypt cost %d out of range", opt.BcryptCost)
	}
	if opt.InviteTTL <= 0 {
		opt.InviteTTL = 7 * 24 * time.Hour
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	dummy, err := hashPassword(randomToken(""), opt.BcryptCost)
	if err != nil {
		return nil, err
	}
	// Milliseconds: what MongoDB stores, so that what an answer shows when
	// a record is made equals what later reads show, on both stores.
	return &Service{opt: opt, now: func() time.Time { return now().UTC().Truncate(time.Millisecond) }, dummy: dummy}, nil
}

// SessionTimeout is the inactivity that ends a session.
func (s *Service) SessionTimeout() time.Duration { return s.opt.SessionTimeout }

// Signup is the configured sign-up mode.
func (s *Service) Signup() SignupMode { return s.opt.Signup }

// NormalizeEmail trims and lower-cases an address and checks that it is
// one plain address (no display name, no list).
func NormalizeEmail(e string) (string, error) {
	e = strings.ToLower(strings.TrimSpace(e))
	if e == "" || len(e) > 254 || !utf8.ValidString(e) {
		return "", fmt.Errorf("%w: an e-mail address is required (at most 254 characters)", domain.ErrInvalid)
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" || !strings.Contains(e[strings.LastIndexByte(e, '@')+1:], ".") && !strings.HasSuffix(e, "@localhost") {
		return "", fmt.Errorf("%w: %q is not a plain e-mail address", domain.ErrInvalid, clip(e))
	}
	return e, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

const maxNameBytes = 200

// NewUser is what creating a user takes.
type NewUser struct {
	Email, Password, Name string
	Role                  domain.Role
}

// CreateUser creates a user as an admin or the terminal does: regardless
// of the sign-up policy.
func (s *Service) CreateUser(ctx context.Context, n NewUser) (domain.User, error) {
	u, err := s.newUser(n)
	if err != nil {
		return u, err
	}
	if err := s.opt.Store.CreateUser(ctx, u); err != nil {
		return domain.User{}, mapTaken(err)
	}
	return u, nil
}

func (s *Service) newUser(n NewUser) (domain.User, error) {
	email, err := NormalizeEmail(n.Email)
	if err != nil {
		return domain.User{}, err
	}
	if err := CheckPassword(n.Password); err != nil {
		return domain.User{}, err
	}
	name := strings.TrimSpace(n.Name)
	if len(name) > maxNameBytes || !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\r\n") {
		return domain.User{}, fmt.Errorf("%w: the name may have at most %d bytes on one line", domain.ErrInvalid, maxNameBytes)
	}
	if name == "" {
		name = email[:strings.IndexByte(email, '@')]
	}
	role := n.Role
	if role == "" {
		role = domain.RoleUser
	}
	if role != domain.RoleUser && role != domain.RoleAdmin {
		return domain.User{}, fmt.Errorf("%w: role %q: accepted values are admin, user", domain.ErrInvalid, role)
	}
	hash, err := hashPassword(n.Password, s.opt.BcryptCost)
	if err != nil {
		return domain.User{}, err
	}
	return domain.User{ID: uuid.NewString(), Email: email, Name: name, Role: role, PasswordHash: hash,
		CreatedAt: s.now()}, nil
}

func mapTaken(err error) error {
	if errors.Is(err, domain.ErrConflict) {
		return ErrEmailTaken
	}
	return err
}

// Registration is a self-service sign-up.
type Registration struct {
	Email, Password, Name, Invite string
}

// Register signs a person up: the first user ever becomes admin; later ones
// as the sign-up mode allows.
func (s *Service) Register(ctx context.Context, r Registration) (domain.User, error) {
	n, err := s.opt.Store.CountUsers(ctx)
	if err != nil {
		return domain.User{}, err
	}
	if n == 0 {
		u, err := s.newUser(NewUser{Email: r.Email, Password: r.Password, Name: r.Name, Role: domain.RoleAdmin})
		if err != nil {
			return u, err
		}
		err = s.opt.Store.CreateFirstUser(ctx, u)
		if err == nil {
			return u, nil
		}
		if !errors.Is(err, domain.ErrConflict) {
			return domain.User{}, err
		}
		// Someone else was first: this registration follows the policy.
	}
	switch s.opt.Signup {
	case SignupOpen:
		if r.Invite == "" {
			return s.CreateUser(ctx, NewUser{Email: r.Email, Password: r.Password, Name: r.Name})
		}
	case SignupClosed:
		return domain.User{}, ErrSignupClosed
	}
	if r.Invite == "" {
		return domain.User{}, fmt.Errorf("%w: sign-up needs an invite", ErrSignupClosed)
	}
	inv, err := s.opt.Store.GetInviteByHash(ctx, hashToken(r.Invite))
	if err != nil {
		if errors.Is(err, domain.ErrNotFound) {
			return domain.User{}, ErrInvite
		}
		return domain.User{}, err
	}
	u, err := s.newUser(NewUser{Email: r.Email, Password: r.Password, Name: r.Name})
	if err != nil {
		return u, err
	}
	if inv.Email != "" && inv.Email != u.Email {
		return domain.User{}, ErrInvite
	}
	if _, err := s.opt.Store.GetUserByEmail(ctx, u.Email); err == nil {
		return domain.User{}, ErrEmailTaken // before burning the invite
	}
	if err := s.opt.Store.UseInvite(ctx, inv.ID, u.ID, s.now()); err != nil {
		if errors.Is(err, domain.ErrConflict) {
			return domain.User{}, ErrInvite
		}
		return domain.User{}, err
	}
	if err := s.opt.Store.CreateUser(ctx, u); err != nil {
		return domain.User{}, mapTaken(err)
	}
	return u, nil
}

// Client describes where a credential is used from (kept on the session).
type Client struct {
	UserAgent, RemoteAddr string
}

// Login checks an e-mail and password and opens a session. Unknown address
// and wrong password take the same time (a comparison against a dummy
// hash) and fail with the same ErrBadCredentials. The user is returned
// when the address is known, even on failure, for the audit log.
func (s *Service) Login(ctx context.Context, email, password string, c Client) (domain.User, string, domain.Session, error) {
	u, err := s.opt.Store.GetUserByEmail(ctx, strings.ToLower(strings.TrimSpace(email)))
	switch {
	case errors.Is(err, domain.ErrNotFound):
		verifyPassword(s.dummy, s.dummy, password)
		return domain.User{}, "", domain.Session{}, ErrBadCredentials
	case err != nil:
		return domain.User{}, "", domain.Session{}, err
	}
	if !verifyPassword(u.PasswordHash, s.dummy, password) {
		return u, "", domain.Session{}, ErrBadCredentials
	}
	tok := randomToken(SessionPrefix)
	now := s.now()
	sess := domain.Session{ID: uuid.NewString(), UserID: u.ID, TokenHash: hashToken(tok), CreatedAt: now, LastSeenAt: now,
		UserAgent: clipUA(c.UserAgent), RemoteAddr: c.RemoteAddr}
	if err := s.opt.Store.CreateSession(ctx, sess); err != nil {
		return u, "", domain.Session{}, err
	}
	// Sweep sessions idle past the timeout now and then, so the
	// collection does not grow with every login forever.
	_, _ = s.opt.Store.DeleteIdleSessions(ctx, now.Add(-s.opt.SessionTimeout))
	return u, tok, sess, nil
}

// MaxUserAgent bounds the user agent kept on sessions and audit entries.
const MaxUserAgent = 256

func clipUA(ua string) string {
	if len(ua) <= MaxUserAgent {
		return ua
	}
	for n := MaxUserAgent; n > 0; n-- {
		if utf8.RuneStart(ua[n]) {
			return ua[:n]
		}
	}
	return ""
}

// Principal is who a token authenticates.
type Principal struct {
	User      domain.User
	SessionID string // set for a session token
	APIKeyID  string // set for an API key
}

// Authenticate resolves a session token or API key. Anything unknown,
// expired or revoked is ErrBadCredentials.
func (s *Service) Authenticate(ctx context.Context, token string) (Principal, error) {
	switch {
	case strings.HasPrefix(token, SessionPrefix):
		return s.authSession(ctx, token)
	case strings.HasPrefix(token, APIKeyPrefix):
		return s.authKey(ctx, token)
	}
	return Principal{}, ErrBadCredentials
}

func (s *Service) authSession(ctx context.Context, token string) (Principal, error) {
	sess, err := s.opt.Store.GetSessionByHash(ctx, hashToken(token))
	if err != nil {
		return Principal{}, notFoundIsBad(err)
	}
	now := s.now()
	idle := now.Sub(sess.LastSeenAt)
	if idle >= s.opt.SessionTimeout {
		_ = s.opt.Store.DeleteSession(ctx, sess.UserID, sess.ID)
		return Principal{}, ErrBadCredentials
	}
	u, err := s.opt.Store.GetUser(ctx, sess.UserID)
	if err != nil {
		return Principal{}, notFoundIsBad(err)
	}
	if idle >= touchEvery {
		if err := s.opt.Store.TouchSession(ctx, sess.ID, now); err != nil {
			return Principal{}, err
		}
	}
	return Principal{User: u, SessionID: sess.ID}, nil
}

func (s *Service) authKey(ctx context.Context, token string) (Principal, error) {
	k, err := s.opt.Store.GetAPIKeyByHash(ctx, hashToken(token))
	if err != nil {
		return Principal{}, notFoundIsBad(err)
	}
	now := s.now()
	if k.ExpiresAt != nil && !now.Before(*k.ExpiresAt) {
		return Principal{}, ErrBadCredentials
	}
	u, err := s.opt.Store.GetUser(ctx, k.UserID)
	if err != nil {
		return Principal{}, notFoundIsBad(err)
	}
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= touchEvery {
		_ = s.opt.Store.TouchAPIKey(ctx, k.ID, now) // bookkeeping only: a failure must not refuse the key
	}
	return Principal{User: u, APIKeyID: k.ID}, nil
}

func notFoundIsBad(err error) error {
	if errors.Is(err, domain.ErrNotFound) {
		return ErrBadCredentials
	}
	return err
}

// Logout ends one session of userID.
func (s *Service) Logout(ctx context.Context, userID, sessionID string) error {
	return s.opt.Store.DeleteSession(ctx, userID, sessionID)
}

// Sessions lists userID's sessions that have not expired.
func (s *Service) Sessions(ctx context.Context, userID string) ([]domain.Session, error) {
	all, err := s.opt.Store.ListSessions(ctx, userID)
	if err != nil {
		return nil, err
	}
	live := all[:0]
	for _, x := range all {
		if s.now().Sub(x.LastSeenAt) < s.opt.SessionTimeout {
			live = append(live, x)
		}
	}
	return live, nil
}

// RevokeSession ends userID's session id (domain.ErrNotFound for another's).
func (s *Service) RevokeSession(ctx context.Context, userID, id string) error {
	return s.opt.Store.DeleteSession(ctx, userID, id)
}

const maxKeyName = 100

// CreateAPIKey creates a key for userID and returns it with the key itself,
// which is shown this once and never stored.
func (s *Service) CreateAPIKey(ctx context.Context, userID, name string, expiresAt *time.Time) (domain.APIKey, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > maxKeyName || !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\r\n") {
		return domain.APIKey{}, "", fmt.Errorf("%w: a key needs a name of 1 to %d bytes on one line", domain.ErrInvalid, maxKeyName)
	}
	now := s.now()
	if expiresAt != nil && !expiresAt.After(now) {
		return domain.APIKey{}, "", fmt.Errorf("%w: expires_at must be in the future", domain.ErrInvalid)
	}
	key := randomToken(APIKeyPrefix)
	k := domain.APIKey{ID: uuid.NewString(), UserID: userID, Name: name, Prefix: key[:len(APIKeyPrefix)+6],
		KeyHash: hashToken(key), CreatedAt: now, ExpiresAt: expiresAt}
	if err := s.opt.Store.CreateAPIKey(ctx, k); err != nil {
		return domain.APIKey{}, "", err
	}
	return k, key, nil
}

// APIKeys lists userID's keys (never the keys themselves: only hashes are kept).
func (s *Service) APIKeys(ctx context.Context, userID string) ([]domain.APIKey, error) {
	return s.opt.Store.ListAPIKeys(ctx, userID)
}

// RevokeAPIKey deletes userID's key id (domain.ErrNotFound for another's).
func (s *Service) RevokeAPIKey(ctx context.Context, userID, id string) error {
	return s.opt.Store.DeleteAPIKey(ctx, userID, id)
}

// CreateInvite makes a one-time sign-up token, optionally bound to one
// address; the token is returned this once.
func (s *Service) CreateInvite(ctx context.Context, by, email string) (domain.Invite, string, error) {
	if email != "" {
		var err error
		if email, err = NormalizeEmail(email); err != nil {
			return domain.Invite{}, "", err
		}
	}
	tok := randomToken(InvitePrefix)
	now := s.now()
	inv := domain.Invite{ID: uuid.NewString(), TokenHash: hashToken(tok), Email: email, CreatedBy: by,
		CreatedAt: now, ExpiresAt: now.Add(s.opt.InviteTTL)}
	if err := s.opt.Store.CreateInvite(ctx, inv); err != nil {
		return domain.Invite{}, "", err
	}
	return inv, tok, nil
}

// Users lists users, newest first.
func (s *Service) Users(ctx context.Context, page store.Page) ([]domain.User, string, error) {
	return s.opt.Store.ListUsers(ctx, page)
}

// HasUsers reports whether anyone has registered.
func (s *Service) HasUsers(ctx context.Context) (bool, error) {
	n, err := s.opt.Store.CountUsers(ctx)
	return n > 0, err
}

// randomToken is prefix + 32 random bytes, base64url.
func randomToken(prefix string) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("accounts: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// hashToken is how tokens are stored and looked up. A plain SHA-256 is
// enough: the tokens have 256 bits of entropy, nothing to brute-force.
func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}
