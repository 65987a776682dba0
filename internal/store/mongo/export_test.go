package mongo

import "testing"

// SetSnapshotLimit lowers the snapshot cap for the duration of t.
func SetSnapshotLimit(t testing.TB, n int64) {
	old := snapshotLimit
	snapshotLimit = n
	t.Cleanup(func() { snapshotLimit = old })
}
