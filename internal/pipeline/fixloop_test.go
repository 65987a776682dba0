package pipeline

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/tasks"
)

// sumFiles is a tiny node project whose test passes only when add is right;
// name names the test so that failures differ between rounds when asked to.
func sumFiles(correct bool, name string) *llm.Response {
	op := "-"
	if correct {
		op = "+"
	}
	return jsonResp(map[string]any{
		"files": []map[string]string{
			{"path": "sum.js", "content": "module.exports = (a, b) => a " + op + " b;\n"},
			{"path": "sum.test.js", "content": "const test = require('node:test');\nconst assert = require('node:assert/strict');\nconst add = require('./sum.js');\n" +
				"test(" + fmt.Sprintf("%q", name) + ", () => { assert.equal(add(1, 2), 3); });\n"},
			{"path": "index.html", "content": "<!doctype html><title>sum</title>"},
		},
		"delete": []string{},
		"notes":  "sum",
	})
}

func TestFixLoopSendsTestFailuresBackToTheCoder(t *testing.T) {
	e := newEnv(t, "")
	m := newScripted().on("coder", func(_ context.Context, call int, _ llm.Request) (*llm.Response, error) {
		return sumFiles(call >= 2, "adds two numbers"), nil
	})
	e.start(m, nil)
	task := e.submit("Build a sum module")
	final := e.wait(task.ID, time.Minute)
	if final.Status != domain.TaskCompleted || final.FixIteration != 1 {
		t.Fatalf("status %s fix rounds %d: %s", final.Status, final.FixIteration, final.Error)
	}
	if n := m.count("coder"); n != 2 {
		t.Fatalf("coder called %d times", n)
	}
	second := m.requests("coder")[1].Messages[0].Content
	for _, want := range []string{"Fix round 1", "adds two numbers", "=== FILE: sum.js ===", "a - b"} {
		if !strings.Contains(second, want) {
			t.Fatalf("the fix request lacks %q:\n%s", want, second)
		}
	}
	arts := e.artifacts(task.ID)
	if len(arts["coder"]) != 2 || len(arts["tester"]) != 2 || len(arts["planner"]) != 1 || len(arts["deployer"]) != 1 {
		t.Fatalf("artifacts per node: coder %d tester %d planner %d deployer %d", len(arts["coder"]), len(arts["tester"]), len(arts["planner"]), len(arts["deployer"]))
	}
	checkLogs(t, e.logs(task.ID), domain.TaskCompleted)
}

func TestFixLoopFailsAfterMaxRoundsThenRetryGetsOneMore(t *testing.T) {
	e := newEnv(t, "")
	e.cfg.MaxFixIterations = 2
	passFrom := 100
	m := newScripted().on("coder", func(_ context.Context, call int, _ llm.Request) (*llm.Response, error) {
		// a different failing test each round: not a stall, just never passing
		return sumFiles(call >= passFrom, fmt.Sprintf("round %d", call)), nil
	})
	m.cost = 0.01
	e.start(m, nil)
	task := e.submit("Build a sum module")
	final := e.wait(task.ID, time.Minute)
	if final.Status != domain.TaskFailed {
		t.Fatalf("status %s", final.Status)
	}
	if n := m.count("coder"); n != 3 {
		t.Fatalf("coder called %d times, want 1 + 2 fix rounds", n)
	}
	if !strings.Contains(final.Error, "still failing after 2 fix rounds") || !strings.Contains(final.Error, "round 3") {
		t.Fatalf("reason %q", final.Error)
	}
	if final.GraphState["tester"] != domain.NodeFailed || final.GraphState["deployer"] != domain.NodePending {
		t.Fatalf("graph_state %v", final.GraphState)
	}
	checkLogs(t, e.logs(task.ID), domain.TaskFailed)
	// Cost = sum of node costs = one cent per model call.
	calls := m.count("planner") + m.count("architect") + m.count("coder") + m.count("reviewer") + m.count("tester")
	if d := final.Cost - 0.01*float64(calls); d > 1e-9 || d < -1e-9 {
		t.Fatalf("cost %v for %d calls", final.Cost, calls)
	}

	// Retry: one more fix round with the last findings; this time it passes.
	passFrom = 4
	if _, err := e.svc.Retry(context.Background(), tasks.Local(), task.ID); err != nil {
		t.Fatal(err)
	}
	final = e.wait(task.ID, time.Minute)
	if final.Status != domain.TaskCompleted || final.FixIteration != 3 {
		t.Fatalf("after retry: %s, fix rounds %d: %s", final.Status, final.FixIteration, final.Error)
	}
	if m.count("planner") != 1 || m.count("architect") != 1 || m.count("coder") != 4 {
		t.Fatalf("calls after retry: planner %d architect %d coder %d", m.count("planner"), m.count("architect"), m.count("coder"))
	}
	if !strings.Contains(m.requests("coder")[3].Messages[0].Content, "round 3") {
		t.Fatal("the retried fix round did not get the last failures")
	}
	checkLogs(t, e.logs(task.ID), domain.TaskCompleted)
}

func TestStalledFixLoopStopsEarly(t *testing.T) {
	e := newEnv(t, "")
	e.cfg.MaxFixIterations = 3
	m := newScripted().on("coder", func(_ context.Context, call int, _ llm.Request) (*llm.Response, error) {
		return sumFiles(false, "adds two numbers"), nil // the same bug every time
	})
	e.start(m, nil)
	task := e.submit("Build a sum module")
	final := e.wait(task.ID, time.Minute)
	if final.Status != domain.TaskFailed || !strings.Contains(final.Error, "stalled") || !strings.Contains(final.Error, "adds two numbers") {
		t.Fatalf("status %s: %q", final.Status, final.Error)
	}
	if n := m.count("coder"); n != 2 {
		t.Fatalf("coder called %d times; a stalled loop stops after the first fix round that changes nothing", n)
	}
}

func TestReviewRequestingChangesSendsFindingsBack(t *testing.T) {
	e := newEnv(t, "")
	m := newScripted().
		on("coder", func(_ context.Context, call int, _ llm.Request) (*llm.Response, error) {
			return sumFiles(true, "adds"), nil
		}).
		on("reviewer", func(_ context.Context, call int, _ llm.Request) (*llm.Response, error) {
			if call == 1 {
				return jsonResp(map[string]any{"approved": false, "summary": "no input validation",
					"findings": []map[string]any{{"severity": "major", "file": "sum.js", "line": 1, "message": "add accepts strings"}}}), nil
			}
			return jsonResp(map[string]any{"approved": true, "summary": "ok", "findings": []map[string]any{}}), nil
		})
	e.start(m, nil)
	task := e.submit("Build a sum module")
	final := e.wait(task.ID, time.Minute)
	if final.Status != domain.TaskCompleted || final.FixIteration != 1 || m.count("coder") != 2 {
		t.Fatalf("status %s, fix rounds %d, coder calls %d: %s", final.Status, final.FixIteration, m.count("coder"), final.Error)
	}
	if !strings.Contains(m.requests("coder")[1].Messages[0].Content, "add accepts strings") {
		t.Fatal("the review finding was not sent to the coder")
	}
}
