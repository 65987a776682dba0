package domain

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// scpLikeGit matches git's scp-like syntax: user@host:path.
var scpLikeGit = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._~/-]+$`)

// CheckRepoURL accepts the URLs git can clone from a server: http(s), git,
// ssh (URL or scp-like). Local paths, file:// and git's ext:: transports are
// refused: a task must not be pointed at the server's own disk or make git
// run a command. A password in the URL is refused too: it would be stored
// and shown; credentials go in the project's credential reference.
func CheckRepoURL(raw string) error {
	if raw == "" {
		return nil
	}
	if len(raw) > 2048 {
		return fmt.Errorf("repo_url is longer than 2048 bytes")
	}
	if strings.HasPrefix(raw, "-") || strings.ContainsAny(raw, " \t\r\n\x00") {
		return fmt.Errorf("repo_url must be a git repository URL")
	}
	if scpLikeGit.MatchString(raw) {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" || strings.HasPrefix(u.Host, "-") {
		return fmt.Errorf("repo_url must be an http(s), git or ssh repository URL")
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "git", "ssh":
	default:
		return fmt.Errorf("repo_url must be an http(s), git or ssh repository URL, not %s://", u.Scheme)
	}
	if _, ok := u.User.Password(); ok {
		return fmt.Errorf("repo_url must not hold a password: set repo_credential to the environment variable that holds it")
	}
	return nil
}

// CredentialPrefix starts the name of every environment variable a project
// may name as its repository credential. Without the prefix a project could
// name any secret of the server (ANTHROPIC_API_KEY, ...) and have it sent to
// a git server it chose.
const CredentialPrefix = "CATALYST_REPO_TOKEN_"

var credentialRef = regexp.MustCompile(`^` + CredentialPrefix + `[A-Z0-9_]{1,64}$`)

// CheckCredentialRef validates a project's credential reference: empty, or
// the name of an environment variable CATALYST_REPO_TOKEN_<NAME> (upper
// case, digits, underscores) that holds the token. The token itself never
// enters the store, the API or a log.
func CheckCredentialRef(ref string) error {
	if ref == "" || credentialRef.MatchString(ref) {
		return nil
	}
	return fmt.Errorf("repo_credential must name an environment variable %s<NAME> (A-Z, 0-9, _) that holds the token", CredentialPrefix)
}

// GitHubRepoOf returns "owner/name" for a github.com repository URL
// (https://github.com/owner/name(.git), git@github.com:owner/name.git), or "".
func GitHubRepoOf(raw string) string {
	var p string
	switch {
	case strings.HasPrefix(raw, "git@github.com:"):
		p = strings.TrimPrefix(raw, "git@github.com:")
	default:
		u, err := url.Parse(raw)
		if err != nil || !strings.EqualFold(u.Hostname(), "github.com") || (u.Scheme != "https" && u.Scheme != "ssh" && u.Scheme != "http") {
			return ""
		}
		p = strings.TrimPrefix(u.Path, "/")
	}
	p = strings.TrimSuffix(strings.TrimSuffix(p, "/"), ".git")
	parts := strings.Split(p, "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return ""
	}
	return p
}

// IsGitHubHTTPS reports whether raw is an https URL of github.com, the only
// host GITHUB_TOKEN is ever sent to.
func IsGitHubHTTPS(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "https" && strings.EqualFold(u.Host, "github.com")
}
