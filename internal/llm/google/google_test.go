package google_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/llm/google"
	"github.com/catalyst/catalyst/internal/llm/llmtest"
)

const key = "AIzaSyTESTKEY-0123456789abcdefghij"

func errBody(code int, status, msg string) string {
	return fmt.Sprintf(`{"error":{"code":%d,"message":%q,"status":%q}}`, code, msg, status)
}

const generateReply = `{
  "candidates": [{"content": {"parts": [{"text": "{\"title\": \"Todo app\", \"points\": 3}"}], "role": "model"}, "finishReason": "STOP", "index": 0}],
  "usageMetadata": {"promptTokenCount": 1100, "candidatesTokenCount": 20, "thoughtsTokenCount": 5, "cachedContentTokenCount": 1000, "totalTokenCount": 1125},
  "modelVersion": "gemini-2.5-flash", "responseId": "resp-1"
}`

var schema = json.RawMessage(`{"type":"object","properties":{"title":{"type":"string"},"points":{"type":"integer"}},"required":["title","points"]}`)

func newRouter(t testing.TB, srv *httptest.Server, logs io.Writer) *llm.Router {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	r, err := llm.NewRouter(config.LLMConfig{DefaultProvider: "google", DefaultModel: "gemini-2.5-flash", GoogleKey: key, GoogleBaseURL: srv.URL, OllamaURL: "off"},
		llm.RouterOptions{
			Providers:  map[string]llm.Factory{llm.ProviderGoogle: google.Factory},
			HTTPClient: srv.Client(),
			Logger:     slog.New(slog.NewTextHandler(logs, nil)),
			Retry:      llm.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, MaxRetryAfter: 30 * time.Millisecond},
		})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func planRequest() llm.Request {
	return llm.Request{System: "You are the planner.", Context: "Task: Build a todo app", Schema: schema,
		Messages: []llm.Message{{Role: llm.RoleUser, Content: "Plan it."}}, MaxTokens: 400}
}

func TestStructuredOutputWithResponseSchema(t *testing.T) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.Reply(200, "application/json", generateReply)}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	temp := 0.5
	req := planRequest()
	req.Temperature = &temp
	resp, err := newRouter(t, srv, nil).For("planner").Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	r, body := api.Reqs[0], api.Bodies[0]
	if r.URL.Path != "/v1beta/models/gemini-2.5-flash:generateContent" || r.Header.Get("X-Goog-Api-Key") != key {
		t.Fatalf("%s %v", r.URL.Path, r.Header)
	}
	gc := body["generationConfig"].(map[string]any)
	if gc["responseMimeType"] != "application/json" || gc["maxOutputTokens"] != 400.0 || gc["temperature"] != 0.5 ||
		gc["responseJsonSchema"].(map[string]any)["properties"].(map[string]any)["points"] == nil {
		t.Fatalf("generationConfig %v", gc)
	}
	si := fmt.Sprint(body["systemInstruction"])
	if !strings.Contains(si, "You are the planner.") || !strings.Contains(si, "Build a todo app") {
		t.Fatalf("systemInstruction %v", si)
	}
	if string(resp.JSON) != `{"title": "Todo app", "points": 3}` || resp.StopReason != llm.StopEnd || resp.Model != "gemini-2.5-flash" {
		t.Fatalf("resp %+v", resp)
	}
	if u := resp.Usage; u.InputTokens != 100 || u.CacheReadTokens != 1000 || u.OutputTokens != 25 {
		t.Fatalf("usage %+v", u)
	}
	// gemini-2.5-flash in catwalk: $0.30 in, $2.50 out, $0.03 cached.
	if want := (100*0.30 + 25*2.50 + 1000*0.03) / 1e6; resp.Cost < want-1e-12 || resp.Cost > want+1e-12 {
		t.Fatalf("cost %v want %v", resp.Cost, want)
	}
}

const sseChunks = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel\"}],\"role\": \"model\"},\"index\": 0}],\"modelVersion\": \"gemini-2.5-flash\"}\r\n\r\n" +
	"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"lo\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 8,\"candidatesTokenCount\": 2,\"totalTokenCount\": 10},\"modelVersion\": \"gemini-2.5-flash\"}\r\n\r\n"

func TestStreaming(t *testing.T) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{llmtest.Reply(200, "text/event-stream", sseChunks)}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	var deltas []string
	resp, err := newRouter(t, srv, nil).For("coder").Generate(context.Background(), llm.Request{
		Messages: []llm.Message{{Role: llm.RoleUser, Content: "hi"}}, OnDelta: func(d string) { deltas = append(deltas, d) }})
	if err != nil {
		t.Fatal(err)
	}
	if r := api.Reqs[0]; r.URL.Path != "/v1beta/models/gemini-2.5-flash:streamGenerateContent" || r.URL.Query().Get("alt") != "sse" {
		t.Fatalf("%s", r.URL)
	}
	if strings.Join(deltas, "|") != "Hel|lo" || resp.Text != "Hello" || resp.StopReason != llm.StopEnd {
		t.Fatalf("deltas %q resp %+v", deltas, resp)
	}
	if resp.Usage.InputTokens != 8 || resp.Usage.OutputTokens != 2 {
		t.Fatalf("usage %+v", resp.Usage)
	}
}

func TestRetryAfterIsRead(t *testing.T) {
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{
		llmtest.Reply(429, "application/json", errBody(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."), "Retry-After", "7"),
	}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	m, err := google.New(llm.ProviderConfig{APIKey: key, Model: "gemini-2.5-flash", BaseURL: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Generate(context.Background(), planRequest())
	var ae *llm.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 429 || ae.RetryAfter != 7*time.Second || !strings.Contains(ae.Message, "RESOURCE_EXHAUSTED") {
		t.Fatalf("err %#v", err)
	}
	if len(api.Reqs) != 1 {
		t.Fatalf("genai retried by itself: %d requests", len(api.Reqs))
	}
}

func TestTransientErrorsRetried(t *testing.T) {
	for name, fail := range map[string]llmtest.Step{
		"503": llmtest.Reply(503, "application/json", errBody(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")),
		"429": llmtest.Reply(429, "application/json", errBody(429, "RESOURCE_EXHAUSTED", "quota"), "Retry-After", "3600"),
		"500": llmtest.Reply(500, "application/json", errBody(500, "INTERNAL", "An internal error has occurred.")),
	} {
		t.Run(name, func(t *testing.T) {
			api := &llmtest.FakeAPI{Steps: []llmtest.Step{fail, llmtest.Reply(200, "application/json", generateReply)}}
			srv := httptest.NewServer(api)
			defer srv.Close()
			start := time.Now()
			if _, err := newRouter(t, srv, nil).For("").Generate(context.Background(), planRequest()); err != nil {
				t.Fatal(err)
			}
			if len(api.Reqs) != 2 || time.Since(start) > 2*time.Second {
				t.Fatalf("%d requests in %v", len(api.Reqs), time.Since(start))
			}
		})
	}
}

func TestBadKeyNotRetriedAndRedacted(t *testing.T) {
	var logs bytes.Buffer
	api := &llmtest.FakeAPI{Steps: []llmtest.Step{
		llmtest.Reply(503, "application/json", errBody(503, "UNAVAILABLE", "backend for key "+key+" busy")),
		llmtest.Reply(400, "application/json", errBody(400, "INVALID_ARGUMENT", "API key not valid: "+key+". Please pass a valid API key.")),
	}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	_, err := newRouter(t, srv, &logs).For("").Generate(context.Background(), planRequest())
	var ae *llm.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 400 || len(api.Reqs) != 2 {
		t.Fatalf("err %v after %d requests", err, len(api.Reqs))
	}
	if strings.Contains(err.Error(), key) || strings.Contains(logs.String(), key) {
		t.Fatalf("key leaked:\n%v\n%s", err, logs.String())
	}
	if !strings.Contains(err.Error(), "API key not valid") {
		t.Fatalf("message lost: %v", err)
	}
}
