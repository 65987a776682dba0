package llm

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/config"
)

// FuzzStructuredOutput feeds arbitrary model output through extraction and
// validation, directly and through the repair path: nothing may panic, an
// accepted document must be valid JSON satisfying the schema, and a rejected
// one must fail with a SchemaError.
func FuzzStructuredOutput(f *testing.F) {
	for _, s := range []string{
		`{"title":"a","points":2}`, "```json\n{\"title\":\"a\",\"points\":2}\n```", `prose {"title":"a","points":0} more`,
		`[{"title":1}]`, `{"title":"a","points":2,"extra":true}`, "```\n{\n```", `{"a":`, "\x00{[", `{"title":"\ud800","points":1e400}`,
	} {
		f.Add(s)
	}
	schema, err := CompileSchema(storySchema)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		doc, err := ExtractJSON(text)
		if err == nil {
			if !json.Valid(doc) {
				t.Fatalf("ExtractJSON returned invalid JSON %q", doc)
			}
			if ValidateJSON(schema, doc) == "" {
				var v struct {
					Title  *string      `json:"title"`
					Points *json.Number `json:"points"`
				}
				// points may exceed int64 (1e400 is an integer to JSON Schema).
				if json.Unmarshal(doc, &v) != nil || v.Title == nil || v.Points == nil || strings.HasPrefix(string(*v.Points), "-") || *v.Points == "0" {
					t.Fatalf("accepted a document that breaks the schema: %s", doc)
				}
			}
		}
		m := &fakeModel{fn: okText(text)}
		r, err := NewRouter(config.LLMConfig{OllamaURL: "off"}, RouterOptions{Offline: m, Retry: RetryPolicy{MaxAttempts: 1, BaseDelay: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := r.For("").Generate(context.Background(), Request{Schema: storySchema})
		var se *SchemaError
		switch {
		case err == nil:
			if ValidateJSON(schema, resp.JSON) != "" {
				t.Fatalf("returned an invalid document %s", resp.JSON)
			}
		case !errors.As(err, &se) || se.Violation == "":
			t.Fatalf("want a SchemaError naming the violation, got %v", err)
		}
	})
}
