// Package sqlite is the embedded Store: one SQLite file, pure Go
// (modernc.org/sqlite, no cgo).
//
// The file is in WAL mode. All writes go through one connection (a *sql.DB
// limited to a single open connection), so writers never contend inside the
// process and per-task log sequence numbers are assigned atomically; reads
// use a separate pool of query-only connections on the same file and run
// concurrently with the writer.
//
// Timestamps are stored as fixed-width UTC text with nanoseconds
// ("2006-01-02T15:04:05.000000000Z"), so text order is time order and values
// round-trip exactly. Maps and slices are stored as JSON text.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

var _ store.Store = (*Store)(nil)

// Store implements store.Store on one SQLite file.
type Store struct {
	w      *sql.DB // the single writer connection
	r      *sql.DB // query-only reader pool
	path   string
	closed atomic.Bool
}

// busyTimeout is how long a connection waits for a lock held by another
// connection (a checkpoint, or another process on the same file).
const busyTimeout = 5 * time.Second

// Open opens (creating if needed) the database file at path and applies any
// schema migrations it has not seen yet.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") || path == ":memory:" {
		return nil, fmt.Errorf("sqlite: open %q: %w: need a file path without '?' or '#'", path, domain.ErrInvalid)
	}
	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)",
		busyTimeout.Milliseconds())

	w, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)&_txlock=immediate&"+common)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	s := &Store{w: w, path: path}
	// The writer connects first: it creates the file and switches it to WAL
	// before any reader opens it.
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}

	r, err := sql.Open("sqlite", path+"?_pragma=query_only(1)&"+common)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open readers %s: %w", path, err)
	}
	readers := max(4, runtime.NumCPU())
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	s.r = r
	if err := r.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open readers %s: %w", path, err)
	}
	return s, nil
}

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("sqlite store is closed")

// Ping checks that the file can still be read.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("sqlite: ping %s: %w", s.path, ErrClosed)
	}
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping %s: %w", s.path, err)
	}
	return nil
}

// Close checkpoints the WAL into the main file and closes every connection.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	// Best effort: a failed checkpoint leaves the WAL beside the file, which
	// the next Open replays.
	_, _ = s.w.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	errs = append(errs, s.w.Close())
	return errors.Join(errs...)
}

// tsLayout is fixed width so that text order is time order.
const tsLayout = "2006-01-02T15:04:05.000000000Z"

func fmtTime(t time.Time) string { return t.UTC().Format(tsLayout) }

func fmtTimePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return fmtTime(*t)
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(tsLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored timestamp %q: %w", s, err)
	}
	return t, nil
}

func parseTimePtr(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := parseTime(s.String)
	return &t, err
}

// now is the store's clock for the timestamps it sets itself.
func now() time.Time { return time.Now().UTC().Round(0) }

// mapErr translates constraint violations into the domain's sentinel errors;
// what names the thing written, parent the thing it refers to.
func mapErr(err error, what, parent string) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("sqlite: %s: %w: %v", what, domain.ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("sqlite: %s: %s: %w", what, parent, domain.ErrNotFound)
		}
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: %s: %w", what, domain.ErrNotFound)
	}
	return fmt.Errorf("sqlite: %s: %w", what, err)
}

// rowScanner is satisfied by *sql.Row and *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}
