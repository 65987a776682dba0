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
