package domain

import "time"

// Role is what a user may do beyond their own resources.
type Role string

const (
	RoleAdmin Role = "admin"
	RoleUser  Role = "user"
)

// User is an account that signs in with an e-mail address and a password.
// PasswordHash never leaves the server: it has no JSON name.
type User struct {
	ID           string    `json:"id"`
	Email        string    `json:"email"` // normalised: trimmed, lower case; unique
	Name         string    `json:"name"`
	Role         Role      `json:"role"`
	PasswordHash string    `json:"-"`
	CreatedAt    time.Time `json:"created_at"`
}

// Session is a signed-in browser or script. Only the SHA-256 of its token is
// stored, so a copy of the database signs nobody in. It expires after a
// period of inactivity measured from LastSeenAt.
type Session struct {
	ID         string    `json:"id"`
	UserID     string    `json:"user_id"`
	TokenHash  string    `json:"-"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	UserAgent  string    `json:"user_agent"`
	RemoteAddr string    `json:"remote_addr"`
}

// APIKey is a long-lived credential for automation, owned by a user. Only its
// hash is stored; Prefix (the key's first characters) lets its owner tell
// keys apart.
type APIKey struct {
	ID         string     `json:"id"`
	UserID     string     `json:"user_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	KeyHash    string     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// Invite lets one person register when sign-up is by invitation. Only the
// hash of its token is stored; it is used at most once.
type Invite struct {
	ID        string     `json:"id"`
	TokenHash string     `json:"-"`
	Email     string     `json:"email,omitempty"` // when set, only this address may use it
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	UsedAt    *time.Time `json:"used_at"`
	UsedBy    string     `json:"used_by,omitempty"`
}

// AuditResult is how an audited action ended.
type AuditResult string

const (
	AuditOK     AuditResult = "ok"
	AuditDenied AuditResult = "denied"
	AuditError  AuditResult = "error"
)

// AuditEntry is one record of the append-only audit log: who did what to
// which resource, from where, and how it ended.
type AuditEntry struct {
	ID           string      `json:"id"`
	Time         time.Time   `json:"time"`
	ActorID      string      `json:"actor_id"`
	ActorKind    string      `json:"actor_kind"`
	ActorEmail   string      `json:"actor_email"`
	Action       string      `json:"action"`
	ResourceType string      `json:"resource_type"`
	ResourceID   string      `json:"resource_id"`
	RemoteAddr   string      `json:"remote_addr"`
	UserAgent    string      `json:"user_agent"`
	Result       AuditResult `json:"result"`
	Status       int         `json:"status"`
	Detail       string      `json:"detail,omitempty"`
}
