package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/dotenv"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

// Variable describes one configuration variable: its environment name, its
// default and whether it is a secret (never printed).
type Variable struct {
	Name    string
	Default string
	Secret  bool
	Help    string
	// Group says which generated env file carries it (see GenerateEnvFiles).
	Group string
}

// Variables lists every variable Catalyst reads, in documentation order. The
// names and defaults of the original backend guide are kept as they were.
var Variables = []Variable{
	{Name: "MONGO_URL", Secret: true, Group: "Database", Help: "MongoDB connection URL; empty uses the embedded SQLite store"},
	{Name: "DB_NAME", Default: "catalyst_db", Group: "Database", Help: "MongoDB database name"},
	{Name: "NATS_URL", Secret: true, Group: "Database", Help: "NATS server with JetStream (nats://host:4222); set with MONGO_URL to scale out over workers; empty runs tasks in this process"},
	{Name: "CATALYST_LEASE_TTL", Default: "15s", Group: "Performance", Help: "how long a task's lease outlives its owner's last heartbeat before another process takes the task over (Go duration, 1s to 10m)"},
	{Name: "EMERGENT_LLM_KEY", Secret: true, Group: "LLM", Help: "universal key for an OpenAI-compatible LLM gateway"},
	{Name: "EMERGENT_BASE_URL", Group: "LLM", Help: "base URL of the gateway EMERGENT_LLM_KEY is sent to"},
	{Name: "DEFAULT_LLM_PROVIDER", Default: "anthropic", Group: "LLM", Help: "anthropic, openai or google"},
	{Name: "DEFAULT_LLM_MODEL", Default: "claude-3-7-sonnet-20250219", Group: "LLM", Help: "model used unless an agent overrides it"},
	{Name: "OPENAI_API_KEY", Secret: true, Group: "LLM", Help: "OpenAI key (overrides EMERGENT_LLM_KEY for openai)"},
	{Name: "OPENAI_BASE_URL", Group: "LLM", Help: "any OpenAI-compatible server: Ollama, vLLM, llama.cpp, LM Studio, LiteLLM"},
	{Name: "ANTHROPIC_API_KEY", Secret: true, Group: "LLM", Help: "Anthropic key (overrides EMERGENT_LLM_KEY for anthropic)"},
	{Name: "ANTHROPIC_BASE_URL", Group: "LLM", Help: "Anthropic API base URL (proxies, gateways)"},
	{Name: "GOOGLE_API_KEY", Secret: true, Group: "LLM", Help: "Google Gemini key (overrides EMERGENT_LLM_KEY for google)"},
	{Name: "GOOGLE_GEMINI_BASE_URL", Group: "LLM", Help: "Gemini API base URL"},
	{Name: "CATALYST_OLLAMA_URL", Default: "http://127.0.0.1:11434", Group: "LLM", Help: "OpenAI-compatible server probed when no key is set; off disables the probe"},
	{Name: "CATALYST_OFFLINE_LATENCY", Default: "0s", Group: "LLM", Help: "sleep per call of the offline provider (Go duration)"},
	{Name: "LLM_MAX_OUTPUT_TOKENS", Default: "0", Group: "LLM", Help: "max_tokens of every model call that sets none; 0 takes each model's catalogue value (8192 for unknown models); config.yaml llm.agents.<agent>.max_output_tokens overrides it per agent"},
	{Name: "CORS_ORIGINS", Default: "*", Group: "Server", Help: "* or a comma-separated list of allowed origins"},
	{Name: "BACKEND_PORT", Default: "8001", Group: "Server", Help: "HTTP port"},
	{Name: "CATALYST_BIND", Default: "127.0.0.1", Group: "Server", Help: "listen address; anything but loopback is an explicit choice (every API request needs the server token either way)"},
	{Name: "CATALYST_PUBLIC_URL", Group: "Server", Help: "how users reach the dashboard and API (sign-in link, allowed Host); default http://localhost:BACKEND_PORT"},
	{Name: "CATALYST_API_TOKEN", Secret: true, Group: "Server", Help: "the server token every API request must carry (sign-in link, Bearer header); empty: generated at first start and kept in CATALYST_DATA_DIR/api_token (0600)"},
	{Name: "CATALYST_ALLOWED_HOSTS", Group: "Server", Help: "comma-separated host names the server answers to besides localhost, 127.0.0.1, ::1 and the hosts of CATALYST_PUBLIC_URL and CATALYST_PREVIEW_URL (DNS-rebinding guard)"},
	{Name: "CATALYST_PREVIEW_PORT", Group: "Server", Help: "port of the separate origin that serves generated apps' previews; default BACKEND_PORT+1 (0 when BACKEND_PORT is 0: any free port)"},
	{Name: "CATALYST_PREVIEW_URL", Group: "Server", Help: "how users reach the previews (deployment URLs); default CATALYST_PUBLIC_URL's scheme and host with CATALYST_PREVIEW_PORT; must be another origin than CATALYST_PUBLIC_URL"},
	{Name: "CATALYST_DATA_DIR", Default: "./data", Group: "Server", Help: "embedded database, task workspaces and git repositories"},
	{Name: "CATALYST_MAX_BODY_BYTES", Default: "1048576", Group: "Server", Help: "largest accepted request body"},
	{Name: "CATALYST_RATE_LIMIT", Default: "600", Group: "Security", Help: "requests per minute a client address, and a signed-in user, may send (burst as large); 0 turns it off"},
	{Name: "CATALYST_LOGIN_RATE_LIMIT", Default: "5", Group: "Security", Help: "sign-in and sign-up attempts per minute per client address and per e-mail address, with growing delays after as many failures in a row; 0 turns it off"},
	{Name: "CATALYST_TRUSTED_PROXIES", Group: "Security", Help: "comma-separated addresses or CIDR prefixes of reverse proxies whose X-Forwarded-For names the client (rate limits); empty: the peer address is the client"},
	{Name: "GITHUB_TOKEN", Secret: true, Group: "Integrations", Help: "GitHub token (explorer, deployer pull requests)"},
	{Name: "JIRA_URL", Group: "Integrations", Help: "Jira base URL"},
	{Name: "JIRA_USERNAME", Group: "Integrations", Help: "Jira user"},
	{Name: "JIRA_API_TOKEN", Secret: true, Group: "Integrations", Help: "Jira API token"},
	{Name: "SERVICENOW_URL", Group: "Integrations", Help: "ServiceNow instance URL"},
	{Name: "SERVICENOW_USERNAME", Group: "Integrations", Help: "ServiceNow user"},
	{Name: "SERVICENOW_PASSWORD", Secret: true, Group: "Integrations", Help: "ServiceNow password"},
	{Name: "CATALYST_EXPLORER_ALLOW_PRIVATE", Default: "false", Group: "Integrations", Help: "let the Explorer reach loopback, link-local and private addresses (self-hosted GitLab, Jira or ServiceNow on a company network)"},
	{Name: "ENABLE_AUDIT_LOGS", Default: "true", Group: "Security", Help: "record audit logs"},
	{Name: "ENABLE_PII_REDACTION", Default: "true", Group: "Security", Help: "redact PII in logs"},
	{Name: "SESSION_TIMEOUT", Default: "60", Group: "Security", Help: "session timeout in minutes: a sign-in session ends after this long unused"},
	{Name: "CATALYST_SIGNUP", Group: "Security", Help: "who may register after the first user (who becomes admin): open, invite or closed; default open, closed when ENVIRONMENT=production"},
	{Name: "MAX_CONCURRENT_TASKS", Default: "5", Group: "Performance", Help: "tasks executed at once; the rest wait in order"},
	{Name: "AGENT_TIMEOUT", Default: "300", Group: "Performance", Help: "timeout of one agent step, seconds"},
	{Name: "WEBSOCKET_PING_INTERVAL", Default: "30", Group: "Performance", Help: "WebSocket ping interval, seconds"},
	{Name: "MAX_FIX_ITERATIONS", Default: "3", Group: "Performance", Help: "fix rounds the coder gets before a task fails"},
	{Name: "MAX_TASK_COST", Default: "0", Group: "Performance", Help: "per-task budget in USD; 0 means no budget"},
	{Name: "CODER_MAX_STEPS", Default: "40", Group: "Performance", Help: "model turns of one coder run (first write or a fix round) before its tool loop stops"},
	{Name: "CODER_MAX_TOKENS", Default: "2000000", Group: "Performance", Help: "tokens (input, output, cache reads and writes) of one coder run before its tool loop stops"},
	{Name: "CODER_MAX_COST_USD", Default: "0", Group: "Performance", Help: "cost in USD of one coder run before its tool loop stops; 0 means no bound beyond MAX_TASK_COST"},
	{Name: "CATALYST_MAX_QUEUED_TASKS_PER_USER", Default: "10", Group: "Performance", Help: "pending plus running tasks one signed-in user may have; more answer 429; 0 means no cap"},
	{Name: "CATALYST_USER_BUDGET_USD", Default: "0", Group: "Performance", Help: "what one user's tasks may cost in all (USD); once spent, new tasks answer 402; 0 means no budget"},
	{Name: "ENABLE_METRICS", Default: "true", Group: "Monitoring", Help: "serve metrics"},
	{Name: "ENABLE_PERFORMANCE_MONITORING", Default: "false", Group: "Monitoring", Help: "APM"},
	{Name: "SENTRY_DSN", Secret: true, Group: "Monitoring", Help: "Sentry error tracking DSN"},
	{Name: "ENVIRONMENT", Default: "development", Group: "Deployment", Help: "environment name"},
	{Name: "MOCK_DEPLOYMENT", Default: "true", Group: "Deployment", Help: "simulate publishing outside Catalyst (pushes, pull requests)"},
	{Name: "LOG_LEVEL", Default: "INFO", Group: "Logging", Help: "DEBUG, INFO, WARNING or ERROR"},
}

var known = func() map[string]Variable {
	m := make(map[string]Variable, len(Variables))
	for _, v := range Variables {
		m[strings.ToLower(v.Name)] = v
	}
	return m
}()

// Sources says where configuration is read from. Empty fields use the
// defaults: config.yaml and backend/.env (or .env) in the working directory
// when they exist, and the process environment.
type Sources struct {
	// YAMLFile is the config.yaml path; "" looks for ./config.yaml.
	YAMLFile string
	// DotEnvFile is the dotenv path; "" looks for ./backend/.env, then ./.env.
	DotEnvFile string
	// Environ replaces os.Environ (tests).
	Environ func() []string
}

// Load reads and validates the configuration. Later sources win: built-in
// defaults < config.yaml < dotenv file < process environment.
func Load(src Sources) (*Config, error) {
	k, err := load(src)
	if err != nil {
		return nil, err
	}
	return parse(k)
}

func load(src Sources) (*koanf.Koanf, error) {
	k := koanf.New(".")
	defaults := make(map[string]any, len(Variables))
	for _, v := range Variables {
		defaults[strings.ToLower(v.Name)] = v.Default
	}
	if err := k.Load(confmap.Provider(defaults, "."), nil); err != nil {
		return nil, err
	}

	yamlPath, explicit := src.YAMLFile, src.YAMLFile != ""
	if !explicit {
		yamlPath = "config.yaml"
	}
	if err := loadFile(k, yamlPath, explicit, yaml.Parser()); err != nil {
		return nil, err
	}

	envPath, explicit := src.DotEnvFile, src.DotEnvFile != ""
	if !explicit {
		envPath = ""
		for _, p := range []string{filepath.Join("backend", ".env"), ".env"} {
			if _, err := os.Stat(p); err == nil {
				envPath = p
				break
			}
		}
	}
	if envPath != "" {
		// Dotenv files written by hand often quote values ("true"); koanf's
		// parser keeps quotes, so strip one matching pair.
		p := dotenv.ParserEnvWithValue("", ".", func(key, value string) (string, any) {
			return strings.ToLower(key), unquote(value)
		})
		if err := loadFile(k, envPath, explicit, p); err != nil {
			return nil, err
		}
	}

	environ := src.Environ
	if environ == nil {
		environ = os.Environ
	}
	err := k.Load(env.Provider(".", env.Opt{
		EnvironFunc: environ,
		TransformFunc: func(name, value string) (string, any) {
			key := strings.ToLower(name)
			if _, ok := known[key]; !ok {
				return "", nil // only our variables; PATH and friends stay out
			}
			return key, value
		},
	}), nil)
	return k, err
}

func loadFile(k *koanf.Koanf, path string, required bool, p koanf.Parser) error {
	if _, err := os.Stat(path); err != nil {
		if !required && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("config: %w", err)
	}
	// config.yaml may spell variables as in the environment (MONGO_URL) or in
	// lower case; one spelling inside the program.
	raw := koanf.New(".")
	if err := raw.Load(file.Provider(path), p); err != nil {
		return fmt.Errorf("config: reading %s: %w", path, err)
	}
	lowered := make(map[string]any)
	for key, val := range raw.Raw() {
		lowered[strings.ToLower(key)] = val
	}
	return k.Load(confmap.Provider(lowered, ""), nil)
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

// maxOutputTokens bounds LLM_MAX_OUTPUT_TOKENS and its per-agent
// overrides: no model answers with more, so a larger value is a typo.
const maxOutputTokens = 1_000_000

// parser collects every invalid value so one start-up names them all.
type parser struct {
	k    *koanf.Koanf
	errs []string
}

func (p *parser) str(name string) string {
	switch v := p.k.Get(strings.ToLower(name)).(type) {
	case nil:
		return ""
	case string:
		return strings.TrimSpace(v)
	default:
		return strings.TrimSpace(fmt.Sprint(v))
	}
}

func (p *parser) fail(name, value, accepted string) {
	p.errs = append(p.errs, fmt.Sprintf("%s=%q is invalid: accepted values are %s", name, value, accepted))
}

func (p *parser) integer(name string, min, max int) int {
	s := p.str(name)
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		p.fail(name, s, fmt.Sprintf("whole numbers from %d to %d", min, max))
	}
	return n
}

func (p *parser) number(name string, min float64) float64 {
	s := p.str(name)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < min {
		p.fail(name, s, fmt.Sprintf("numbers from %g up", min))
	}
	return f
}

func (p *parser) boolean(name string) bool {
	s := strings.ToLower(p.str(name))
	switch s {
	case "true", "1", "yes", "on":
		return true
	case "false", "0", "no", "off", "":
		return false
	}
	p.fail(name, s, "true or false")
	return false
}

func (p *parser) seconds(name string, min, max int) time.Duration {
	return time.Duration(p.integer(name, min, max)) * time.Second
}

func (p *parser) oneOf(name string, accepted ...string) string {
	s := p.str(name)
	for _, a := range accepted {
		if strings.EqualFold(s, a) {
			return a
		}
	}
	p.fail(name, s, strings.Join(accepted, ", "))
	return accepted[0]
}

func (p *parser) url(name string) string {
	s := p.str(name)
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.fail(name, s, "an http:// or https:// URL")
	}
	return s
}

// token reads the API token: long enough that guessing is hopeless, and
// only characters that survive a URL query and an HTTP header unescaped.
func (p *parser) token(name string) string {
	s := p.str(name)
	if s == "" {
		return ""
	}
	ok := len(s) >= 16 && len(s) <= 512
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.~", r)) {
			ok = false
		}
	}
	if !ok {
		// The value is a secret: never echo it.
		p.errs = append(p.errs, name+"=<redacted> is invalid: accepted values are 16 to 512 characters of A-Z a-z 0-9 - _ . ~ (or empty to generate one)")
	}
	return s
}

// hosts reads a comma-separated list of host names (no scheme, port or path).
// prefixes reads comma-separated IP addresses or CIDR prefixes.
func (p *parser) prefixes(name string) []netip.Prefix {
	var out []netip.Prefix
	for _, f := range strings.Split(p.str(name), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if pr, err := netip.ParsePrefix(f); err == nil {
			out = append(out, pr.Masked())
		} else if a, err := netip.ParseAddr(f); err == nil {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		} else {
			p.fail(name, f, "IP addresses or CIDR prefixes, such as 10.0.0.1,172.16.0.0/12")
		}
	}
	return out
}

func (p *parser) hosts(name string) []string {
	var out []string
	for _, h := range strings.Split(p.str(name), ",") {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		if !validHost(h) {
			p.fail(name, h, "host names or IP addresses without scheme, port or path, such as catalyst.example.com,10.0.0.5")
			continue
		}
		out = append(out, strings.Trim(h, "[]"))
	}
	return out
}

func validHost(h string) bool {
	if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
		return true
	}
	if len(h) > 253 || strings.HasPrefix(h, ".") || strings.HasSuffix(h, ".") || strings.Contains(h, "..") {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// preview reads the preview origin's port and URL. Their defaults follow the
// API's: the next port, the public URL's scheme and host.
func (p *parser) preview(backendPort int, publicURL string) (int, string) {
	port := backendPort + 1
	if backendPort == 0 {
		port = 0
	}
	if s := p.str("CATALYST_PREVIEW_PORT"); s != "" {
		port = p.integer("CATALYST_PREVIEW_PORT", 0, 65535)
	} else if port > 65535 {
		p.fail("CATALYST_PREVIEW_PORT", "", "a port other than BACKEND_PORT (BACKEND_PORT+1 is past 65535)")
	}
	if port != 0 && port == backendPort {
		p.fail("CATALYST_PREVIEW_PORT", strconv.Itoa(port), "a port other than BACKEND_PORT: previews must not share the API's origin")
	}
	previewURL := strings.TrimRight(p.url("CATALYST_PREVIEW_URL"), "/")
	pub, err := url.Parse(publicURL)
	if err != nil || pub.Host == "" {
		return port, previewURL
	}
	if previewURL == "" {
		previewURL = pub.Scheme + "://" + net.JoinHostPort(pub.Hostname(), strconv.Itoa(port))
	}
	if pv, err := url.Parse(previewURL); err == nil && pv.Port() != "0" && pub.Port() != "0" &&
		strings.EqualFold(pv.Scheme, pub.Scheme) && strings.EqualFold(hostPort(pv), hostPort(pub)) {
		p.fail("CATALYST_PREVIEW_URL", previewURL, "a URL of another origin than CATALYST_PUBLIC_URL ("+publicURL+"): a preview on the API's origin could call the API")
	}
	return port, previewURL
}

// hostPort is u's host with its scheme's default port made explicit.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// section checks that config.yaml's section (llm.retry) is a mapping whose
// keys are all among keys; absent is fine.
func (p *parser) section(section string, keys ...string) {
	v := p.k.Get(section)
	if v == nil {
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		p.fail(section, fmt.Sprint(v), "a mapping of "+strings.Join(keys, ", "))
		return
	}
	for key := range m {
		if !slices.Contains(keys, key) {
			p.fail(section+"."+key, key, strings.Join(keys, ", "))
		}
	}
}

// count reads an optional whole number of config.yaml: absent or 0 keeps
// the built-in default.
func (p *parser) count(key string, max int) int {
	s := p.str(key)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > max {
		p.fail(key, s, fmt.Sprintf("whole numbers from 0 (default) to %d", max))
		return 0
	}
	return n
}

// duration reads an optional Go duration of config.yaml: absent or 0 keeps
// the built-in default. A bare number is refused (seconds or nanoseconds?).
func (p *parser) duration(key string, max time.Duration, maxText string) time.Duration {
	s := p.str(key)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > max {
		p.fail(key, s, "0 (default) or a Go duration up to "+maxText+", such as 500ms or 20s")
		return 0
	}
	return d
}

// llmRetry reads config.yaml llm.retry.
func (p *parser) llmRetry() RetryConfig {
	p.section("llm.retry", "max_attempts", "base_delay", "max_delay", "max_retry_after")
	r := RetryConfig{
		MaxAttempts:   p.count("llm.retry.max_attempts", 100),
		BaseDelay:     p.duration("llm.retry.base_delay", time.Hour, "1h"),
		MaxDelay:      p.duration("llm.retry.max_delay", time.Hour, "1h"),
		MaxRetryAfter: p.duration("llm.retry.max_retry_after", time.Hour, "1h"),
	}
	if r.BaseDelay > 0 && r.MaxDelay > 0 && r.BaseDelay > r.MaxDelay {
		p.fail("llm.retry.base_delay", r.BaseDelay.String(), "durations up to llm.retry.max_delay ("+r.MaxDelay.String()+")")
	}
	return r
}

// llmBreaker reads config.yaml llm.breaker.
func (p *parser) llmBreaker() BreakerConfig {
	p.section("llm.breaker", "failures", "cooldown")
	return BreakerConfig{
		Failures: p.count("llm.breaker.failures", 1000),
		Cooldown: p.duration("llm.breaker.cooldown", 24*time.Hour, "24h"),
	}
}

func parse(k *koanf.Koanf) (*Config, error) {
	p := &parser{k: k}
	c := &Config{
		BackendPort:  p.integer("BACKEND_PORT", 0, 65535),
		BindAddress:  p.str("CATALYST_BIND"),
		DataDir:      p.str("CATALYST_DATA_DIR"),
		PublicURL:    strings.TrimRight(p.url("CATALYST_PUBLIC_URL"), "/"),
		MaxBodyBytes: int64(p.integer("CATALYST_MAX_BODY_BYTES", 1024, 1<<30)),
		Environment:  p.str("ENVIRONMENT"),
		LogLevel:     p.oneOf("LOG_LEVEL", "DEBUG", "INFO", "WARNING", "ERROR"),

		MongoURL: p.str("MONGO_URL"),
		DBName:   p.str("DB_NAME"),
		NATSURL:  p.str("NATS_URL"),

		GitHubToken:          p.str("GITHUB_TOKEN"),
		JiraURL:              p.url("JIRA_URL"),
		JiraUsername:         p.str("JIRA_USERNAME"),
		JiraAPIToken:         p.str("JIRA_API_TOKEN"),
		ServiceNowURL:        p.url("SERVICENOW_URL"),
		ServiceNowUsername:   p.str("SERVICENOW_USERNAME"),
		ServiceNowPassword:   p.str("SERVICENOW_PASSWORD"),
		ExplorerAllowPrivate: p.boolean("CATALYST_EXPLORER_ALLOW_PRIVATE"),

		EnableAuditLogs:    p.boolean("ENABLE_AUDIT_LOGS"),
		EnablePIIRedaction: p.boolean("ENABLE_PII_REDACTION"),
		SessionTimeout:     time.Duration(p.integer("SESSION_TIMEOUT", 1, 60*24*365)) * time.Minute,
		RateLimit:          p.integer("CATALYST_RATE_LIMIT", 0, 1000000),
		LoginRateLimit:     p.integer("CATALYST_LOGIN_RATE_LIMIT", 0, 10000),
		TrustedProxies:     p.prefixes("CATALYST_TRUSTED_PROXIES"),

		MaxConcurrentTasks:    p.integer("MAX_CONCURRENT_TASKS", 1, 100000),
		AgentTimeout:          p.seconds("AGENT_TIMEOUT", 1, 86400),
		WebSocketPingInterval: p.seconds("WEBSOCKET_PING_INTERVAL", 1, 3600),
		MaxFixIterations:      p.integer("MAX_FIX_ITERATIONS", 0, 100),
		MaxTaskCost:           p.number("MAX_TASK_COST", 0),
		CoderMaxSteps:         p.integer("CODER_MAX_STEPS", 1, 10000),
		CoderMaxTokens:        int64(p.integer("CODER_MAX_TOKENS", 1000, 1_000_000_000)),
		CoderMaxCost:          p.number("CODER_MAX_COST_USD", 0),
		MaxQueuedTasksPerUser: p.integer("CATALYST_MAX_QUEUED_TASKS_PER_USER", 0, 1000000),
		UserBudgetUSD:         p.number("CATALYST_USER_BUDGET_USD", 0),

		EnableMetrics:               p.boolean("ENABLE_METRICS"),
		EnablePerformanceMonitoring: p.boolean("ENABLE_PERFORMANCE_MONITORING"),
		SentryDSN:                   p.str("SENTRY_DSN"),

		MockDeployment: p.boolean("MOCK_DEPLOYMENT"),
	}
	if c.DBName == "" {
		p.fail("DB_NAME", "", "a non-empty database name")
	}
	if c.DataDir == "" {
		p.fail("CATALYST_DATA_DIR", "", "a directory path")
	}
	if c.BindAddress == "" {
		c.BindAddress = "127.0.0.1"
	}
	if c.PublicURL == "" {
		c.PublicURL = fmt.Sprintf("http://localhost:%d", c.BackendPort)
	}
	c.APIToken = p.token("CATALYST_API_TOKEN")
	c.Signup = "open"
	if c.Production() {
		c.Signup = "closed"
	}
	if p.str("CATALYST_SIGNUP") != "" {
		c.Signup = p.oneOf("CATALYST_SIGNUP", "open", "invite", "closed")
	}
	c.AllowedHosts = p.hosts("CATALYST_ALLOWED_HOSTS")
	c.PreviewPort, c.PreviewURL = p.preview(c.BackendPort, c.PublicURL)
	for _, o := range strings.Split(p.str("CORS_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.CORSOrigins = append(c.CORSOrigins, strings.TrimRight(o, "/"))
		}
	}
	if len(c.CORSOrigins) == 0 {
		c.CORSOrigins = []string{"*"}
	}
	if c.MongoURL != "" && !strings.HasPrefix(c.MongoURL, "mongodb://") && !strings.HasPrefix(c.MongoURL, "mongodb+srv://") {
		p.fail("MONGO_URL", "<redacted>", "a mongodb:// or mongodb+srv:// URL, or empty for the embedded store")
	}

	c.LLM = LLMConfig{
		DefaultProvider:  p.oneOf("DEFAULT_LLM_PROVIDER", "anthropic", "openai", "google"),
		DefaultModel:     p.str("DEFAULT_LLM_MODEL"),
		EmergentKey:      p.str("EMERGENT_LLM_KEY"),
		EmergentBaseURL:  p.url("EMERGENT_BASE_URL"),
		AnthropicKey:     p.str("ANTHROPIC_API_KEY"),
		AnthropicBaseURL: p.url("ANTHROPIC_BASE_URL"),
		OpenAIKey:        p.str("OPENAI_API_KEY"),
		OpenAIBaseURL:    p.url("OPENAI_BASE_URL"),
		GoogleKey:        p.str("GOOGLE_API_KEY"),
		GoogleBaseURL:    p.url("GOOGLE_GEMINI_BASE_URL"),
		OllamaURL:        p.str("CATALYST_OLLAMA_URL"),
		MaxOutputTokens:  p.integer("LLM_MAX_OUTPUT_TOKENS", 0, maxOutputTokens),
	}
	if s := p.str("CATALYST_OFFLINE_LATENCY"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			p.fail("CATALYST_OFFLINE_LATENCY", s, "a Go duration such as 500ms or 2s")
		}
		c.LLM.OfflineLatency = d
	}
	if s := p.str("CATALYST_LEASE_TTL"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Second || d > 10*time.Minute {
			p.fail("CATALYST_LEASE_TTL", s, "a Go duration from 1s to 10m, such as 15s")
		}
		c.LeaseTTL = d
	}
	if c.NATSURL != "" {
		if !strings.HasPrefix(c.NATSURL, "nats://") && !strings.HasPrefix(c.NATSURL, "tls://") {
			p.fail("NATS_URL", "<redacted>", "a nats:// or tls:// URL, or empty to run tasks in this process")
		} else if c.MongoURL == "" {
			p.fail("NATS_URL", "<redacted>", "only together with MONGO_URL: workers on other machines cannot share the embedded SQLite file, so scaling out needs MongoDB")
		}
	}
	if c.LLM.DefaultModel == "" {
		p.fail("DEFAULT_LLM_MODEL", "", "a model name")
	}
	if err := k.Unmarshal("llm.agents", &c.LLM.Agents); err != nil {
		p.errs = append(p.errs, "config.yaml llm.agents: "+err.Error())
	}
	if err := k.Unmarshal("llm.fallback", &c.LLM.Fallback); err != nil {
		p.errs = append(p.errs, "config.yaml llm.fallback: "+err.Error())
	}
	if err := k.Unmarshal("llm.pricing", &c.LLM.Pricing); err != nil {
		p.errs = append(p.errs, "config.yaml llm.pricing: "+err.Error())
	}
	if err := k.Unmarshal("llm.limits", &c.LLM.Limits); err != nil {
		p.errs = append(p.errs, "config.yaml llm.limits: "+err.Error())
	}
	for provider, l := range c.LLM.Limits {
		switch provider {
		case "anthropic", "openai", "google", "emergent", "ollama":
		default:
			p.fail("llm.limits."+provider, provider, "anthropic, openai, google, emergent, ollama")
		}
		if l.Concurrency < 0 {
			p.fail("llm.limits."+provider+".concurrency", strconv.Itoa(l.Concurrency), "0 (default) or more")
		}
		if l.TokensPerMinute < -1 {
			p.fail("llm.limits."+provider+".tokens_per_minute", strconv.Itoa(l.TokensPerMinute), "-1 (no limit), 0 (default) or more")
		}
	}
	c.LLM.Retry, c.LLM.Breaker = p.llmRetry(), p.llmBreaker()
	for agent, mc := range c.LLM.Agents {
		// A misspelt key (max_tokens) would otherwise be ignored in silence.
		p.section("llm.agents."+agent, "provider", "model", "max_output_tokens")
		if mc.Provider != "" && mc.Provider != "anthropic" && mc.Provider != "openai" && mc.Provider != "google" {
			p.fail("llm.agents."+agent+".provider", mc.Provider, "anthropic, openai, google")
		}
		if mc.MaxOutputTokens < 0 || mc.MaxOutputTokens > maxOutputTokens {
			p.fail("llm.agents."+agent+".max_output_tokens", strconv.Itoa(mc.MaxOutputTokens), fmt.Sprintf("whole numbers from 0 (default) to %d", maxOutputTokens))
		}
	}

	if len(p.errs) > 0 {
		sort.Strings(p.errs)
		return nil, fmt.Errorf("invalid configuration:\n  %s", strings.Join(p.errs, "\n  "))
	}
	return c, nil
}

// Redacted lists every variable with its effective value, secrets masked;
// for --print-config and start-up logs.
func Redacted(src Sources) ([][2]string, error) {
	k, err := load(src)
	if err != nil {
		return nil, err
	}
	if _, err := parse(k); err != nil {
		return nil, err
	}
	out := make([][2]string, 0, len(Variables))
	for _, v := range Variables {
		val := fmt.Sprint(k.Get(strings.ToLower(v.Name)))
		if v.Secret && val != "" {
			val = "<redacted>"
		}
		out = append(out, [2]string{v.Name, val})
	}
	return out, nil
}

// Secrets returns the values of every secret variable that is set, so that
// loggers and event recorders can scrub them from any text.
// Production reports ENVIRONMENT=production (any case).
func (c *Config) Production() bool { return strings.EqualFold(c.Environment, "production") }

// MinProductionTokenLen is the shortest CATALYST_API_TOKEN production accepts.
const MinProductionTokenLen = 32

// CheckServe returns why a server must not start with this configuration.
// In production the bootstrap admin credential must come from the
// configuration (a secret store), not a file generated on whatever disk the
// container has, and be long enough. Authentication itself cannot be turned
// off in any environment, and nothing is signed (sessions and keys are
// random tokens stored hashed), so no signing secret is needed.
func (c *Config) CheckServe() error {
	if !c.Production() {
		return nil
	}
	if len(c.APIToken) < MinProductionTokenLen {
		return fmt.Errorf("ENVIRONMENT=production: CATALYST_API_TOKEN must be set to at least %d characters "+
			"(for example: openssl rand -hex 32); it is the bootstrap admin credential, and production does not generate one", MinProductionTokenLen)
	}
	return nil
}

func (c *Config) Secrets() []string {
	var out []string
	for _, s := range []string{c.APIToken, c.MongoURL, c.NATSURL, c.LLM.EmergentKey, c.LLM.AnthropicKey, c.LLM.OpenAIKey, c.LLM.GoogleKey,
		c.GitHubToken, c.JiraAPIToken, c.ServiceNowPassword, c.SentryDSN} {
		if len(s) >= 4 {
			out = append(out, s)
		}
	}
	return out
}
