package llm

import (
	"strings"
	"sync"

	"charm.land/catwalk/pkg/catwalk"
	"charm.land/catwalk/pkg/embedded"
)

// DefaultOutputLimit is max_tokens for models neither catwalk's catalog nor
// the table below knows: large enough for a real answer, small enough that
// every current model accepts it.
const DefaultOutputLimit = 8192

// builtinOutputLimits covers models catwalk no longer lists. Sources: the
// vendors' model pages (Anthropic "Models overview", OpenAI model cards,
// Gemini models). The 4096 entries are the known-small ones: a larger value
// is refused with a 400.
var builtinOutputLimits = map[string]int{
	"claude-3-7-sonnet-20250219": 64000,
	"claude-3-7-sonnet-latest":   64000,
	"claude-3-5-sonnet-20241022": 8192,
	"claude-3-5-sonnet-20240620": 8192,
	"claude-3-5-sonnet-latest":   8192,
	"claude-3-5-haiku-20241022":  8192,
	"claude-3-5-haiku-latest":    8192,
	"claude-3-opus-20240229":     4096,
	"claude-3-sonnet-20240229":   4096,
	"claude-3-haiku-20240307":    4096,
	"gpt-4":                      8192,
	"gpt-4-turbo":                4096,
	"gpt-4-turbo-2024-04-09":     4096,
	"gpt-3.5-turbo":              4096,
	"gpt-3.5-turbo-0125":         4096,
	"gemini-2.0-flash":           8192,
	"gemini-2.0-flash-lite":      8192,
	"gemini-1.5-pro":             8192,
	"gemini-1.5-flash":           8192,
}

// catalogOutputLimits reads catwalk's default_max_tokens per model of the
// three vendors we speak to directly (as crush uses it: the output budget a
// model is asked for by default).
func catalogOutputLimits() map[string]int {
	out := map[string]int{}
	for _, p := range embedded.GetAll() {
		switch p.ID {
		case catwalk.InferenceProviderAnthropic, catwalk.InferenceProviderOpenAI, catwalk.InferenceProviderGemini:
		default:
			continue
		}
		for _, m := range p.Models {
			if m.DefaultMaxTokens > 0 {
				out[m.ID] = int(m.DefaultMaxTokens)
			}
		}
	}
	for k, v := range builtinOutputLimits {
		if _, ok := out[k]; !ok {
			out[k] = v
		}
	}
	return out
}

var outputLimits = sync.OnceValue(catalogOutputLimits)

// OutputLimit is the max_tokens a model is asked for when neither the
// request nor the configuration sets one: the catalog's value for a known
// model, DefaultOutputLimit otherwise. provider is accepted for gateways
// that prefix names ("openai/gpt-4.1", "models/gemini-2.5-flash"); the
// model's own name decides.
func OutputLimit(provider, model string) int {
	n, _ := lookupOutputLimit(model)
	return n
}

func lookupOutputLimit(model string) (int, bool) {
	t := outputLimits()
	m := strings.TrimSpace(model)
	if n, ok := t[m]; ok {
		return n, true
	}
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		if n, ok := t[m[i+1:]]; ok {
			return n, true
		}
	}
	// Dated snapshots ("gpt-4.1-2025-04-14") of a catalogued alias.
	best, bestLen := 0, 0
	for k, n := range t {
		if strings.HasPrefix(m, k+"-") && len(k) > bestLen {
			best, bestLen = n, len(k)
		}
	}
	if bestLen > 0 {
		return best, true
	}
	return DefaultOutputLimit, false
}
