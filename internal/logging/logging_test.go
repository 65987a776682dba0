package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretsNeverReachTheLog(t *testing.T) {
	const key = "sk-ant-api03-SECRET"
	var buf bytes.Buffer
	log := New(&buf, "DEBUG", []string{key, "", "ab"})
	log.Info("calling with "+key, "header", "x-api-key: "+key, "err", errors.New("401 for key "+key),
		slog.Group("req", slog.String("auth", key)))
	log.With("key", key).Debug("with attrs")
	out := buf.String()
	if strings.Contains(out, key) {
		t.Fatalf("secret in log:\n%s", out)
	}
	if strings.Count(out, "[redacted]") != 5 {
		t.Fatalf("expected 5 redactions:\n%s", out)
	}
	if !strings.Contains(out, "calling with") {
		t.Fatalf("message lost:\n%s", out)
	}
}

func TestLevels(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "WARNING", nil)
	log.Info("hidden")
	log.Warn("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "shown") {
		t.Fatalf("level filter wrong:\n%s", buf.String())
	}
}

func TestPIIRedaction(t *testing.T) {
	cases := map[string]string{
		"contact jane.doe+x@example.co.uk today": "contact [email] today",
		"card 4111 1111 1111 1111 was charged":   "card [card] was charged",
		"card 4111-1111-1111-1111":               "card [card]",
		"ssn 123-45-6789":                        "ssn [ssn]",
		"commit 1234567890123 is not a card":     "commit 1234567890123 is not a card", // fails Luhn
		"5 passed, 0 failed (exit 0, 718 ms)":    "5 passed, 0 failed (exit 0, 718 ms)",
		"2026-11-27T17:44:01Z started":           "2026-11-27T17:44:01Z started",
		"no digits or at-signs here":             "no digits or at-signs here",
	}
	for in, want := range cases {
		if got := RedactPII(in); got != want {
			t.Errorf("RedactPII(%q) = %q, want %q", in, got, want)
		}
	}
	var buf bytes.Buffer
	log := NewWith(&buf, "INFO", NewRedactor([]string{"sk-secret-1"}).WithPII(true))
	log.Info("user bob@example.com used sk-secret-1", "email", "bob@example.com")
	if out := buf.String(); strings.Contains(out, "bob@example.com") || strings.Contains(out, "sk-secret-1") {
		t.Fatalf("PII or secret in log:\n%s", out)
	}
	buf.Reset()
	NewWith(&buf, "INFO", NewRedactor(nil).WithPII(false)).Info("bob@example.com")
	if !strings.Contains(buf.String(), "bob@example.com") {
		t.Fatalf("PII redacted although disabled:\n%s", buf.String())
	}
}
