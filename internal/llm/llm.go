// Package llm is the only way agents talk to language models. Providers
// (anthropic/, openai/, google/, offline/) implement Model; Router picks one
// per agent, with retries, limits, fallback and cost accounting around it.
package llm

import (
	"context"
	"encoding/json"

	"github.com/catalyst/catalyst/internal/domain"
)

// Role of a message in a conversation.
type Role string

const (
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
)

// Message is one turn of the conversation. An assistant turn may carry the
// tool calls the model made; the user turn after it carries their results
// (providers map that to their own shape: Anthropic tool_result blocks,
// OpenAI "tool" messages, Gemini functionResponse parts).
type Message struct {
	Role        Role         `json:"role"`
	Content     string       `json:"content"`
	ToolCalls   []ToolCall   `json:"tool_calls,omitempty"`
	ToolResults []ToolResult `json:"tool_results,omitempty"`
}

// Tool is a function the model may call.
type Tool struct {
	// Name: letters, digits, '_' and '-' (the intersection of what the
	// three providers accept), at most 64 characters.
	Name        string `json:"name"`
	Description string `json:"description"`
	// Parameters is the JSON Schema (type object) of the arguments.
	Parameters json.RawMessage `json:"parameters"`
}

// ToolCall is one call the model asked for. Arguments is the complete JSON
// object, assembled from the pieces a stream delivers; when the model sent
// something that is not a JSON object it is wrapped as
// {"_invalid_arguments": "<raw text>"} (see InvalidArgumentsKey and
// ToolCall.InvalidArguments) so the caller can answer with an error. Name is
// whatever the model said: callers must refuse names they did not offer.
type ToolCall struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
	// Signature is opaque provider data that must go back with the call in
	// the next turn (Gemini's thought signature); callers keep it as is.
	Signature []byte `json:"signature,omitempty"`
}

// ToolResult answers the ToolCall with the same CallID. Name repeats the
// tool's name: Gemini matches results by name, not id.
type ToolResult struct {
	CallID  string `json:"call_id"`
	Name    string `json:"name"`
	Content string `json:"content"`
	IsError bool   `json:"is_error,omitempty"`
}

// Stop reasons every provider's answer is normalised to (Response.StopReason).
const (
	StopEnd     = "end"      // the model finished its answer
	StopLength  = "length"   // cut off by MaxTokens: the answer is incomplete
	StopToolUse = "tool_use" // the model wants Response.ToolCalls run
	StopOther   = "other"    // refusal, safety filter, ...: see the provider's reason in logs
)

// Request is one call to a model.
type Request struct {
	// Agent names the caller (planner, coder, ...); it selects per-agent model
	// overrides and labels logs. Providers must not depend on it for
	// correctness, except the offline provider, which has no model to ask.
	Agent string
	// System is the system prompt. Together with Context it is the stable
	// prefix that providers mark for prompt caching.
	System string
	// Context is task context shared by every agent of one task (the prompt,
	// the plan, ...): cached with System where the provider supports it.
	Context string
	// Messages follow the stable prefix.
	Messages []Message
	// MaxTokens bounds the answer; 0 lets the router choose (configuration,
	// else the model's catalogue entry: OutputLimit).
	MaxTokens   int
	Temperature *float64
	// Schema, when set, is a JSON Schema the answer must satisfy; the
	// response's JSON field then holds the validated document.
	Schema json.RawMessage
	// SchemaName names the schema for providers that need one (tool name,
	// response_format name); letters, digits, '_' and '-'.
	SchemaName string
	// OnDelta, when set, receives text deltas as the model produces them
	// (the UI shows agents "typing"). It must not block for long.
	OnDelta func(delta string)
	// Tools the model may call. With tools set, an answer may end with
	// StopToolUse and Response.ToolCalls; the caller runs them and sends
	// the results in the next request's Messages. Tools are part of the
	// stable prefix (cached with System and Context). Tools and Schema
	// cannot be combined.
	Tools []Tool
}

// Response is a model's answer.
type Response struct {
	Text string
	// JSON is the schema-validated document when Request.Schema was set.
	JSON json.RawMessage
	// Provider and Model say who answered, e.g. "anthropic" and
	// "claude-3-7-sonnet-20250219".
	Provider string
	Model    string
	// StopReason is one of the Stop* constants.
	StopReason string
	// ProviderStopReason is the vendor's own reason ("end_turn",
	// "content_filter", "SAFETY", ...), for logs.
	ProviderStopReason string
	// ToolCalls the model made (StopReason StopToolUse).
	ToolCalls []ToolCall
	Usage     domain.Usage
	// Cost in USD computed from Usage and the pricing table.
	Cost float64
}

// Model answers requests. Implementations are safe for concurrent use and
// return promptly when ctx is cancelled.
type Model interface {
	Generate(ctx context.Context, req Request) (*Response, error)
}

// OfflineLabel is how every log, event and report names the offline provider:
// it never pretends to be a model.
const OfflineLabel = domain.OfflineLabel
