package pipeline

import (
	"context"
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/llm/offline"
	"github.com/catalyst/catalyst/internal/workspace"
)

// offlineModels serves every agent with the offline provider.
type offlineModels struct{ m *offline.Model }

func (o offlineModels) For(string) llm.Model { return o.m }

func TestOfflineTodoAppEndToEnd(t *testing.T) {
	e := newEnv(t, "")
	e.start(offlineModels{offline.New(0)}, nil)
	start := time.Now()
	task := e.submit("Build a todo app")
	final := e.wait(task.ID, 60*time.Second)
	if final.Status != domain.TaskCompleted {
		t.Fatalf("status %s: %s", final.Status, final.Error)
	}
	t.Logf("completed in %s", time.Since(start))
	for _, n := range buildNodes() {
		if final.GraphState[n] != domain.NodeCompleted {
			t.Fatalf("graph_state %v", final.GraphState)
		}
	}
	if !final.Offline || final.Provider != "offline" || final.Served().Label() != llm.OfflineLabel {
		t.Fatalf("served by %+v", final.Served())
	}
	arts := e.artifacts(task.ID)
	for _, n := range buildNodes() {
		if len(arts[n]) != 1 {
			t.Fatalf("%s has %d artifacts", n, len(arts[n]))
		}
	}
	var tr agent.TestOutput
	if err := json.Unmarshal(arts["tester"][0].Output, &tr); err != nil {
		t.Fatal(err)
	}
	if tr.Passed < 5 || tr.Failed != 0 || tr.ExitCode != 0 || tr.ToolMissing || !strings.HasPrefix(tr.Command, "node --test") {
		t.Fatalf("tester report %+v", tr)
	}
	if !strings.Contains(tr.Output, "# pass") {
		t.Fatalf("tester output is not node's: %q", tr.Output)
	}
	dep, err := e.store.GetDeployment(context.Background(), task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(dep.CommitSHA) {
		t.Fatalf("commit sha %q", dep.CommitSHA)
	}
	if dep.URL != "http://localhost:8001/apps/"+task.ID+"/" || !dep.Mock ||
		!strings.Contains(dep.Report, "External publishing simulated (MOCK_DEPLOYMENT=true)") ||
		!strings.Contains(dep.Report, llm.OfflineLabel) || !strings.Contains(dep.Report, dep.CommitSHA) {
		t.Fatalf("deployment %+v", dep)
	}
	out, err := exec.Command("git", "-C", e.workspaceDir(task.ID), "log", "--format=%H").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != dep.CommitSHA {
		t.Fatalf("git log shows %q, deployment says %s", out, dep.CommitSHA)
	}
	ws, err := workspace.Open(e.workspaceDir(task.ID))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := ws.List()
	have := map[string]bool{}
	for _, f := range files {
		have[f.Path] = true
	}
	for _, f := range []string{"index.html", "app.js", "todo.js", "todo.test.js", "package.json"} {
		if !have[f] {
			t.Fatalf("workspace lacks %s: %v", f, files)
		}
	}
	logs := e.logs(task.ID)
	if testing.Verbose() {
		for _, l := range logs {
			t.Logf("%3d %-10s %-9s %s %s", l.Seq, l.Type, l.AgentName, l.Message, l.Data)
		}
	}
	checkLogs(t, logs, domain.TaskCompleted)
	agents := map[string]bool{}
	for _, l := range logs {
		agents[l.AgentName] = true
		if !strings.Contains(l.Message, llm.OfflineLabel) {
			t.Fatalf("a log of an offline task does not say so: %q", l.Message)
		}
	}
	for _, a := range []string{"Planner", "Architect", "Coder", "Tester", "Reviewer", "Deployer", "System"} {
		if !agents[a] {
			t.Fatalf("no log of %s", a)
		}
	}
}
