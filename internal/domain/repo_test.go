package domain

import "testing"

func TestCheckRepoURL(t *testing.T) {
	for _, ok := range []string{"", "https://github.com/acme/app.git", "http://127.0.0.1:8080/r.git", "git://host/r", "ssh://git@host/r.git", "git@github.com:acme/app.git"} {
		if err := CheckRepoURL(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"/etc", "file:///etc", "ext::sh -c id", "-uhttps://x/y", "https://user:secret@github.com/a/b", "ftp://h/r", "https://", "https://h/r x"} {
		if err := CheckRepoURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCheckCredentialRef(t *testing.T) {
	for _, ok := range []string{"", "CATALYST_REPO_TOKEN_ACME", "CATALYST_REPO_TOKEN_A_1"} {
		if err := CheckCredentialRef(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	// Any other variable would let a project send a server secret to a host it chose.
	for _, bad := range []string{"ANTHROPIC_API_KEY", "GITHUB_TOKEN", "CATALYST_REPO_TOKEN_", "CATALYST_REPO_TOKEN_a", "CATALYST_REPO_TOKEN_X;rm", "ghp_secretvalue"} {
		if err := CheckCredentialRef(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestGitHubRepoOf(t *testing.T) {
	cases := map[string]string{
		"https://github.com/acme/app.git": "acme/app",
		"https://github.com/acme/app":     "acme/app",
		"git@github.com:acme/app.git":     "acme/app",
		"https://evil.com/acme/app.git":   "",
		"https://github.com/acme":         "",
		"https://github.com/a/b/c":        "",
	}
	for in, want := range cases {
		if got := GitHubRepoOf(in); got != want {
			t.Errorf("GitHubRepoOf(%q) = %q, want %q", in, got, want)
		}
	}
	if IsGitHubHTTPS("http://github.com/a/b") || IsGitHubHTTPS("https://github.com.evil.test/a/b") || !IsGitHubHTTPS("https://github.com/a/b") {
		t.Error("IsGitHubHTTPS")
	}
}
