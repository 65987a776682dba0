package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// The OpenAPI document is generated from the Go types; this test fails when
// it changes unnoticed. Refresh with: go test ./internal/api -run OpenAPI -update
func TestOpenAPIGolden(t *testing.T) {
	e := newEnv(t)
	r := e.must(200, "GET", "/openapi.json", nil)
	var doc map[string]any
	r.json(t, &doc)
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi version %v", doc["openapi"])
	}
	paths := doc["paths"].(map[string]any)
	for _, p := range []string{
		"/api/", "/api/health", "/api/projects", "/api/projects/{id}", "/api/tasks", "/api/tasks/{id}",
		"/api/tasks/{id}/cancel", "/api/tasks/{id}/retry", "/api/logs/{task_id}", "/api/deployments/{task_id}",
		"/api/explorer/scan", "/api/explorer/scans", "/api/explorer/scans/{id}", "/api/tasks/{id}/artifacts",
		"/api/tasks/{id}/files", "/api/tasks/{id}/files/{path}", "/api/tasks/{id}/archive.zip",
		"/api/tasks/{id}/events", "/ws/{task_id}", "/apps/{task_id}/{path}",
	} {
		if _, ok := paths[p]; !ok {
			t.Errorf("OpenAPI lacks %s", p)
		}
	}
	if strings.Contains(string(r.body), `"$schema"`) && strings.Contains(string(r.body), `"/schemas/`) {
		t.Errorf("schema links leaked into the document")
	}

	var pretty bytes.Buffer
	if err := json.Indent(&pretty, r.body, "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	golden := filepath.Join("testdata", "openapi.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(want, pretty.Bytes()) {
		t.Fatalf("OpenAPI document changed; review and refresh with -update:\n%s", firstDiff(string(want), pretty.String()))
	}
}

// firstDiff shows the first differing line of two texts.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "line " + strconv.Itoa(i+1) + ":\n- " + x + "\n+ " + y
		}
	}
	return ""
}
