package app

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/domain"
)

// TestEventsAreRedactedAsTheAppWiresThem: with secrets in the configuration
// and PII redaction on (the default), neither the stored log nor a live
// subscriber ever sees a secret, an e-mail address or a card number, in an
// event's message, in its data (a task_state error), or in a token delta.
// It goes through app.New, so it fails if the app stops handing the
// redactor to the Recorder, not only if the redactor breaks.
func TestEventsAreRedactedAsTheAppWiresThem(t *testing.T) {
	const (
		anthropicKey = "sk-ant-api03-REDACTME-0123456789abcdef"
		githubToken  = "ghp_REDACTME0123456789abcdefABCDEF012345"
		email        = "alice.smith@example.com"
		card         = "4111 1111 1111 1111"
	)
	cfg, err := config.Load(config.Sources{YAMLFile: os.DevNull, DotEnvFile: os.DevNull, Environ: func() []string {
		return []string{
			"ANTHROPIC_API_KEY=" + anthropicKey,
			"GITHUB_TOKEN=" + githubToken,
			"CATALYST_DATA_DIR=" + t.TempDir(),
			"CATALYST_OLLAMA_URL=off",
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)

	now := time.Now().UTC()
	if err := a.Store.CreateProject(ctx, domain.Project{ID: "p", Name: "p", Status: domain.ProjectActive, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	const taskID = "redaction-task"
	if err := a.Store.CreateTask(ctx, domain.Task{ID: taskID, ProjectID: "p", Prompt: "x", Status: domain.TaskPending,
		CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	sub := a.Bus.Subscribe(taskID, 16)
	defer sub.Close()

	leak := "key " + anthropicKey + ", token " + githubToken + ", mail " + email + ", card " + card
	data, _ := json.Marshal(map[string]any{"status": "failed", "error": "provider refused " + leak, "nested": []any{map[string]any{"why": leak}}, "cost": 0.25})
	if _, err := a.Recorder.Record(ctx, domain.AgentLog{
		TaskID: taskID, Type: domain.EventTaskState, AgentName: "System", Level: "error",
		Message: "Task failed: " + leak, Data: data,
	}); err != nil {
		t.Fatal(err)
	}
	a.Recorder.Delta(taskID, "Coder", "const cfg = { "+leak+" }")

	var seen []string
	for len(seen) < 2 {
		select {
		case e, ok := <-sub.C():
			if !ok {
				t.Fatalf("subscription closed: %v", sub.Err())
			}
			b, err := e.JSON()
			if err != nil {
				t.Fatal(err)
			}
			seen = append(seen, "live "+string(e.Type)+": "+string(b))
		case <-time.After(5 * time.Second):
			t.Fatalf("live events: got %d, want 2", len(seen))
		}
	}
	stored, err := a.Store.ListLogs(ctx, taskID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 {
		t.Fatalf("stored %d events, want 1 (token deltas are never stored)", len(stored))
	}
	b, _ := json.Marshal(stored[0])
	seen = append(seen, "stored: "+string(b))

	for _, s := range seen {
		for _, secret := range []string{anthropicKey, githubToken, email, card, "REDACTME"} {
			if strings.Contains(s, secret) {
				t.Errorf("%q reached %s", secret, s)
			}
		}
		if !strings.Contains(s, "[redacted]") || !strings.Contains(s, "[email]") || !strings.Contains(s, "[card]") {
			t.Errorf("no redaction marks in %s", s)
		}
	}
	var d map[string]any
	if err := json.Unmarshal(stored[0].Data, &d); err != nil || d["status"] != "failed" || d["cost"] != 0.25 {
		t.Errorf("the data lost its shape: %s (%v)", stored[0].Data, err)
	}
}
