// Package google is the Gemini API provider, over the official SDK
// (google.golang.org/genai).
//
// Structured output sets responseMimeType application/json with
// responseJsonSchema (the request's JSON Schema as is). Tools are function
// declarations with parametersJsonSchema; calls and results travel as
// functionCall and functionResponse parts. The base URL is
// configurable (GOOGLE_GEMINI_BASE_URL, which the SDK also reads). genai
// does not expose Retry-After, so a transport wrapper records it for the
// call that received it; genai's own retries stay off (its default).
package google

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/genai"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/llm"
)

// Model is one Gemini model.
type Model struct {
	client   *genai.Client
	provider string
	model    string
}

// New builds a model.
func New(cfg llm.ProviderConfig) (*Model, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("google: no API key")
	}
	if cfg.Model == "" {
		return nil, errors.New("google: no model")
	}
	hc := &http.Client{}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		hc = &c
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = hintTransport{base: base}
	cc := &genai.ClientConfig{
		APIKey:      cfg.APIKey,
		Backend:     genai.BackendGeminiAPI,
		HTTPClient:  hc,
		HTTPOptions: genai.HTTPOptions{BaseURL: cfg.BaseURL},
	}
	client, err := genai.NewClient(context.Background(), cc)
	if err != nil {
		return nil, fmt.Errorf("google: %w", err)
	}
	p := cfg.Provider
	if p == "" {
		p = llm.ProviderGoogle
	}
	return &Model{client: client, provider: p, model: cfg.Model}, nil
}

// Factory adapts New to llm.Factory.
func Factory(cfg llm.ProviderConfig) (llm.Model, error) { return New(cfg) }

// hint collects the Retry-After of a failed response for one call.
type hint struct {
	mu         sync.Mutex
	retryAfter time.Duration
}

type hintKey struct{}

type hintTransport struct{ base http.RoundTripper }

func (t hintTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if resp != nil && resp.StatusCode >= 400 {
		if h, ok := r.Context().Value(hintKey{}).(*hint); ok {
			h.mu.Lock()
			h.retryAfter = llm.RetryAfter(resp.Header, time.Now())
			h.mu.Unlock()
		}
	}
	return resp, err
}

func (m *Model) config(req llm.Request) (*genai.GenerateContentConfig, error) {
	c := &genai.GenerateContentConfig{}
	var sys []string
	for _, s := range []string{req.System, req.Context} {
		if strings.TrimSpace(s) != "" {
			sys = append(sys, s)
		}
	}
	if len(sys) > 0 {
		c.SystemInstruction = genai.NewContentFromText(strings.Join(sys, "\n\n"), genai.RoleUser)
	}
	if req.MaxTokens > 0 {
		c.MaxOutputTokens = int32(req.MaxTokens)
	}
	if req.Temperature != nil {
		c.Temperature = genai.Ptr(float32(*req.Temperature))
	}
	if len(req.Tools) > 0 {
		t := &genai.Tool{}
		for _, tool := range req.Tools {
			t.FunctionDeclarations = append(t.FunctionDeclarations, &genai.FunctionDeclaration{
				Name: tool.Name, Description: tool.Description, ParametersJsonSchema: llm.ToolSchema(tool),
			})
		}
		c.Tools = []*genai.Tool{t}
	}
	if len(req.Schema) > 0 {
		var schema map[string]any
		if err := json.Unmarshal(req.Schema, &schema); err != nil {
			return nil, fmt.Errorf("google: request schema: %w", err)
		}
		delete(schema, "$schema")
		c.ResponseMIMEType = "application/json"
		c.ResponseJsonSchema = schema
	}
	return c, nil
}

// contents converts the messages. A model turn carries its function calls
// (with their thought signatures: Gemini 3 refuses a call sent back without
// it); a user turn its function responses, "output" or "error" as the API
// documents, before any text.
func contents(msgs []llm.Message) []*genai.Content {
	var out []*genai.Content
	for _, msg := range msgs {
		if msg.Role == llm.RoleAssistant {
			c := &genai.Content{Role: genai.RoleModel}
			if msg.Content != "" || len(msg.ToolCalls) == 0 {
				c.Parts = append(c.Parts, genai.NewPartFromText(msg.Content))
			}
			for _, tc := range msg.ToolCalls {
				part := genai.NewPartFromFunctionCall(tc.Name, llm.ArgumentsMap(tc.Arguments))
				part.FunctionCall.ID = tc.ID
				part.ThoughtSignature = tc.Signature
				c.Parts = append(c.Parts, part)
			}
			out = append(out, c)
			continue
		}
		c := &genai.Content{Role: genai.RoleUser}
		for _, r := range msg.ToolResults {
			key := "output"
			if r.IsError {
				key = "error"
			}
			part := genai.NewPartFromFunctionResponse(r.Name, map[string]any{key: r.Content})
			part.FunctionResponse.ID = r.CallID
			c.Parts = append(c.Parts, part)
		}
		if msg.Content != "" || len(msg.ToolResults) == 0 {
			c.Parts = append(c.Parts, genai.NewPartFromText(msg.Content))
		}
		out = append(out, c)
	}
	return out
}

// Generate makes one call (no retries).
func (m *Model) Generate(ctx context.Context, req llm.Request) (*llm.Response, error) {
	cfg, err := m.config(req)
	if err != nil {
		return nil, err
	}
	h := &hint{}
	ctx = context.WithValue(ctx, hintKey{}, h)
	resp := &llm.Response{Provider: m.provider, Model: m.model}
	var usage *genai.GenerateContentResponseUsageMetadata
	var text strings.Builder
	var calls callAssembler
	if req.OnDelta == nil {
		r, err := m.client.Models.GenerateContent(ctx, m.model, contents(req.Messages), cfg)
		if err != nil {
			return nil, m.apiError(err, h)
		}
		m.parts(r, &text, &calls, nil)
		m.meta(resp, r)
		usage = r.UsageMetadata
	} else {
		for r, err := range m.client.Models.GenerateContentStream(ctx, m.model, contents(req.Messages), cfg) {
			if err != nil {
				return nil, m.apiError(err, h)
			}
			m.parts(r, &text, &calls, req.OnDelta)
			m.meta(resp, r)
			if r.UsageMetadata != nil {
				usage = r.UsageMetadata
			}
		}
	}
	resp.Text = text.String()
	resp.ToolCalls = llm.FinishToolCalls(calls.result(), len(req.Messages))
	resp.StopReason = llm.FinalStop(stopReason(resp.ProviderStopReason), len(resp.ToolCalls))
	if usage != nil {
		cached := int64(usage.CachedContentTokenCount)
		resp.Usage = domain.Usage{
			InputTokens:     int64(usage.PromptTokenCount) - cached,
			OutputTokens:    int64(usage.CandidatesTokenCount) + int64(usage.ThoughtsTokenCount),
			CacheReadTokens: cached,
		}
	}
	if len(req.Schema) > 0 && resp.StopReason != llm.StopLength {
		if doc, err := llm.ExtractJSON(resp.Text); err == nil {
			resp.JSON = doc
		}
	}
	return resp, nil
}

// parts collects the text (thoughts left out) and function calls of one
// response or stream chunk.
func (m *Model) parts(r *genai.GenerateContentResponse, text *strings.Builder, calls *callAssembler, onDelta func(string)) {
	if len(r.Candidates) == 0 || r.Candidates[0].Content == nil {
		return
	}
	for _, p := range r.Candidates[0].Content.Parts {
		switch {
		case p == nil || p.Thought:
		case p.FunctionCall != nil:
			calls.add(p.FunctionCall, p.ThoughtSignature)
		case p.Text != "":
			text.WriteString(p.Text)
			if onDelta != nil {
				onDelta(p.Text)
			}
		}
	}
}

// stopReason maps Gemini's finishReason to the llm.Stop* constants.
func stopReason(r string) string {
	switch genai.FinishReason(r) {
	case genai.FinishReasonStop, "", genai.FinishReasonUnspecified:
		return llm.StopEnd
	case genai.FinishReasonMaxTokens:
		return llm.StopLength
	}
	// SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII,
	// MALFORMED_FUNCTION_CALL (no call to answer), ...
	return llm.StopOther
}

func (m *Model) meta(resp *llm.Response, r *genai.GenerateContentResponse) {
	if r.ModelVersion != "" {
		resp.Model = r.ModelVersion
	}
	if len(r.Candidates) > 0 && r.Candidates[0].FinishReason != "" {
		resp.ProviderStopReason = string(r.Candidates[0].FinishReason)
	}
}

func (m *Model) apiError(err error, h *hint) error {
	var ae genai.APIError
	if !errors.As(err, &ae) {
		var pae *genai.APIError
		if !errors.As(err, &pae) {
			return llm.TransportError(m.provider, err)
		}
		ae = *pae
	}
	h.mu.Lock()
	ra := h.retryAfter
	h.mu.Unlock()
	code := ae.Code
	if code < 300 {
		code = 0
	}
	msg := ae.Message
	if ae.Status != "" && !strings.Contains(msg, ae.Status) {
		msg = ae.Status + ": " + msg
	}
	return &llm.APIError{Provider: m.provider, StatusCode: code, RetryAfter: ra, Message: msg, Err: err}
}
