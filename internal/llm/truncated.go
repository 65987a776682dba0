package llm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/catalyst/catalyst/internal/domain"
)

// ErrTruncated says that a structured answer was cut off by the output
// limit (stop reason StopLength), even after one retry with a larger
// max_tokens: the partial JSON is never parsed. The router neither retries
// it nor falls back to another model (the provider is fine; the unit of
// work is too big): the caller decides, typically by asking for less.
// errors.As gives the *TruncatedError with the partial text and usage.
var ErrTruncated = errors.New("llm: the answer was cut off by the output limit")

// TruncatedError is the error behind ErrTruncated.
type TruncatedError struct {
	Provider, Model string
	// MaxTokens is the output limit of the last attempt.
	MaxTokens int
	// Text is the partial answer of the last attempt.
	Text string
	// Usage and Cost add up every attempt: they were paid for.
	Usage domain.Usage
	Cost  float64
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("%v (%s/%s, max_tokens %d, %d output tokens)", ErrTruncated, e.Provider, e.Model, e.MaxTokens, e.Usage.OutputTokens)
}

func (e *TruncatedError) Is(target error) bool { return target == ErrTruncated }

// ContinuePrompt asks a model to go on after an answer cut off by the limit.
const ContinuePrompt = "Your answer was cut off by the output limit. Continue exactly where it stopped, " +
	"without repeating anything and without any preamble."

// Continue completes a plain-text answer that stopped at the output limit:
// it asks m to continue, up to rounds more times, and returns the joined
// text with the usage and cost of every round. Answers with tool calls or a
// schema are returned as they are (a cut-off JSON document cannot be glued
// reliably: structured calls get ErrTruncated from the router instead).
func Continue(ctx context.Context, m Model, req Request, resp *Response, rounds int) (*Response, error) {
	if resp == nil || len(req.Schema) > 0 || len(resp.ToolCalls) > 0 {
		return resp, nil
	}
	var text strings.Builder
	text.WriteString(resp.Text)
	out := *resp
	for i := 0; i < rounds && out.StopReason == StopLength; i++ {
		next := req
		next.Messages = append(append([]Message(nil), req.Messages...),
			Message{Role: RoleAssistant, Content: text.String()},
			Message{Role: RoleUser, Content: ContinuePrompt})
		r, err := m.Generate(ctx, next)
		if err != nil {
			return nil, fmt.Errorf("llm: continuing an answer cut off by the output limit: %w", err)
		}
		text.WriteString(r.Text)
		out.Usage = out.Usage.Add(r.Usage)
		out.Cost += r.Cost
		out.StopReason = r.StopReason
		out.ProviderStopReason = r.ProviderStopReason
		if len(r.ToolCalls) > 0 {
			out.ToolCalls = r.ToolCalls
			break
		}
	}
	out.Text = text.String()
	return &out, nil
}
