package events

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store/sqlite"
)

func TestRedactDataKeepsShapeAndNumbers(t *testing.T) {
	redact := func(s string) string { return strings.ReplaceAll(s, "SECRET", "[redacted]") }
	for _, c := range []struct{ in, want string }{
		{`{"error":"key SECRET","n":12345678901234567890,"ok":true,"x":null}`, `{"error":"key [redacted]","n":12345678901234567890,"ok":true,"x":null}`},
		{`["SECRET",{"a":["b SECRET"]}]`, `["[redacted]",{"a":["b [redacted]"]}]`},
		{`"SECRET"`, `"[redacted]"`},
		{`{"SECRET":1}`, `{"SECRET":1}`}, // keys are the code's, not data
	} {
		if got := string(redactData(json.RawMessage(c.in), redact)); got != c.want {
			t.Errorf("redactData(%s) = %s, want %s", c.in, got, c.want)
		}
	}
	if got := redactData(nil, redact); got != nil {
		t.Errorf("nil data became %s", got)
	}
}

// TestRecorderRedactsMessageDataAndDeltas: a Recorder with a redactor scrubs
// what it stores and what it publishes, token deltas included.
func TestRecorderRedactsMessageDataAndDeltas(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateProject(ctx, domain.Project{ID: "p", Name: "p", Status: domain.ProjectActive}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateTask(ctx, domain.Task{ID: "t", ProjectID: "p", Status: domain.TaskPending}); err != nil {
		t.Fatal(err)
	}
	b := NewBroker()
	sub := b.Subscribe("t", 8)
	defer sub.Close()
	r := &Recorder{Store: st, Broker: b, Redact: func(s string) string { return strings.ReplaceAll(s, "SECRET", "[redacted]") }}
	if _, err := r.Record(ctx, domain.AgentLog{TaskID: "t", Message: "m SECRET", Data: json.RawMessage(`{"error":"e SECRET"}`)}); err != nil {
		t.Fatal(err)
	}
	r.Delta("t", "Coder", "d SECRET")
	for i := 0; i < 2; i++ {
		e := <-sub.C()
		raw, _ := e.JSON()
		if strings.Contains(string(raw), "SECRET") {
			t.Errorf("published: %s", raw)
		}
	}
	logs, err := st.ListLogs(ctx, "t", 0, 10)
	if err != nil || len(logs) != 1 {
		t.Fatalf("stored %v, %v", logs, err)
	}
	raw, _ := json.Marshal(logs[0])
	if strings.Contains(string(raw), "SECRET") {
		t.Errorf("stored: %s", raw)
	}
}
