package workspace

import (
	"testing"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/mongo"
	"github.com/catalyst/catalyst/internal/store/mongo/mongotest"
)

// mongoWithTask returns a MongoDB store (the in-process MongoDB-wire server,
// or CATALYST_TEST_MONGO_URL) holding one task.
func mongoWithTask(b testing.TB) (store.Store, string) {
	b.Helper()
	s, err := mongo.Open(b.Context(), mongotest.Start(b), mongotest.DBName(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	p := domain.Project{ID: "p1", Name: "n", Status: domain.ProjectActive}
	task := domain.Task{ID: "3f1c2a9e-0000-4000-8000-000000000001", ProjectID: p.ID, Status: domain.TaskRunning,
		GraphState: domain.NewGraphState([]string{domain.NodePlanner, domain.NodeArchitect, domain.NodeCoder, domain.NodeTester, domain.NodeReviewer, domain.NodeDeployer})}
	if err := s.CreateProject(b.Context(), p); err != nil {
		b.Fatal(err)
	}
	if err := s.CreateTask(b.Context(), task); err != nil {
		b.Fatal(err)
	}
	return s, task.ID
}
