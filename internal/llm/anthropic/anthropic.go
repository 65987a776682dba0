// Package anthropic is the Anthropic Messages API provider, over the
// official SDK (github.com/anthropics/anthropic-sdk-go/v2).
//
// Structured output goes through one forced tool whose input_schema is the
// request's schema. The stable prefix (Request.System, then Request.Context)
// is sent as system blocks with an ephemeral cache_control marker on the last
// one, so later agents of a task pay cache-read prices. The SDK's own
// retries are off (it honours Retry-After without bound): package llm
// retries, for every provider alike.
package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/llm"
)

// DefaultMaxTokens is used when a request does not set MaxTokens (the API
// requires it).
const DefaultMaxTokens = 4096

// wrapKey is the property that carries a non-object schema's value: tool
// input must be an object.
const wrapKey = "result"

// Model is one Anthropic model.
type Model struct {
	client   anthropic.Client
	provider string
	model    string
	cache    bool
}

// Option tunes a Model.
type Option func(*Model)

// WithoutPromptCache stops marking the stable prefix for caching.
func WithoutPromptCache() Option { return func(m *Model) { m.cache = false } }

// New builds a model. An empty cfg.BaseURL means the SDK default
// (https://api.anthropic.com, or ANTHROPIC_BASE_URL).
func New(cfg llm.ProviderConfig, opts ...Option) (*Model, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("anthropic: no API key")
	}
	if cfg.Model == "" {
		return nil, errors.New("anthropic: no model")
	}
	ro := []option.RequestOption{option.WithAPIKey(cfg.APIKey), option.WithMaxRetries(0)}
	if cfg.BaseURL != "" {
		ro = append(ro, option.WithBaseURL(cfg.BaseURL))
	}
	if cfg.HTTPClient != nil {
		ro = append(ro, option.WithHTTPClient(cfg.HTTPClient))
	}
	p := cfg.Provider
	if p == "" {
		p = llm.ProviderAnthropic
	}
	m := &Model{client: anthropic.NewClient(ro...), provider: p, model: cfg.Model, cache: true}
	for _, o := range opts {
		o(m)
	}
	return m, nil
}

// Factory adapts New to llm.Factory.
func Factory(cfg llm.ProviderConfig) (llm.Model, error) { return New(cfg) }

// params builds the Messages API request. It returns the tool name when
// the request has a schema, and whether the schema was wrapped.
func (m *Model) params(req llm.Request) (anthropic.MessageNewParams, string, bool, error) {
	// Temperature is not a field of the v2 SDK's params (deprecated for
	// newer models); it is set on the request body by requestOptions.
	p := anthropic.MessageNewParams{
		Model:     anthropic.Model(m.model),
		MaxTokens: int64(req.MaxTokens),
	}
	if p.MaxTokens <= 0 {
		p.MaxTokens = DefaultMaxTokens
	}
	for _, s := range []string{req.System, req.Context} {
		if strings.TrimSpace(s) != "" {
			p.System = append(p.System, anthropic.TextBlockParam{Text: s})
		}
	}
	if m.cache && len(p.System) > 0 {
		p.System[len(p.System)-1].CacheControl = anthropic.NewCacheControlEphemeralParam()
	}
	for _, msg := range req.Messages {
		block := anthropic.NewTextBlock(msg.Content)
		if msg.Role == llm.RoleAssistant {
			p.Messages = append(p.Messages, anthropic.NewAssistantMessage(block))
		} else {
			p.Messages = append(p.Messages, anthropic.NewUserMessage(block))
		}
	}
	if len(req.Schema) == 0 {
		return p, "", false, nil
	}
	var schema map[string]any
	if err := json.Unmarshal(req.Schema, &schema); err != nil {
		return p, "", false, fmt.Errorf("anthropic: request schema: %w", err)
	}
	wrapped := false
	if t, _ := schema["type"].(string); t != "object" {
		schema = map[string]any{"type": "object", "properties": map[string]any{wrapKey: schema}, "required": []string{wrapKey}}
		wrapped = true
	}
	in := anthropic.ToolInputSchemaParam{Properties: schema["properties"], ExtraFields: map[string]any{}}
	if req, ok := schema["required"].([]any); ok {
		for _, r := range req {
			if s, ok := r.(string); ok {
				in.Required = append(in.Required, s)
			}
		}
	} else if req, ok := schema["required"].([]string); ok {
		in.Required = req
	}
	for k, v := range schema {
		switch k {
		case "type", "properties", "required", "$schema":
		default:
			in.ExtraFields[k] = v
		}
	}
	name := req.SchemaName
	if name == "" {
		name = "answer"
	}
	p.Tools = []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{
		Name:        name,
		Description: anthropic.String("Give the answer. Its input must satisfy the schema."),
		InputSchema: in,
	}}}
	p.ToolChoice = anthropic.ToolChoiceParamOfTool(name)
	return p, name, wrapped, nil
}

// Generate makes one call (no retries).
func (m *Model) Generate(ctx context.Context, req llm.Request) (*llm.Response, error) {
	p, tool, wrapped, err := m.params(req)
	if err != nil {
		return nil, err
	}
	var ro []option.RequestOption
	if req.Temperature != nil {
		ro = append(ro, option.WithJSONSet("temperature", *req.Temperature))
	}
	var msg *anthropic.Message
	if req.OnDelta == nil {
		msg, err = m.client.Messages.New(ctx, p, ro...)
		if err != nil {
			return nil, m.apiError(err)
		}
	} else {
		stream := m.client.Messages.NewStreaming(ctx, p, ro...)
		acc := anthropic.Message{}
		for stream.Next() {
			ev := stream.Current()
			if err := acc.Accumulate(ev); err != nil {
				stream.Close()
				return nil, m.apiError(err)
			}
			if ev.Type == "content_block_delta" && ev.Delta.Type == "text_delta" && ev.Delta.Text != "" {
				req.OnDelta(ev.Delta.Text)
			}
		}
		err := stream.Err()
		stream.Close()
		if err != nil {
			return nil, m.apiError(err)
		}
		msg = &acc
	}
	return m.response(msg, tool, wrapped)
}

func (m *Model) response(msg *anthropic.Message, tool string, wrapped bool) (*llm.Response, error) {
	resp := &llm.Response{
		Provider:   m.provider,
		Model:      string(msg.Model),
		StopReason: string(msg.StopReason),
		Usage: domain.Usage{
			InputTokens:      msg.Usage.InputTokens,
			OutputTokens:     msg.Usage.OutputTokens,
			CacheReadTokens:  msg.Usage.CacheReadInputTokens,
			CacheWriteTokens: msg.Usage.CacheCreationInputTokens,
		},
	}
	if resp.Model == "" {
		resp.Model = m.model
	}
	var text strings.Builder
	for _, b := range msg.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "tool_use":
			if tool != "" && b.Name == tool {
				resp.JSON = append(json.RawMessage(nil), b.Input...)
			}
		}
	}
	resp.Text = text.String()
	if wrapped && len(resp.JSON) > 0 {
		var w map[string]json.RawMessage
		if json.Unmarshal(resp.JSON, &w) == nil && w[wrapKey] != nil {
			resp.JSON = w[wrapKey]
		}
	}
	return resp, nil
}

// apiError converts SDK errors to llm.APIError. An "error" event inside a
// stream arrives with the stream's 200 status; its type says what it was.
func (m *Model) apiError(err error) error {
	var ae *anthropic.Error
	if !errors.As(err, &ae) {
		return llm.TransportError(m.provider, err)
	}
	out := &llm.APIError{Provider: m.provider, StatusCode: ae.StatusCode, Message: ae.Message, Err: err}
	if ae.Response != nil {
		out.RetryAfter = llm.RetryAfter(ae.Response.Header, time.Now())
	}
	if out.StatusCode < 300 {
		switch string(ae.Type()) {
		case "overloaded_error":
			out.StatusCode = 529
		case "rate_limit_error":
			out.StatusCode = http.StatusTooManyRequests
		case "api_error":
			out.StatusCode = http.StatusInternalServerError
		case "invalid_request_error":
			out.StatusCode = http.StatusBadRequest
		default:
			out.StatusCode = 0
		}
	}
	if out.Message == "" {
		out.Message = strings.TrimSpace(ae.RawJSON())
	}
	return out
}
