package termui_test

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
	"github.com/catalyst/catalyst/internal/graph"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/llm/offline"
	"github.com/catalyst/catalyst/internal/pipeline"
	"github.com/catalyst/catalyst/internal/store/sqlite"
	"github.com/catalyst/catalyst/internal/termui"
)

type models struct{ m llm.Model }

func (m models) For(string) llm.Model { return m.m }

// syncBuffer is a bytes.Buffer safe to read while Follow writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func run(t *testing.T, tty bool) (string, domain.Task) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	st.CreateProject(ctx, domain.Project{ID: "p", Name: "p", Status: domain.ProjectActive, CreatedAt: now, UpdatedAt: now})
	b := events.NewBroker()
	steps := agent.Steps(agent.Deps{
		Models: models{offline.New(30 * time.Millisecond)}, Store: st,
		Config:       config.Config{MaxConcurrentTasks: 1, AgentTimeout: time.Minute, MockDeployment: true, PublicURL: "http://localhost:8001"},
		WorkspaceDir: func(id string) string { return filepath.Join(dir, id) },
	})
	x := pipeline.New(pipeline.Options{
		Store: st, Recorder: &events.Recorder{Store: st, Broker: b},
		Graphs:        graph.Builtin(),
		Steps:         func(string) map[string]agent.Step { return steps },
		MaxConcurrent: 1, AgentTimeout: time.Minute, Limits: graph.Limits{MaxFixRounds: 3},
		Served: func() domain.Served { return domain.Served{Provider: "offline", Offline: true} },
	})
	if err := x.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer x.Shutdown(ctx)
	task := domain.NewTask(uuid.NewString(), "p", "Build a todo app", domain.KindBuild, buildNodes(), now)
	if err := st.CreateTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	x.Enqueue(ctx, task.ID)
	time.Sleep(50 * time.Millisecond) // some events are replayed, the rest arrive live
	var out syncBuffer
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	final, err := termui.Follow(fctx, b, st, task.ID, &out, tty)
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), final
}

func TestFollowPlain(t *testing.T) {
	out, final := run(t, false)
	if testing.Verbose() {
		t.Log("\n" + out)
	}
	if final.Status != domain.TaskCompleted {
		t.Fatalf("%s: %s", final.Status, final.Error)
	}
	if strings.Contains(out, "\x1b[") {
		t.Fatal("escape sequences in plain output")
	}
	for _, want := range []string{"✓ Planner", "✓ Architect", "✓ Coder", "✓ Tester", "✓ Reviewer", "✓ Deployer",
		"Task " + final.ID + " completed in", "Task started with " + llm.OfflineLabel, "Files:   6 written: app.js, index.html, package.json, style.css, todo.js, todo.test.js",
		"Tests:   5 passed, 0 failed (node --test", "Review:  approved", "Preview: http://localhost:8001/apps/" + final.ID + "/",
		"external publishing simulated (MOCK_DEPLOYMENT=true)"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`Commit:  [0-9a-f]{40}\n`).MatchString(out) {
		t.Fatalf("no commit sha:\n%s", out)
	}
	// every event exactly once although replay and live stream overlap
	if n := strings.Count(out, "Planner started"); n != 1 {
		t.Fatalf("'Planner started' shown %d times:\n%s", n, out)
	}
	if n := strings.Count(out, "Task completed"); n != 2 { // the System log and the task_state
		t.Fatalf("'Task completed' shown %d times:\n%s", n, out)
	}
}

func TestFollowTTYDrawsAStatusLine(t *testing.T) {
	out, _ := run(t, true)
	if !strings.Contains(out, "\r\x1b[K") || !strings.Contains(out, " working · ") {
		t.Fatalf("no status line:\n%q", out)
	}
}

func TestFollowStopsOnContextCancel(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := termui.Follow(ctx, events.NewBroker(), st, "nope", &bytes.Buffer{}, false); err == nil {
		t.Fatal("no error")
	}
}
