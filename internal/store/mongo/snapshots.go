package mongo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/internal/storeutil"
)

// Workspace snapshots: the data is a file in the GridFS bucket
// snapshotBucket (collections snapshots.files and snapshots.chunks), whose
// metadata names its task; a document in collSnapshots makes it a snapshot
// of (task, node, iteration) and orders it by seq.
//
// Only inserts into unique indexes are relied on for atomicity (FerretDB
// reports a unique violation of an update or upsert as an internal error,
// not as a duplicate key): a put inserts its document at the task's next
// seq, then deletes the documents of the same key with a lower seq. Until
// it has, or if it died before, a key has two documents; readers take the
// highest seq of each key. The file is uploaded before a document points at
// it and deleted after its document is, so a reader finds a document
// without its file only when a replacement races with it (it reads
// domain.ErrNotFound then).

const snapshotBucket = "snapshots"

// snapshotLimit is store.MaxSnapshotSize, a variable only so that a test
// can stream past it in reasonable time.
var snapshotLimit int64 = store.MaxSnapshotSize

type snapshotDoc struct {
	ID        string        `bson:"id"`
	TaskID    string        `bson:"task_id"`
	Node      string        `bson:"node"`
	Iteration int           `bson:"iteration"`
	Seq       int64         `bson:"seq"`
	FileID    bson.ObjectID `bson:"file_id"`
	Size      int64         `bson:"size"`
	SHA256    string        `bson:"sha256"`
	CreatedAt time.Time     `bson:"created_at"`
}

func (d *snapshotDoc) info() store.SnapshotInfo {
	return store.SnapshotInfo{ID: d.ID, TaskID: d.TaskID, Node: d.Node, Iteration: d.Iteration,
		Size: d.Size, SHA256: d.SHA256, CreatedAt: d.CreatedAt.UTC()}
}

// bucket returns a GridFS bucket for one operation: a GridFSBucket keeps
// per-upload state and is not safe for concurrent use.
func (s *Store) bucket() *mongo.GridFSBucket {
	return s.db.GridFSBucket(options.GridFSBucket().SetName(snapshotBucket))
}

func (s *Store) PutSnapshot(ctx context.Context, info store.SnapshotInfo, data io.Reader) (store.SnapshotInfo, error) {
	what := fmt.Sprintf("put snapshot %s/%s/%d", info.TaskID, info.Node, info.Iteration)
	if err := storeutil.CheckSnapshotKey(info, data); err != nil {
		return store.SnapshotInfo{}, fmt.Errorf("mongo: %s: %w", what, err)
	}
	if err := s.taskExists(ctx, info.TaskID, what); err != nil {
		return store.SnapshotInfo{}, err
	}
	info.ID = uuid.NewString()
	fileID := bson.NewObjectID()
	if err := s.upload(ctx, &info, fileID, data); err != nil {
		return store.SnapshotInfo{}, mapErr(err, what)
	}
	info.CreatedAt = storeutil.Now(precision)
	if err := s.recordSnapshot(ctx, info, fileID, what); err != nil {
		s.deleteFile(ctx, fileID)
		return store.SnapshotInfo{}, err
	}
	return info, nil
}

// upload stores data as the GridFS file fileID and fills in the size and
// hash of info. Nothing is left behind on failure.
func (s *Store) upload(ctx context.Context, info *store.SnapshotInfo, fileID bson.ObjectID, data io.Reader) error {
	name := fmt.Sprintf("%s/%s/%d", info.TaskID, info.Node, info.Iteration)
	meta := bson.D{{Key: "task_id", Value: info.TaskID}, {Key: "snapshot_id", Value: info.ID}}
	up, err := s.bucket().OpenUploadStreamWithID(ctx, fileID, name, options.GridFSUpload().SetMetadata(meta))
	if err != nil {
		return err
	}
	src := storeutil.NewSnapshotSource(data, snapshotLimit)
	if _, err := io.Copy(up, src); err != nil {
		_ = up.Abort()
		return err
	}
	if err := src.Finish(info); err != nil {
		_ = up.Abort()
		return err
	}
	if err := up.Close(); err != nil {
		s.deleteFile(ctx, fileID)
		return err
	}
	return nil
}

// recordSnapshot inserts the document of info at the task's next seq and
// deletes the documents it replaces (the same key, a lower seq) and their
// files.
func (s *Store) recordSnapshot(ctx context.Context, info store.SnapshotInfo, fileID bson.ObjectID, what string) error {
	doc := snapshotDoc{ID: info.ID, TaskID: info.TaskID, Node: info.Node, Iteration: info.Iteration,
		FileID: fileID, Size: info.Size, SHA256: info.SHA256, CreatedAt: info.CreatedAt}
	err := storeutil.Retry(ctx, what, func() error {
		var last snapshotDoc
		err := s.snapshots.FindOne(ctx, bson.D{{Key: "task_id", Value: info.TaskID}},
			options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}}).SetProjection(bson.D{{Key: "seq", Value: 1}})).Decode(&last)
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return mapErr(err, what)
		}
		doc.Seq = last.Seq + 1
		_, err = s.snapshots.InsertOne(ctx, doc)
		switch {
		case mongo.IsDuplicateKeyError(err):
			return storeutil.ErrRetry // a concurrent put took the seq
		case err != nil:
			return mapErr(err, what)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The new document is already the latest: a failure from here on only
	// leaves an older copy that readers skip and the next put, prune or
	// delete removes.
	replaced, err := findAll(ctx, s.snapshots, bson.D{
		{Key: "task_id", Value: info.TaskID}, {Key: "node", Value: info.Node}, {Key: "iteration", Value: info.Iteration},
		{Key: "seq", Value: bson.D{{Key: "$lt", Value: doc.Seq}}},
	}, options.Find(), ok(func(d *snapshotDoc) snapshotDoc { return *d }), what)
	if err == nil {
		s.dropSnapshots(ctx, replaced)
	}
	return nil
}

// dropSnapshots deletes documents and then their files; best effort.
func (s *Store) dropSnapshots(ctx context.Context, docs []snapshotDoc) {
	for _, d := range docs {
		if _, err := s.snapshots.DeleteOne(ctx, bson.D{{Key: "id", Value: d.ID}}); err == nil {
			s.deleteFile(ctx, d.FileID)
		}
	}
}

// current returns the snapshots of taskID newest first, one per key (the
// highest seq), and the documents that an interrupted put left behind.
func (s *Store) current(ctx context.Context, taskID, what string) (cur, stale []snapshotDoc, err error) {
	all, err := findAll(ctx, s.snapshots, bson.D{{Key: "task_id", Value: taskID}},
		options.Find().SetSort(bson.D{{Key: "seq", Value: -1}}), ok(func(d *snapshotDoc) snapshotDoc { return *d }), what)
	if err != nil {
		return nil, nil, err
	}
	type key struct {
		node string
		iter int
	}
	seen := map[key]bool{}
	for _, d := range all {
		k := key{d.Node, d.Iteration}
		if seen[k] {
			stale = append(stale, d)
			continue
		}
		seen[k] = true
		cur = append(cur, d)
	}
	return cur, stale, nil
}

// deleteFile removes a GridFS file; best effort, since DeleteSnapshots
// removes every file of a task, referenced or not.
func (s *Store) deleteFile(ctx context.Context, id bson.ObjectID) {
	_ = s.bucket().Delete(context.WithoutCancel(ctx), id)
}

func (s *Store) LatestSnapshot(ctx context.Context, taskID string) (store.SnapshotInfo, io.ReadCloser, error) {
	what := "latest snapshot of task " + taskID
	var d snapshotDoc
	err := s.snapshots.FindOne(ctx, bson.D{{Key: "task_id", Value: taskID}},
		options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}})).Decode(&d)
	if err != nil {
		return store.SnapshotInfo{}, nil, mapErr(err, what)
	}
	info := d.info()
	return info, storeutil.VerifiedReader(info, func() (io.ReadCloser, error) {
		ds, err := s.bucket().OpenDownloadStream(ctx, d.FileID)
		if errors.Is(err, mongo.ErrFileNotFound) {
			return nil, fmt.Errorf("mongo: read snapshot %s of task %s: %w: it was replaced or deleted while being read",
				info.ID, taskID, domain.ErrNotFound)
		}
		if err != nil {
			return nil, mapErr(err, "read snapshot "+info.ID+" of task "+taskID)
		}
		return ds, nil
	}), nil
}

func (s *Store) ListSnapshots(ctx context.Context, taskID string) ([]store.SnapshotInfo, error) {
	cur, _, err := s.current(ctx, taskID, "list snapshots of task "+taskID)
	if err != nil {
		return nil, err
	}
	var out []store.SnapshotInfo
	for _, d := range cur {
		out = append(out, d.info())
	}
	return out, nil
}

func (s *Store) PruneSnapshots(ctx context.Context, taskID string, keep int) (int, error) {
	what := fmt.Sprintf("prune snapshots of task %s to %d", taskID, keep)
	if keep < 0 {
		return 0, fmt.Errorf("mongo: %s: %w: keep is negative", what, domain.ErrInvalid)
	}
	cur, stale, err := s.current(ctx, taskID, what)
	if err != nil {
		return 0, err
	}
	if len(cur) <= keep {
		s.dropSnapshots(ctx, stale)
		return 0, nil
	}
	for _, d := range append(cur[keep:], stale...) {
		if _, err := s.snapshots.DeleteOne(ctx, bson.D{{Key: "id", Value: d.ID}}); err != nil {
			return 0, mapErr(err, what)
		}
		s.deleteFile(ctx, d.FileID)
	}
	return len(cur) - keep, nil
}

func (s *Store) DeleteSnapshots(ctx context.Context, taskID string) error {
	what := "delete snapshots of task " + taskID
	if _, err := s.snapshots.DeleteMany(ctx, bson.D{{Key: "task_id", Value: taskID}}); err != nil {
		return mapErr(err, what)
	}
	// Every file of the task, so that one whose put failed halfway goes too.
	b := s.bucket()
	cur, err := b.GetFilesCollection().Find(ctx, bson.D{{Key: "metadata.task_id", Value: taskID}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return mapErr(err, what)
	}
	var files []struct {
		ID bson.ObjectID `bson:"_id"`
	}
	if err := cur.All(ctx, &files); err != nil {
		return mapErr(err, what)
	}
	for _, f := range files {
		if err := b.Delete(ctx, f.ID); err != nil && !errors.Is(err, mongo.ErrFileNotFound) {
			return mapErr(err, what)
		}
	}
	return nil
}
