package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/natstest"
)

// lockedBuffer is a log sink that handlers may write from NATS goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// natsConfig loads the defaults and points NATS_URL at url. config.Load
// accepts NATS only with MongoDB; the wiring under test is the same on
// either store, so the test sets the field after validation and keeps the
// embedded store.
func natsConfig(t *testing.T, url string) *config.Config {
	t.Helper()
	cfg, err := config.Load(config.Sources{DotEnvFile: os.DevNull, Environ: func() []string {
		return []string{"CATALYST_DATA_DIR=" + t.TempDir(), "CATALYST_OLLAMA_URL=off"}
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.NATSURL = url
	return cfg
}

func health(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url + "/api/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &body)
	return resp.StatusCode, body
}

// With NATS_URL the app streams over NATS (an event recorded by one app
// reaches a subscriber of another), reports NATS in /api/health (503 with
// the reason while it is down), reconnects by itself, and never logs the
// URL's credentials.
func TestAppOnNATS(t *testing.T) {
	srv := natstest.Start(t)
	const secret = "s3cr3t-pa55"
	url := strings.Replace(srv.URL(), "nats://", "nats://catalyst:"+secret+"@", 1)
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()

	a, err := New(ctx, natsConfig(t, url), logger)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	b, err := New(ctx, natsConfig(t, url), logger)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if a.NATS == nil || !a.NATS.IsConnected() {
		t.Fatal("App.NATS is not a live connection")
	}

	sub := b.Bus.Subscribe("task-1", 10)
	defer sub.Close()
	a.Recorder.Delta("task-1", "Coder", "typing")
	select {
	case e := <-sub.C():
		if e.Type != domain.EventTokenDelta || e.Message != "typing" {
			t.Fatalf("got %+v", e.AgentLog)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an event published by one app did not reach the other: the bus is not on NATS")
	}

	h, err := a.Handler()
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
	if code, body := health(t, hs.URL); code != 200 || body["nats"] != "ok" {
		t.Fatalf("health with NATS up: %d %v", code, body)
	}
	srv.Shutdown()
	deadline := time.Now().Add(10 * time.Second)
	for a.NATS.IsConnected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	code, body := health(t, hs.URL)
	if detail, _ := body["detail"].(string); code != 503 || !strings.Contains(detail, "nats unavailable: reconnecting") {
		t.Fatalf("health with NATS down: %d %v", code, body)
	}
	srv.Restart()
	deadline = time.Now().Add(30 * time.Second)
	for {
		if code, _ := health(t, hs.URL); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("health did not recover after NATS came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	out := logs.String()
	for _, want := range []string{"NATS disconnected; reconnecting", "NATS reconnected"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, secret) || strings.Contains(out, "catalyst:") {
		t.Fatalf("credentials in the logs:\n%s", out)
	}
}

// A NATS that cannot be reached stops start-up with an error that names the
// server but not its credentials.
func TestAppRefusesAnUnreachableNATS(t *testing.T) {
	srv := natstest.Start(t)
	srv.Shutdown()
	url := strings.Replace(srv.URL(), "nats://", "nats://catalyst:s3cr3t@", 1)
	_, err := New(context.Background(), natsConfig(t, url), slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("started without NATS")
	}
	host := strings.TrimPrefix(srv.URL(), "nats://")
	if !strings.Contains(err.Error(), host) || !strings.Contains(err.Error(), "NATS_URL") || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error %q: want the host and NATS_URL, never the password", err)
	}
}
