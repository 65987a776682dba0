package config

import (
	"strings"
	"testing"
)

func TestSignupDefaultsAndProductionRefusal(t *testing.T) {
	for _, c := range []struct {
		env  []string
		want string
	}{
		{nil, "open"},
		{[]string{"ENVIRONMENT=production"}, "closed"},
		{[]string{"ENVIRONMENT=production", "CATALYST_SIGNUP=invite"}, "invite"},
	} {
		cfg, err := Load(Sources{Environ: func() []string { return c.env }})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Signup != c.want {
			t.Errorf("%v: signup %q, want %q", c.env, cfg.Signup, c.want)
		}
	}
	if _, err := Load(Sources{Environ: func() []string { return []string{"CATALYST_SIGNUP=everyone"} }}); err == nil || !strings.Contains(err.Error(), "CATALYST_SIGNUP") {
		t.Errorf("an unknown sign-up mode: %v", err)
	}
	prod, _ := Load(Sources{Environ: func() []string { return []string{"ENVIRONMENT=production"} }})
	if err := prod.CheckServe(); err == nil || !strings.Contains(err.Error(), "CATALYST_API_TOKEN") {
		t.Errorf("production without a token: %v", err)
	}
	prod.APIToken = strings.Repeat("a", 20)
	if err := prod.CheckServe(); err == nil {
		t.Error("production with a 20-character token starts")
	}
	prod.APIToken = strings.Repeat("a", 32)
	if err := prod.CheckServe(); err != nil {
		t.Errorf("production with a good token: %v", err)
	}
	dev, _ := Load(Sources{Environ: func() []string { return nil }})
	if err := dev.CheckServe(); err != nil {
		t.Errorf("development without a token (generated later): %v", err)
	}
}
