package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/workspace"
)

// StoredWorkspaces keeps a task's workspace in the store: after each node
// completes its tree is archived there, and a process that claims the task
// starts from the latest archive. Processes then share nothing but the
// store: a worker that takes a task over, on another machine, continues
// from the files and git history the last completed node left.
type StoredWorkspaces struct {
	Store store.Snapshots
	// Dir is a task's workspace directory in this process.
	Dir func(taskID string) string
}

var _ Snapshotter = StoredWorkspaces{}

// Save archives the workspace as node left it. A task without a workspace
// yet (the planner writes no files) has nothing to save.
func (w StoredWorkspaces) Save(ctx context.Context, t domain.Task, node string, iteration int) error {
	dir := w.Dir(t.ID)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_, err := workspace.SaveSnapshot(ctx, w.Store, store.SnapshotInfo{TaskID: t.ID, Node: node, Iteration: iteration}, dir)
	return err
}

// Restore makes the local workspace the latest stored one, whatever this
// process had: files an interrupted node left behind are dropped, and the
// node runs again from what the completed ones left (an archive is small
// next to a node's model calls).
func (w StoredWorkspaces) Restore(ctx context.Context, t domain.Task) error {
	dir := w.Dir(t.ID)
	fresh := dir + ".restoring"
	if err := os.RemoveAll(fresh); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if _, err := workspace.RestoreLatest(ctx, w.Store, t.ID, fresh); err != nil {
		os.RemoveAll(fresh)
		if errors.Is(err, domain.ErrNotFound) {
			return nil // nothing completed that wrote files
		}
		return err
	}
	old := dir + ".old"
	os.RemoveAll(old)
	if err := os.Rename(dir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(fresh, dir); err != nil {
		return err
	}
	return os.RemoveAll(old)
}
