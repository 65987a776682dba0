// Package config loads Catalyst's configuration. Sources, later wins:
// built-in defaults < config.yaml < backend/.env style dotenv file < process
// environment. Every variable of the original backend guide keeps its name,
// meaning and default.
package config

import (
	"net/netip"
	"time"
)

// Config is the one typed configuration, passed down explicitly (no globals).
type Config struct {
	// Server
	BackendPort int    // BACKEND_PORT, default 8001
	BindAddress string // CATALYST_BIND, default 127.0.0.1 (loopback until auth exists)
	DataDir     string // CATALYST_DATA_DIR, default ./data
	// PublicURL is how users reach this server (preview links, deployment
	// urls); default http://localhost:<BACKEND_PORT>.
	PublicURL string // CATALYST_PUBLIC_URL
	// PreviewURL is the separate origin generated apps are served from
	// (deployment URLs); never the origin of PublicURL, so that a preview's
	// scripts are not same-origin with the dashboard and the API.
	PreviewURL  string // CATALYST_PREVIEW_URL, default PublicURL's host with PreviewPort
	PreviewPort int    // CATALYST_PREVIEW_PORT, default BACKEND_PORT+1
	// APIToken is the credential of every API request; empty until serve
	// generates one (or reads it from the data directory).
	APIToken string // CATALYST_API_TOKEN
	// AllowedHosts are the extra Host names served besides the loopback
	// names and the hosts of PublicURL and PreviewURL.
	AllowedHosts []string // CATALYST_ALLOWED_HOSTS
	CORSOrigins  []string
	MaxBodyBytes int64  // CATALYST_MAX_BODY_BYTES, default 1 MiB
	Environment  string // ENVIRONMENT, default development
	LogLevel     string // LOG_LEVEL: DEBUG, INFO, WARNING, ERROR

	// Store
	MongoURL string // MONGO_URL; empty selects the embedded SQLite store
	DBName   string // DB_NAME, default catalyst_db

	// Scale-out
	// NATSURL selects the NATS JetStream work queue and event bus; it needs
	// MongoURL (processes on other machines share nothing else).
	NATSURL string // NATS_URL
	// LeaseTTL is how long a task's lease outlives its owner's last
	// heartbeat; another process takes the task over after that.
	LeaseTTL time.Duration // CATALYST_LEASE_TTL, default 15s

	// LLM
	LLM LLMConfig

	// Integrations
	GitHubToken        string // GITHUB_TOKEN
	JiraURL            string // JIRA_URL
	JiraUsername       string // JIRA_USERNAME
	JiraAPIToken       string // JIRA_API_TOKEN
	ServiceNowURL      string // SERVICENOW_URL
	ServiceNowUsername string // SERVICENOW_USERNAME
	ServiceNowPassword string // SERVICENOW_PASSWORD
	// ExplorerAllowPrivate lets the Explorer's connectors reach loopback,
	// link-local and private addresses (internal/connector/netpolicy).
	ExplorerAllowPrivate bool // CATALYST_EXPLORER_ALLOW_PRIVATE, default false

	// Security
	EnableAuditLogs    bool          // ENABLE_AUDIT_LOGS, default true
	EnablePIIRedaction bool          // ENABLE_PII_REDACTION, default true
	SessionTimeout     time.Duration // SESSION_TIMEOUT (minutes), default 60
	// Signup is who may register after the first user: open, invite or
	// closed (CATALYST_SIGNUP; default open, closed in production).
	Signup string
	// RateLimit is requests per minute per client address and per user.
	RateLimit int // CATALYST_RATE_LIMIT, default 600; 0 = off
	// LoginRateLimit is sign-in attempts per minute per client and per
	// e-mail address, with growing delays after as many failures.
	LoginRateLimit int // CATALYST_LOGIN_RATE_LIMIT, default 5; 0 = off
	// TrustedProxies may name the client in X-Forwarded-For.
	TrustedProxies []netip.Prefix // CATALYST_TRUSTED_PROXIES

	// Performance
	MaxConcurrentTasks    int           // MAX_CONCURRENT_TASKS, default 5
	AgentTimeout          time.Duration // AGENT_TIMEOUT (seconds), default 300
	WebSocketPingInterval time.Duration // WEBSOCKET_PING_INTERVAL (seconds), default 30
	MaxFixIterations      int           // MAX_FIX_ITERATIONS, default 3
	MaxTaskCost           float64       // MAX_TASK_COST (USD), default 0 = no budget
	CoderMaxSteps         int           // CODER_MAX_STEPS: model turns of one coder run, default 40
	CoderMaxTokens        int64         // CODER_MAX_TOKENS: tokens of one coder run, default 2,000,000
	CoderMaxCost          float64       // CODER_MAX_COST_USD: USD of one coder run, default 0 = no bound
	// MaxQueuedTasksPerUser caps a signed-in user's pending plus running
	// tasks (CATALYST_MAX_QUEUED_TASKS_PER_USER, default 10, 0 = no cap).
	MaxQueuedTasksPerUser int
	// UserBudgetUSD is what one user's tasks may cost in all
	// (CATALYST_USER_BUDGET_USD, default 0 = no budget).
	UserBudgetUSD float64

	// Monitoring
	EnableMetrics               bool   // ENABLE_METRICS, default true
	EnablePerformanceMonitoring bool   // ENABLE_PERFORMANCE_MONITORING, default false
	SentryDSN                   string // SENTRY_DSN

	// Deployment
	MockDeployment bool // MOCK_DEPLOYMENT, default true
}

// LLMConfig selects and tunes model providers.
type LLMConfig struct {
	DefaultProvider string // DEFAULT_LLM_PROVIDER: anthropic, openai, google (default anthropic)
	DefaultModel    string // DEFAULT_LLM_MODEL, default claude-3-7-sonnet-20250219

	EmergentKey     string // EMERGENT_LLM_KEY: universal key for an OpenAI-compatible gateway
	EmergentBaseURL string // EMERGENT_BASE_URL

	AnthropicKey     string // ANTHROPIC_API_KEY
	AnthropicBaseURL string // ANTHROPIC_BASE_URL
	OpenAIKey        string // OPENAI_API_KEY
	OpenAIBaseURL    string // OPENAI_BASE_URL (any OpenAI-compatible server: Ollama, vLLM, ...)
	GoogleKey        string // GOOGLE_API_KEY
	GoogleBaseURL    string // GOOGLE_GEMINI_BASE_URL

	// OllamaURL is probed when no key is configured; default http://127.0.0.1:11434.
	OllamaURL string // CATALYST_OLLAMA_URL; "off" disables the probe
	// OfflineLatency makes the offline provider sleep per call.
	OfflineLatency time.Duration // CATALYST_OFFLINE_LATENCY
	// MaxOutputTokens is max_tokens for calls that set none; 0 takes the
	// model's catalogue value (LLM_MAX_OUTPUT_TOKENS). An agent's
	// ModelChoice.MaxOutputTokens wins over it.
	MaxOutputTokens int

	// Agents maps an agent name to a provider/model override and/or its
	// output limit (config.yaml llm.agents).
	Agents map[string]ModelChoice
	// Fallback is the ordered chain tried when a provider keeps failing (config.yaml llm.fallback).
	Fallback []ModelChoice
	// Pricing overrides the built-in table, keyed by model name (config.yaml llm.pricing).
	Pricing map[string]Price
	// Limits tunes each provider's pacing (config.yaml llm.limits), keyed by
	// anthropic, openai, google, emergent or ollama; missing entries keep the
	// built-in defaults.
	Limits map[string]ProviderLimits
	// Retry tunes retries of one provider call (config.yaml llm.retry);
	// zero fields keep the built-in defaults.
	Retry RetryConfig
	// Breaker tunes the per-provider circuit breaker (config.yaml
	// llm.breaker); zero fields keep the built-in defaults.
	Breaker BreakerConfig
}

// RetryConfig bounds the retries of one provider call. Every zero field
// keeps the built-in default (in parentheses).
type RetryConfig struct {
	// MaxAttempts counts the first try (4); 1 turns retries off.
	MaxAttempts int
	// BaseDelay (500ms) and MaxDelay (20s) bound the exponential backoff.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// MaxRetryAfter caps how long a server's Retry-After is honoured (60s).
	MaxRetryAfter time.Duration
}

// BreakerConfig tunes the circuit breaker of each provider. Every zero field
// keeps the built-in default (in parentheses).
type BreakerConfig struct {
	// Failures is how many consecutive failed calls open the circuit (3).
	Failures int
	// Cooldown is how long an open circuit skips the provider before one
	// call is let through again (30s).
	Cooldown time.Duration
}

// ProviderLimits bounds the traffic sent to one provider, so that many
// parallel tasks slow down instead of all hitting rate limits at once.
type ProviderLimits struct {
	// Concurrency is the number of calls in flight; 0 keeps the default.
	Concurrency int `koanf:"concurrency"`
	// TokensPerMinute paces calls; 0 keeps the default, -1 removes the limit.
	TokensPerMinute int `koanf:"tokens_per_minute"`
}

// ModelChoice names a provider and a model.
type ModelChoice struct {
	Provider string `koanf:"provider"`
	Model    string `koanf:"model"`
	// MaxOutputTokens overrides LLM_MAX_OUTPUT_TOKENS for one agent (in
	// llm.agents only; 0 keeps it). Without provider and model the agent
	// keeps the default model.
	MaxOutputTokens int `koanf:"max_output_tokens"`
}

// Price is USD per million tokens.
type Price struct {
	Input      float64 `koanf:"input"`
	Output     float64 `koanf:"output"`
	CacheRead  float64 `koanf:"cache_read"`
	CacheWrite float64 `koanf:"cache_write"`
}
