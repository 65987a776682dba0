package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func environ(kv ...string) func() []string { return func() []string { return kv } }

// isolated returns Sources that read nothing from the working directory.
func isolated(t *testing.T, kv ...string) Sources {
	t.Helper()
	return Sources{YAMLFile: writeFile(t, "config.yaml", "{}\n"), DotEnvFile: os.DevNull, Environ: environ(kv...)}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsMatchTheGuide(t *testing.T) {
	c, err := Load(isolated(t))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"BACKEND_PORT", c.BackendPort, 8001},
		{"DB_NAME", c.DBName, "catalyst_db"},
		{"DEFAULT_LLM_PROVIDER", c.LLM.DefaultProvider, "anthropic"},
		{"DEFAULT_LLM_MODEL", c.LLM.DefaultModel, "claude-3-7-sonnet-20250219"},
		{"CORS_ORIGINS", strings.Join(c.CORSOrigins, ","), "*"},
		{"ENABLE_AUDIT_LOGS", c.EnableAuditLogs, true},
		{"ENABLE_PII_REDACTION", c.EnablePIIRedaction, true},
		{"SESSION_TIMEOUT", c.SessionTimeout, 60 * time.Minute},
		{"MAX_CONCURRENT_TASKS", c.MaxConcurrentTasks, 5},
		{"CATALYST_MAX_QUEUED_TASKS_PER_USER", c.MaxQueuedTasksPerUser, 10},
		{"AGENT_TIMEOUT", c.AgentTimeout, 300 * time.Second},
		{"WEBSOCKET_PING_INTERVAL", c.WebSocketPingInterval, 30 * time.Second},
		{"ENABLE_METRICS", c.EnableMetrics, true},
		{"ENABLE_PERFORMANCE_MONITORING", c.EnablePerformanceMonitoring, false},
		{"ENVIRONMENT", c.Environment, "development"},
		{"MOCK_DEPLOYMENT", c.MockDeployment, true},
		{"LOG_LEVEL", c.LogLevel, "INFO"},
		{"MONGO_URL", c.MongoURL, ""},
		{"CATALYST_BIND", c.BindAddress, "127.0.0.1"},
		{"CATALYST_DATA_DIR", c.DataDir, "./data"},
		{"CATALYST_PUBLIC_URL", c.PublicURL, "http://localhost:8001"},
		{"MAX_FIX_ITERATIONS", c.MaxFixIterations, 3},
		{"CATALYST_MAX_BODY_BYTES", c.MaxBodyBytes, int64(1 << 20)},
		{"CATALYST_RATE_LIMIT", c.RateLimit, 600},
		{"CATALYST_LOGIN_RATE_LIMIT", c.LoginRateLimit, 5},
		{"CATALYST_TRUSTED_PROXIES", len(c.TrustedProxies), 0},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: got %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestTrustedProxies(t *testing.T) {
	c, err := Load(isolated(t, "CATALYST_TRUSTED_PROXIES=10.0.0.1, 172.16.0.0/12 ,::1"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.TrustedProxies); got != "[10.0.0.1/32 172.16.0.0/12 ::1/128]" {
		t.Fatalf("got %s", got)
	}
}

func TestPrecedence(t *testing.T) {
	yamlPath := writeFile(t, "config.yaml", `
MAX_CONCURRENT_TASKS: 7
agent_timeout: 100
LOG_LEVEL: DEBUG
DB_NAME: from_yaml
llm:
  agents:
    reviewer: {provider: anthropic, model: claude-3-5-haiku-20241022}
  fallback:
    - {provider: openai, model: gpt-4o-mini}
  pricing:
    my-model: {input: 1.5, output: 2.5, cache_read: 0.1, cache_write: 2}
  limits:
    anthropic: {concurrency: 2, tokens_per_minute: 40000}
    ollama: {tokens_per_minute: -1}
`)
	envPath := writeFile(t, ".env", "AGENT_TIMEOUT=\"200\"\nLOG_LEVEL='WARNING'\nUNRELATED=1\n")
	c, err := Load(Sources{YAMLFile: yamlPath, DotEnvFile: envPath, Environ: environ("LOG_LEVEL=error", "PATH=/bin")})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxConcurrentTasks != 7 {
		t.Errorf("yaml over default: MAX_CONCURRENT_TASKS=%d", c.MaxConcurrentTasks)
	}
	if c.AgentTimeout != 200*time.Second {
		t.Errorf("dotenv over yaml: AGENT_TIMEOUT=%v", c.AgentTimeout)
	}
	if c.LogLevel != "ERROR" {
		t.Errorf("environment over dotenv: LOG_LEVEL=%q", c.LogLevel)
	}
	if c.DBName != "from_yaml" {
		t.Errorf("DB_NAME=%q", c.DBName)
	}
	if got := c.LLM.Agents["reviewer"]; got.Model != "claude-3-5-haiku-20241022" || got.Provider != "anthropic" {
		t.Errorf("agent override: %+v", got)
	}
	if len(c.LLM.Fallback) != 1 || c.LLM.Fallback[0].Model != "gpt-4o-mini" {
		t.Errorf("fallback: %+v", c.LLM.Fallback)
	}
	if p := c.LLM.Pricing["my-model"]; p.Input != 1.5 || p.CacheWrite != 2 {
		t.Errorf("pricing: %+v", p)
	}
	if l := c.LLM.Limits["anthropic"]; l.Concurrency != 2 || l.TokensPerMinute != 40000 {
		t.Errorf("limits: %+v", c.LLM.Limits)
	}
	if l := c.LLM.Limits["ollama"]; l.TokensPerMinute != -1 {
		t.Errorf("limits: %+v", c.LLM.Limits)
	}
}

func TestInvalidValuesNameTheVariableAndAcceptedValues(t *testing.T) {
	cases := map[string][]string{
		"MAX_CONCURRENT_TASKS=abc":                        {"MAX_CONCURRENT_TASKS", "whole numbers"},
		"LOG_LEVEL=verbose":                               {"LOG_LEVEL", "DEBUG, INFO, WARNING, ERROR"},
		"MOCK_DEPLOYMENT=perhaps":                         {"MOCK_DEPLOYMENT", "true or false"},
		"DEFAULT_LLM_PROVIDER=acme":                       {"DEFAULT_LLM_PROVIDER", "anthropic, openai, google"},
		"BACKEND_PORT=70000":                              {"BACKEND_PORT"},
		"AGENT_TIMEOUT=0":                                 {"AGENT_TIMEOUT"},
		"OPENAI_BASE_URL=ftp://x":                         {"OPENAI_BASE_URL", "http"},
		"MAX_TASK_COST=-1":                                {"MAX_TASK_COST"},
		"CATALYST_MAX_QUEUED_TASKS_PER_USER=-1":           {"CATALYST_MAX_QUEUED_TASKS_PER_USER"},
		"CATALYST_USER_BUDGET_USD=lots":                   {"CATALYST_USER_BUDGET_USD"},
		"CATALYST_OFFLINE_LATENCY=fast":                   {"CATALYST_OFFLINE_LATENCY", "duration"},
		"CATALYST_RATE_LIMIT=-1":                          {"CATALYST_RATE_LIMIT", "whole numbers"},
		"CATALYST_LOGIN_RATE_LIMIT=x":                     {"CATALYST_LOGIN_RATE_LIMIT"},
		"CATALYST_TRUSTED_PROXIES=10.0.0.1,proxy.example": {"CATALYST_TRUSTED_PROXIES", "proxy.example", "CIDR"},
	}
	bad := writeFile(t, "config.yaml", "llm:\n  limits:\n    acme: {concurrency: 1}\n    openai: {concurrency: -3}\n")
	if _, err := Load(Sources{YAMLFile: bad, DotEnvFile: os.DevNull, Environ: environ()}); err == nil ||
		!strings.Contains(err.Error(), "llm.limits.acme") || !strings.Contains(err.Error(), "llm.limits.openai.concurrency") {
		t.Errorf("bad llm.limits: %v", err)
	}
	for kv, want := range cases {
		_, err := Load(isolated(t, kv))
		if err == nil {
			t.Errorf("%s: accepted", kv)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", kv, err, w)
			}
		}
	}
}

func TestSecretsAreNeverPrinted(t *testing.T) {
	const key = "sk-ant-supersecret-123"
	const mongo = "mongodb://admin:hunter2@db:27017"
	src := isolated(t, "ANTHROPIC_API_KEY="+key, "MONGO_URL="+mongo, "GITHUB_TOKEN=ghp_abcdef")
	rows, err := Redacted(src)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, r := range rows {
		all.WriteString(r[0] + "=" + r[1] + "\n")
	}
	for _, secret := range []string{key, "hunter2", "ghp_abcdef"} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("secret %q printed:\n%s", secret, all.String())
		}
	}
	if !strings.Contains(all.String(), "ANTHROPIC_API_KEY=<redacted>") {
		t.Errorf("secret not shown as redacted:\n%s", all.String())
	}
	// an invalid MONGO_URL must not echo the password either
	_, err = Load(isolated(t, "MONGO_URL=postgres://u:hunter2@x"))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("invalid MONGO_URL error leaks or is missing: %v", err)
	}
	c, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.Join(c.Secrets(), " "); !strings.Contains(s, key) || !strings.Contains(s, mongo) {
		t.Errorf("Secrets() misses configured secrets: %q", s)
	}
}

func TestEnvFilesFromYAML(t *testing.T) {
	yamlPath := writeFile(t, "config.yaml", `
MONGO_URL: mongodb://admin:password@mongodb:27017
EMERGENT_LLM_KEY: sk-emergent-xyz
BACKEND_PORT: 9001
mongo_root_username: admin
mongo_root_password: password
`)
	t.Setenv("BACKEND_PORT", "1234") // the generated files depend on config.yaml only
	files, err := EnvFiles(yamlPath)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := WriteEnvFiles(out, files, false); err != nil {
		t.Fatal(err)
	}
	backend, _ := os.ReadFile(filepath.Join(out, "backend", ".env"))
	for _, want := range []string{`MONGO_URL="mongodb://admin:password@mongodb:27017"`, `EMERGENT_LLM_KEY="sk-emergent-xyz"`, `BACKEND_PORT="9001"`, `DB_NAME="catalyst_db"`, `MOCK_DEPLOYMENT="true"`} {
		if !strings.Contains(string(backend), want) {
			t.Errorf("backend/.env lacks %s:\n%s", want, backend)
		}
	}
	root, _ := os.ReadFile(filepath.Join(out, ".env"))
	if !strings.Contains(string(root), `MONGO_ROOT_PASSWORD="password"`) {
		t.Errorf("root .env:\n%s", root)
	}
	front, _ := os.ReadFile(filepath.Join(out, "frontend", ".env"))
	if !strings.Contains(string(front), `REACT_APP_BACKEND_URL="http://localhost:9001"`) {
		t.Errorf("frontend/.env:\n%s", front)
	}
	for _, f := range files {
		st, err := os.Stat(filepath.Join(out, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f.Path, st.Mode().Perm())
		}
	}
	// the generated backend/.env loads back to the same configuration
	c, err := Load(Sources{YAMLFile: writeFile(t, "empty.yaml", "{}"), DotEnvFile: filepath.Join(out, "backend", ".env"), Environ: environ()})
	if err != nil {
		t.Fatal(err)
	}
	if c.BackendPort != 9001 || c.LLM.EmergentKey != "sk-emergent-xyz" {
		t.Errorf("round trip: port %d key %q", c.BackendPort, c.LLM.EmergentKey)
	}

	if err := os.WriteFile(filepath.Join(out, "frontend", ".env"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteEnvFiles(out, files, false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("overwrite without --force: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "frontend", ".env")); string(b) != "mine" {
		t.Error("refused write still changed a file")
	}
	if err := WriteEnvFiles(out, files, true); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(out, "frontend", ".env")); st.Mode().Perm() != 0o600 {
		t.Errorf("forced overwrite left mode %v", st.Mode().Perm())
	}
}

func TestEveryVariableIsDocumentedInREADME(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Variables {
		if !strings.Contains(string(readme), "`"+v.Name+"`") {
			t.Errorf("README.md does not document %s", v.Name)
		}
	}
}

func TestLLMRetryAndBreaker(t *testing.T) {
	c, err := Load(isolated(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.LLM.Retry != (RetryConfig{}) || c.LLM.Breaker != (BreakerConfig{}) {
		t.Fatalf("absent llm.retry/llm.breaker must keep the defaults (zero): %+v %+v", c.LLM.Retry, c.LLM.Breaker)
	}

	yamlPath := writeFile(t, "config.yaml", `
llm:
  retry: {max_attempts: 2, base_delay: 250ms, max_delay: 5s, max_retry_after: 1m30s}
  breaker: {failures: 5, cooldown: 2m}
`)
	c, err = Load(Sources{YAMLFile: yamlPath, DotEnvFile: os.DevNull, Environ: environ()})
	if err != nil {
		t.Fatal(err)
	}
	if want := (RetryConfig{MaxAttempts: 2, BaseDelay: 250 * time.Millisecond, MaxDelay: 5 * time.Second, MaxRetryAfter: 90 * time.Second}); c.LLM.Retry != want {
		t.Errorf("llm.retry = %+v, want %+v", c.LLM.Retry, want)
	}
	if want := (BreakerConfig{Failures: 5, Cooldown: 2 * time.Minute}); c.LLM.Breaker != want {
		t.Errorf("llm.breaker = %+v, want %+v", c.LLM.Breaker, want)
	}

	// Zero means the default; a partial section keeps the other defaults.
	c, err = Load(Sources{YAMLFile: writeFile(t, "config.yaml", "llm:\n  retry: {max_attempts: 0, max_delay: 0}\n  breaker: {cooldown: 10s}\n"),
		DotEnvFile: os.DevNull, Environ: environ()})
	if err != nil {
		t.Fatal(err)
	}
	if c.LLM.Retry != (RetryConfig{}) || c.LLM.Breaker != (BreakerConfig{Cooldown: 10 * time.Second}) {
		t.Errorf("zeros: %+v %+v", c.LLM.Retry, c.LLM.Breaker)
	}
}

func TestInvalidLLMRetryAndBreakerNameEveryBadValue(t *testing.T) {
	bad := writeFile(t, "config.yaml", `
llm:
  retry: {max_attempts: -1, base_delay: soon, max_delay: 30, max_retry_after: 2h, max_attempt: 3}
  breaker: {failures: lots, cooldown: -5s}
`)
	_, err := Load(Sources{YAMLFile: bad, DotEnvFile: os.DevNull, Environ: environ()})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`llm.retry.max_attempts="-1" is invalid: accepted values are whole numbers from 0 (default) to 100`,
		`llm.retry.base_delay="soon" is invalid: accepted values are 0 (default) or a Go duration`,
		`llm.retry.max_delay="30" is invalid`, // a bare number is ambiguous
		`llm.retry.max_retry_after="2h" is invalid: accepted values are 0 (default) or a Go duration up to 1h`,
		`llm.retry.max_attempt="max_attempt" is invalid: accepted values are max_attempts, base_delay, max_delay, max_retry_after`,
		`llm.breaker.failures="lots" is invalid: accepted values are whole numbers from 0 (default)`,
		`llm.breaker.cooldown="-5s" is invalid`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not report %s:\n%v", want, err)
		}
	}

	for yaml, want := range map[string]string{
		"llm:\n  retry: {base_delay: 10s, max_delay: 1s}\n": `llm.retry.base_delay="10s" is invalid: accepted values are durations up to llm.retry.max_delay (1s)`,
		"llm:\n  retry: 3\n":                `llm.retry="3" is invalid: accepted values are a mapping of max_attempts`,
		"llm:\n  breaker: {threshold: 3}\n": `llm.breaker.threshold="threshold" is invalid: accepted values are failures, cooldown`,
	} {
		_, err := Load(Sources{YAMLFile: writeFile(t, "config.yaml", yaml), DotEnvFile: os.DevNull, Environ: environ()})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v does not report %s", yaml, err, want)
		}
	}
}
