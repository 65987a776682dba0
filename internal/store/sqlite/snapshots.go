package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/internal/storeutil"
)

// snapshotChunk is the size of one stored piece of a snapshot: big enough
// that an archive of a generated app is one row, small enough that one
// write transaction (and one read buffer) stays short.
const snapshotChunk = 1 << 20

// snapshotLimit is store.MaxSnapshotSize, a variable only so that a test
// can stream past it in reasonable time.
var snapshotLimit int64 = store.MaxSnapshotSize

const snapshotCols = `id, task_id, node, iteration, size, sha256, created_at`

func (s *Store) PutSnapshot(ctx context.Context, info store.SnapshotInfo, data io.Reader) (store.SnapshotInfo, error) {
	what := fmt.Sprintf("put snapshot %s/%s/%d", info.TaskID, info.Node, info.Iteration)
	if err := storeutil.CheckSnapshotKey(info, data); err != nil {
		return store.SnapshotInfo{}, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	// Checked first so that an unknown task does not cost an upload; the
	// foreign key checks it again when the snapshot is recorded.
	var one int
	if err := s.r.QueryRowContext(ctx, `SELECT 1 FROM tasks WHERE id = ?`, info.TaskID).Scan(&one); err != nil {
		return store.SnapshotInfo{}, mapErr(err, what+": task "+info.TaskID, "")
	}

	info.ID = uuid.NewString()
	if err := s.putChunks(ctx, &info, data); err != nil {
		s.dropChunks(ctx, info.ID)
		return store.SnapshotInfo{}, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	info.CreatedAt = storeutil.Now(time.Millisecond)
	if err := s.recordSnapshot(ctx, info); err != nil {
		s.dropChunks(ctx, info.ID)
		return store.SnapshotInfo{}, mapErr(err, what, "task "+info.TaskID)
	}
	return info, nil
}

// putChunks writes the data of info, one transaction per chunk, and fills
// in its size and hash.
func (s *Store) putChunks(ctx context.Context, info *store.SnapshotInfo, data io.Reader) error {
	src := storeutil.NewSnapshotSource(data, snapshotLimit)
	buf := make([]byte, snapshotChunk)
	for n := 0; ; n++ {
		k, err := io.ReadFull(src, buf)
		if k > 0 {
			if _, err := s.w.ExecContext(ctx, `INSERT INTO workspace_snapshot_chunks (snapshot_id, n, task_id, data)
				VALUES (?, ?, ?, ?)`, info.ID, n, info.TaskID, buf[:k]); err != nil {
				return err
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	return src.Finish(info)
}

// recordSnapshot makes the uploaded chunks of info the snapshot of its key:
// the previous row and its chunks go in the same transaction.
func (s *Store) recordSnapshot(ctx context.Context, info store.SnapshotInfo) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var old string
	err = tx.QueryRowContext(ctx, `SELECT id FROM workspace_snapshots WHERE task_id = ? AND node = ? AND iteration = ?`,
		info.TaskID, info.Node, info.Iteration).Scan(&old)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return err
	default:
		if err := deleteSnapshotRows(ctx, tx, `id = ?`, old); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO workspace_snapshots (`+snapshotCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		info.ID, info.TaskID, info.Node, info.Iteration, info.Size, info.SHA256, fmtTime(info.CreatedAt)); err != nil {
		return err
	}
	return tx.Commit()
}

// deleteSnapshotRows deletes the snapshots matching where (over
// workspace_snapshots) and their chunks.
func deleteSnapshotRows(ctx context.Context, tx *sql.Tx, where string, args ...any) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM workspace_snapshot_chunks WHERE snapshot_id IN
		(SELECT id FROM workspace_snapshots WHERE `+where+`)`, args...); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM workspace_snapshots WHERE `+where, args...)
	return err
}

// dropChunks removes the chunks of a put that failed; best effort, since
// DeleteSnapshots removes any left over with their task.
func (s *Store) dropChunks(ctx context.Context, id string) {
	_, _ = s.w.ExecContext(context.WithoutCancel(ctx), `DELETE FROM workspace_snapshot_chunks WHERE snapshot_id = ?`, id)
}

func (s *Store) LatestSnapshot(ctx context.Context, taskID string) (store.SnapshotInfo, io.ReadCloser, error) {
	what := "latest snapshot of task " + taskID
	info, err := scanSnapshot(s.r.QueryRowContext(ctx, `SELECT `+snapshotCols+` FROM workspace_snapshots
		WHERE task_id = ? ORDER BY seq DESC LIMIT 1`, taskID))
	if err != nil {
		return store.SnapshotInfo{}, nil, mapErr(err, what, "")
	}
	return info, storeutil.VerifiedReader(info, func() (io.ReadCloser, error) {
		return &chunkReader{ctx: ctx, s: s, info: info}, nil
	}), nil
}

// chunkReader reads a snapshot one chunk (one query) at a time, so memory
// stays at one chunk whatever the archive's size.
type chunkReader struct {
	ctx  context.Context
	s    *Store
	info store.SnapshotInfo
	n    int   // next chunk
	read int64 // bytes returned so far
	buf  []byte
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		if c.read >= c.info.Size {
			return 0, io.EOF
		}
		var data []byte
		err := c.s.r.QueryRowContext(c.ctx, `SELECT data FROM workspace_snapshot_chunks WHERE snapshot_id = ? AND n = ?`,
			c.info.ID, c.n).Scan(&data)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, c.missing()
		}
		if err != nil {
			return 0, fmt.Errorf("sqlite: read snapshot %s of task %s: %w", c.info.ID, c.info.TaskID, err)
		}
		if len(data) == 0 {
			return 0, fmt.Errorf("sqlite: read snapshot %s of task %s: %w: empty chunk %d",
				c.info.ID, c.info.TaskID, store.ErrSnapshotCorrupt, c.n)
		}
		c.buf = data
		c.n++
	}
	k := copy(p, c.buf)
	c.buf = c.buf[k:]
	c.read += int64(k)
	return k, nil
}

// missing explains a chunk that is not there: gone with a replaced or
// deleted snapshot, or lost from one that is still recorded.
func (c *chunkReader) missing() error {
	var one int
	err := c.s.r.QueryRowContext(c.ctx, `SELECT 1 FROM workspace_snapshots WHERE id = ?`, c.info.ID).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: read snapshot %s of task %s: %w: it was replaced or deleted while being read",
			c.info.ID, c.info.TaskID, domain.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: read snapshot %s of task %s: %w", c.info.ID, c.info.TaskID, err)
	}
	return fmt.Errorf("sqlite: read snapshot %s of task %s: %w: chunk %d is missing after %d of %d bytes",
		c.info.ID, c.info.TaskID, store.ErrSnapshotCorrupt, c.n, c.read, c.info.Size)
}

func (c *chunkReader) Close() error { c.buf = nil; return nil }

func (s *Store) ListSnapshots(ctx context.Context, taskID string) ([]store.SnapshotInfo, error) {
	what := "list snapshots of task " + taskID
	rows, err := s.r.QueryContext(ctx, `SELECT `+snapshotCols+` FROM workspace_snapshots
		WHERE task_id = ? ORDER BY seq DESC`, taskID)
	if err != nil {
		return nil, mapErr(err, what, "")
	}
	out, err := collect(rows, scanSnapshot)
	if err != nil {
		return nil, mapErr(err, what, "")
	}
	return out, nil
}

func (s *Store) PruneSnapshots(ctx context.Context, taskID string, keep int) (int, error) {
	what := fmt.Sprintf("prune snapshots of task %s to %d", taskID, keep)
	if keep < 0 {
		return 0, fmt.Errorf("sqlite: %s: %w: keep is negative", what, domain.ErrInvalid)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, mapErr(err, what, "")
	}
	defer tx.Rollback()
	var total int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM workspace_snapshots WHERE task_id = ?`, taskID).Scan(&total); err != nil {
		return 0, mapErr(err, what, "")
	}
	if total <= keep {
		return 0, nil
	}
	err = deleteSnapshotRows(ctx, tx, `task_id = ? AND seq NOT IN
		(SELECT seq FROM workspace_snapshots WHERE task_id = ? ORDER BY seq DESC LIMIT ?)`, taskID, taskID, keep)
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return 0, mapErr(err, what, "")
	}
	return total - keep, nil
}

func (s *Store) DeleteSnapshots(ctx context.Context, taskID string) error {
	what := "delete snapshots of task " + taskID
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err, what, "")
	}
	defer tx.Rollback()
	// By task_id, chunks of a put that never completed go too.
	if _, err := tx.ExecContext(ctx, `DELETE FROM workspace_snapshot_chunks WHERE task_id = ?`, taskID); err != nil {
		return mapErr(err, what, "")
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM workspace_snapshots WHERE task_id = ?`, taskID); err != nil {
		return mapErr(err, what, "")
	}
	if err := tx.Commit(); err != nil {
		return mapErr(err, what, "")
	}
	return nil
}

func scanSnapshot(r rowScanner) (store.SnapshotInfo, error) {
	var info store.SnapshotInfo
	var created string
	if err := r.Scan(&info.ID, &info.TaskID, &info.Node, &info.Iteration, &info.Size, &info.SHA256, &created); err != nil {
		return info, err
	}
	var err error
	info.CreatedAt, err = parseTime(created)
	return info, err
}
