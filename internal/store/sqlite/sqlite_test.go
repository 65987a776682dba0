package sqlite_test

import (
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/domain"

	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/sqlite"
	"github.com/catalyst/catalyst/internal/store/storetest"
)

func open(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "catalyst.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store { return open(b) })
}

// SQLite keeps nanoseconds: a timestamp round-trips exactly.
func TestNanosecondTimestamps(t *testing.T) {
	s := open(t)
	created := time.Date(2025, 10, 14, 9, 30, 12, 123456789, time.FixedZone("X", -7*3600))
	p := domain.Project{ID: "p1", Name: "n", Status: domain.ProjectActive, CreatedAt: created, UpdatedAt: created}
	if err := s.CreateProject(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetProject(t.Context(), "p1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(created) || got.CreatedAt.Nanosecond() != 123456789 {
		t.Errorf("created_at %v came back as %v", created, got.CreatedAt)
	}
}

// Re-opening a file keeps its data and applies no migration twice.
func TestReopenMigratesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalyst.db")
	for i := range 3 {
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		if i == 0 {
			p := domain.Project{ID: "kept", Name: "n", Status: domain.ProjectActive}
			if err := s.CreateProject(t.Context(), p); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.GetProject(t.Context(), "kept"); err != nil {
			t.Errorf("open %d: project lost: %v", i, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows, version int
	if err := db.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_version`).Scan(&rows, &version); err != nil {
		t.Fatal(err)
	}
	if rows != version || version < 1 {
		t.Errorf("schema_version has %d rows up to version %d: each migration must be recorded once", rows, version)
	}
	// A file from a newer binary is refused rather than misread.
	if _, err := db.Exec(`INSERT INTO schema_version (version) VALUES (?)`, version+1); err != nil {
		t.Fatal(err)
	}
	if s, err := sqlite.Open(t.Context(), path); err == nil {
		s.Close()
		t.Error("Open accepted a schema newer than it knows")
	}
}

func TestPingAfterCloseSaysClosed(t *testing.T) {
	s := open(t)
	s.Close()
	if err := s.Ping(t.Context()); !errors.Is(err, sqlite.ErrClosed) {
		t.Errorf("Ping after Close = %v, want ErrClosed", err)
	}
}

func TestOpenRejectsNonFile(t *testing.T) {
	for _, p := range []string{"", ":memory:", "x.db?mode=memory"} {
		if s, err := sqlite.Open(t.Context(), p); !errors.Is(err, domain.ErrInvalid) {
			if s != nil {
				s.Close()
			}
			t.Errorf("Open(%q) = %v, want ErrInvalid", p, err)
		}
	}
}
