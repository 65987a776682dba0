package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/internal/storeutil"
)

// Tenant scoping without joins ($lookup is not used: see the package
// comment): a user's visible projects are the ones they own plus those
// their memberships name, and reads of tasks and scans filter by that set
// of project ids in the query itself.

// nothing matches no document (the zero Scope).
var nothing = bson.D{{Key: "id", Value: bson.D{{Key: "$in", Value: bson.A{}}}}}

// memberRoles returns userID's member roles by project id.
func (s *Store) memberRoles(ctx context.Context, userID string) (map[string]domain.ProjectRole, error) {
	docs, err := findAll(ctx, s.members, bson.D{{Key: "user_id", Value: userID}}, options.Find(),
		ok(func(d *memberDoc) memberDoc { return *d }), "memberships of user "+userID)
	if err != nil {
		return nil, err
	}
	roles := make(map[string]domain.ProjectRole, len(docs))
	for _, d := range docs {
		roles[d.ProjectID] = domain.ProjectRole(d.Role)
	}
	return roles, nil
}

// visibleProjectIDs returns the ids of the projects userID owns or is a
// member of.
func (s *Store) visibleProjectIDs(ctx context.Context, userID string) (bson.A, error) {
	roles, err := s.memberRoles(ctx, userID)
	if err != nil {
		return nil, err
	}
	owned, err := findAll(ctx, s.projects, bson.D{{Key: "owner_id", Value: userID}},
		options.Find().SetProjection(bson.D{{Key: "id", Value: 1}}),
		ok(func(d *projectDoc) string { return d.ID }), "projects of user "+userID)
	if err != nil {
		return nil, err
	}
	ids := make(bson.A, 0, len(owned)+len(roles))
	for _, id := range owned {
		ids = append(ids, id)
	}
	for id := range roles {
		ids = append(ids, id)
	}
	return ids, nil
}

// projectIn returns the filter that field (a project id) is one scope sees.
func (s *Store) projectIn(ctx context.Context, scope store.Scope, field string) (bson.D, error) {
	switch {
	case scope.IsAll():
		return bson.D{}, nil
	case scope.None():
		return nothing, nil
	}
	ids, err := s.visibleProjectIDs(ctx, scope.UserID())
	if err != nil {
		return nil, err
	}
	return bson.D{{Key: field, Value: bson.D{{Key: "$in", Value: ids}}}}, nil
}

// projectScope returns the filter of the projects scope sees and the role
// of scope's user in each (owner is told by the document).
func (s *Store) projectScope(ctx context.Context, scope store.Scope) (bson.D, map[string]domain.ProjectRole, error) {
	if scope.None() {
		return nothing, nil, nil
	}
	var roles map[string]domain.ProjectRole
	if u := scope.UserID(); u != "" {
		var err error
		if roles, err = s.memberRoles(ctx, u); err != nil {
			return nil, nil, err
		}
	}
	if scope.IsAll() {
		return bson.D{}, roles, nil
	}
	ids := make(bson.A, 0, len(roles))
	for id := range roles {
		ids = append(ids, id)
	}
	return bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "owner_id", Value: scope.UserID()}},
		bson.D{{Key: "id", Value: bson.D{{Key: "$in", Value: ids}}}},
	}}}, roles, nil
}

// withRole converts d and sets MyRole from scope's point of view.
func withRole(scope store.Scope, roles map[string]domain.ProjectRole) func(*projectDoc) domain.Project {
	return func(d *projectDoc) domain.Project {
		p := d.domain()
		switch u := scope.UserID(); {
		case u != "" && d.OwnerID == u:
			p.MyRole = domain.RoleOwner
		case roles[d.ID] != "":
			p.MyRole = roles[d.ID]
		default:
			p.MyRole = domain.RoleAdminAccess // only All scopes read projects without a role
		}
		return p
	}
}

func and(a, b bson.D) bson.D {
	if len(a) == 0 {
		return b
	}
	return bson.D{{Key: "$and", Value: bson.A{a, b}}}
}

func (s *Store) GetProjectIn(ctx context.Context, scope store.Scope, id string) (domain.Project, error) {
	filter, roles, err := s.projectScope(ctx, scope)
	if err != nil {
		return domain.Project{}, err
	}
	d, err := findOne[projectDoc](ctx, s.projects, and(filter, byID(id)), "project "+id)
	if err != nil {
		return domain.Project{}, err
	}
	return withRole(scope, roles)(&d), nil
}

func (s *Store) ListProjects(ctx context.Context, scope store.Scope, page store.Page) ([]domain.Project, string, error) {
	filter, roles, err := s.projectScope(ctx, scope)
	if err != nil {
		return nil, "", err
	}
	return list(ctx, s.projects, filter, page, ok(withRole(scope, roles)),
		func(d *projectDoc) (flexTime, string) { return d.CreatedAt, d.ID })
}

// ---- members

func (s *Store) PutMember(ctx context.Context, m domain.Member) (domain.Member, error) {
	what := "put member " + m.UserID + " of project " + m.ProjectID
	if !m.Role.MemberRole() {
		return m, fmt.Errorf("mongo: %s: %w: role %q is not viewer or editor", what, domain.ErrInvalid, m.Role)
	}
	if err := exists(ctx, s.projects, m.ProjectID, what+": project "+m.ProjectID); err != nil {
		return m, err
	}
	key := bson.D{{Key: "project_id", Value: m.ProjectID}, {Key: "user_id", Value: m.UserID}}
	update := bson.D{
		{Key: "$set", Value: bson.D{{Key: "role", Value: string(m.Role)}, {Key: "added_by", Value: m.AddedBy},
			{Key: "updated_at", Value: newFlexTime(m.UpdatedAt)}}},
		{Key: "$setOnInsert", Value: bson.D{{Key: "created_at", Value: newFlexTime(m.CreatedAt)}}},
	}
	// Two first puts of one member race to insert; the unique index
	// refuses the second, which then updates the first's document.
	err := storeutil.Retry(ctx, "mongo: "+what, func() error {
		_, err := s.members.UpdateOne(ctx, key, update, options.UpdateOne().SetUpsert(true))
		if mongo.IsDuplicateKeyError(err) {
			return storeutil.ErrRetry
		}
		if err != nil {
			return mapErr(err, what)
		}
		return nil
	})
	if err != nil {
		return m, err
	}
	d, err := findOne[memberDoc](ctx, s.members, key, what)
	return d.domain(), err
}

func (s *Store) ListMembers(ctx context.Context, projectID string) ([]domain.Member, error) {
	opts := options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "user_id", Value: 1}})
	return findAll(ctx, s.members, bson.D{{Key: "project_id", Value: projectID}}, opts,
		ok((*memberDoc).domain), "list members of project "+projectID)
}

func (s *Store) DeleteMember(ctx context.Context, projectID, userID string) error {
	what := "member " + userID + " of project " + projectID
	res, err := s.members.DeleteOne(ctx, bson.D{{Key: "project_id", Value: projectID}, {Key: "user_id", Value: userID}})
	if err != nil {
		return mapErr(err, "delete "+what)
	}
	if res.DeletedCount == 0 {
		return mapErr(mongo.ErrNoDocuments, what)
	}
	return nil
}

// ---- tasks and scans in scope

func (s *Store) GetTaskIn(ctx context.Context, scope store.Scope, id string) (domain.Task, error) {
	filter, err := s.projectIn(ctx, scope, "project_id")
	if err != nil {
		return domain.Task{}, err
	}
	d, err := findOne[taskDoc](ctx, s.tasks, and(filter, byID(id)), "task "+id)
	if err != nil {
		return domain.Task{}, err
	}
	return d.domain(), nil
}

func (s *Store) UserStats(ctx context.Context, userID string) (store.UserStats, error) {
	what := "task stats of user " + userID
	var st store.UserStats
	queued, err := s.tasks.CountDocuments(ctx, bson.D{{Key: "created_by", Value: userID},
		{Key: "status", Value: bson.D{{Key: "$in", Value: bson.A{string(domain.TaskPending), string(domain.TaskRunning)}}}}})
	if err != nil {
		return st, mapErr(err, what)
	}
	st.Queued = int(queued)
	cur, err := s.tasks.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.D{{Key: "created_by", Value: userID}}}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: nil}, {Key: "spent", Value: bson.D{{Key: "$sum", Value: "$cost"}}}}}},
	})
	if err != nil {
		return st, mapErr(err, what)
	}
	defer cur.Close(ctx)
	if cur.Next(ctx) {
		var sum struct {
			Spent float64 `bson:"spent"`
		}
		if err := cur.Decode(&sum); err != nil {
			return st, mapErr(err, what)
		}
		st.Spent = sum.Spent
	}
	if err := cur.Err(); err != nil {
		return st, mapErr(err, what)
	}
	return st, nil
}

// scanScope is the filter of the scans scope sees: those it asked for, and
// those of the projects it sees.
func (s *Store) scanScope(ctx context.Context, scope store.Scope) (bson.D, error) {
	filter, err := s.projectIn(ctx, scope, "project_id")
	if err != nil || scope.IsAll() || scope.None() {
		return filter, err
	}
	return bson.D{{Key: "$or", Value: bson.A{bson.D{{Key: "owner_id", Value: scope.UserID()}}, filter}}}, nil
}

func (s *Store) GetScanIn(ctx context.Context, scope store.Scope, id string) (domain.ExplorerScan, error) {
	filter, err := s.scanScope(ctx, scope)
	if err != nil {
		return domain.ExplorerScan{}, err
	}
	d, err := findOne[scanDoc](ctx, s.scans, and(filter, byID(id)), "scan "+id)
	if err != nil {
		return domain.ExplorerScan{}, err
	}
	sc, err := d.domain()
	if err != nil {
		return sc, mapErr(err, "scan "+id)
	}
	return sc, nil
}

func (s *Store) ListScans(ctx context.Context, scope store.Scope, page store.Page) ([]domain.ExplorerScan, string, error) {
	filter, err := s.scanScope(ctx, scope)
	if err != nil {
		return nil, "", err
	}
	return list(ctx, s.scans, filter, page, (*scanDoc).domain,
		func(d *scanDoc) (flexTime, string) { return d.CreatedAt, d.ID })
}
