// Package openai is the OpenAI Chat Completions provider, over the official
// SDK (github.com/openai/openai-go/v3). With a base URL it talks to any
// OpenAI-compatible server: Ollama, vLLM, llama.cpp server, LM Studio,
// LiteLLM and the Emergent gateway.
//
// Structured output uses response_format json_schema, strict when the
// schema allows it (every object closed and all its properties required),
// so servers that do not enforce schemas still get one to follow. Tools are
// function tools; tool results are "tool" messages. Streaming
// asks for usage with stream_options.include_usage. SDK retries are off:
// package llm retries.
package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/llm"
)

// wrapKey carries a non-object schema's value: response_format needs an
// object at the root.
const wrapKey = "result"

// keylessPlaceholder is sent to servers that need no key, so that an
// OPENAI_API_KEY from the environment is never sent to them.
const keylessPlaceholder = "no-key"

// Model is one model behind an OpenAI-compatible endpoint.
type Model struct {
	client   openai.Client
	provider string
	model    string
}

// New builds a model. cfg.BaseURL is normalised (a bare host gets /v1/).
func New(cfg llm.ProviderConfig) (*Model, error) {
	if cfg.Model == "" {
		return nil, errors.New("openai: no model")
	}
	key := cfg.APIKey
	if key == "" {
		if cfg.BaseURL == "" {
			return nil, errors.New("openai: no API key and no base URL")
		}
		key = keylessPlaceholder
	}
	ro := []option.RequestOption{option.WithAPIKey(key), option.WithMaxRetries(0)}
	if cfg.BaseURL != "" {
		ro = append(ro, option.WithBaseURL(llm.NormalizeOpenAIBaseURL(cfg.BaseURL)))
	}
	if cfg.HTTPClient != nil {
		ro = append(ro, option.WithHTTPClient(cfg.HTTPClient))
	}
	p := cfg.Provider
	if p == "" {
		p = llm.ProviderOpenAI
	}
	return &Model{client: openai.NewClient(ro...), provider: p, model: cfg.Model}, nil
}

// Factory adapts New to llm.Factory.
func Factory(cfg llm.ProviderConfig) (llm.Model, error) { return New(cfg) }

// strictOK reports whether OpenAI's strict mode accepts the schema: every
// object lists all its properties as required and forbids others.
func strictOK(v any) bool {
	switch s := v.(type) {
	case map[string]any:
		if props, ok := s["properties"].(map[string]any); ok {
			if ap, ok := s["additionalProperties"].(bool); !ok || ap {
				return false
			}
			req := map[string]bool{}
			if r, ok := s["required"].([]any); ok {
				for _, x := range r {
					if n, ok := x.(string); ok {
						req[n] = true
					}
				}
			}
			for k := range props {
				if !req[k] {
					return false
				}
			}
		}
		for _, x := range s {
			if !strictOK(x) {
				return false
			}
		}
	case []any:
		for _, x := range s {
			if !strictOK(x) {
				return false
			}
		}
	}
	return true
}

// reasoningModel reports whether a model refuses max_tokens and wants
// max_completion_tokens instead (OpenAI's o-series and GPT-5).
func reasoningModel(model string) bool {
	m := strings.ToLower(model)
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		m = m[i+1:]
	}
	for _, p := range []string{"o1", "o3", "o4", "gpt-5"} {
		if m == p || strings.HasPrefix(m, p+"-") || strings.HasPrefix(m, p+".") {
			return true
		}
	}
	return false
}

// messages converts one llm.Message: an assistant turn carries its tool
// calls; each tool result becomes its own "tool" message, before any text
// of the same user turn.
func messages(msg llm.Message) []openai.ChatCompletionMessageParamUnion {
	if msg.Role == llm.RoleAssistant {
		if len(msg.ToolCalls) == 0 {
			return []openai.ChatCompletionMessageParamUnion{openai.AssistantMessage(msg.Content)}
		}
		a := openai.ChatCompletionAssistantMessageParam{}
		if msg.Content != "" {
			a.Content.OfString = openai.String(msg.Content)
		}
		for _, c := range msg.ToolCalls {
			a.ToolCalls = append(a.ToolCalls, openai.ChatCompletionMessageToolCallUnionParam{
				OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{
					ID:       c.ID,
					Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: c.Name, Arguments: string(llm.NormalizeArguments(string(c.Arguments)))},
				},
			})
		}
		return []openai.ChatCompletionMessageParamUnion{{OfAssistant: &a}}
	}
	var out []openai.ChatCompletionMessageParamUnion
	for _, r := range msg.ToolResults {
		content := r.Content
		if r.IsError {
			// The tool message has no error flag: say it in the text.
			content = "Error: " + content
		}
		out = append(out, openai.ToolMessage(content, r.CallID))
	}
	if msg.Content != "" || len(out) == 0 {
		out = append(out, openai.UserMessage(msg.Content))
	}
	return out
}

func (m *Model) params(req llm.Request) (openai.ChatCompletionNewParams, bool, error) {
	p := openai.ChatCompletionNewParams{Model: shared.ChatModel(m.model)}
	if req.MaxTokens > 0 {
		if reasoningModel(m.model) {
			p.MaxCompletionTokens = openai.Int(int64(req.MaxTokens))
		} else {
			// max_tokens rather than max_completion_tokens: every
			// compatible server understands it.
			p.MaxTokens = openai.Int(int64(req.MaxTokens))
		}
	}
	if req.Temperature != nil {
		p.Temperature = openai.Float(*req.Temperature)
	}
	var sys []string
	for _, s := range []string{req.System, req.Context} {
		if strings.TrimSpace(s) != "" {
			sys = append(sys, s)
		}
	}
	if len(sys) > 0 {
		p.Messages = append(p.Messages, openai.SystemMessage(strings.Join(sys, "\n\n")))
	}
	for _, msg := range req.Messages {
		p.Messages = append(p.Messages, messages(msg)...)
	}
	for _, t := range req.Tools {
		fd := shared.FunctionDefinitionParam{Name: t.Name, Parameters: shared.FunctionParameters(llm.ToolSchema(t))}
		if t.Description != "" {
			fd.Description = openai.String(t.Description)
		}
		p.Tools = append(p.Tools, openai.ChatCompletionFunctionTool(fd))
	}
	if len(req.Schema) == 0 {
		return p, false, nil
	}
	var schema map[string]any
	if err := json.Unmarshal(req.Schema, &schema); err != nil {
		return p, false, fmt.Errorf("openai: request schema: %w", err)
	}
	wrapped := false
	if t, _ := schema["type"].(string); t != "object" {
		schema = map[string]any{"type": "object", "properties": map[string]any{wrapKey: schema},
			"required": []any{wrapKey}, "additionalProperties": false}
		wrapped = true
	}
	delete(schema, "$schema")
	name := req.SchemaName
	if name == "" {
		name = "answer"
	}
	p.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{
		OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{
			Name:   name,
			Schema: schema,
			Strict: openai.Bool(strictOK(schema)),
		}},
	}
	return p, wrapped, nil
}

// stopReason maps finish_reason to the llm.Stop* constants.
func stopReason(r string) string {
	switch r {
	case "stop", "":
		return llm.StopEnd
	case "length":
		return llm.StopLength
	case "tool_calls", "function_call":
		return llm.StopToolUse
	}
	return llm.StopOther // content_filter, and whatever compatible servers invent
}

// streamedCall is one tool call being assembled from stream chunks.
type streamedCall struct {
	id, name string
	args     strings.Builder
}

// callAssembler joins the tool_calls deltas of a stream: the first delta of
// a call has its id and name, the following ones pieces of the arguments,
// all under the call's index. Some compatible servers send every call whole
// with index 0: a new id at a used index starts a new call.
type callAssembler struct {
	calls []*streamedCall
	at    map[int64]*streamedCall
}

func (a *callAssembler) add(d openai.ChatCompletionChunkChoiceDeltaToolCall) {
	if a.at == nil {
		a.at = map[int64]*streamedCall{}
	}
	c := a.at[d.Index]
	if c == nil || (d.ID != "" && c.id != "" && d.ID != c.id) {
		c = &streamedCall{}
		a.at[d.Index] = c
		a.calls = append(a.calls, c)
	}
	if d.ID != "" {
		c.id = d.ID
	}
	if d.Function.Name != "" {
		c.name += d.Function.Name
	}
	c.args.WriteString(d.Function.Arguments)
}

func (a *callAssembler) result() []llm.ToolCall {
	var out []llm.ToolCall
	for _, c := range a.calls {
		out = append(out, llm.ToolCall{ID: c.id, Name: c.name, Arguments: json.RawMessage(c.args.String())})
	}
	return out
}

// Generate makes one call (no retries).
func (m *Model) Generate(ctx context.Context, req llm.Request) (*llm.Response, error) {
	p, wrapped, err := m.params(req)
	if err != nil {
		return nil, err
	}
	resp := &llm.Response{Provider: m.provider, Model: m.model}
	var usage openai.CompletionUsage
	var finish string
	if req.OnDelta == nil {
		c, err := m.client.Chat.Completions.New(ctx, p)
		if err != nil {
			return nil, m.apiError(err)
		}
		if len(c.Choices) == 0 {
			return nil, &llm.APIError{Provider: m.provider, StatusCode: 0, Message: "the response has no choices"}
		}
		ch := c.Choices[0]
		resp.Text = ch.Message.Content
		if resp.Text == "" && ch.Message.Refusal != "" {
			resp.Text = ch.Message.Refusal
		}
		for _, tc := range ch.Message.ToolCalls {
			if tc.Type != "" && tc.Type != "function" {
				continue // custom tools are never offered
			}
			resp.ToolCalls = append(resp.ToolCalls, llm.ToolCall{ID: tc.ID, Name: tc.Function.Name, Arguments: json.RawMessage(tc.Function.Arguments)})
		}
		finish = ch.FinishReason
		if c.Model != "" {
			resp.Model = c.Model
		}
		usage = c.Usage
	} else {
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		stream := m.client.Chat.Completions.NewStreaming(ctx, p)
		var text strings.Builder
		var calls callAssembler
		for stream.Next() {
			c := stream.Current()
			if c.Model != "" {
				resp.Model = c.Model
			}
			if len(c.Choices) > 0 {
				ch := c.Choices[0]
				if d := ch.Delta.Content; d != "" {
					text.WriteString(d)
					req.OnDelta(d)
				}
				for _, tc := range ch.Delta.ToolCalls {
					calls.add(tc)
				}
				if ch.FinishReason != "" {
					finish = ch.FinishReason
				}
			}
			if c.JSON.Usage.Valid() && c.Usage.TotalTokens+c.Usage.PromptTokens+c.Usage.CompletionTokens > 0 {
				usage = c.Usage
			}
		}
		err := stream.Err()
		stream.Close()
		if err != nil {
			return nil, m.apiError(err)
		}
		resp.Text = text.String()
		resp.ToolCalls = calls.result()
	}
	resp.ToolCalls = llm.FinishToolCalls(resp.ToolCalls, len(req.Messages))
	resp.ProviderStopReason = finish
	resp.StopReason = llm.FinalStop(stopReason(finish), len(resp.ToolCalls))
	// OpenAI caches long prompt prefixes by itself and reports the hits.
	cached := usage.PromptTokensDetails.CachedTokens
	resp.Usage = domain.Usage{
		InputTokens:     usage.PromptTokens - cached,
		OutputTokens:    usage.CompletionTokens,
		CacheReadTokens: cached,
	}
	if len(req.Schema) > 0 && resp.StopReason != llm.StopLength {
		if doc, err := llm.ExtractJSON(resp.Text); err == nil {
			resp.JSON = doc
			if wrapped {
				var w map[string]json.RawMessage
				if json.Unmarshal(doc, &w) == nil && w[wrapKey] != nil {
					resp.JSON = w[wrapKey]
				}
			}
		}
	}
	return resp, nil
}

func (m *Model) apiError(err error) error {
	var ae *openai.Error
	if !errors.As(err, &ae) {
		return llm.TransportError(m.provider, err)
	}
	out := &llm.APIError{Provider: m.provider, StatusCode: ae.StatusCode, Message: ae.Message, Err: err}
	if ae.Response != nil {
		out.RetryAfter = llm.RetryAfter(ae.Response.Header, time.Now())
	}
	if out.StatusCode < 300 {
		out.StatusCode = 0
	}
	if out.Message == "" {
		out.Message = strings.TrimSpace(ae.RawJSON())
	}
	return out
}
