package workspace

import (
	"context"
	"fmt"
	"net/url"
	"os"
	osexec "os/exec"
	"strings"
)

// tokenEnv is the variable through which the credential helper receives the token.
const tokenEnv = "CATALYST_GIT_TOKEN"

// credentialHelper answers git's "get" with the token from the environment;
// GitHub accepts any username with a token as password.
const credentialHelper = `!f() { test "$1" = get || exit 0; echo username=x-access-token; echo "password=$` + tokenEnv + `"; }; f`

func lookGit() (string, error) {
	p, err := osexec.LookPath("git")
	if err != nil {
		return "", fmt.Errorf("workspace: git CLI not found on PATH: %w", err)
	}
	return p, nil
}

func gitCommand(ctx context.Context, name string, args ...string) *osexec.Cmd {
	return osexec.CommandContext(ctx, name, args...)
}

// gitEnv is a small environment for the git CLI: no user or system git config
// (no stray credential helpers or URL rewrites), no prompts, and the token only
// for the credential helper. extra adds configuration (key, value).
func gitEnv(token string, extra ...[2]string) []string {
	env := []string{
		"LANG=C", "LC_ALL=C",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_ASKPASS=", "SSH_ASKPASS=",
	}
	for _, k := range []string{"PATH", "HOME", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY",
		"https_proxy", "http_proxy", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO", "GIT_SSH_COMMAND"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	// An empty credential.helper resets the list, then ours is the only one.
	cfg := append([][2]string{{"credential.helper", ""}, {"safe.directory", "*"}}, extra...)
	if token != "" && !strings.ContainsAny(token, "\r\n") {
		cfg = append(cfg, [2]string{"credential.helper", credentialHelper})
		env = append(env, tokenEnv+"="+token)
	}
	env = append(env, fmt.Sprintf("GIT_CONFIG_COUNT=%d", len(cfg)))
	for i, kv := range cfg {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, kv[0]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, kv[1]))
	}
	return env
}

// redactURL drops any userinfo from a URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = url.User("REDACTED")
	return u.String()
}

// redact removes the token and any credentials of the remote URL from msg.
func redact(msg, token, remoteURL string) string {
	if token != "" {
		msg = strings.ReplaceAll(msg, token, "[REDACTED]")
	}
	if u, err := url.Parse(remoteURL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "[REDACTED]")
		}
		msg = strings.ReplaceAll(msg, remoteURL, redactURL(remoteURL))
	}
	return msg
}
