// Package audit is the append-only audit log: who did what to which
// resource, from where, and how it ended. Other packages record through the
// Recorder interface; admins read the log through the API.
//
// Entries are scrubbed before they are stored, like the logs: configured
// secrets, credentials of Catalyst's own formats and (with
// ENABLE_PII_REDACTION) PII in the free-text fields. The actor's e-mail is
// kept: an audit record that does not say who is worthless, and only admins,
// who can list users anyway, read it.
package audit

import (
	"context"
	"log/slog"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

// Recorder records audit entries. Record never fails the caller's action:
// an entry that cannot be stored is logged as an error instead.
type Recorder interface {
	Record(ctx context.Context, e domain.AuditEntry)
}

// Nop records nothing (ENABLE_AUDIT_LOGS=false).
type Nop struct{}

func (Nop) Record(context.Context, domain.AuditEntry) {}

// Options configure a Log.
type Options struct {
	Store store.AuditLogs
	// Redact scrubs secrets and PII (the logs' redactor); nil keeps text.
	Redact func(string) string
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Log stores entries in the audit_logs collection.
type Log struct {
	opt Options
}

// New returns a Log over opt.Store.
func New(opt Options) *Log {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Redact == nil {
		opt.Redact = func(s string) string { return s }
	}
	return &Log{opt: opt}
}

// Field bounds: an attacker controls the user agent and the paths.
const (
	maxUserAgent = 256
	maxField     = 512
)

// credential matches the tokens Catalyst hands out (sessions, API keys,
// invites), wherever they appear in text.
var credential = regexp.MustCompile(`cat[ski]_[A-Za-z0-9_-]{16,}`)

func (l *Log) scrub(s string, n int) string {
	s = credential.ReplaceAllString(l.opt.Redact(s), "[credential]")
	if !utf8.ValidString(s) {
		s = string([]rune(s)) // invalid bytes become U+FFFD
	}
	if len(s) > n {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	return s
}

// Record fills in ID and Time when empty, scrubs and stores e.
func (l *Log) Record(ctx context.Context, e domain.AuditEntry) {
	if e.ID == "" {
		e.ID = uuid.NewString()
	}
	if e.Time.IsZero() {
		e.Time = l.opt.Now().UTC()
	}
	if e.Result == "" {
		e.Result = domain.AuditOK
	}
	e.UserAgent = l.scrub(e.UserAgent, maxUserAgent)
	e.Detail = l.scrub(e.Detail, maxField)
	e.ResourceID = l.scrub(e.ResourceID, maxField)
	e.Action = l.scrub(e.Action, maxField)
	e.RemoteAddr = l.scrub(e.RemoteAddr, 64)
	// The entry outlives a request that was cancelled mid-way.
	if err := l.opt.Store.AppendAudit(context.WithoutCancel(ctx), e); err != nil {
		l.opt.Logger.Error("audit entry not stored", "action", e.Action, "err", err)
	}
}

// List returns a page of entries, newest first.
func (l *Log) List(ctx context.Context, f store.AuditFilter, page store.Page) ([]domain.AuditEntry, string, error) {
	return l.opt.Store.ListAudit(ctx, f, page)
}
