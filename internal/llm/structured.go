package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/catalyst/catalyst/internal/domain"
)

// maxEchoedAnswer bounds how much of an invalid answer is sent back to the
// model in the repair round.
const maxEchoedAnswer = 16 << 10

// ExtractJSON finds the JSON document in a model's answer. Models wrap JSON
// in ```json fences or put prose before and after it; the answer is
// untrusted, so this never panics and returns an error when no complete
// JSON object or array is present.
func ExtractJSON(text string) (json.RawMessage, error) {
	s := strings.TrimSpace(text)
	if s == "" {
		return nil, errors.New("the answer is empty")
	}
	if json.Valid([]byte(s)) && (s[0] == '{' || s[0] == '[') {
		return json.RawMessage(s), nil
	}
	// Fenced blocks first: ```json ... ``` or ``` ... ```.
	for rest := s; ; {
		i := strings.Index(rest, "```")
		if i < 0 {
			break
		}
		body := rest[i+3:]
		if nl := strings.IndexByte(body, '\n'); nl >= 0 && !strings.ContainsAny(body[:nl], "{[") {
			body = body[nl+1:] // skip the info string ("json")
		}
		end := strings.Index(body, "```")
		if end < 0 {
			break
		}
		if c := strings.TrimSpace(body[:end]); c != "" && (c[0] == '{' || c[0] == '[') && json.Valid([]byte(c)) {
			return json.RawMessage(c), nil
		}
		rest = body[end+3:]
	}
	// Then the first complete value starting at a '{' or '['.
	tried := 0
	for i := 0; i < len(s) && tried < 64; i++ {
		if s[i] != '{' && s[i] != '[' {
			continue
		}
		tried++
		dec := json.NewDecoder(strings.NewReader(s[i:]))
		var v json.RawMessage
		if err := dec.Decode(&v); err == nil {
			return v, nil
		}
	}
	return nil, errors.New("the answer contains no JSON object or array")
}

// schemaCache holds compiled schemas keyed by their text: agents send the
// same few schemas over and over.
var schemaCache sync.Map // string -> *jsonschema.Schema

type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("llm: schema refers to %s; external references are not loaded", url)
}

// CompileSchema compiles a JSON Schema (draft 2020-12 unless it says
// otherwise). External $refs are refused.
func CompileSchema(schema json.RawMessage) (*jsonschema.Schema, error) {
	key := string(schema)
	if s, ok := schemaCache.Load(key); ok {
		return s.(*jsonschema.Schema), nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, fmt.Errorf("llm: request schema is not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(noLoader{})
	const loc = "mem:///request-schema.json"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, fmt.Errorf("llm: request schema: %w", err)
	}
	s, err := c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("llm: request schema does not compile: %w", err)
	}
	schemaCache.Store(key, s)
	return s, nil
}

// ValidateJSON checks doc against schema and returns "" when it is valid,
// otherwise a one-line description of the violation.
func ValidateJSON(schema *jsonschema.Schema, doc json.RawMessage) string {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return "not valid JSON: " + err.Error()
	}
	if err := schema.Validate(v); err != nil {
		return violation(err)
	}
	return ""
}

// violation flattens jsonschema's multi-line error into one line without
// the schema's internal URL.
func violation(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	lines := strings.Split(ve.Error(), "\n")
	var parts []string
	for _, l := range lines[1:] {
		if l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "-")); l != "" {
			parts = append(parts, l)
		}
	}
	if len(parts) == 0 {
		return lines[0]
	}
	return strings.Join(parts, "; ")
}

// checkAnswer extracts the document from a response and validates it.
func checkAnswer(schema *jsonschema.Schema, resp *Response) (json.RawMessage, string) {
	var doc json.RawMessage
	var err error
	if len(bytes.TrimSpace(resp.JSON)) > 0 {
		doc, err = ExtractJSON(string(resp.JSON))
	} else {
		doc, err = ExtractJSON(resp.Text)
	}
	if err != nil {
		return nil, err.Error()
	}
	if v := ValidateJSON(schema, doc); v != "" {
		return nil, v
	}
	return doc, ""
}

// truncated builds the ErrTruncated of a length-stopped structured answer.
func truncated(req Request, resp *Response, usage domain.Usage, cost float64) error {
	return &TruncatedError{Provider: resp.Provider, Model: resp.Model, MaxTokens: req.MaxTokens,
		Text: resp.Text + string(resp.JSON), Usage: usage, Cost: cost}
}

// generateLimited calls m; a structured answer stopped by the output limit
// is asked again once with max_tokens raised to limit (when that is more),
// and otherwise becomes ErrTruncated: a cut-off document is never parsed.
// Usage and cost of both calls are added up.
func generateLimited(ctx context.Context, m Model, req Request, limit int) (*Response, error) {
	resp, err := m.Generate(ctx, req)
	if err != nil || len(req.Schema) == 0 || resp.StopReason != StopLength {
		return resp, err
	}
	if req.MaxTokens <= 0 || limit <= req.MaxTokens {
		return nil, truncated(req, resp, resp.Usage, resp.Cost)
	}
	bigger := req
	bigger.MaxTokens = limit
	resp2, err := m.Generate(ctx, bigger)
	if err != nil {
		return nil, fmt.Errorf("llm: retry with max_tokens %d after an answer cut off at %d: %w", limit, req.MaxTokens, err)
	}
	resp2.Usage = resp.Usage.Add(resp2.Usage)
	resp2.Cost += resp.Cost
	if resp2.StopReason == StopLength {
		return nil, truncated(bigger, resp2, resp2.Usage, resp2.Cost)
	}
	return resp2, nil
}

// generateStructured calls m and, when the request has a schema, validates
// the answer; an invalid answer gets exactly one repair round with the
// violation fed back. Usage and cost of both rounds are added up. limit is
// the largest max_tokens the model takes (see generateLimited).
func generateStructured(ctx context.Context, m Model, req Request, limit int) (*Response, error) {
	if len(req.Schema) == 0 {
		return m.Generate(ctx, req)
	}
	schema, err := CompileSchema(req.Schema)
	if err != nil {
		return nil, err
	}
	resp, err := generateLimited(ctx, m, req, limit)
	if err != nil {
		return nil, err
	}
	doc, bad := checkAnswer(schema, resp)
	if bad == "" {
		resp.JSON = doc
		return resp, nil
	}
	answer := string(resp.JSON)
	if answer == "" {
		answer = resp.Text
	}
	if len(answer) > maxEchoedAnswer {
		answer = answer[:maxEchoedAnswer]
	}
	repair := req
	repair.Messages = append(append([]Message(nil), req.Messages...),
		Message{Role: RoleAssistant, Content: answer},
		Message{Role: RoleUser, Content: "Your answer does not satisfy the required JSON Schema: " + bad +
			"\nAnswer again with only a JSON document that satisfies the schema."},
	)
	resp2, err := generateLimited(ctx, m, repair, limit)
	if err != nil {
		var te *TruncatedError
		if errors.As(err, &te) {
			te.Usage = te.Usage.Add(resp.Usage)
			te.Cost += resp.Cost
			return nil, te
		}
		return nil, fmt.Errorf("llm: repair round after schema violation (%s): %w", bad, err)
	}
	resp2.Usage = resp.Usage.Add(resp2.Usage)
	resp2.Cost += resp.Cost
	doc, bad = checkAnswer(schema, resp2)
	if bad != "" {
		return nil, &SchemaError{Violation: bad}
	}
	resp2.JSON = doc
	return resp2, nil
}
