package api

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/mongo"
	"github.com/catalyst/catalyst/internal/store/mongo/mongotest"
)

// Documents written by the original Python backend (Motor: ObjectId _id,
// ISO 8601 strings for times, fields we never wrote) are served by our API
// as they are.
func TestAPIReadsDocumentsOfThePythonOriginal(t *testing.T) {
	ctx := context.Background()
	uri := mongotest.Start(t)
	db := mongotest.DBName(t)

	client, err := mongodrv.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	raw := client.Database(db)
	const (
		projectID = "5f0c2a1e-3b7a-4c1e-9d2f-0a1b2c3d4e5f"
		taskID    = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
	)
	insert := func(coll string, doc bson.M) {
		t.Helper()
		if _, err := raw.Collection(coll).InsertOne(ctx, doc); err != nil {
			t.Fatalf("insert into %s: %v", coll, err)
		}
	}
	insert("projects", bson.M{"_id": bson.NewObjectID(), "id": projectID, "name": "Legacy", "description": "made by FastAPI",
		"status": "active", "created_at": "2025-10-14T09:30:12.123456", "owner": "someone", "tags": bson.A{"x"}})
	insert("tasks", bson.M{"_id": bson.NewObjectID(), "id": taskID, "project_id": projectID, "prompt": "Build a todo app",
		"graph_state": bson.M{"planner": "completed", "architect": "completed", "coder": "completed", "tester": "completed", "reviewer": "completed", "deployer": "completed"},
		"status":      "completed", "cost": 0.85, "created_at": "2025-10-14T09:31:00.000000+00:00", "result": bson.M{"legacy": true}})
	insert("agent_logs", bson.M{"_id": bson.NewObjectID(), "id": "log-1", "task_id": taskID, "agent_name": "Planner",
		"message": "Analysing requirements", "timestamp": "2025-10-14T09:31:01.5"})
	insert("deployments", bson.M{"_id": bson.NewObjectID(), "id": "dep-1", "task_id": taskID, "url": "https://deployed-app.com",
		"commit_sha": "abc123", "cost": 0.25, "report": "Deployed (mock)", "created_at": "2025-10-14T09:40:00"})
	insert("explorer_scans", bson.M{"_id": bson.NewObjectID(), "id": "scan-1", "system_name": "SailPoint IdentityIQ",
		"brief": "An IAM system", "risks": bson.A{"risk1"}, "proposals": bson.A{"proposal1"}, "created_at": "2025-10-14T10:00:00"})

	st, err := mongo.Open(ctx, uri, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := newEnv(t, withStore(func(store.Store) store.Store { return st }))

	var p domain.Project
	e.must(200, "GET", "/api/projects/"+projectID, nil).json(t, &p)
	if p.Name != "Legacy" || p.Status != domain.ProjectActive || p.CreatedAt.Year() != 2025 || p.CreatedAt.Nanosecond() == 0 {
		t.Errorf("project: %+v", p)
	}
	var tk domain.Task
	e.must(200, "GET", "/api/tasks/"+taskID, nil).json(t, &tk)
	if tk.Cost != 0.85 || tk.Status != domain.TaskCompleted || tk.GraphState["deployer"] != domain.NodeCompleted {
		t.Errorf("task: %+v", tk)
	}
	var tasks []domain.Task
	e.must(200, "GET", "/api/tasks?project_id="+projectID, nil).json(t, &tasks)
	if len(tasks) != 1 || tasks[0].ID != taskID {
		t.Errorf("tasks of project: %+v", tasks)
	}
	var logs []domain.AgentLog
	e.must(200, "GET", "/api/logs/"+taskID, nil).json(t, &logs)
	if len(logs) != 1 || logs[0].AgentName != "Planner" || logs[0].Message != "Analysing requirements" {
		t.Errorf("logs: %+v", logs)
	}
	var dep domain.Deployment
	e.must(200, "GET", "/api/deployments/"+taskID, nil).json(t, &dep)
	if dep.CommitSHA != "abc123" || dep.Cost != 0.25 || dep.URL != "https://deployed-app.com" {
		t.Errorf("deployment: %+v", dep)
	}
	var scans []domain.ExplorerScan
	e.must(200, "GET", "/api/explorer/scans", nil).json(t, &scans)
	if len(scans) != 1 || scans[0].SystemName != "SailPoint IdentityIQ" || len(scans[0].Risks) != 1 {
		t.Errorf("scans: %+v", scans)
	}

	// A new project beside the legacy one: both listed, newest first.
	e.must(200, "POST", "/api/projects", map[string]string{"name": "New", "description": "from Go"})
	var ps []domain.Project
	e.must(200, "GET", "/api/projects", nil).json(t, &ps)
	if len(ps) != 2 || ps[0].Name != "New" || ps[1].ID != projectID {
		t.Errorf("projects: %+v", ps)
	}
}
