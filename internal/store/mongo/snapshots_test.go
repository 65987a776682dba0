package mongo_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	drv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/mongo"
	"github.com/catalyst/catalyst/internal/store/mongo/mongotest"
	"github.com/catalyst/catalyst/internal/store/storetest"
)

// openRaw returns a store on a fresh database and a driver handle on the
// same database, to look at and tamper with what the store wrote.
func openRaw(t *testing.T) (*mongo.Store, *drv.Database) {
	t.Helper()
	uri := mongotest.Start(t)
	name := mongotest.DBName(t)
	s, err := mongo.Open(t.Context(), uri, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c, err := drv.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(t.Context()) })
	return s, c.Database(name)
}

func count(t *testing.T, db *drv.Database, coll string, filter bson.D) int64 {
	t.Helper()
	n, err := db.Collection(coll).CountDocuments(t.Context(), filter)
	if err != nil {
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

// An oversized put leaves no GridFS file or chunk behind.
func TestSnapshotStreamingCap(t *testing.T) {
	s, db := openRaw(t)
	// Below the driver's 16 MiB upload buffer, so this shows that nothing is
	// recorded rather than that written chunks are removed (Abort's job):
	// streaming 17 MiB into FerretDB under the race detector takes 40 s.
	mongo.SetSnapshotLimit(t, 3<<20+7)
	storetest.SnapshotStreamingCap(t, s)
	if n := count(t, db, "snapshots.files", bson.D{}); n != 1 {
		t.Errorf("%d GridFS files after an oversized put, want the previous snapshot's 1", n)
	}
	if n := count(t, db, "snapshots.chunks", bson.D{}); n != 1 {
		t.Errorf("%d GridFS chunks after an oversized put, want the previous snapshot's 1", n)
	}
}

// Stored data that no longer matches its size and hash is refused on read.
func TestSnapshotCorruptionDetected(t *testing.T) {
	s, db := openRaw(t)
	taskID := newTask(t, s)
	data := make([]byte, 600<<10) // three GridFS chunks of 255 KiB
	rand.Read(data)
	chunks := db.Collection("snapshots.chunks")
	for name, tamper := range map[string]func(files_id any) error{
		"flipped byte": func(id any) error {
			var c struct {
				Data []byte `bson:"data"`
			}
			f := bson.D{{Key: "files_id", Value: id}, {Key: "n", Value: 1}}
			if err := chunks.FindOne(t.Context(), f).Decode(&c); err != nil {
				return err
			}
			c.Data[7] ^= 1
			_, err := chunks.UpdateOne(t.Context(), f, bson.D{{Key: "$set", Value: bson.D{{Key: "data", Value: c.Data}}}})
			return err
		},
		"swapped content": func(id any) error {
			_, err := chunks.UpdateOne(t.Context(), bson.D{{Key: "files_id", Value: id}, {Key: "n", Value: 0}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "data", Value: make([]byte, 255<<10)}}}})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			info := storetest.PutSnapshotBytes(t, s, taskID, "coder", 0, data)
			var f struct {
				ID bson.ObjectID `bson:"_id"`
			}
			if err := db.Collection("snapshots.files").FindOne(t.Context(),
				bson.D{{Key: "metadata.snapshot_id", Value: info.ID}}).Decode(&f); err != nil {
				t.Fatal(err)
			}
			if err := tamper(f.ID); err != nil {
				t.Fatal(err)
			}
			_, rc, err := s.LatestSnapshot(t.Context(), taskID)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if !errors.Is(err, store.ErrSnapshotCorrupt) {
				t.Errorf("read of tampered data: %v, want ErrSnapshotCorrupt", err)
			}
			if err == nil && bytes.Equal(got, data) {
				t.Error("tampering had no effect: the test proves nothing")
			}
		})
	}
}

// A put that died after inserting its document but before deleting the one
// it replaces leaves two documents for a key: readers see the newer only,
// and prune removes the older with its file. DeleteSnapshots removes files
// of puts that never got a document.
func TestSnapshotLeftoversOfInterruptedPuts(t *testing.T) {
	s, db := openRaw(t)
	taskID := newTask(t, s)
	first := storetest.PutSnapshotBytes(t, s, taskID, "coder", 0, []byte("first"))
	var doc bson.M
	coll := db.Collection("workspace_snapshots")
	if err := coll.FindOne(t.Context(), bson.D{{Key: "id", Value: first.ID}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	second := storetest.PutSnapshotBytes(t, s, taskID, "coder", 0, []byte("second"))
	// Put the replaced document back, as if the second put had died.
	delete(doc, "_id")
	if _, err := coll.InsertOne(t.Context(), doc); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListSnapshots(t.Context(), taskID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != second.ID {
		t.Errorf("listed %+v, want only the second put", list)
	}
	if n, err := s.PruneSnapshots(t.Context(), taskID, 1); err != nil || n != 0 {
		t.Errorf("PruneSnapshots = %d, %v; want 0 snapshots pruned (the leftover is not one)", n, err)
	}
	if n := count(t, db, "workspace_snapshots", bson.D{}); n != 1 {
		t.Errorf("%d documents after pruning, want 1", n)
	}
	_, data := storetest.ReadLatestSnapshot(t, s, taskID)
	if string(data) != "second" {
		t.Errorf("latest data %q after pruning, want second", data)
	}

	// A file uploaded by a put that died before its document was inserted.
	b := db.GridFSBucket(options.GridFSBucket().SetName("snapshots"))
	if _, err := b.UploadFromStream(t.Context(), "orphan", bytes.NewReader([]byte("orphan")),
		options.GridFSUpload().SetMetadata(bson.D{{Key: "task_id", Value: taskID}})); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSnapshots(t.Context(), taskID); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"workspace_snapshots", "snapshots.files", "snapshots.chunks"} {
		if n := count(t, db, c, bson.D{}); n != 0 {
			t.Errorf("%d documents left in %s after DeleteSnapshots", n, c)
		}
	}
}
