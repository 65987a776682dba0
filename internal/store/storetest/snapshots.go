package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

// snapshotData returns n pseudo-random (incompressible) bytes.
func snapshotData(seed uint64, n int) []byte {
	var key [32]byte
	key[0] = byte(seed)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

func hexSHA(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// PutSnapshotBytes puts data under (task, node, iteration).
func PutSnapshotBytes(t testing.TB, s store.Store, taskID, node string, iteration int, data []byte) store.SnapshotInfo {
	t.Helper()
	info, err := s.PutSnapshot(t.Context(), store.SnapshotInfo{TaskID: taskID, Node: node, Iteration: iteration},
		bytes.NewReader(data))
	if err != nil {
		t.Fatalf("PutSnapshot %s/%d: %v", node, iteration, err)
	}
	return info
}

// ReadLatestSnapshot returns the latest snapshot of taskID and its data,
// read to the end (so the store has verified it).
func ReadLatestSnapshot(t testing.TB, s store.Store, taskID string) (store.SnapshotInfo, []byte) {
	t.Helper()
	info, rc, err := s.LatestSnapshot(t.Context(), taskID)
	if err != nil {
		t.Fatalf("LatestSnapshot: %v", err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read latest snapshot %s: %v", info.ID, err)
	}
	return info, data
}

func testSnapshotRoundTrip(t *testing.T, s store.Store) {
	task := mustTask(t, s, "", T0)
	before := time.Now().Add(-time.Second)
	// Sizes across the backends' chunk sizes (1 MiB rows, 255 KiB GridFS
	// chunks) and their edges.
	sizes := map[string]int{"planner": 0, "architect": 1, "coder": 255 << 10, "tester": 1 << 20, "reviewer": 1<<20 + 12345}
	var last store.SnapshotInfo
	var lastData []byte
	seen := map[string]bool{}
	for i, node := range []string{"planner", "architect", "coder", "tester", "reviewer"} {
		data := snapshotData(uint64(i), sizes[node])
		info := PutSnapshotBytes(t, s, task.ID, node, 0, data)
		if info.ID == "" || seen[info.ID] {
			t.Fatalf("put %s: ID %q is empty or not new", node, info.ID)
		}
		seen[info.ID] = true
		want := store.SnapshotInfo{ID: info.ID, TaskID: task.ID, Node: node, Size: int64(len(data)),
			SHA256: hexSHA(data), CreatedAt: info.CreatedAt}
		assertEqual(t, "put info of "+node, info, want)
		if info.CreatedAt.Before(before) || info.CreatedAt.After(time.Now().Add(time.Second)) {
			t.Errorf("put %s: CreatedAt %v is not now", node, info.CreatedAt)
		}
		got, gotData := ReadLatestSnapshot(t, s, task.ID)
		assertEqual(t, "latest after putting "+node, got, info)
		if !bytes.Equal(gotData, data) {
			t.Fatalf("latest after putting %s: %d bytes came back differently (want %d)", node, len(gotData), len(data))
		}
		last, lastData = info, data
	}
	list, err := s.ListSnapshots(t.Context(), task.ID)
	must(t, "ListSnapshots", err)
	var nodes []string
	for _, l := range list {
		nodes = append(nodes, l.Node)
	}
	assertEqual(t, "snapshots newest first", nodes, []string{"reviewer", "tester", "coder", "architect", "planner"})
	assertEqual(t, "newest listed", list[0], last)

	// Another task's snapshots are its own.
	other := mustTask(t, s, task.ProjectID, at(1))
	_, _, err = s.LatestSnapshot(t.Context(), other.ID)
	assertIs(t, "LatestSnapshot of a task without snapshots", err, domain.ErrNotFound)
	PutSnapshotBytes(t, s, other.ID, "planner", 0, []byte("other"))
	_, data := ReadLatestSnapshot(t, s, task.ID)
	if !bytes.Equal(data, lastData) {
		t.Error("a put to another task changed this task's latest snapshot")
	}

	// Closing without reading is allowed and cheap; reading after close is not.
	_, rc, err := s.LatestSnapshot(t.Context(), task.ID)
	must(t, "LatestSnapshot", err)
	must(t, "Close unread", rc.Close())
	if _, err := rc.Read(make([]byte, 1)); err == nil {
		t.Error("Read after Close succeeded")
	}
}

func testSnapshotReplace(t *testing.T, s store.Store) {
	task := mustTask(t, s, "", T0)
	first := PutSnapshotBytes(t, s, task.ID, "coder", 1, []byte("first coder run"))
	PutSnapshotBytes(t, s, task.ID, "tester", 1, []byte("tester"))
	// A worker that took the task over runs coder/1 again.
	again := PutSnapshotBytes(t, s, task.ID, "coder", 1, []byte("second coder run"))
	if again.ID == first.ID {
		t.Errorf("a replacing put kept the ID %s: caches keyed by it would serve stale data", first.ID)
	}
	got, data := ReadLatestSnapshot(t, s, task.ID)
	assertEqual(t, "latest after replacing", got, again)
	assertEqual(t, "latest data", string(data), "second coder run")
	list, err := s.ListSnapshots(t.Context(), task.ID)
	must(t, "ListSnapshots", err)
	if len(list) != 2 || list[0].ID != again.ID || list[1].Node != "tester" {
		t.Errorf("after replacing coder/1: %+v, want the new coder/1 then tester/1", list)
	}
}

func testSnapshotErrors(t *testing.T, s store.Store) {
	task := mustTask(t, s, "", T0)
	ctx := t.Context()
	put := func(info store.SnapshotInfo, data io.Reader) error {
		_, err := s.PutSnapshot(ctx, info, data)
		return err
	}
	r := func() io.Reader { return bytes.NewReader([]byte("x")) }
	assertIs(t, "put for an unknown task",
		put(store.SnapshotInfo{TaskID: uuid.NewString(), Node: "coder"}, r()), domain.ErrNotFound)
	for name, info := range map[string]store.SnapshotInfo{
		"no task":           {Node: "coder"},
		"no node":           {TaskID: task.ID},
		"negative iter":     {TaskID: task.ID, Node: "coder", Iteration: -1},
		"malformed sha256":  {TaskID: task.ID, Node: "coder", SHA256: "abc"},
		"wrong sha256":      {TaskID: task.ID, Node: "coder", SHA256: hexSHA([]byte("y"))},
		"wrong size":        {TaskID: task.ID, Node: "coder", Size: 2},
		"negative size":     {TaskID: task.ID, Node: "coder", Size: -1},
		"uppercase sha hex": {TaskID: task.ID, Node: "coder", SHA256: "AB" + hexSHA([]byte("x"))[2:]},
	} {
		assertIs(t, "put with "+name, put(info, r()), domain.ErrInvalid)
	}
	assertIs(t, "put without data", put(store.SnapshotInfo{TaskID: task.ID, Node: "coder"}, nil), domain.ErrInvalid)
	_, _, err := s.LatestSnapshot(ctx, task.ID)
	assertIs(t, "latest after refused puts", err, domain.ErrNotFound)

	// The caller's own size and hash, when right, are accepted.
	ok, err := s.PutSnapshot(ctx, store.SnapshotInfo{TaskID: task.ID, Node: "coder", Size: 1, SHA256: hexSHA([]byte("x"))}, r())
	must(t, "put with the right size and sha256", err)

	// A source that fails halfway leaves the previous snapshot in place.
	err = put(store.SnapshotInfo{TaskID: task.ID, Node: "coder"},
		io.MultiReader(bytes.NewReader(snapshotData(1, 1<<20+1)), errReader{}))
	if !errors.Is(err, errBroken) {
		t.Errorf("put from a failing source: %v, want its error", err)
	}
	got, data := ReadLatestSnapshot(t, s, task.ID)
	assertEqual(t, "latest after a failed put", got, ok)
	assertEqual(t, "latest data after a failed put", string(data), "x")

	// A declared size over the cap is refused before any upload.
	err = put(store.SnapshotInfo{TaskID: task.ID, Node: "coder", Size: store.MaxSnapshotSize + 1}, r())
	assertIs(t, "put declaring more than the cap", err, store.ErrSnapshotTooLarge)
}

var errBroken = errors.New("source broke")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBroken }

// zeros is an endless source of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// SnapshotStreamingCap streams an endless source into s, whose snapshot cap
// the caller has lowered (streaming 256 MiB through the race detector takes
// minutes): the put must fail once it has read one byte too many rather
// than read forever, store nothing, and leave the previous snapshot. The
// caller checks afterwards that no data was left behind in its backend.
func SnapshotStreamingCap(t *testing.T, s store.Store) (taskID string) {
	task := mustTask(t, s, "", T0)
	prev := PutSnapshotBytes(t, s, task.ID, "coder", 0, []byte("small"))
	_, err := s.PutSnapshot(t.Context(), store.SnapshotInfo{TaskID: task.ID, Node: "coder"}, zeros{})
	assertIs(t, "put of an endless source", err, store.ErrSnapshotTooLarge)
	got, data := ReadLatestSnapshot(t, s, task.ID)
	assertEqual(t, "latest after an oversized put", got, prev)
	assertEqual(t, "latest data after an oversized put", string(data), "small")
	list, err := s.ListSnapshots(t.Context(), task.ID)
	must(t, "ListSnapshots", err)
	if len(list) != 1 {
		t.Errorf("%d snapshots after an oversized put, want 1", len(list))
	}
	return task.ID
}

func testSnapshotPruneDelete(t *testing.T, s store.Store) {
	task := mustTask(t, s, "", T0)
	other := mustTask(t, s, task.ProjectID, at(1))
	PutSnapshotBytes(t, s, other.ID, "planner", 0, []byte("other's"))
	var infos []store.SnapshotInfo
	for i := range 5 {
		infos = append(infos, PutSnapshotBytes(t, s, task.ID, "coder", i, snapshotData(uint64(i), 300<<10)))
	}
	n, err := s.PruneSnapshots(t.Context(), task.ID, 2)
	must(t, "PruneSnapshots", err)
	assertEqual(t, "pruned", n, 3)
	list, err := s.ListSnapshots(t.Context(), task.ID)
	must(t, "ListSnapshots", err)
	assertEqual(t, "kept after pruning", list, []store.SnapshotInfo{infos[4], infos[3]})
	_, data := ReadLatestSnapshot(t, s, task.ID)
	if !bytes.Equal(data, snapshotData(4, 300<<10)) {
		t.Error("pruning damaged the latest snapshot")
	}
	n, err = s.PruneSnapshots(t.Context(), task.ID, 5)
	must(t, "PruneSnapshots with fewer than keep", err)
	assertEqual(t, "pruned with fewer than keep", n, 0)
	_, err = s.PruneSnapshots(t.Context(), task.ID, -1)
	assertIs(t, "PruneSnapshots keep -1", err, domain.ErrInvalid)

	must(t, "DeleteSnapshots", s.DeleteSnapshots(t.Context(), task.ID))
	_, _, err = s.LatestSnapshot(t.Context(), task.ID)
	assertIs(t, "latest after delete", err, domain.ErrNotFound)
	list, err = s.ListSnapshots(t.Context(), task.ID)
	must(t, "ListSnapshots after delete", err)
	if len(list) != 0 {
		t.Errorf("%d snapshots listed after delete", len(list))
	}
	must(t, "DeleteSnapshots again", s.DeleteSnapshots(t.Context(), task.ID))
	_, data = ReadLatestSnapshot(t, s, other.ID)
	assertEqual(t, "another task's snapshot after delete", string(data), "other's")

	// A task whose snapshots were deleted can have new ones.
	again := PutSnapshotBytes(t, s, task.ID, "coder", 0, []byte("again"))
	got, _ := ReadLatestSnapshot(t, s, task.ID)
	assertEqual(t, "latest after delete and put", got, again)
}

// Concurrent puts of one task (different keys, and the same key) all land,
// each with its own ID, and the task keeps one snapshot per key.
func testSnapshotConcurrentPuts(t *testing.T, s store.Store) {
	task := mustTask(t, s, "", T0)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, 2*n)
	for i := range n {
		for j, node := range []string{fmt.Sprintf("node%d", i), "shared"} {
			wg.Go(func() {
				_, errs[2*i+j] = s.PutSnapshot(t.Context(), store.SnapshotInfo{TaskID: task.ID, Node: node},
					bytes.NewReader(snapshotData(uint64(i), 1000+i)))
			})
		}
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("put %d: %v", i, err)
		}
	}
	list, err := s.ListSnapshots(t.Context(), task.ID)
	must(t, "ListSnapshots", err)
	ids := map[string]bool{}
	for _, l := range list {
		ids[l.ID] = true
	}
	if len(list) != n+1 || len(ids) != n+1 {
		t.Errorf("%d snapshots (%d ids) after concurrent puts of %d keys", len(list), len(ids), n+1)
	}
	got, data := ReadLatestSnapshot(t, s, task.ID)
	if got.ID != list[0].ID || hexSHA(data) != got.SHA256 {
		t.Errorf("latest %+v is not the newest listed %+v", got, list[0])
	}
}

// A snapshot replaced while it is being read either reads completely and
// correctly (the backend had already fetched it) or fails with
// domain.ErrNotFound: never a mix of the two archives.
func testSnapshotReplacedWhileRead(t *testing.T, s store.Store) {
	task := mustTask(t, s, "", T0)
	old := snapshotData(1, 1<<20+300<<10) // two SQLite chunks, six GridFS ones
	PutSnapshotBytes(t, s, task.ID, "coder", 0, old)
	_, rc, err := s.LatestSnapshot(t.Context(), task.ID)
	must(t, "LatestSnapshot", err)
	defer rc.Close()
	head := make([]byte, 1000)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatalf("read the start: %v", err)
	}
	PutSnapshotBytes(t, s, task.ID, "coder", 0, snapshotData(2, 1<<20+300<<10))
	rest, err := io.ReadAll(rc)
	switch {
	case err == nil:
		if !bytes.Equal(append(head, rest...), old) {
			t.Error("a read racing a replacement returned wrong data without an error")
		}
	case !errors.Is(err, domain.ErrNotFound):
		t.Errorf("a read racing a replacement failed with %v, want domain.ErrNotFound", err)
	}
}
