package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/telemetry"
)

// Provider names.
const (
	ProviderAnthropic = "anthropic"
	ProviderOpenAI    = "openai"
	ProviderGoogle    = "google"
	// ProviderEmergent is the OpenAI-compatible gateway used with EMERGENT_LLM_KEY.
	ProviderEmergent = "emergent"
	// ProviderOllama is a local OpenAI-compatible server found by the probe.
	ProviderOllama  = "ollama"
	ProviderOffline = "offline"
)

// DefaultEmergentBaseURL is the Emergent integrations proxy (a LiteLLM
// gateway speaking the OpenAI protocol) that the original backend's
// emergentintegrations library sends EMERGENT_LLM_KEY traffic to.
const DefaultEmergentBaseURL = "https://integrations.emergentagent.com/llm"

// DefaultOllamaURL is probed when no key is configured.
const DefaultOllamaURL = "http://127.0.0.1:11434"

// DefaultTokensPerMinute paces each hosted provider unless Limits says
// otherwise; local servers and the offline provider are not paced.
const DefaultTokensPerMinute = 200_000

// ProviderConfig is what a Factory needs to build one provider's model.
type ProviderConfig struct {
	// Provider is the label responses carry: anthropic, openai, google,
	// emergent or ollama (the last two are built by the openai factory).
	Provider   string
	Model      string
	APIKey     string
	BaseURL    string // "" = the SDK's default (and its environment variable)
	HTTPClient *http.Client
}

// Factory builds a provider's Model. Models built by factories make one
// attempt per call (SDK retries off): retries happen in this package.
type Factory func(ProviderConfig) (Model, error)

// RouterOptions are the parts of the router that main wires by hand.
type RouterOptions struct {
	// Offline is the offline provider, used when no LLM is configured.
	Offline Model
	// Providers maps anthropic, openai and google to their factories
	// (providers.Factories() has all three).
	Providers  map[string]Factory
	HTTPClient *http.Client
	Logger     *slog.Logger
	// AgentTimeout bounds each Generate call (AGENT_TIMEOUT); a ctx with an
	// earlier deadline wins. 0 = no extra bound.
	AgentTimeout time.Duration

	Retry   RetryPolicy
	Breaker BreakerPolicy
	// Limits per provider name; missing entries take the defaults.
	Limits map[string]Limits
	// ProbeTimeout bounds the Ollama probe; default 1s.
	ProbeTimeout time.Duration
}

// Selection says which model serves an agent and why.
type Selection struct {
	Provider string
	Model    string
	BaseURL  string `json:",omitempty"`
	Reason   string
	// MaxTokens is the output limit of calls that set none (Describe).
	MaxTokens int `json:",omitempty"`
	// Fallback lists the chain after the primary, in order.
	Fallback []Selection `json:",omitempty"`
}

// Offline reports whether the offline provider was selected.
func (s Selection) Offline() bool { return s.Provider == ProviderOffline }

// Label names the model for tasks, events and reports:
// "anthropic/claude-3-7-sonnet-20250219", or OfflineLabel.
func (s Selection) Label() string {
	if s.Offline() {
		return OfflineLabel
	}
	return s.Provider + "/" + s.Model
}

func (s Selection) String() string {
	if s.Offline() {
		return OfflineLabel
	}
	return s.Label() + " (" + s.Reason + ")"
}

// Router picks a model per agent and wraps it with validation, retries,
// limits, fallback and cost.
type Router struct {
	log     *slog.Logger
	red     Redactor
	timeout time.Duration
	pricer  *Pricer

	def    *route
	agents map[string]*route

	// maxOut is LLM_MAX_OUTPUT_TOKENS, agentMaxOut the per-agent overrides
	// (llm.agents.<agent>.max_output_tokens); 0 or absent: the catalogue.
	maxOut      int
	agentMaxOut map[string]int
}

// route is the primary endpoint of an agent and its fallback chain.
type route struct {
	sel   Selection
	chain []*endpoint
}

type spec struct {
	provider, model, key, baseURL, factory, reason string
}

// NewRouter resolves the configuration into routes. With no key at all it
// probes an OpenAI-compatible server at cfg.OllamaURL (a short GET of
// /v1/models) and otherwise uses opts.Offline.
func NewRouter(cfg config.LLMConfig, opts RouterOptions) (*Router, error) {
	red := NewRedactor(cfg.EmergentKey, cfg.AnthropicKey, cfg.OpenAIKey, cfg.GoogleKey)
	log := RedactLogger(opts.Logger, red)
	r := &Router{
		log:     log,
		red:     red,
		timeout: opts.AgentTimeout,
		pricer:  NewPricer(cfg.Pricing, log),
		agents:  map[string]*route{},

		maxOut:      cfg.MaxOutputTokens,
		agentMaxOut: map[string]int{},
	}
	b := &builder{cfg: cfg, opts: opts, r: r, gates: map[string]*gate{}, eps: map[string]*endpoint{}}
	b.opts.Retry = opts.Retry.withDefaults()

	primary, err := b.defaultSpec()
	if err != nil {
		return nil, red.Error(err)
	}
	var fallbacks []spec
	for _, c := range cfg.Fallback {
		s, ok := b.resolve(c)
		if !ok {
			log.Warn("llm: fallback entry skipped: no key or URL configured for it", slog.String("provider", c.Provider), slog.String("model", c.Model))
			continue
		}
		fallbacks = append(fallbacks, s)
	}
	if r.def, err = b.route(primary, fallbacks); err != nil {
		return nil, red.Error(err)
	}
	for agent, c := range cfg.Agents {
		if c.MaxOutputTokens > 0 {
			r.agentMaxOut[agent] = c.MaxOutputTokens
		}
		if c.Provider == "" && c.Model == "" {
			continue // only an output limit: the agent keeps the default model
		}
		s, ok := b.resolve(c)
		if !ok {
			log.Warn("llm: per-agent override ignored: no key or URL configured for it",
				slog.String("agent", agent), slog.String("provider", c.Provider), slog.String("model", c.Model))
			continue
		}
		s.reason = fmt.Sprintf("llm.agents.%s override; %s", agent, s.reason)
		rt, err := b.route(s, fallbacks)
		if err != nil {
			return nil, red.Error(err)
		}
		r.agents[agent] = rt
	}
	return r, nil
}

type builder struct {
	cfg   config.LLMConfig
	opts  RouterOptions
	r     *Router
	gates map[string]*gate
	eps   map[string]*endpoint
}

func normProvider(p string) string {
	p = strings.ToLower(strings.TrimSpace(p))
	if p == "gemini" {
		return ProviderGoogle
	}
	return p
}

func defaultModel(provider string) string {
	switch provider {
	case ProviderOpenAI:
		return DefaultOpenAIModel
	case ProviderGoogle:
		return DefaultGoogleModel
	}
	return DefaultAnthropicModel
}

// modelFor keeps a configured model unless it plainly belongs to another
// vendor (DEFAULT_LLM_MODEL defaults to a Claude model even when
// DEFAULT_LLM_PROVIDER names another provider).
func modelFor(provider, model string) (string, bool) {
	if model == "" {
		return defaultModel(provider), true
	}
	m := strings.ToLower(model)
	foreign := (provider == ProviderOpenAI && (strings.HasPrefix(m, "claude") || strings.HasPrefix(m, "gemini"))) ||
		(provider == ProviderGoogle && (strings.HasPrefix(m, "claude") || strings.HasPrefix(m, "gpt"))) ||
		(provider == ProviderAnthropic && (strings.HasPrefix(m, "gpt") || strings.HasPrefix(m, "gemini")))
	if foreign {
		return defaultModel(provider), true
	}
	return model, false
}

// resolve turns a provider/model choice into a spec, or false when nothing
// configured can serve it.
func (b *builder) resolve(c config.ModelChoice) (spec, bool) {
	cfg := b.cfg
	p := normProvider(c.Provider)
	if p == "" {
		p = ProviderAnthropic
	}
	model, _ := modelFor(p, c.Model)
	if p == ProviderOllama {
		u := cfg.OllamaURL
		if u == "" || strings.EqualFold(u, "off") {
			u = DefaultOllamaURL
		}
		return spec{provider: ProviderOllama, model: c.Model, baseURL: u, factory: ProviderOpenAI,
			reason: "provider ollama at " + u}, c.Model != ""
	}
	var key, base, env string
	switch p {
	case ProviderAnthropic:
		key, base, env = cfg.AnthropicKey, cfg.AnthropicBaseURL, "ANTHROPIC_API_KEY"
	case ProviderOpenAI:
		key, base, env = cfg.OpenAIKey, cfg.OpenAIBaseURL, "OPENAI_API_KEY"
	case ProviderGoogle:
		key, base, env = cfg.GoogleKey, cfg.GoogleBaseURL, "GOOGLE_API_KEY"
	default:
		return spec{}, false
	}
	switch {
	case key != "":
		return spec{provider: p, model: model, key: key, baseURL: base, factory: p, reason: env + " set"}, true
	case cfg.EmergentKey != "":
		u := cfg.EmergentBaseURL
		if u == "" {
			u = DefaultEmergentBaseURL
		}
		return spec{provider: ProviderEmergent, model: model, key: cfg.EmergentKey, baseURL: u, factory: ProviderOpenAI,
			reason: "EMERGENT_LLM_KEY set (no " + env + "); through the gateway at " + u}, true
	case p == ProviderOpenAI && base != "":
		// A keyless OpenAI-compatible server (vLLM, llama.cpp, LM Studio...).
		return spec{provider: p, model: model, baseURL: base, factory: p, reason: "OPENAI_BASE_URL set (no key)"}, true
	}
	return spec{}, false
}

func (b *builder) defaultSpec() (spec, error) {
	cfg := b.cfg
	p := normProvider(cfg.DefaultProvider)
	if p == "" {
		p = ProviderAnthropic
	}
	model, replaced := modelFor(p, cfg.DefaultModel)
	if s, ok := b.resolve(config.ModelChoice{Provider: p, Model: model}); ok {
		s.reason = "DEFAULT_LLM_PROVIDER " + p + "; " + s.reason
		if replaced && cfg.DefaultModel != "" {
			s.reason += fmt.Sprintf("; DEFAULT_LLM_MODEL %s is not a %s model, using %s", cfg.DefaultModel, p, model)
		}
		return s, nil
	}
	for _, other := range []string{ProviderAnthropic, ProviderOpenAI, ProviderGoogle} {
		if other == p {
			continue
		}
		if s, ok := b.resolve(config.ModelChoice{Provider: other}); ok && s.key != "" {
			s.reason = fmt.Sprintf("no key for DEFAULT_LLM_PROVIDER %s; %s", p, s.reason)
			return s, nil
		}
	}
	if u := cfg.OllamaURL; !strings.EqualFold(u, "off") {
		if u == "" {
			u = DefaultOllamaURL
		}
		if m, err := probeOpenAICompatible(b.opts.HTTPClient, u, b.opts.ProbeTimeout); err == nil {
			return spec{provider: ProviderOllama, model: m, baseURL: u, factory: ProviderOpenAI,
				reason: fmt.Sprintf("no key configured; the OpenAI-compatible server at %s answered with model %s", u, m)}, nil
		} else {
			b.r.log.Info("llm: no key configured and no local model server", slog.String("url", u), slog.String("error", err.Error()))
		}
	}
	if b.opts.Offline == nil {
		return spec{}, errors.New("llm: no LLM configured and no offline provider given")
	}
	return spec{provider: ProviderOffline, model: ProviderOffline, reason: OfflineLabel}, nil
}

func (b *builder) gate(provider string, keyless bool) *gate {
	if g, ok := b.gates[provider]; ok {
		return g
	}
	l, ok := b.opts.Limits[provider]
	if !ok && !keyless && provider != ProviderOffline && provider != ProviderOllama {
		l.TokensPerMinute = DefaultTokensPerMinute
	}
	g := newGate(provider, l, b.opts.Breaker)
	b.gates[provider] = g
	return g
}

func (b *builder) endpoint(s spec) (*endpoint, error) {
	id := s.provider + "\x00" + s.model + "\x00" + s.baseURL
	if ep, ok := b.eps[id]; ok {
		return ep, nil
	}
	var m Model
	if s.provider == ProviderOffline {
		m = offlineModel{b.opts.Offline}
	} else {
		f := b.opts.Providers[s.factory]
		if f == nil {
			return nil, fmt.Errorf("llm: no factory for provider %s in RouterOptions.Providers (wire providers.Factories())", s.factory)
		}
		var err error
		m, err = f(ProviderConfig{Provider: s.provider, Model: s.model, APIKey: s.key, BaseURL: s.baseURL, HTTPClient: b.opts.HTTPClient})
		if err != nil {
			return nil, fmt.Errorf("llm: %s: %w", s.provider, err)
		}
	}
	pricer := b.r.pricer
	if s.provider == ProviderOffline {
		pricer = freePricer
	}
	ep := &endpoint{provider: s.provider, model: s.model, m: m, gate: b.gate(s.provider, s.key == ""),
		retry: b.opts.Retry, pricer: pricer, log: b.r.log}
	b.eps[id] = ep
	return ep, nil
}

func (b *builder) route(primary spec, fallbacks []spec) (*route, error) {
	rt := &route{sel: Selection{Provider: primary.provider, Model: primary.model, BaseURL: primary.baseURL, Reason: primary.reason}}
	ep, err := b.endpoint(primary)
	if err != nil {
		return nil, err
	}
	rt.chain = append(rt.chain, ep)
	if primary.provider == ProviderOffline {
		return rt, nil
	}
	for _, f := range fallbacks {
		fe, err := b.endpoint(f)
		if err != nil {
			return nil, err
		}
		dup := false
		for _, e := range rt.chain {
			dup = dup || e == fe
		}
		if dup {
			continue
		}
		rt.chain = append(rt.chain, fe)
		rt.sel.Fallback = append(rt.sel.Fallback, Selection{Provider: f.provider, Model: f.model, BaseURL: f.baseURL, Reason: "fallback; " + f.reason})
	}
	return rt, nil
}

// freePricer prices the offline provider: it costs nothing and warns never.
var freePricer = &Pricer{table: map[string]Price{ProviderOffline: {}}, log: slog.New(slog.DiscardHandler), warned: map[string]bool{}}

// offlineModel makes sure every answer of the offline provider says so.
type offlineModel struct{ m Model }

func (o offlineModel) Generate(ctx context.Context, req Request) (*Response, error) {
	resp, err := o.m.Generate(ctx, req)
	if resp != nil {
		resp.Provider = ProviderOffline
		resp.Model = ProviderOffline
	}
	return resp, err
}

func (r *Router) routeFor(agent string) *route {
	if rt, ok := r.agents[agent]; ok {
		return rt
	}
	return r.def
}

// Describe says which provider and model serve agent, and why.
func (r *Router) Describe(agent string) Selection {
	rt := r.routeFor(agent)
	sel := rt.sel
	sel.MaxTokens = r.outputTokens(agent, rt.chain[0])
	return sel
}

// outputTokens is the max_tokens of agent's calls to ep that set none: the
// agent's override, else LLM_MAX_OUTPUT_TOKENS, else the model's catalogue
// entry.
func (r *Router) outputTokens(agent string, ep *endpoint) int {
	if n := r.agentMaxOut[agent]; n > 0 {
		return n
	}
	if r.maxOut > 0 {
		return r.maxOut
	}
	return OutputLimit(ep.provider, ep.model)
}

// For returns the model agent must use: schema validation with one repair
// round, per-call timeout, retries, limits, circuit breaker and fallback,
// cost, and errors free of API keys.
func (r *Router) For(agent string) Model {
	return &routed{r: r, rt: r.routeFor(agent), agent: agent}
}

type routed struct {
	r     *Router
	rt    *route
	agent string
}

// FallbackNotice is streamed before the first delta of the next model of
// the fallback chain when a failed model had already streamed text: deltas
// cannot be taken back, so the reader is told that the answer starts over
// and which model ("provider/model", never a key or URL) gives it.
func FallbackNotice(label string) string {
	return "\n[falling back to " + label + " after an error: the answer starts over]\n"
}

// providerWide reports whether a failed call (after its retries) says
// something about the whole provider, and so counts towards opening its
// circuit breaker.
//
// The breaker is keyed by provider, not by model, on purpose: an outage,
// overload (5xx, 529), rate limit (429), refused connection or rejected key
// (401, 402, 403) hits every model of the provider alike, and skipping the
// provider's other models then saves each call a futile round of retries.
// The other 4xx answers (404 model not found, 400 invalid model or request,
// 413, 422, ...) are about one model or one request: the provider answered
// and serves its other models. Counting them would let one misconfigured
// llm.agents override or fallback entry open the circuit and cut every other
// agent off a healthy provider. They are not retried, so such a call costs
// one quick request before the chain moves on; no per-model breaker is
// needed for them. Failures without an APIError count as before (unknown
// provider trouble, transport errors).
func providerWide(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode < 400 || ae.StatusCode >= 500 {
		return true
	}
	switch ae.StatusCode {
	case http.StatusUnauthorized, http.StatusPaymentRequired, http.StatusForbidden,
		http.StatusRequestTimeout, http.StatusConflict, http.StatusTooManyRequests:
		return true
	}
	return false
}

// ErrAllProvidersDown is returned when every provider of the chain has an
// open circuit.
var ErrAllProvidersDown = errors.New("llm: every provider of the chain is failing (circuit open)")

func (m *routed) Generate(ctx context.Context, req Request) (resp *Response, err error) {
	if req.Agent == "" {
		req.Agent = m.agent
	}
	ctx, span := telemetry.StartModelCall(ctx, req.Agent)
	defer func() { endModelSpan(span, resp, err) }()
	if err := ValidateRequest(req); err != nil {
		return nil, err
	}
	if m.r.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.r.timeout)
		defer cancel()
	}
	// A model of the chain that streamed text and failed leaves that text
	// with the reader; the next model's answer starts over, so the reader is
	// told before its first delta (like RestartNotice for a retry).
	var streamed bool
	var notice string
	if onDelta := req.OnDelta; onDelta != nil {
		// Calls to OnDelta happen inside generateStructured, never beside
		// this loop.
		req.OnDelta = func(d string) {
			if notice != "" {
				onDelta(notice)
				notice = ""
			}
			streamed = true
			onDelta(d)
		}
	}
	var errs []error
	tried := false
	for i, ep := range m.rt.chain {
		if !ep.gate.breaker.Allow() {
			errs = append(errs, fmt.Errorf("%s/%s: circuit open", ep.provider, ep.model))
			continue
		}
		tried = true
		if streamed {
			notice = FallbackNotice(m.r.red.String(ep.label()))
		}
		epReq := req
		if epReq.MaxTokens <= 0 {
			epReq.MaxTokens = m.r.outputTokens(req.Agent, ep)
		}
		limit := max(OutputLimit(ep.provider, ep.model), epReq.MaxTokens)
		resp, err := generateStructured(ctx, ep, epReq, limit)
		if err == nil {
			ep.gate.breaker.Success()
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, m.r.red.Error(err)
		}
		var se *SchemaError
		var te *TruncatedError
		switch {
		case errors.As(err, &te):
			// The provider works; the unit of work is too big for one
			// answer. Another model would most likely cut it off too, and
			// the caller must see the partial text (redacted, like all).
			ep.gate.breaker.Success()
			te.Text = m.r.red.String(te.Text)
			return nil, te
		case errors.As(err, &se):
			ep.gate.breaker.Success() // the provider works; the answer did not
			return nil, m.r.red.Error(err)
		}
		err = m.r.red.Error(err)
		if providerWide(err) {
			ep.gate.breaker.Failure()
		}
		errs = append(errs, err)
		if i+1 < len(m.rt.chain) {
			m.r.log.LogAttrs(ctx, slog.LevelWarn, "llm: provider failed; falling back",
				slog.String("agent", req.Agent), slog.String("from", ep.label()),
				slog.String("to", m.rt.chain[i+1].label()), slog.String("error", err.Error()))
		}
	}
	if !tried {
		return nil, fmt.Errorf("%w: %v", ErrAllProvidersDown, errors.Join(errs...))
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, fmt.Errorf("llm: every provider of the chain failed: %w", errors.Join(errs...))
}

// probeOpenAICompatible asks an OpenAI-compatible server for its models and
// returns the first one.
func probeOpenAICompatible(client *http.Client, base string, timeout time.Duration) (string, error) {
	if client == nil {
		client = http.DefaultClient
	}
	if timeout <= 0 {
		timeout = time.Second
	}
	u, err := url.Parse(NormalizeOpenAIBaseURL(base))
	if err != nil {
		return "", err
	}
	u = u.JoinPath("models")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	var body struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return "", fmt.Errorf("GET %s: %w", u, err)
	}
	for _, d := range body.Data {
		if d.ID != "" {
			return d.ID, nil
		}
	}
	return "", fmt.Errorf("GET %s: the server lists no model", u)
}

// NormalizeOpenAIBaseURL makes a base URL usable by openai-go, which joins
// paths like "chat/completions" onto it: a bare host gets "/v1/" (Ollama,
// vLLM, llama.cpp, LM Studio and LiteLLM all serve /v1), any other path is
// kept and given a trailing slash.
func NormalizeOpenAIBaseURL(base string) string {
	base = strings.TrimSpace(base)
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return base
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/"
	} else if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u.String()
}
