package mongo

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/internal/storeutil"
)

// ok adapts a conversion that cannot fail to findAll and list.
func ok[D, T any](conv func(*D) T) func(*D) (T, error) {
	return func(d *D) (T, error) { return conv(d), nil }
}

// versionIs matches the document with id at version; the original's
// documents have no version field and count as version 0.
func versionIs(id string, version int64) bson.D {
	if version == 0 {
		return bson.D{{Key: "id", Value: id}, {Key: "version", Value: bson.D{{Key: "$in", Value: bson.A{0, nil}}}}}
	}
	return bson.D{{Key: "id", Value: id}, {Key: "version", Value: version}}
}

// cas stores doc (all fields, with $set so that fields we do not know are
// kept) only if the document is still at version, and reports whether it did.
//
// A conditional update alone is a compare-and-set on MongoDB, but FerretDB
// v1 evaluates the filter and writes the document in two steps, so two
// concurrent writers of one version both "win". Inserts into a unique index
// are atomic on both, so the writer first claims the new version in
// update_claims; only the claimant writes, and it releases the claim after.
// A claim left by a writer that died is taken over after claimTTL.
func (s *Store) cas(ctx context.Context, coll *mongo.Collection, id string, version int64, doc any, what string) (bool, error) {
	claim := fmt.Sprintf("%s/%s/%d", coll.Name(), id, version+1)
	_, err := s.claims.InsertOne(ctx, bson.D{{Key: "_id", Value: claim}, {Key: "at", Value: bson.NewDateTimeFromTime(time.Now())}})
	if mongo.IsDuplicateKeyError(err) {
		return false, s.dropStaleClaim(ctx, claim)
	}
	if err != nil {
		return false, mapErr(err, what+": claim")
	}
	defer s.claims.DeleteOne(context.WithoutCancel(ctx), bson.D{{Key: "_id", Value: claim}})
	res, err := coll.UpdateOne(ctx, versionIs(id, version), bson.D{{Key: "$set", Value: doc}})
	if err != nil {
		return false, mapErr(err, what)
	}
	return res.MatchedCount == 1, nil
}

// claimTTL is how long a claim may be held before others take it over.
const claimTTL = 30 * time.Second

// dropStaleClaim deletes claim if its holder has had it for over claimTTL.
func (s *Store) dropStaleClaim(ctx context.Context, claim string) error {
	var c struct {
		At time.Time `bson:"at"`
	}
	err := s.claims.FindOne(ctx, bson.D{{Key: "_id", Value: claim}}).Decode(&c)
	if err == mongo.ErrNoDocuments || (err == nil && time.Since(c.At) < claimTTL) {
		return nil // released meanwhile, or held: retry
	}
	if err == nil {
		_, err = s.claims.DeleteOne(ctx, bson.D{{Key: "_id", Value: claim}, {Key: "at", Value: c.At}})
	}
	if err != nil {
		return mapErr(err, "claim "+claim)
	}
	return nil
}

// keepStored keeps the stored created_at (possibly the original's string)
// when the update did not change the instant.
func keepStored(t *flexTime, stored flexTime) {
	if stored.present && t.t.Equal(stored.t) {
		*t = stored
	}
}

func now() flexTime { return newFlexTime(storeutil.Now(precision)) }

// ---- projects

func (s *Store) CreateProject(ctx context.Context, p domain.Project) error {
	_, err := s.projects.InsertOne(ctx, toProjectDoc(&p))
	if err != nil {
		return mapErr(err, "create project "+p.ID)
	}
	return nil
}

func (s *Store) GetProject(ctx context.Context, id string) (domain.Project, error) {
	d, err := findOne[projectDoc](ctx, s.projects, byID(id), "project "+id)
	return d.domain(), err
}

func (s *Store) UpdateProject(ctx context.Context, id string, mutate func(*domain.Project) error) (domain.Project, error) {
	what := "update project " + id
	var stored projectDoc
	return storeutil.Update(ctx, "mongo: "+what, func(ctx context.Context) (domain.Project, int64, error) {
		var err error
		stored, err = findOne[projectDoc](ctx, s.projects, byID(id), "project "+id)
		return stored.domain(), stored.Version, err
	}, mutate, func(ctx context.Context, p *domain.Project, version int64) (bool, error) {
		p.ID = id
		d := toProjectDoc(p)
		d.UpdatedAt, d.Version = now(), version+1
		keepStored(&d.CreatedAt, stored.CreatedAt)
		*p = d.domain()
		return s.cas(ctx, s.projects, id, version, d, what)
	})
}

// ---- tasks

func (s *Store) CreateTask(ctx context.Context, t domain.Task) error {
	what := "create task " + t.ID
	if err := exists(ctx, s.projects, t.ProjectID, what+": project "+t.ProjectID); err != nil {
		return err
	}
	if _, err := s.tasks.InsertOne(ctx, toTaskDoc(&t)); err != nil {
		return mapErr(err, what)
	}
	s.knownTasks.Store(t.ID, true)
	return nil
}

func (s *Store) GetTask(ctx context.Context, id string) (domain.Task, error) {
	d, err := findOne[taskDoc](ctx, s.tasks, byID(id), "task "+id)
	return d.domain(), err
}

func (s *Store) ListTasks(ctx context.Context, f store.TaskFilter, page store.Page) ([]domain.Task, string, error) {
	filter, err := s.projectIn(ctx, f.Scope, "project_id")
	if err != nil {
		return nil, "", err
	}
	if f.ProjectID != "" {
		filter = append(filter, bson.E{Key: "project_id", Value: f.ProjectID})
	}
	if len(f.Statuses) > 0 {
		in := make(bson.A, len(f.Statuses))
		for i, st := range f.Statuses {
			in[i] = string(st)
		}
		filter = append(filter, bson.E{Key: "status", Value: bson.D{{Key: "$in", Value: in}}})
	}
	return list(ctx, s.tasks, filter, page, ok((*taskDoc).domain),
		func(d *taskDoc) (flexTime, string) { return d.CreatedAt, d.ID })
}

func (s *Store) UpdateTask(ctx context.Context, id string, mutate func(*domain.Task) error) (domain.Task, error) {
	what := "update task " + id
	var stored taskDoc
	return storeutil.Update(ctx, "mongo: "+what, func(ctx context.Context) (domain.Task, int64, error) {
		var err error
		stored, err = findOne[taskDoc](ctx, s.tasks, byID(id), "task "+id)
		return stored.domain(), stored.Version, err
	}, mutate, func(ctx context.Context, t *domain.Task, version int64) (bool, error) {
		t.ID = id
		d := toTaskDoc(t)
		d.UpdatedAt, d.Version = now(), version+1
		keepStored(&d.CreatedAt, stored.CreatedAt)
		*t = d.domain()
		return s.cas(ctx, s.tasks, id, version, d, what)
	})
}

// ---- logs

// taskExists checks that a task exists; tasks are never deleted, so a
// task seen once is remembered.
func (s *Store) taskExists(ctx context.Context, taskID, what string) error {
	if _, ok := s.knownTasks.Load(taskID); ok {
		return nil
	}
	if err := exists(ctx, s.tasks, taskID, what+": task "+taskID); err != nil {
		return err
	}
	s.knownTasks.Store(taskID, true)
	return nil
}

// AppendLog stores l with the next seq of its task: it reads the task's
// highest seq and inserts at the one after; the unique (task_id, seq) index
// refuses the insert when a concurrent append took that seq first, and it
// tries again. Inserts into a unique index are atomic on MongoDB and FerretDB
// alike, and nothing is reserved ahead, so seq has no gap. A retried append
// (an ID already stored) returns the stored log.
func (s *Store) AppendLog(ctx context.Context, l domain.AgentLog) (domain.AgentLog, error) {
	what := "append log " + l.ID
	if l.ID == "" {
		l.ID = uuid.NewString()
	} else if d, err := findOne[logDoc](ctx, s.logs, byID(l.ID), "log "+l.ID); err == nil {
		return d.domain(), nil
	}
	if err := s.taskExists(ctx, l.TaskID, what); err != nil {
		return l, err
	}
	if l.Timestamp.IsZero() {
		l.Timestamp = storeutil.Now(precision)
	}
	var stored logDoc
	// The seq this process last stored for the task is a guess that saves
	// reading the highest seq; another writer makes it fail, never wrong.
	guess, guessed := s.lastSeq.Load(l.TaskID)
	err := storeutil.Retry(ctx, "mongo: "+what, func() error {
		var last struct {
			Seq int64 `bson:"seq"`
		}
		if guessed {
			last.Seq, guessed = guess.(int64), false
		} else {
			err := s.logs.FindOne(ctx, bson.D{{Key: "task_id", Value: l.TaskID}},
				options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}}).SetProjection(bson.D{{Key: "seq", Value: 1}}),
			).Decode(&last)
			if err != nil && err != mongo.ErrNoDocuments {
				return mapErr(err, what)
			}
		}
		l.Seq = last.Seq + 1
		stored = toLogDoc(&l)
		_, err := s.logs.InsertOne(ctx, stored)
		if err == nil {
			s.lastSeq.Store(l.TaskID, l.Seq)
			return nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return mapErr(err, what)
		}
		if d, err := findOne[logDoc](ctx, s.logs, byID(l.ID), "log "+l.ID); err == nil {
			stored = d // the same ID, appended concurrently
			return nil
		}
		return storeutil.ErrRetry // the seq was taken
	})
	if err != nil {
		return l, err
	}
	return stored.domain(), nil
}

func (s *Store) ListLogs(ctx context.Context, taskID string, afterSeq int64, limit int) ([]domain.AgentLog, error) {
	filter := bson.D{{Key: "task_id", Value: taskID}}
	if afterSeq > 0 {
		filter = append(filter, bson.E{Key: "seq", Value: bson.D{{Key: "$gt", Value: afterSeq}}})
	}
	// The original's logs have no seq: they come first, in insertion order.
	opts := options.Find().SetSort(bson.D{{Key: "seq", Value: 1}, {Key: "_id", Value: 1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	return findAll(ctx, s.logs, filter, opts, ok((*logDoc).domain), "list logs of task "+taskID)
}

// ---- artifacts

func (s *Store) PutArtifact(ctx context.Context, a domain.Artifact) error {
	what := fmt.Sprintf("put artifact %s/%s/%d", a.TaskID, a.Node, a.Iteration)
	if err := s.taskExists(ctx, a.TaskID, what); err != nil {
		return err
	}
	key := bson.D{{Key: "task_id", Value: a.TaskID}, {Key: "node", Value: a.Node}, {Key: "iteration", Value: a.Iteration}}
	_, err := s.artifacts.ReplaceOne(ctx, key, toArtifactDoc(&a), options.Replace().SetUpsert(true))
	if err != nil {
		return mapErr(err, what)
	}
	return nil
}

func (s *Store) ListArtifacts(ctx context.Context, taskID string) ([]domain.Artifact, error) {
	opts := options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "iteration", Value: 1}, {Key: "node", Value: 1}})
	return findAll(ctx, s.artifacts, bson.D{{Key: "task_id", Value: taskID}}, opts,
		ok((*artifactDoc).domain), "list artifacts of task "+taskID)
}

// ---- deployments

func (s *Store) PutDeployment(ctx context.Context, x domain.Deployment) error {
	what := "put deployment of task " + x.TaskID
	if err := s.taskExists(ctx, x.TaskID, what); err != nil {
		return err
	}
	_, err := s.deployments.ReplaceOne(ctx, bson.D{{Key: "task_id", Value: x.TaskID}}, toDeploymentDoc(&x),
		options.Replace().SetUpsert(true))
	if err != nil {
		return mapErr(err, what)
	}
	return nil
}

func (s *Store) GetDeployment(ctx context.Context, taskID string) (domain.Deployment, error) {
	d, err := findOne[deploymentDoc](ctx, s.deployments, bson.D{{Key: "task_id", Value: taskID}}, "deployment of task "+taskID)
	return d.domain(), err
}

// ---- explorer scans

func (s *Store) CreateScan(ctx context.Context, sc domain.ExplorerScan) error {
	d, err := toScanDoc(&sc)
	if err == nil {
		_, err = s.scans.InsertOne(ctx, d)
	}
	if err != nil {
		return mapErr(err, "create scan "+sc.ID)
	}
	return nil
}

func (s *Store) GetScan(ctx context.Context, id string) (domain.ExplorerScan, error) {
	d, err := findOne[scanDoc](ctx, s.scans, byID(id), "scan "+id)
	if err != nil {
		return domain.ExplorerScan{}, err
	}
	sc, err := d.domain()
	if err != nil {
		return sc, mapErr(err, "scan "+id)
	}
	return sc, nil
}

func (s *Store) UpdateScan(ctx context.Context, id string, mutate func(*domain.ExplorerScan) error) (domain.ExplorerScan, error) {
	what := "update scan " + id
	var stored scanDoc
	return storeutil.Update(ctx, "mongo: "+what, func(ctx context.Context) (domain.ExplorerScan, int64, error) {
		var err error
		if stored, err = findOne[scanDoc](ctx, s.scans, byID(id), "scan "+id); err != nil {
			return domain.ExplorerScan{}, 0, err
		}
		sc, err := stored.domain()
		return sc, stored.Version, err
	}, mutate, func(ctx context.Context, sc *domain.ExplorerScan, version int64) (bool, error) {
		sc.ID = id
		d, err := toScanDoc(sc)
		if err != nil {
			return false, mapErr(err, what)
		}
		d.UpdatedAt, d.Version = now(), version+1
		keepStored(&d.CreatedAt, stored.CreatedAt)
		if *sc, err = d.domain(); err != nil {
			return false, mapErr(err, what)
		}
		return s.cas(ctx, s.scans, id, version, d, what)
	})
}
