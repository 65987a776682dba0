// Package mongo is the scaled-out Store on MongoDB, with the official Go
// driver v2.
//
// Collections are the original backend's (projects, tasks, agent_logs,
// deployments, explorer_scans) plus project_members, node_artifacts, update_claims and
// workspace_snapshots with the GridFS bucket "snapshots", in one database. Documents carry the domain's JSON field names and a UUID `id`
// with a unique index; `_id` is left to the server (an ObjectId, as the
// original's). Documents written by the original are read as they are:
// string timestamps, extra fields and missing new fields are tolerated.
//
// Only single-document atomic operations are used, no transactions, change
// streams, $lookup, $facet or TTL indexes, so the store runs on a standalone
// MongoDB and on FerretDB alike. Timestamps are BSON dates: millisecond
// precision.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

var _ store.Store = (*Store)(nil)

// Store implements store.Store on one MongoDB database.
type Store struct {
	client *mongo.Client
	db     *mongo.Database

	projects, members, tasks, logs, deployments, scans, artifacts, claims, snapshots *mongo.Collection

	knownTasks sync.Map // ids of tasks seen to exist (tasks are never deleted)
	lastSeq    sync.Map // task id -> the last log seq this process stored (a guess for AppendLog)
}

// Collection names; the first five are the original backend's.
const (
	collProjects    = "projects"
	collTasks       = "tasks"
	collLogs        = "agent_logs"
	collDeployments = "deployments"
	collScans       = "explorer_scans"
	collArtifacts   = "node_artifacts"
	collClaims      = "update_claims" // see Store.cas
	collSnapshots   = "workspace_snapshots"
	collMembers     = "project_members"
	// collSnapshotFiles is the files collection of the snapshots' GridFS
	// bucket (see snapshots.go).
	collSnapshotFiles = snapshotBucket + ".files"
)

// PingTimeout bounds Ping when its context has no earlier deadline, so a
// health check answers quickly when the server is gone.
const PingTimeout = 2 * time.Second

// Open connects to uri, checks that the server answers and creates the
// indexes every query needs (creating an existing index is a no-op).
func Open(ctx context.Context, uri, dbName string) (*Store, error) {
	if dbName == "" {
		return nil, fmt.Errorf("mongo: open: %w: empty database name", domain.ErrInvalid)
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return nil, fmt.Errorf("mongo: open %s: %w", redactURI(uri), err)
	}
	db := client.Database(dbName)
	s := &Store{
		client: client, db: db,
		projects: db.Collection(collProjects), tasks: db.Collection(collTasks), logs: db.Collection(collLogs),
		deployments: db.Collection(collDeployments), scans: db.Collection(collScans),
		artifacts: db.Collection(collArtifacts), claims: db.Collection(collClaims),
		snapshots: db.Collection(collSnapshots), members: db.Collection(collMembers),
	}
	if err := s.Ping(ctx); err != nil {
		client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("mongo: open %s: %w", redactURI(uri), err)
	}
	if err := s.ensureIndexes(ctx); err != nil {
		client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	return s, nil
}

type index struct {
	name   string
	keys   bson.D
	unique bool
}

var newest = bson.D{{Key: "created_at", Value: -1}, {Key: "id", Value: -1}}

func prepend(k string, d bson.D) bson.D { return append(bson.D{{Key: k, Value: 1}}, d...) }

// indexes lists, per collection, an index for every query the store makes.
var indexes = map[string][]index{
	collProjects: {
		{"id_unique", bson.D{{Key: "id", Value: 1}}, true},
		{"created_at_id", newest, false},
		{"owner_created_at_id", prepend("owner_id", newest), false},
	},
	collMembers: {
		{"project_user_unique", bson.D{{Key: "project_id", Value: 1}, {Key: "user_id", Value: 1}}, true},
		{"user_project", bson.D{{Key: "user_id", Value: 1}, {Key: "project_id", Value: 1}}, false},
	},
	collTasks: {
		{"id_unique", bson.D{{Key: "id", Value: 1}}, true},
		{"created_at_id", newest, false},
		{"project_created_at_id", prepend("project_id", newest), false},
		{"status_created_at_id", prepend("status", newest), false},
		{"created_by_status", bson.D{{Key: "created_by", Value: 1}, {Key: "status", Value: 1}}, false},
	},
	collLogs: {
		{"id_unique", bson.D{{Key: "id", Value: 1}}, true},
		// Unique, it makes AppendLog's seq atomic. The original's logs have
		// no seq: on MongoDB the index leaves them out (partial); FerretDB,
		// which has no partial indexes, never counts a missing field twice.
		{"task_seq_unique", bson.D{{Key: "task_id", Value: 1}, {Key: "seq", Value: 1}}, true},
	},
	collDeployments: {
		{"task_unique", bson.D{{Key: "task_id", Value: 1}}, true},
		{"id_unique", bson.D{{Key: "id", Value: 1}}, true},
	},
	collScans: {
		{"id_unique", bson.D{{Key: "id", Value: 1}}, true},
		{"created_at_id", newest, false},
		{"owner_created_at_id", prepend("owner_id", newest), false},
		{"project_created_at_id", prepend("project_id", newest), false},
	},
	collArtifacts: {
		{"task_node_iteration_unique", bson.D{{Key: "task_id", Value: 1}, {Key: "node", Value: 1}, {Key: "iteration", Value: 1}}, true},
		{"task_created_at", bson.D{{Key: "task_id", Value: 1}, {Key: "created_at", Value: 1}}, false},
	},
	collSnapshots: {
		// Unique, it makes a put's seq atomic (see recordSnapshot). Not named
		// task_seq_unique: ensureIndex makes that name partial, for logs.
		{"task_put_seq_unique", bson.D{{Key: "task_id", Value: 1}, {Key: "seq", Value: 1}}, true},
		{"id_unique", bson.D{{Key: "id", Value: 1}}, true},
		// Not unique: a replacing put inserts before it deletes (see recordSnapshot).
		{"task_node_iteration", bson.D{{Key: "task_id", Value: 1}, {Key: "node", Value: 1}, {Key: "iteration", Value: 1}}, false},
	},
	// GridFS creates its own indexes on the bucket; DeleteSnapshots finds a
	// task's files by their metadata.
	collSnapshotFiles: {
		{"metadata_task_id", bson.D{{Key: "metadata.task_id", Value: 1}}, false},
	},
}

func (s *Store) ensureIndexes(ctx context.Context) error {
	for coll, list := range indexes {
		for _, ix := range list {
			if err := s.ensureIndex(ctx, s.db.Collection(coll), ix); err != nil {
				return fmt.Errorf("mongo: create index %s on %s.%s: %w", ix.name, s.db.Name(), coll, err)
			}
		}
	}
	return nil
}

// partialSeq limits the unique (task_id, seq) index to logs with a seq.
var partialSeq = bson.D{{Key: "seq", Value: bson.D{{Key: "$exists", Value: true}}}}

func (s *Store) ensureIndex(ctx context.Context, coll *mongo.Collection, ix index) error {
	opts := options.Index().SetName(ix.name).SetUnique(ix.unique)
	if ix.name == "task_seq_unique" {
		_, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys,
			Options: options.Index().SetName(ix.name).SetUnique(true).SetPartialFilterExpression(partialSeq)})
		var ce mongo.CommandError
		if !errors.As(err, &ce) || ce.Code != errNotImplemented {
			return err
		}
		// FerretDB: see the comment on the index.
	}
	_, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys, Options: opts})
	return err
}

// errNotImplemented is the server's code for an option it does not support.
const errNotImplemented = 238

// Ping checks that the server answers, within PingTimeout unless ctx has an
// earlier deadline.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, PingTimeout)
	defer cancel()
	if err := s.client.Ping(ctx, nil); err != nil {
		return fmt.Errorf("mongo: ping: %w", err)
	}
	return nil
}

// Close disconnects; the store is unusable afterwards.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.client.Disconnect(ctx)
	if errors.Is(err, mongo.ErrClientDisconnected) {
		return nil
	}
	return err
}

// mapErr translates driver errors into the domain's sentinel errors.
func mapErr(err error, what string) error {
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return fmt.Errorf("mongo: %s: %w", what, domain.ErrNotFound)
	case mongo.IsDuplicateKeyError(err):
		return fmt.Errorf("mongo: %s: %w: %v", what, domain.ErrConflict, err)
	case errors.Is(err, domain.ErrInvalid):
		return fmt.Errorf("mongo: %s: %w", what, err)
	}
	return fmt.Errorf("mongo: %s: %w", what, err)
}

// redactURI drops credentials from a connection string for error messages.
func redactURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(unparsable MONGO_URL)"
	}
	return u.Redacted()
}
