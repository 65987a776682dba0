// Package anthropic is the Anthropic Messages API provider, over the
// official SDK (github.com/anthropics/anthropic-sdk-go/v2).
//
// Structured output goes through one forced tool whose input_schema is the
// request's schema; Request.Tools become tools, Message.ToolCalls tool_use
// blocks and Message.ToolResults tool_result blocks. The stable prefix (Request.System, then Request.Context)
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

// inputSchema turns a JSON Schema object into the SDK's tool input schema.
func inputSchema(schema map[string]any) anthropic.ToolInputSchemaParam {
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
	return in
}

// content converts one message. Tool results come first in a user turn:
// the API refuses text before them.
func content(msg llm.Message) []anthropic.ContentBlockParamUnion {
	var blocks []anthropic.ContentBlockParamUnion
	for _, r := range msg.ToolResults {
		blocks = append(blocks, anthropic.NewToolResultBlock(r.CallID, r.Content, r.IsError))
	}
	// Empty text blocks are refused; a message that is nothing else keeps
	// its (empty) text so the API names the problem.
	if msg.Content != "" || (len(msg.ToolResults) == 0 && len(msg.ToolCalls) == 0) {
		blocks = append(blocks, anthropic.NewTextBlock(msg.Content))
	}
	for _, c := range msg.ToolCalls {
		blocks = append(blocks, anthropic.NewToolUseBlock(c.ID, llm.NormalizeArguments(string(c.Arguments)), c.Name))
	}
	return blocks
}

// params builds the Messages API request. It returns the tool name when
// the request has a schema, and whether the schema was wrapped.
//
// Prompt caching: the API caches the prefix up to a block marked
// cache_control, in the order tools, system, messages. The last system
// block (else the last tool) marks the stable prefix: tools, System and
// Context. In a tool loop the last block of the last message is marked as
// well, so that each turn reads the previous turns from the cache and pays
// the cache-write price only for what it adds (2 of the 4 allowed marks).
func (m *Model) params(req llm.Request) (anthropic.MessageNewParams, string, bool, error) {
	// Temperature is not a field of the v2 SDK's params (deprecated for
	// newer models); it is set on the request body by requestOptions.
	p := anthropic.MessageNewParams{
		Model:     anthropic.Model(m.model),
		MaxTokens: int64(req.MaxTokens),
	}
	if p.MaxTokens <= 0 {
		// The router fills MaxTokens; this is for direct use.
		p.MaxTokens = int64(llm.OutputLimit(m.provider, m.model))
	}
	for _, s := range []string{req.System, req.Context} {
		if strings.TrimSpace(s) != "" {
			p.System = append(p.System, anthropic.TextBlockParam{Text: s})
		}
	}
	for _, t := range req.Tools {
		tp := &anthropic.ToolParam{Name: t.Name, InputSchema: inputSchema(llm.ToolSchema(t))}
		if t.Description != "" {
			tp.Description = anthropic.String(t.Description)
		}
		p.Tools = append(p.Tools, anthropic.ToolUnionParam{OfTool: tp})
	}
	if m.cache {
		if len(p.System) > 0 {
			p.System[len(p.System)-1].CacheControl = anthropic.NewCacheControlEphemeralParam()
		} else if len(p.Tools) > 0 {
			p.Tools[len(p.Tools)-1].OfTool.CacheControl = anthropic.NewCacheControlEphemeralParam()
		}
	}
	for i, msg := range req.Messages {
		blocks := content(msg)
		if m.cache && len(req.Tools) > 0 && i == len(req.Messages)-1 {
			if cc := blocks[len(blocks)-1].GetCacheControl(); cc != nil {
				*cc = anthropic.NewCacheControlEphemeralParam()
			}
		}
		if msg.Role == llm.RoleAssistant {
			p.Messages = append(p.Messages, anthropic.NewAssistantMessage(blocks...))
		} else {
			p.Messages = append(p.Messages, anthropic.NewUserMessage(blocks...))
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
	name := req.SchemaName
	if name == "" {
		name = "answer"
	}
	p.Tools = []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{
		Name:        name,
		Description: anthropic.String("Give the answer. Its input must satisfy the schema."),
		InputSchema: inputSchema(schema),
	}}}
	p.ToolChoice = anthropic.ToolChoiceParamOfTool(name)
	return p, name, wrapped, nil
}

// Generate makes one call (no retries). Without OnDelta it still streams
// when the SDK refuses a plain request for this max_tokens (it expects more
// than 10 minutes of generation): large output limits are the norm now.
func (m *Model) Generate(ctx context.Context, req llm.Request) (*llm.Response, error) {
	p, tool, wrapped, err := m.params(req)
	if err != nil {
		return nil, err
	}
	var ro []option.RequestOption
	if req.Temperature != nil {
		ro = append(ro, option.WithJSONSet("temperature", *req.Temperature))
	}
	_, tooLong := anthropic.CalculateNonStreamingTimeout(int(p.MaxTokens), p.Model, ro)
	if req.OnDelta == nil && tooLong == nil {
		msg, err := m.client.Messages.New(ctx, p, ro...)
		if err != nil {
			return nil, m.apiError(err)
		}
		return m.response(msg, nil, tool, wrapped, len(req.Messages))
	}
	stream := m.client.Messages.NewStreaming(ctx, p, ro...)
	defer stream.Close()
	acc := anthropic.Message{}
	// The SDK's accumulator replaces a tool input that is not valid JSON
	// (cut off by max_tokens) with {}; the raw pieces are kept here so the
	// caller sees what the model sent.
	inputs := map[int64]*strings.Builder{}
	for stream.Next() {
		ev := stream.Current()
		if ev.Type == "content_block_delta" && ev.Delta.Type == "input_json_delta" {
			b := inputs[ev.Index]
			if b == nil {
				b = &strings.Builder{}
				inputs[ev.Index] = b
			}
			b.WriteString(ev.Delta.PartialJSON)
		}
		if err := acc.Accumulate(ev); err != nil {
			return nil, m.apiError(err)
		}
		if req.OnDelta != nil && ev.Type == "content_block_delta" && ev.Delta.Type == "text_delta" && ev.Delta.Text != "" {
			req.OnDelta(ev.Delta.Text)
		}
	}
	if err := stream.Err(); err != nil {
		return nil, m.apiError(err)
	}
	return m.response(&acc, inputs, tool, wrapped, len(req.Messages))
}

// stopReason maps Anthropic's stop_reason to the llm.Stop* constants.
func stopReason(r anthropic.StopReason) string {
	switch r {
	case anthropic.StopReasonEndTurn, anthropic.StopReasonStopSequence, "":
		return llm.StopEnd
	case anthropic.StopReasonMaxTokens, anthropic.StopReasonModelContextWindowExceeded:
		return llm.StopLength
	case anthropic.StopReasonToolUse:
		return llm.StopToolUse
	}
	return llm.StopOther // refusal, pause_turn, and reasons added later
}

func (m *Model) response(msg *anthropic.Message, inputs map[int64]*strings.Builder, tool string, wrapped bool, turn int) (*llm.Response, error) {
	resp := &llm.Response{
		Provider:           m.provider,
		Model:              string(msg.Model),
		StopReason:         stopReason(msg.StopReason),
		ProviderStopReason: string(msg.StopReason),
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
	for i, b := range msg.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "tool_use":
			input := string(b.Input)
			if raw := inputs[int64(i)]; raw != nil {
				input = raw.String()
			}
			if tool != "" {
				if b.Name == tool {
					resp.JSON = json.RawMessage(input)
				}
				continue
			}
			resp.ToolCalls = append(resp.ToolCalls, llm.ToolCall{ID: b.ID, Name: b.Name, Arguments: json.RawMessage(input)})
		}
	}
	resp.Text = text.String()
	resp.ToolCalls = llm.FinishToolCalls(resp.ToolCalls, turn)
	if tool != "" && resp.StopReason == llm.StopToolUse {
		resp.StopReason = llm.StopEnd // the forced tool is the answer
	}
	resp.StopReason = llm.FinalStop(resp.StopReason, len(resp.ToolCalls))
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
