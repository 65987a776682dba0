package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/catalyst/catalyst/internal/domain"
)

// TestCoderRefusesHiddenAndSpoofedNames: a model that names a file like the
// workspace's own scratch files (which the file list once hid), or with a
// bidi override, gets a refusal that says why; nothing is written, and the
// artifact and the log never carry the raw reordering characters.
func TestCoderRefusesHiddenAndSpoofedNames(t *testing.T) {
	wsDir := filepath.Join(t.TempDir(), "ws")
	ans := map[string]any{"notes": "", "delete": []string{".catalyst-tmp-x"}, "files": []map[string]string{
		{"path": "./src//app.js", "content": "ok"},
		{"path": ".catalyst-tmp-123-456", "content": "evil()"},
		{"path": "src/.catalyst-tmp-payload.js", "content": "evil()"},
		{"path": "invoice\u202egnp.js", "content": "spoof"},
		{"path": "nul\x00.js", "content": "x"},
	}}
	c := &Coder{Deps{Models: fixed{ans}, WorkspaceDir: func(string) string { return wsDir }}}
	var l logs
	out, err := c.Run(context.Background(), Input{Task: domain.Task{ID: "t", Prompt: "p"}, Node: "coder", Iteration: 1, Log: l.log})
	if err != nil {
		t.Fatal(err)
	}
	var co CodeOutput
	if err := json.Unmarshal(out.Artifact, &co); err != nil {
		t.Fatal(err)
	}
	if len(co.Files) != 1 || co.Files[0].Path != "src/app.js" {
		t.Fatalf("written %+v, want the canonical src/app.js only", co.Files)
	}
	want := map[string]string{
		".catalyst-tmp-123-456":        "reserved name",
		"src/.catalyst-tmp-payload.js": "reserved name",
		`"invoice\u202egnp.js"`:        "bidirectional",
		`"nul\x00.js"`:                 "NUL",
		".catalyst-tmp-x":              "reserved name",
	}
	if len(co.Refused) != len(want) {
		t.Fatalf("refused %+v", co.Refused)
	}
	for _, r := range co.Refused {
		if w, ok := want[r.Path]; !ok || !strings.Contains(r.Reason, w) {
			t.Errorf("refused %q for %q, want a reason with %q", r.Path, r.Reason, w)
		}
	}
	entries, _ := os.ReadDir(wsDir)
	for _, e := range entries {
		if e.Name() != ".git" && e.Name() != "src" {
			t.Errorf("written: %s", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(wsDir, "src", ".catalyst-tmp-payload.js")); err == nil {
		t.Error("scratch-named payload written")
	}
	if strings.ContainsRune(l.String(), '\u202e') || strings.ContainsRune(string(out.Artifact), '\u202e') {
		t.Errorf("raw bidi override in the log or the artifact:\n%s", l.String())
	}
	if !strings.Contains(l.String(), `Refused to write ".catalyst-tmp-123-456": unsafe path: reserved name`) {
		t.Errorf("refusal not logged clearly:\n%s", l.String())
	}
}
