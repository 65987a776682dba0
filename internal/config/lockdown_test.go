package config

import (
	"slices"
	"strings"
	"testing"
)

func TestPreviewOriginDefaultsAndTokenAndHosts(t *testing.T) {
	c, err := Load(isolated(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.PreviewPort != 8002 || c.PreviewURL != "http://localhost:8002" || c.APIToken != "" || len(c.AllowedHosts) != 0 {
		t.Fatalf("defaults: preview %d %q token set %v hosts %v", c.PreviewPort, c.PreviewURL, c.APIToken != "", c.AllowedHosts)
	}
	c, err = Load(isolated(t, "BACKEND_PORT=9000", "CATALYST_PUBLIC_URL=https://cat.example.com/",
		"CATALYST_ALLOWED_HOSTS= Cat.Internal , 10.0.0.5,[::2]", "CATALYST_API_TOKEN=abcdefghijklmnop_-.~0123"))
	if err != nil {
		t.Fatal(err)
	}
	if c.PreviewPort != 9001 || c.PreviewURL != "https://cat.example.com:9001" {
		t.Errorf("preview follows the public URL's host and BACKEND_PORT+1: %d %q", c.PreviewPort, c.PreviewURL)
	}
	if !slices.Equal(c.AllowedHosts, []string{"cat.internal", "10.0.0.5", "::2"}) {
		t.Errorf("allowed hosts %v", c.AllowedHosts)
	}
	if !slices.Contains(c.Secrets(), "abcdefghijklmnop_-.~0123") {
		t.Error("the API token is not among the secrets that logs and events are scrubbed of")
	}
	// BACKEND_PORT=0 (tests, "any free port"): the preview takes any free port too.
	c, err = Load(isolated(t, "BACKEND_PORT=0"))
	if err != nil || c.PreviewPort != 0 {
		t.Fatalf("BACKEND_PORT=0: %v %+v", err, c)
	}
	c, err = Load(isolated(t, "CATALYST_PREVIEW_PORT=7000", "CATALYST_PREVIEW_URL=https://apps.example.net/"))
	if err != nil || c.PreviewPort != 7000 || c.PreviewURL != "https://apps.example.net" {
		t.Fatalf("explicit preview: %v %+v", err, c)
	}
}

func TestLockdownValuesRefused(t *testing.T) {
	for _, tc := range []struct{ kv, want string }{
		{"CATALYST_API_TOKEN=short", "CATALYST_API_TOKEN=<redacted> is invalid: accepted values are 16 to 512 characters"},
		{"CATALYST_API_TOKEN=has spaces in the token!", "CATALYST_API_TOKEN=<redacted> is invalid"},
		{"CATALYST_ALLOWED_HOSTS=http://evil.test", `CATALYST_ALLOWED_HOSTS="http://evil.test" is invalid: accepted values are host names`},
		{"CATALYST_ALLOWED_HOSTS=*", `CATALYST_ALLOWED_HOSTS="*" is invalid`},
		{"CATALYST_ALLOWED_HOSTS=a.test:8001", `CATALYST_ALLOWED_HOSTS="a.test:8001" is invalid`},
		{"CATALYST_PREVIEW_PORT=8001", `CATALYST_PREVIEW_PORT="8001" is invalid: accepted values are a port other than BACKEND_PORT`},
		{"CATALYST_PREVIEW_PORT=70000", `CATALYST_PREVIEW_PORT="70000" is invalid`},
		{"CATALYST_PREVIEW_URL=http://localhost:8001/apps", `CATALYST_PREVIEW_URL="http://localhost:8001/apps" is invalid: accepted values are a URL of another origin`},
		{"BACKEND_PORT=65535", `CATALYST_PREVIEW_PORT="" is invalid`},
	} {
		_, err := Load(isolated(t, tc.kv))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %s", tc.kv, err, tc.want)
		}
		if err != nil && strings.Contains(tc.kv, "TOKEN") && strings.Contains(err.Error(), strings.TrimPrefix(tc.kv, "CATALYST_API_TOKEN=")) {
			t.Errorf("the invalid token is echoed: %v", err)
		}
	}
	// The same origin spelled with the default port is still the same origin.
	_, err := Load(isolated(t, "CATALYST_PUBLIC_URL=https://cat.example.com", "CATALYST_PREVIEW_URL=https://CAT.example.com:443/"))
	if err == nil || !strings.Contains(err.Error(), "another origin") {
		t.Errorf("same origin with explicit default port accepted: %v", err)
	}
}
