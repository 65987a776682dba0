package sqlite_test

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/sqlite"
	"github.com/catalyst/catalyst/internal/store/storetest"
)

// openRaw returns a store and a second handle on its file, to look at and
// tamper with what the store wrote.
func openRaw(t *testing.T) (*sqlite.Store, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalyst.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return s, db
}

func count(t *testing.T, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func newTask(t *testing.T, s store.Store) string {
	t.Helper()
	p := domain.Project{ID: "p-" + t.Name(), Name: "n", Status: domain.ProjectActive}
	if err := s.CreateProject(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	task := domain.Task{ID: "t-" + t.Name(), ProjectID: p.ID, Status: domain.TaskPending,
		GraphState: domain.NewGraphState([]string{domain.NodePlanner, domain.NodeArchitect, domain.NodeCoder, domain.NodeTester, domain.NodeReviewer, domain.NodeDeployer})}
	if err := s.CreateTask(t.Context(), task); err != nil {
		t.Fatal(err)
	}
	return task.ID
}

// An oversized put leaves no chunk behind.
func TestSnapshotStreamingCap(t *testing.T) {
	s, db := openRaw(t)
	sqlite.SetSnapshotLimit(t, 3<<20+7)
	taskID := storetest.SnapshotStreamingCap(t, s)
	if n := count(t, db, `SELECT COUNT(*) FROM workspace_snapshot_chunks WHERE task_id = ?`, taskID); n != 1 {
		t.Errorf("%d chunks stored after an oversized put, want the previous snapshot's 1", n)
	}
}

// Stored data that no longer matches its size and hash is refused on read.
func TestSnapshotCorruptionDetected(t *testing.T) {
	s, db := openRaw(t)
	taskID := newTask(t, s)
	data := make([]byte, 2<<20+100)
	rand.Read(data)
	data[1<<20+100] = 0 // the byte "flipped byte" sets to 1
	for name, tc := range map[string]struct {
		tamper string
		want   error
	}{
		"flipped byte": {`UPDATE workspace_snapshot_chunks SET data = substr(data, 1, 100) || x'01' || substr(data, 102) WHERE n = 1 AND snapshot_id = ?`, store.ErrSnapshotCorrupt},
		"zeroed chunk": {`UPDATE workspace_snapshot_chunks SET data = zeroblob(length(data)) WHERE n = 1 AND snapshot_id = ?`, store.ErrSnapshotCorrupt},
		"truncated":    {`UPDATE workspace_snapshot_chunks SET data = substr(data, 1, 10) WHERE n = 2 AND snapshot_id = ?`, store.ErrSnapshotCorrupt},
		"extended":     {`UPDATE workspace_snapshot_chunks SET data = data || x'00' WHERE n = 2 AND snapshot_id = ?`, store.ErrSnapshotCorrupt},
		"chunk lost":   {`DELETE FROM workspace_snapshot_chunks WHERE n = 1 AND snapshot_id = ?`, store.ErrSnapshotCorrupt},
	} {
		t.Run(name, func(t *testing.T) {
			info := storetest.PutSnapshotBytes(t, s, taskID, "coder", 0, data)
			if _, err := db.Exec(tc.tamper, info.ID); err != nil {
				t.Fatal(err)
			}
			_, rc, err := s.LatestSnapshot(t.Context(), taskID)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if !errors.Is(err, tc.want) {
				t.Errorf("read of tampered data: %v, want %v", err, tc.want)
			}
			if err == nil && bytes.Equal(got, data) {
				t.Error("tampering had no effect: the test proves nothing")
			}
		})
	}
}

// DeleteSnapshots also removes the chunks of a put that died halfway.
func TestDeleteSnapshotsRemovesOrphanChunks(t *testing.T) {
	s, db := openRaw(t)
	taskID := newTask(t, s)
	storetest.PutSnapshotBytes(t, s, taskID, "coder", 0, []byte("kept until deleted"))
	if _, err := db.Exec(`INSERT INTO workspace_snapshot_chunks (snapshot_id, n, task_id, data) VALUES ('orphan', 0, ?, x'00')`, taskID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSnapshots(t.Context(), taskID); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM workspace_snapshot_chunks`); n != 0 {
		t.Errorf("%d chunks left after DeleteSnapshots", n)
	}
}
