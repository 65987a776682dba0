package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/config"
	"github.com/catalyst/catalyst/internal/domain"
)

// fakeModel answers from a function and counts calls.
type fakeModel struct {
	calls atomic.Int64
	fn    func(ctx context.Context, n int, req Request) (*Response, error)
}

func (f *fakeModel) Generate(ctx context.Context, req Request) (*Response, error) {
	n := int(f.calls.Add(1))
	return f.fn(ctx, n, req)
}

func okText(text string) func(context.Context, int, Request) (*Response, error) {
	return func(context.Context, int, Request) (*Response, error) {
		return &Response{Text: text, Usage: domain.Usage{InputTokens: 10, OutputTokens: 5}}, nil
	}
}

// fastRetry keeps tests quick.
var fastRetry = RetryPolicy{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond, MaxRetryAfter: 20 * time.Millisecond}

// testRouter builds a router whose factories return the given fakes by provider.
func testRouter(t *testing.T, cfg config.LLMConfig, fakes map[string]*fakeModel, mod func(*RouterOptions)) *Router {
	t.Helper()
	fac := func(p ProviderConfig) (Model, error) {
		if f, ok := fakes[p.Provider+"/"+p.Model]; ok {
			return f, nil
		}
		if f, ok := fakes[p.Provider]; ok {
			return f, nil
		}
		return nil, fmt.Errorf("no fake for %s/%s", p.Provider, p.Model)
	}
	if cfg.OllamaURL == "" {
		cfg.OllamaURL = "off"
	}
	opts := RouterOptions{
		Offline:   fakes[ProviderOffline],
		Providers: map[string]Factory{ProviderAnthropic: fac, ProviderOpenAI: fac, ProviderGoogle: fac},
		Retry:     fastRetry,
		Breaker:   BreakerPolicy{Threshold: 2, Cooldown: time.Hour},
	}
	if mod != nil {
		mod(&opts)
	}
	r, err := NewRouter(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestExtractJSON(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"a":1}`, `{"a":1}`},
		{"  [1,2] \n", `[1,2]`},
		{"```json\n{\"a\": 2}\n```", `{"a": 2}`},
		{"Here you go:\n```\n{\"a\":3}\n```\nThanks", `{"a":3}`},
		{"Sure! The plan is {\"a\":4} as requested.", `{"a":4}`},
		{"brace { not json } then {\"b\":[1]} end", `{"b":[1]}`},
	}
	for _, c := range cases {
		got, err := ExtractJSON(c.in)
		if err != nil || string(got) != c.want {
			t.Errorf("ExtractJSON(%q) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "no json here", "{\"a\":", "```json\n{oops}\n```"} {
		if got, err := ExtractJSON(bad); err == nil {
			t.Errorf("ExtractJSON(%q) = %s, want error", bad, got)
		}
	}
}

var storySchema = json.RawMessage(`{"type":"object","properties":{"title":{"type":"string"},"points":{"type":"integer","minimum":1}},"required":["title","points"],"additionalProperties":false}`)

func TestStructuredRepairRound(t *testing.T) {
	var seen []Request
	f := &fakeModel{fn: func(_ context.Context, n int, req Request) (*Response, error) {
		seen = append(seen, req)
		if n == 1 {
			return &Response{Text: "```json\n{\"title\":\"x\"}\n```", Usage: domain.Usage{InputTokens: 100, OutputTokens: 10}}, nil
		}
		return &Response{Text: `Fixed: {"title":"x","points":3}`, Usage: domain.Usage{InputTokens: 120, OutputTokens: 12}}, nil
	}}
	r := testRouter(t, config.LLMConfig{AnthropicKey: "k-anthropic-123"}, map[string]*fakeModel{ProviderAnthropic: f}, nil)
	resp, err := r.For("planner").Generate(context.Background(), Request{Schema: storySchema, Messages: []Message{{Role: RoleUser, Content: "plan"}}})
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.JSON) != `{"title":"x","points":3}` {
		t.Fatalf("JSON = %s", resp.JSON)
	}
	if f.calls.Load() != 2 {
		t.Fatalf("calls = %d, want 2", f.calls.Load())
	}
	last := seen[1].Messages
	if len(last) != 3 || last[1].Role != RoleAssistant || !strings.Contains(last[2].Content, "points") {
		t.Fatalf("repair round did not feed the violation back: %+v", last)
	}
	if resp.Usage.InputTokens != 220 || resp.Usage.OutputTokens != 22 {
		t.Fatalf("usage of both rounds not summed: %+v", resp.Usage)
	}
	// claude-3-7-sonnet: $3 in, $15 out per million.
	if want := (220*3.0 + 22*15.0) / 1e6; abs(resp.Cost-want) > 1e-12 {
		t.Fatalf("cost = %v, want %v", resp.Cost, want)
	}
}

func TestStructuredFailsNamingViolation(t *testing.T) {
	f := &fakeModel{fn: okText(`{"title":"x","points":0}`)}
	r := testRouter(t, config.LLMConfig{AnthropicKey: "k-anthropic-123"}, map[string]*fakeModel{ProviderAnthropic: f}, nil)
	_, err := r.For("").Generate(context.Background(), Request{Schema: storySchema})
	var se *SchemaError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want SchemaError", err)
	}
	if !strings.Contains(se.Violation, "/points") || !strings.Contains(se.Violation, "minimum") {
		t.Fatalf("violation does not name the problem: %q", se.Violation)
	}
	if f.calls.Load() != 2 {
		t.Fatalf("calls = %d, want exactly one repair round", f.calls.Load())
	}
}

func TestRetryClassification(t *testing.T) {
	for _, tc := range []struct {
		status    int
		wantCalls int64
	}{
		{408, 3}, {409, 3}, {429, 3}, {500, 3}, {503, 3}, {529, 3}, {0, 3},
		{400, 1}, {401, 1}, {403, 1}, {404, 1},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			f := &fakeModel{fn: func(_ context.Context, n int, _ Request) (*Response, error) {
				if n < 3 {
					return nil, &APIError{Provider: "anthropic", StatusCode: tc.status, Message: "boom"}
				}
				return &Response{Text: "ok"}, nil
			}}
			r := testRouter(t, config.LLMConfig{AnthropicKey: "k-anthropic-123"}, map[string]*fakeModel{ProviderAnthropic: f}, nil)
			_, err := r.For("").Generate(context.Background(), Request{})
			if got := f.calls.Load(); got != tc.wantCalls {
				t.Fatalf("calls = %d, want %d (err %v)", got, tc.wantCalls, err)
			}
			if (tc.wantCalls == 3) != (err == nil) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestRetriedStreamSaysTheAnswerStartsOver(t *testing.T) {
	f := &fakeModel{fn: func(_ context.Context, n int, req Request) (*Response, error) {
		switch n {
		case 1:
			req.OnDelta("Hel")
			return nil, &APIError{Provider: "anthropic", StatusCode: 529, Message: "Overloaded"}
		case 2: // fails before streaming anything: no second notice
			return nil, &APIError{Provider: "anthropic", StatusCode: 503, Message: "unavailable"}
		}
		req.OnDelta("Hello")
		return &Response{Text: "Hello"}, nil
	}}
	r := testRouter(t, config.LLMConfig{AnthropicKey: "k-anthropic-123"}, map[string]*fakeModel{ProviderAnthropic: f}, nil)
	var got []string
	if _, err := r.For("").Generate(context.Background(), Request{OnDelta: func(d string) { got = append(got, d) }}); err != nil {
		t.Fatal(err)
	}
	want := []string{"Hel", RestartNotice, "Hello"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("deltas %q, want %q", got, want)
	}
}

func TestFallbackMidStreamSaysWhichModelStartsOver(t *testing.T) {
	const key = "sk-openai-SECRET-0123456789"
	primary := &fakeModel{fn: func(_ context.Context, _ int, req Request) (*Response, error) {
		req.OnDelta("Hel")
		return nil, &APIError{Provider: "anthropic", StatusCode: 503, Message: "unavailable"}
	}}
	silent := &fakeModel{fn: func(context.Context, int, Request) (*Response, error) { // fails before streaming
		return nil, &APIError{Provider: "google", StatusCode: 500, Message: "internal"}
	}}
	backup := &fakeModel{fn: func(_ context.Context, _ int, req Request) (*Response, error) {
		req.OnDelta("Hello")
		req.OnDelta(" world")
		return &Response{Text: "Hello world"}, nil
	}}
	cfg := config.LLMConfig{AnthropicKey: "k-anthropic-123", GoogleKey: "k-google-789", OpenAIKey: key,
		Fallback: []config.ModelChoice{{Provider: "google", Model: "gemini-2.5-pro"}, {Provider: "openai", Model: "gpt-4.1"}}}
	r := testRouter(t, cfg, map[string]*fakeModel{ProviderAnthropic: primary, ProviderGoogle: silent, ProviderOpenAI: backup},
		func(o *RouterOptions) { o.Retry.MaxAttempts = 1 })
	var got []string
	resp, err := r.For("").Generate(context.Background(), Request{OnDelta: func(d string) { got = append(got, d) }})
	if err != nil || resp.Provider != "openai" {
		t.Fatalf("%+v, %v", resp, err)
	}
	// One notice, naming the model that really answers (not google, which
	// failed before streaming), right before its first delta.
	want := []string{"Hel", FallbackNotice("openai/gpt-4.1"), "Hello", " world"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("deltas %q, want %q", got, want)
	}
	if !strings.Contains(want[1], "openai/gpt-4.1") || strings.Contains(strings.Join(got, ""), key) {
		t.Fatalf("notice %q", want[1])
	}

	// Nothing streamed before the fallback: nothing to take back, no notice.
	quiet := &fakeModel{fn: func(context.Context, int, Request) (*Response, error) {
		return nil, &APIError{Provider: "anthropic", StatusCode: 503, Message: "unavailable"}
	}}
	r = testRouter(t, cfg, map[string]*fakeModel{ProviderAnthropic: quiet, ProviderGoogle: silent, ProviderOpenAI: backup}, nil)
	got = nil
	if _, err := r.For("").Generate(context.Background(), Request{OnDelta: func(d string) { got = append(got, d) }}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != "Hello| world" {
		t.Fatalf("deltas %q, want only the answer", got)
	}
}

// A model-specific error (404 model not found, 400 invalid model) must not
// open the provider's circuit: the provider's other models keep serving.
// Provider-wide failures still do.
func TestOnlyProviderWideErrorsOpenTheCircuit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      *APIError
		wantOpen bool
	}{
		{"404 model not found", &APIError{Provider: "anthropic", StatusCode: 404, Message: "model: claude-nope"}, false},
		{"400 invalid model", &APIError{Provider: "anthropic", StatusCode: 400, Message: "invalid model"}, false},
		{"503 unavailable", &APIError{Provider: "anthropic", StatusCode: 503, Message: "unavailable"}, true},
		{"529 overloaded", &APIError{Provider: "anthropic", StatusCode: 529, Message: "Overloaded"}, true},
		{"429 rate limited", &APIError{Provider: "anthropic", StatusCode: 429, Message: "slow down"}, true},
		{"401 bad key", &APIError{Provider: "anthropic", StatusCode: 401, Message: "invalid x-api-key"}, true},
		{"connection refused", &APIError{Provider: "anthropic", Err: errors.New("dial tcp: connection refused")}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			broken := &fakeModel{fn: func(context.Context, int, Request) (*Response, error) { return nil, tc.err }}
			sonnet := &fakeModel{fn: okText("from sonnet")}
			backup := &fakeModel{fn: okText("from openai")}
			// The reviewer's override uses the failing model; the coder uses the
			// provider's default model; both fall back to openai.
			cfg := config.LLMConfig{AnthropicKey: "k-anthropic-123", OpenAIKey: "k-openai-456",
				Agents:   map[string]config.ModelChoice{"reviewer": {Provider: "anthropic", Model: "claude-nope"}},
				Fallback: []config.ModelChoice{{Provider: "openai", Model: "gpt-4.1"}}}
			r := testRouter(t, cfg, map[string]*fakeModel{"anthropic/claude-nope": broken,
				"anthropic/" + DefaultAnthropicModel: sonnet, ProviderOpenAI: backup}, nil)
			for i := 0; i < 3; i++ { // threshold 2 (testRouter)
				resp, err := r.For("reviewer").Generate(context.Background(), Request{})
				if err != nil || resp.Provider != "openai" {
					t.Fatalf("reviewer call %d: %+v, %v", i, resp, err)
				}
			}
			resp, err := r.For("coder").Generate(context.Background(), Request{})
			if err != nil {
				t.Fatal(err)
			}
			if open := resp.Provider == "openai"; open != tc.wantOpen {
				t.Fatalf("coder answered by %s/%s; circuit open = %v, want %v", resp.Provider, resp.Model, open, tc.wantOpen)
			}
			if tc.wantOpen && sonnet.calls.Load() != 0 {
				t.Fatalf("open circuit still called the provider's other model %d times", sonnet.calls.Load())
			}
			if !tc.wantOpen && (sonnet.calls.Load() != 1 || broken.calls.Load() != 3) {
				t.Fatalf("calls: sonnet %d, claude-nope %d; want 1 and 3 (a 4xx is not retried, the model is still tried)",
					sonnet.calls.Load(), broken.calls.Load())
			}
		})
	}
}

func TestRetryGivesUpAfterMaxAttempts(t *testing.T) {
	f := &fakeModel{fn: func(context.Context, int, Request) (*Response, error) {
		return nil, &APIError{Provider: "anthropic", StatusCode: 529, Message: "Overloaded"}
	}}
	r := testRouter(t, config.LLMConfig{AnthropicKey: "k-anthropic-123"}, map[string]*fakeModel{ProviderAnthropic: f}, nil)
	_, err := r.For("").Generate(context.Background(), Request{})
	if err == nil || !strings.Contains(err.Error(), "529") {
		t.Fatalf("err = %v", err)
	}
	if f.calls.Load() != int64(fastRetry.MaxAttempts) {
		t.Fatalf("calls = %d", f.calls.Load())
	}
}

func TestRetryAfterIsCapped(t *testing.T) {
	f := &fakeModel{fn: func(_ context.Context, n int, _ Request) (*Response, error) {
		if n == 1 {
			return nil, &APIError{Provider: "anthropic", StatusCode: 429, RetryAfter: time.Hour}
		}
		return &Response{Text: "ok"}, nil
	}}
	r := testRouter(t, config.LLMConfig{AnthropicKey: "k-anthropic-123"}, map[string]*fakeModel{ProviderAnthropic: f}, nil)
	start := time.Now()
	if _, err := r.For("").Generate(context.Background(), Request{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < fastRetry.MaxRetryAfter || d > 2*time.Second {
		t.Fatalf("waited %v; want the capped Retry-After (%v)", d, fastRetry.MaxRetryAfter)
	}
}

func TestRetryAfterBeyondDeadlineFailsAtOnce(t *testing.T) {
	f := &fakeModel{fn: func(context.Context, int, Request) (*Response, error) {
		return nil, &APIError{Provider: "anthropic", StatusCode: 429, RetryAfter: 30 * time.Second}
	}}
	r := testRouter(t, config.LLMConfig{AnthropicKey: "k-anthropic-123"}, map[string]*fakeModel{ProviderAnthropic: f},
		func(o *RouterOptions) { o.Retry.MaxRetryAfter = time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := r.For("").Generate(ctx, Request{})
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > time.Second || f.calls.Load() != 1 {
		t.Fatalf("took %v with %d calls; want immediate failure", time.Since(start), f.calls.Load())
	}
}

func TestCancellationStopsAtOnce(t *testing.T) {
	started := make(chan struct{})
	f := &fakeModel{fn: func(ctx context.Context, _ int, _ Request) (*Response, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	r := testRouter(t, config.LLMConfig{AnthropicKey: "k-anthropic-123"}, map[string]*fakeModel{ProviderAnthropic: f}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := r.For("").Generate(ctx, Request{}); done <- err }()
	<-started
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Generate did not return after cancel")
	}
	if f.calls.Load() != 1 {
		t.Fatalf("retried after cancellation: %d calls", f.calls.Load())
	}
}

func TestAgentTimeout(t *testing.T) {
	f := &fakeModel{fn: func(ctx context.Context, _ int, _ Request) (*Response, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	r := testRouter(t, config.LLMConfig{AnthropicKey: "k-anthropic-123"}, map[string]*fakeModel{ProviderAnthropic: f},
		func(o *RouterOptions) { o.AgentTimeout = 30 * time.Millisecond })
	start := time.Now()
	_, err := r.For("").Generate(context.Background(), Request{})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

func TestFallbackAndCircuitBreaker(t *testing.T) {
	primary := &fakeModel{fn: func(context.Context, int, Request) (*Response, error) {
		return nil, &APIError{Provider: "anthropic", StatusCode: 503, Message: "unavailable"}
	}}
	backup := &fakeModel{fn: okText("from openai")}
	cfg := config.LLMConfig{AnthropicKey: "k-anthropic-123", OpenAIKey: "k-openai-456",
		Fallback: []config.ModelChoice{{Provider: "openai", Model: "gpt-4.1"}}}
	r := testRouter(t, cfg, map[string]*fakeModel{ProviderAnthropic: primary, ProviderOpenAI: backup}, nil)
	sel := r.Describe("coder")
	if len(sel.Fallback) != 1 || sel.Fallback[0].Provider != "openai" {
		t.Fatalf("fallback not described: %+v", sel)
	}
	for i := 0; i < 4; i++ {
		resp, err := r.For("coder").Generate(context.Background(), Request{})
		if err != nil || resp.Text != "from openai" || resp.Provider != "openai" {
			t.Fatalf("call %d: %+v, %v", i, resp, err)
		}
	}
	// Threshold 2: two calls of MaxAttempts attempts each, then the circuit is
	// open and the primary is not called again.
	if got, want := primary.calls.Load(), int64(2*fastRetry.MaxAttempts); got != want {
		t.Fatalf("primary calls = %d, want %d (circuit should have opened)", got, want)
	}
	if backup.calls.Load() != 4 {
		t.Fatalf("backup calls = %d", backup.calls.Load())
	}
}

func TestCircuitHalfOpenRecovers(t *testing.T) {
	b := newBreaker(BreakerPolicy{Threshold: 2, Cooldown: time.Minute})
	now := time.Unix(1000, 0)
	b.now = func() time.Time { return now }
	b.Failure()
	if !b.Allow() {
		t.Fatal("open after one failure")
	}
	b.Failure()
	if b.Allow() || !b.Open() {
		t.Fatal("not open after threshold")
	}
	now = now.Add(time.Minute)
	if !b.Allow() {
		t.Fatal("no probe after cooldown")
	}
	if b.Allow() {
		t.Fatal("second probe in the same cooldown")
	}
	b.Success()
	if !b.Allow() || b.Open() {
		t.Fatal("not closed after a successful probe")
	}
}

func TestConcurrencyLimit(t *testing.T) {
	var inFlight, peak atomic.Int64
	f := &fakeModel{fn: func(context.Context, int, Request) (*Response, error) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		inFlight.Add(-1)
		return &Response{Text: "ok"}, nil
	}}
	r := testRouter(t, config.LLMConfig{AnthropicKey: "k-anthropic-123"}, map[string]*fakeModel{ProviderAnthropic: f},
		func(o *RouterOptions) {
			o.Limits = map[string]Limits{ProviderAnthropic: {Concurrency: 2, TokensPerMinute: -1}}
		})
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.For("").Generate(context.Background(), Request{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if peak.Load() != 2 {
		t.Fatalf("peak in flight = %d, want 2", peak.Load())
	}
}

func TestTokensPerMinuteLimiter(t *testing.T) {
	f := &fakeModel{fn: okText("ok")}
	r := testRouter(t, config.LLMConfig{AnthropicKey: "k-anthropic-123"}, map[string]*fakeModel{ProviderAnthropic: f},
		func(o *RouterOptions) { o.Limits = map[string]Limits{ProviderAnthropic: {TokensPerMinute: 6000}} })
	big := Request{Messages: []Message{{Role: RoleUser, Content: strings.Repeat("x", 4*6000)}}}
	if _, err := r.For("").Generate(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	// The budget is spent: a second call would need ~a minute; with a short
	// deadline it fails without reaching the provider.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.For("").Generate(ctx, Request{Messages: []Message{{Role: RoleUser, Content: strings.Repeat("x", 4*3000)}}})
	if err == nil {
		t.Fatal("second call was not held back")
	}
	if f.calls.Load() != 1 || time.Since(start) > time.Second {
		t.Fatalf("calls = %d after %v", f.calls.Load(), time.Since(start))
	}
}

func TestRateLimitPausesWholeProvider(t *testing.T) {
	f := &fakeModel{fn: func(_ context.Context, n int, _ Request) (*Response, error) {
		if n == 1 {
			return nil, &APIError{Provider: "anthropic", StatusCode: 429, RetryAfter: 15 * time.Millisecond}
		}
		return &Response{Text: "ok"}, nil
	}}
	r := testRouter(t, config.LLMConfig{AnthropicKey: "k-anthropic-123"}, map[string]*fakeModel{ProviderAnthropic: f}, nil)
	m := r.For("")
	if _, err := m.Generate(context.Background(), Request{}); err != nil {
		t.Fatal(err)
	}
	ep := r.def.chain[0]
	ep.gate.pause(50 * time.Millisecond)
	start := time.Now()
	if _, err := m.Generate(context.Background(), Request{}); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 40*time.Millisecond {
		t.Fatalf("a paused provider was called after %v", time.Since(start))
	}
}

func TestSelection(t *testing.T) {
	ollama := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/models" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `{"object":"list","data":[{"id":"qwen2.5-coder:7b","object":"model"},{"id":"llama3.2","object":"model"}]}`)
	}))
	defer ollama.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()

	fakes := map[string]*fakeModel{
		ProviderAnthropic: {fn: okText("a")}, ProviderOpenAI: {fn: okText("o")}, ProviderGoogle: {fn: okText("g")},
		ProviderEmergent: {fn: okText("e")}, ProviderOllama: {fn: okText("l")}, ProviderOffline: {fn: okText("off")},
	}
	for _, tc := range []struct {
		name                   string
		cfg                    config.LLMConfig
		agent                  string
		provider, model, why   string
		wantOffline, wantLabel bool
	}{
		{name: "anthropic key", cfg: config.LLMConfig{AnthropicKey: "sk-ant-xxxxxx"},
			provider: "anthropic", model: DefaultAnthropicModel, why: "ANTHROPIC_API_KEY set"},
		{name: "emergent only", cfg: config.LLMConfig{EmergentKey: "sk-emergent-xxxxx"},
			provider: "emergent", model: DefaultAnthropicModel, why: "EMERGENT_LLM_KEY set"},
		{name: "specific key overrides emergent", cfg: config.LLMConfig{EmergentKey: "sk-emergent-xxxxx", AnthropicKey: "sk-ant-xxxxxx"},
			provider: "anthropic", model: DefaultAnthropicModel, why: "ANTHROPIC_API_KEY set"},
		{name: "openai default with claude model", cfg: config.LLMConfig{DefaultProvider: "openai", DefaultModel: DefaultAnthropicModel, OpenAIKey: "sk-openai-xx"},
			provider: "openai", model: DefaultOpenAIModel, why: "is not a openai model"},
		{name: "only openai key", cfg: config.LLMConfig{OpenAIKey: "sk-openai-xx"},
			provider: "openai", model: DefaultOpenAIModel, why: "no key for DEFAULT_LLM_PROVIDER anthropic"},
		{name: "gemini alias", cfg: config.LLMConfig{DefaultProvider: "gemini", DefaultModel: "gemini-2.5-pro", GoogleKey: "AIza-xxxxxx"},
			provider: "google", model: "gemini-2.5-pro", why: "GOOGLE_API_KEY set"},
		{name: "agent override", cfg: config.LLMConfig{AnthropicKey: "sk-ant-xxxxxx",
			Agents: map[string]config.ModelChoice{"reviewer": {Provider: "anthropic", Model: "claude-3-5-haiku-20241022"}}},
			agent: "reviewer", provider: "anthropic", model: "claude-3-5-haiku-20241022", why: "llm.agents.reviewer override"},
		{name: "keyless openai-compatible server", cfg: config.LLMConfig{DefaultProvider: "openai", DefaultModel: "qwen", OpenAIBaseURL: "http://127.0.0.1:8000"},
			provider: "openai", model: "qwen", why: "OPENAI_BASE_URL set"},
		{name: "ollama answers", cfg: config.LLMConfig{OllamaURL: ollama.URL},
			provider: "ollama", model: "qwen2.5-coder:7b", why: "answered with model qwen2.5-coder:7b"},
		{name: "ollama down", cfg: config.LLMConfig{OllamaURL: dead.URL}, provider: "offline", wantOffline: true},
		{name: "ollama off", cfg: config.LLMConfig{}, provider: "offline", wantOffline: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testRouter(t, tc.cfg, fakes, nil)
			sel := r.Describe(tc.agent)
			if sel.Provider != tc.provider || (tc.model != "" && sel.Model != tc.model) || !strings.Contains(sel.Reason, tc.why) {
				t.Fatalf("Describe = %+v", sel)
			}
			if tc.wantOffline {
				if sel.Reason != OfflineLabel || sel.Label() != OfflineLabel || sel.String() != OfflineLabel {
					t.Fatalf("offline selection not labelled: %+v", sel)
				}
				resp, err := r.For(tc.agent).Generate(context.Background(), Request{})
				if err != nil || resp.Provider != "offline" || resp.Cost != 0 {
					t.Fatalf("offline response = %+v, %v", resp, err)
				}
			}
		})
	}
}

func TestNormalizeOpenAIBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:11434":                     "http://127.0.0.1:11434/v1/",
		"http://localhost:8000/":                     "http://localhost:8000/v1/",
		"http://localhost:8000/v1":                   "http://localhost:8000/v1/",
		"https://integrations.emergentagent.com/llm": "https://integrations.emergentagent.com/llm/",
		"https://api.openai.com/v1/":                 "https://api.openai.com/v1/",
	} {
		if got := NormalizeOpenAIBaseURL(in); got != want {
			t.Errorf("NormalizeOpenAIBaseURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPricing(t *testing.T) {
	var buf bytes.Buffer
	p := NewPricer(map[string]config.Price{"my-local": {Input: 1, Output: 2}}, slog.New(slog.NewTextHandler(&buf, nil)))
	u := domain.Usage{InputTokens: 1_000_000, OutputTokens: 1_000_000, CacheReadTokens: 1_000_000, CacheWriteTokens: 1_000_000}
	if got := p.Cost(DefaultAnthropicModel, u); abs(got-(3+15+0.30+3.75)) > 1e-9 {
		t.Errorf("claude-3-7 cost = %v", got)
	}
	// From catwalk's catalog: gpt-4o is $2.50 in, $10 out, $1.25 cached input.
	if got := p.Cost("gpt-4o", domain.Usage{InputTokens: 1_000_000, OutputTokens: 1_000_000, CacheReadTokens: 1_000_000}); abs(got-13.75) > 1e-9 {
		t.Errorf("gpt-4o cost = %v", got)
	}
	if pr, ok := p.Lookup(DefaultGoogleModel); !ok || pr.Input <= 0 || pr.Output <= 0 {
		t.Errorf("no price for %s: %+v", DefaultGoogleModel, pr)
	}
	if pr, ok := p.Lookup(DefaultOpenAIModel); !ok || pr.Input <= 0 {
		t.Errorf("no price for %s: %+v", DefaultOpenAIModel, pr)
	}
	if got := p.Cost("my-local", domain.Usage{InputTokens: 1_000_000, OutputTokens: 1_000_000}); got != 3 {
		t.Errorf("override cost = %v", got)
	}
	if got := p.Cost("anthropic/"+DefaultAnthropicModel, domain.Usage{InputTokens: 1_000_000}); got != 3 {
		t.Errorf("prefixed model cost = %v", got)
	}
	for i := 0; i < 3; i++ {
		if got := p.Cost("mystery-model", u); got != 0 {
			t.Errorf("unknown model cost = %v", got)
		}
	}
	if n := strings.Count(buf.String(), "mystery-model"); n != 1 {
		t.Errorf("%d warnings for the unknown model, want 1:\n%s", n, buf.String())
	}
}

func TestNoKeyInErrorsOrLogs(t *testing.T) {
	const key = "sk-ant-api03-SECRET-0123456789"
	var logs bytes.Buffer
	f := &fakeModel{fn: func(_ context.Context, n int, _ Request) (*Response, error) {
		if n == 1 {
			return nil, &APIError{Provider: "anthropic", StatusCode: 503, Message: "upstream rejected x-api-key " + key}
		}
		return nil, &APIError{Provider: "anthropic", StatusCode: 401, Message: "invalid x-api-key: " + key}
	}}
	r := testRouter(t, config.LLMConfig{AnthropicKey: key}, map[string]*fakeModel{ProviderAnthropic: f},
		func(o *RouterOptions) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	_, err := r.For("").Generate(context.Background(), Request{})
	if err == nil {
		t.Fatal("want error")
	}
	if strings.Contains(err.Error(), key) || strings.Contains(fmt.Sprintf("%+v", err), key) {
		t.Fatalf("key in error: %v", err)
	}
	if !strings.Contains(err.Error(), redactedMark) {
		t.Fatalf("error lost its message: %v", err)
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 401 {
		t.Fatalf("errors.As lost the APIError: %v", err)
	}
	if !strings.Contains(logs.String(), "retrying") || strings.Contains(logs.String(), key) {
		t.Fatalf("logs:\n%s", logs.String())
	}
}

func TestRedactingLogger(t *testing.T) {
	var buf bytes.Buffer
	l := RedactLogger(slog.New(slog.NewJSONHandler(&buf, nil)), NewRedactor("topsecret-key"))
	l.With("k", "pre topsecret-key").Info("msg topsecret-key", "err", errors.New("e topsecret-key"),
		slog.Group("g", "x", "topsecret-key"), "n", 3)
	if strings.Contains(buf.String(), "topsecret") || !strings.Contains(buf.String(), `"n":3`) {
		t.Fatalf("log: %s", buf.String())
	}
}

func TestPing(t *testing.T) {
	off := &fakeModel{fn: okText("pong")}
	r := testRouter(t, config.LLMConfig{}, map[string]*fakeModel{ProviderOffline: off}, nil)
	var out bytes.Buffer
	if err := Ping(context.Background(), r, &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{OfflineLabel, `"pong"`, "latency:", "tokens:   10 in, 5 out", "cost:     $0.000000"} {
		if !strings.Contains(s, want) {
			t.Errorf("ping output lacks %q:\n%s", want, s)
		}
	}

	a := &fakeModel{fn: okText("pong")}
	r = testRouter(t, config.LLMConfig{AnthropicKey: "sk-ant-xxxxxx"}, map[string]*fakeModel{ProviderAnthropic: a}, nil)
	out.Reset()
	if err := Ping(context.Background(), r, &out); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "ANTHROPIC_API_KEY set") || !strings.Contains(s, "cost:     $0.000105") {
		t.Errorf("ping output:\n%s", s)
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
