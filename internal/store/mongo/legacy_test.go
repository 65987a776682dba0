package mongo_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/mongo"
	"github.com/catalyst/catalyst/internal/store/mongo/mongotest"
)

// Documents shaped exactly as the original Python backend (Motor) wrote
// them: ObjectId _id, ISO 8601 strings for times, no version or seq, extra
// fields. They are inserted with the raw driver before Open, as when
// Catalyst is pointed at the original's database.
func TestReadsPythonDocuments(t *testing.T) {
	ctx := t.Context()
	uri, dbName := mongotest.Start(t), mongotest.DBName(t)
	client, err := driver.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	db := client.Database(dbName)
	const (
		projectID = "3f2b8c1e-6a7d-4e0f-9b1a-2c3d4e5f6a7b"
		taskID    = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	)
	insert := func(coll string, docs ...bson.M) {
		t.Helper()
		for _, d := range docs {
			d["_id"] = bson.NewObjectID()
			if _, err := db.Collection(coll).InsertOne(ctx, d); err != nil {
				t.Fatalf("insert into %s: %v", coll, err)
			}
		}
	}
	insert("projects", bson.M{"id": projectID, "name": "My Project", "description": "A test project",
		"status": "active", "created_at": "2025-10-14T09:30:12.123456", "_class": "Project",
		"metadata": bson.M{"owner": "alice"}})
	insert("tasks", bson.M{"id": taskID, "project_id": projectID, "prompt": "Build a todo app",
		"graph_state": bson.M{"planner": "completed", "architect": "completed", "coder": "failed"},
		"status":      "failed", "cost": 0.85, "created_at": "2025-10-14T09:31:00+00:00", "metadata": bson.M{"retries": 1}})
	insert("agent_logs",
		bson.M{"id": "log-1", "task_id": taskID, "agent_name": "Planner", "message": "Analyzing requirements",
			"timestamp": "2025-10-14T09:31:01.500000"},
		bson.M{"id": "log-2", "task_id": taskID, "agent_name": "Architect", "message": "Designing",
			"timestamp": "2025-10-14T09:31:02.250000", "_class": "AgentLog"})
	insert("deployments", bson.M{"id": "dep-1", "task_id": taskID, "url": "https://deployed-app.com",
		"commit_sha": "abc123", "cost": 0.25, "report": "string", "created_at": "2025-10-14 09:40:00"})
	insert("explorer_scans", bson.M{"id": "scan-1", "system_name": "SailPoint IdentityIQ", "brief": "IAM suite",
		"risks": bson.A{"risk1", "risk2"}, "proposals": bson.A{"proposal1"}, "created_at": "2025-10-14T09:30:12Z",
		"metadata": bson.M{"source": "github"}})

	s, err := mongo.Open(ctx, uri, dbName)
	if err != nil {
		t.Fatalf("Open over the original's data: %v", err)
	}
	defer s.Close()
	utc := func(sec, micro int) time.Time { return time.Date(2025, 10, 14, 9, 30, sec, micro*1000, time.UTC) }

	p, err := s.GetProject(ctx, projectID)
	if err != nil {
		t.Fatalf("GetProject: %v", err)
	}
	if p.Name != "My Project" || p.Status != domain.ProjectActive || !p.CreatedAt.Equal(utc(12, 123456)) || !p.UpdatedAt.Equal(p.CreatedAt) {
		t.Errorf("project read as %+v", p)
	}

	task, err := s.GetTask(ctx, taskID)
	if err != nil {
		t.Fatalf("GetTask: %v", err)
	}
	if task.Status != domain.TaskFailed || task.Cost != 0.85 || task.GraphState["coder"] != domain.NodeFailed ||
		!task.CreatedAt.Equal(utc(60, 0)) || task.Version != 0 {
		t.Errorf("task read as %+v", task)
	}
	tasks, _, err := s.ListTasks(ctx, store.TaskFilter{Scope: store.All(), ProjectID: projectID}, store.Page{})
	if err != nil || len(tasks) != 1 || tasks[0].ID != taskID {
		t.Errorf("ListTasks by project: %v, %v", tasks, err)
	}

	// A task of the original (no version) can be updated; its created_at
	// string is kept, so its place in the lists does not move.
	up, err := s.UpdateTask(ctx, taskID, func(t *domain.Task) error { t.Status = domain.TaskPending; return nil })
	if err != nil || up.Version != 1 || up.Status != domain.TaskPending {
		t.Fatalf("UpdateTask of an original task: %+v, %v", up, err)
	}
	var raw bson.Raw
	if err := db.Collection("tasks").FindOne(ctx, bson.M{"id": taskID}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if raw.Lookup("created_at").Type != bson.TypeString || raw.Lookup("metadata").Type != bson.TypeEmbeddedDocument {
		t.Errorf("update rewrote created_at or dropped an unknown field: %v", raw)
	}

	logs, err := s.ListLogs(ctx, taskID, 0, 0)
	if err != nil || len(logs) != 2 {
		t.Fatalf("ListLogs: %v, %v", logs, err)
	}
	if logs[0].ID != "log-1" || logs[0].Type != domain.EventLog || logs[0].AgentName != "Planner" ||
		!logs[0].Timestamp.Equal(utc(61, 500000)) || logs[1].ID != "log-2" {
		t.Errorf("logs read as %+v", logs)
	}
	l, err := s.AppendLog(ctx, domain.AgentLog{TaskID: taskID, Type: domain.EventLog, Message: "resumed"})
	if err != nil || l.Seq != 1 {
		t.Fatalf("AppendLog after the original's logs: %+v, %v", l, err)
	}
	if logs, _ := s.ListLogs(ctx, taskID, 0, 0); len(logs) != 3 || logs[2].ID != l.ID {
		t.Errorf("after an append: %+v", logs)
	}
	if logs, _ := s.ListLogs(ctx, taskID, 0, 1); len(logs) != 1 || logs[0].ID != "log-1" {
		t.Errorf("first log with limit 1: %+v", logs)
	}

	d, err := s.GetDeployment(ctx, taskID)
	if err != nil || d.URL != "https://deployed-app.com" || d.Cost != 0.25 || !d.CreatedAt.Equal(utc(600, 0)) {
		t.Errorf("deployment read as %+v, %v", d, err)
	}

	sc, err := s.GetScan(ctx, "scan-1")
	if err != nil || sc.Status != domain.ScanCompleted || len(sc.Risks) != 2 || sc.Proposals[0] != "proposal1" ||
		!sc.CreatedAt.Equal(utc(12, 0)) {
		t.Errorf("scan read as %+v, %v", sc, err)
	}

	// Lists mix our documents (BSON dates) with the original's (strings):
	// every one shows up once, newest first, across pages.
	ours := domain.Project{ID: "ours", Name: "new", Status: domain.ProjectActive, CreatedAt: utc(5, 0)}
	if err := s.CreateProject(ctx, ours); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for cursor, n := "", 0; n < 5; n++ {
		items, next, err := s.ListProjects(ctx, store.All(), store.Page{Limit: 1, Cursor: cursor})
		if err != nil {
			t.Fatalf("ListProjects: %v", err)
		}
		for _, p := range items {
			ids = append(ids, p.ID)
		}
		if cursor = next; next == "" {
			break
		}
	}
	if len(ids) != 2 || ids[0] != "ours" || ids[1] != projectID {
		t.Errorf("paged projects %v; want ours (a date sorts above the original's strings), then the original's", ids)
	}
	scans, _, err := s.ListScans(ctx, store.All(), store.Page{})
	if err != nil || len(scans) != 1 {
		t.Errorf("ListScans: %v, %v", scans, err)
	}
}

// Ping fails, quickly, once the server is gone, and after Close.
func TestPingWhenServerGone(t *testing.T) {
	srv := mongotest.StartFerretDB(t)
	s := open(t, srv.URI)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	srv.Stop()
	start := time.Now()
	err := s.Ping(t.Context())
	if err == nil {
		t.Fatal("Ping succeeded with the server stopped")
	}
	if d := time.Since(start); d > mongo.PingTimeout+time.Second {
		t.Errorf("Ping took %v to fail", d)
	}
	t.Logf("Ping with the server gone: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
	s.Close()
	if err := s.Ping(t.Context()); err == nil || !errors.Is(err, driver.ErrClientDisconnected) {
		t.Errorf("Ping after Close = %v, want ErrClientDisconnected", err)
	}
}
