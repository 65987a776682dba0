package llm

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/trace"

	"github.com/catalyst/catalyst/internal/telemetry"
)

// endModelSpan records a model call on its span: who answered, tokens and
// cost, or the kind of failure. Never the prompt, the answer or an error's
// text (providers quote prompts in their errors).
func endModelSpan(span trace.Span, resp *Response, err error) {
	res := telemetry.ModelResult{}
	if resp != nil {
		res = telemetry.ModelResult{
			Provider: resp.Provider, Model: resp.Model,
			InputTokens: resp.Usage.InputTokens, OutputTokens: resp.Usage.OutputTokens,
			Cost: resp.Cost, StopReason: resp.StopReason,
		}
	}
	if err != nil {
		res.Failure = failureKind(err)
	}
	telemetry.EndModelCall(span, res, err)
}

func failureKind(err error) string {
	var ae *APIError
	var se *SchemaError
	switch {
	case errors.Is(err, ErrAllProvidersDown):
		return "circuit open"
	case errors.As(err, &se):
		return "answer did not match the schema"
	case errors.As(err, &ae) && ae.StatusCode > 0:
		return fmt.Sprintf("HTTP %d", ae.StatusCode)
	}
	return "" // EndModelCall falls back to failed, timed out or canceled
}
