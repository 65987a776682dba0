// Package offline is the model Catalyst uses when no LLM is configured: it
// answers every agent's request with a deterministic, schema-valid document
// derived from the request, so that the whole pipeline runs end to end on a
// fresh machine. For "Build a todo app" it writes a small working todo app;
// for anything else a minimal app that says what it is. It never pretends to
// be a model: its Provider is "offline" and callers label it with
// llm.OfflineLabel. With tools, the coder's loop gets the same app through
// a script of tool calls (tools.go).
//
// It is a demonstration and a test double, not a product.
package offline

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/catalyst/catalyst/internal/llm"
)

// Provider and ModelName are what every Response says.
const (
	Provider  = "offline"
	ModelName = "offline"
)

//go:embed app/*
var todoApp embed.FS

// chunk is the size of the text deltas streamed through OnDelta.
const chunk = 48

// Model is the offline provider. The zero value answers instantly.
type Model struct {
	latency time.Duration
}

// New returns an offline model that sleeps latency per call.
func New(latency time.Duration) *Model { return &Model{latency: latency} }

// Offline reports that this model is the offline provider; wrappers may
// forward it so that callers can label a task before its first answer.
func (m *Model) Offline() bool { return true }

// Generate answers req for its Agent.
func (m *Model) Generate(ctx context.Context, req llm.Request) (*llm.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(req.Tools) > 0 {
		resp, err := toolTurn(req)
		if err != nil {
			return nil, err
		}
		if err := m.stream(ctx, req, resp.Text); err != nil {
			return nil, err
		}
		return resp, nil
	}
	doc, err := answer(req)
	if err != nil {
		return nil, err
	}
	// Unescaped like a model's own JSON: json.Marshal's \u003c for "<" would
	// show in the dashboard's typing line.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	text := strings.TrimSuffix(buf.String(), "\n")
	if err := m.stream(ctx, req, text); err != nil {
		return nil, err
	}
	resp := &llm.Response{
		Text:               text,
		Provider:           Provider,
		Model:              ModelName,
		StopReason:         llm.StopEnd,
		ProviderStopReason: "end_turn",
	}
	if len(req.Schema) > 0 {
		resp.JSON = json.RawMessage(text)
	}
	return resp, nil
}

// stream sends text through OnDelta in pieces, spreading the latency over
// them so that "typing" is visible; without OnDelta it only sleeps.
func (m *Model) stream(ctx context.Context, req llm.Request, text string) error {
	if req.OnDelta == nil {
		return sleep(ctx, m.latency)
	}
	if text == "" {
		return sleep(ctx, m.latency)
	}
	pieces := split(text)
	pause := m.latency / time.Duration(len(pieces))
	for _, p := range pieces {
		if err := sleep(ctx, pause); err != nil {
			return err
		}
		req.OnDelta(p)
	}
	return nil
}

// split cuts s into pieces of about chunk bytes on rune boundaries.
func split(s string) []string {
	var out []string
	for len(s) > chunk {
		i := chunk
		for i < len(s) && !utf8.RuneStart(s[i]) {
			i++
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	return append(out, s)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func answer(req llm.Request) (any, error) {
	p := promptOf(req)
	switch strings.ToLower(req.Agent) {
	case "planner":
		return plan(p), nil
	case "architect":
		return design(p), nil
	case "coder":
		return code(p)
	case "tester":
		return tests(req), nil
	case "reviewer":
		return review(req), nil
	case "explorer":
		return explore(req), nil
	}
	if len(req.Schema) > 0 {
		return nil, fmt.Errorf("offline provider: no answer for agent %q", req.Agent)
	}
	return map[string]string{"text": "offline provider (no LLM configured): " + p.text}, nil
}
