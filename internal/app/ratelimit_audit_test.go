package app

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/store"
)

// A password-guessing run against sign-in is slowed by the login limit and
// every refused attempt lands in the audit log as the app wires them, with
// the route and client, and never the password tried.
func TestBruteForceLoginIsLimitedAndAudited(t *testing.T) {
	env := []string{"CATALYST_DATA_DIR=" + t.TempDir(), "CATALYST_OLLAMA_URL=off",
		"CATALYST_API_TOKEN=apitoken-RATEAUDIT-0123456789abcdef", "CATALYST_LOGIN_RATE_LIMIT=3"}
	cfg, err := config.Load(config.Sources{YAMLFile: os.DevNull, DotEnvFile: os.DevNull, Environ: func() []string { return env }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	h, err := a.Handler()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	const guess = "guess-PASSWORD-42"
	limited := 0
	for range 8 {
		resp, err := http.Post(srv.URL+"/api/auth/login", "application/json",
			strings.NewReader(`{"email":"victim@example.com","password":"`+guess+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
			if resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		}
	}
	if limited < 4 {
		t.Fatalf("%d of 8 guesses refused with a login limit of 3/min, want at least 4", limited)
	}
	entries, _, err := a.Store.ListAudit(ctx, store.AuditFilter{Action: "rate_limited"}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != limited {
		t.Fatalf("%d rate_limited audit entries for %d refused guesses", len(entries), limited)
	}
	for _, e := range entries {
		if e.Result != "denied" || e.Status != 429 || !strings.Contains(e.ResourceID, "/api/auth/login") || e.RemoteAddr == "" {
			t.Errorf("audit entry %+v", e)
		}
		if strings.Contains(e.Detail, guess) {
			t.Errorf("the guessed password reached the audit log: %+v", e)
		}
	}
}
