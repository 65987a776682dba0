// Package providers lists the factories of the hosted providers, for main
// to hand to llm.NewRouter (package llm cannot import its own providers).
package providers

import (
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/llm/anthropic"
	"github.com/catalyst/catalyst/internal/llm/google"
	"github.com/catalyst/catalyst/internal/llm/openai"
)

// Factories returns the factories for anthropic, openai (also used for the
// Emergent gateway and local OpenAI-compatible servers) and google.
func Factories() map[string]llm.Factory {
	return map[string]llm.Factory{
		llm.ProviderAnthropic: anthropic.Factory,
		llm.ProviderOpenAI:    openai.Factory,
		llm.ProviderGoogle:    google.Factory,
	}
}
