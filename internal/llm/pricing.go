package llm

import (
	"log/slog"
	"strings"
	"sync"

	"charm.land/catwalk/pkg/catwalk"
	"charm.land/catwalk/pkg/embedded"

	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/domain"
)

// Price is USD per million tokens.
type Price = config.Price

// Default models per provider when only the provider is chosen.
const (
	DefaultAnthropicModel = "claude-3-7-sonnet-20250219"
	DefaultOpenAIModel    = "gpt-4.1"
	DefaultGoogleModel    = "gemini-2.5-flash"
)

// builtinPrices covers models that catwalk's catalog (charm.land/catwalk
// v0.52.1, embedded) no longer lists. Source: Anthropic's pricing page
// (docs.anthropic.com/en/docs/about-claude/pricing): base input, output,
// 5-minute cache write (1.25x input) and cache hit (0.1x input).
var builtinPrices = map[string]Price{
	"claude-3-7-sonnet-20250219": {Input: 3, Output: 15, CacheWrite: 3.75, CacheRead: 0.30},
	"claude-3-7-sonnet-latest":   {Input: 3, Output: 15, CacheWrite: 3.75, CacheRead: 0.30},
	"claude-3-5-sonnet-20241022": {Input: 3, Output: 15, CacheWrite: 3.75, CacheRead: 0.30},
	"claude-3-5-haiku-20241022":  {Input: 0.80, Output: 4, CacheWrite: 1, CacheRead: 0.08},
}

// catalogPrices reads catwalk's embedded catalog for the three vendors we
// speak to directly. catwalk's convention (as used by crush) is
// cost_per_1m_in_cached = cache write and cost_per_1m_out_cached = cache
// read; a few OpenAI entries put the cache-read price in the "in_cached"
// field and leave "out_cached" at 0 (OpenAI has no cache-write charge), which
// is corrected here.
func catalogPrices() map[string]Price {
	out := make(map[string]Price)
	for _, p := range embedded.GetAll() {
		switch p.ID {
		case catwalk.InferenceProviderAnthropic, catwalk.InferenceProviderOpenAI, catwalk.InferenceProviderGemini:
		default:
			continue
		}
		for _, m := range p.Models {
			pr := Price{Input: m.CostPer1MIn, Output: m.CostPer1MOut, CacheWrite: m.CostPer1MInCached, CacheRead: m.CostPer1MOutCached}
			if pr.CacheRead == 0 && pr.CacheWrite > 0 && pr.CacheWrite < pr.Input {
				pr.CacheRead, pr.CacheWrite = pr.CacheWrite, 0
			}
			out[m.ID] = pr
		}
	}
	return out
}

var catalogOnce = sync.OnceValue(catalogPrices)

// Pricer turns usage into USD. It is safe for concurrent use.
type Pricer struct {
	table map[string]Price
	log   *slog.Logger

	mu     sync.Mutex
	warned map[string]bool
}

// NewPricer builds the table: catwalk's catalog, then the built-in
// entries, then overrides (config.yaml llm.pricing), later wins.
func NewPricer(overrides map[string]config.Price, log *slog.Logger) *Pricer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := make(map[string]Price)
	for k, v := range catalogOnce() {
		t[k] = v
	}
	for k, v := range builtinPrices {
		t[k] = v
	}
	for k, v := range overrides {
		t[k] = v
	}
	return &Pricer{table: t, log: log, warned: make(map[string]bool)}
}

// Lookup returns the price of a model. "provider/model" names (gateways)
// fall back to the bare model name.
func (p *Pricer) Lookup(model string) (Price, bool) {
	if pr, ok := p.table[model]; ok {
		return pr, true
	}
	if i := strings.LastIndexByte(model, '/'); i >= 0 {
		pr, ok := p.table[model[i+1:]]
		return pr, ok
	}
	return Price{}, false
}

// Cost is the USD cost of usage on model. An unknown model costs 0 and is
// reported once per model with a warning. Further names are tried in turn
// before giving up: an API answers with a dated snapshot
// ("gpt-4.1-2025-04-14") of the alias that was asked for.
func (p *Pricer) Cost(model string, u domain.Usage, aliases ...string) float64 {
	pr, ok := p.Lookup(model)
	for _, a := range aliases {
		if ok {
			break
		}
		pr, ok = p.Lookup(a)
	}
	if !ok {
		p.mu.Lock()
		first := !p.warned[model]
		p.warned[model] = true
		p.mu.Unlock()
		if first {
			p.log.Warn("llm: no price for model; its calls are counted as costing 0", slog.String("model", model))
		}
		return 0
	}
	return (float64(u.InputTokens)*pr.Input +
		float64(u.OutputTokens)*pr.Output +
		float64(u.CacheReadTokens)*pr.CacheRead +
		float64(u.CacheWriteTokens)*pr.CacheWrite) / 1e6
}
