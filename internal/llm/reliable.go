package llm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// RetryPolicy tunes retries of one provider call. Zero fields take the
// defaults below.
type RetryPolicy struct {
	// MaxAttempts counts the first try; default 4.
	MaxAttempts int
	// BaseDelay and MaxDelay bound exponential backoff with full jitter:
	// attempt n sleeps a random duration in [0, min(MaxDelay, BaseDelay*2^n)).
	// Defaults 500ms and 20s.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// MaxRetryAfter caps a server's Retry-After; default 60s. A wait that
	// would pass the ctx deadline is not started: the call fails at once.
	MaxRetryAfter time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 4
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 500 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 20 * time.Second
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = 60 * time.Second
	}
	return p
}

// backoff is the full-jitter delay before retry number attempt (0-based).
func (p RetryPolicy) backoff(attempt int) time.Duration {
	d := p.BaseDelay
	for i := 0; i < attempt && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// Limits bound one provider's traffic across all agents and tasks.
type Limits struct {
	// Concurrency is the number of calls in flight; default 8.
	Concurrency int
	// TokensPerMinute paces calls by their estimated tokens so that many
	// parallel tasks slow down instead of all hitting 429. 0 = no limit;
	// negative = no limit even where a default applies.
	TokensPerMinute int
}

// BreakerPolicy tunes the per-provider circuit breaker.
type BreakerPolicy struct {
	// Threshold consecutive failed calls (after their retries) open the
	// circuit; default 3.
	Threshold int
	// Cooldown is how long an open circuit sends calls to the next provider
	// of the fallback chain before one call is let through again; default 30s.
	Cooldown time.Duration
}

// gate is the state shared by every model of one provider.
type gate struct {
	provider string
	sem      chan struct{}
	tpm      *rate.Limiter // nil: unlimited

	mu          sync.Mutex
	pausedUntil time.Time // set by a 429 with Retry-After: the whole provider waits

	breaker *breaker
}

func newGate(provider string, l Limits, b BreakerPolicy) *gate {
	if l.Concurrency <= 0 {
		l.Concurrency = 8
	}
	g := &gate{provider: provider, sem: make(chan struct{}, l.Concurrency), breaker: newBreaker(b)}
	if l.TokensPerMinute > 0 {
		g.tpm = rate.NewLimiter(rate.Limit(float64(l.TokensPerMinute)/60), l.TokensPerMinute)
	}
	return g
}

func (g *gate) pause(d time.Duration) {
	g.mu.Lock()
	if t := time.Now().Add(d); t.After(g.pausedUntil) {
		g.pausedUntil = t
	}
	g.mu.Unlock()
}

// acquire waits for a provider-wide pause, a concurrency slot and token
// budget, in that order; it returns release, or ctx's error.
func (g *gate) acquire(ctx context.Context, tokens int) (func(), error) {
	g.mu.Lock()
	wait := time.Until(g.pausedUntil)
	g.mu.Unlock()
	if wait > 0 {
		if err := sleepCtx(ctx, wait); err != nil {
			return nil, err
		}
	}
	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	release := func() { <-g.sem }
	if g.tpm != nil {
		if err := g.tpm.WaitN(ctx, min(tokens, g.tpm.Burst())); err != nil {
			release()
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			return nil, fmt.Errorf("llm: %s tokens-per-minute limit: waiting would pass the deadline: %w", g.provider, context.DeadlineExceeded)
		}
	}
	return release, nil
}

// settle charges the difference between the estimate and what the call
// really used, so that the limiter tracks real traffic.
func (g *gate) settle(estimate int, used int64) {
	if g.tpm == nil || used <= int64(estimate) {
		return
	}
	extra := min(int(used)-estimate, g.tpm.Burst())
	g.tpm.ReserveN(time.Now(), extra)
}

// breaker opens after Threshold consecutive failures and lets one call
// through per Cooldown while open.
type breaker struct {
	p   BreakerPolicy
	now func() time.Time

	mu       sync.Mutex
	failures int
	openedAt time.Time
}

func newBreaker(p BreakerPolicy) *breaker {
	if p.Threshold <= 0 {
		p.Threshold = 3
	}
	if p.Cooldown <= 0 {
		p.Cooldown = 30 * time.Second
	}
	return &breaker{p: p, now: time.Now}
}

// Allow reports whether a call may go to this provider now.
func (b *breaker) Allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures < b.p.Threshold {
		return true
	}
	if b.now().Sub(b.openedAt) >= b.p.Cooldown {
		b.openedAt = b.now() // half-open: this call is the probe
		return true
	}
	return false
}

func (b *breaker) Success() {
	b.mu.Lock()
	b.failures = 0
	b.mu.Unlock()
}

func (b *breaker) Failure() {
	b.mu.Lock()
	b.failures++
	if b.failures >= b.p.Threshold {
		b.openedAt = b.now()
	}
	b.mu.Unlock()
}

// Open reports whether the circuit is open (for Describe and tests).
func (b *breaker) Open() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failures >= b.p.Threshold && b.now().Sub(b.openedAt) < b.p.Cooldown
}

// endpoint is one provider+model with retries, limits and pricing around it.
type endpoint struct {
	provider string
	model    string
	m        Model
	gate     *gate
	retry    RetryPolicy
	pricer   *Pricer
	log      *slog.Logger
	// jsonTools is set once the model refused native tools: its tool
	// requests go through JSON tool mode from then on (tooljson.go).
	jsonTools atomic.Bool
}

// label names the endpoint as Selection.Label does.
func (e *endpoint) label() string {
	return Selection{Provider: e.provider, Model: e.model}.Label()
}

// estimateTokens guesses a request's input tokens (4 bytes a token).
func estimateTokens(req Request) int {
	n := len(req.System) + len(req.Context) + len(req.Schema)
	for _, t := range req.Tools {
		n += len(t.Name) + len(t.Description) + len(t.Parameters)
	}
	for _, m := range req.Messages {
		n += len(m.Content)
		for _, c := range m.ToolCalls {
			n += len(c.Name) + len(c.Arguments)
		}
		for _, r := range m.ToolResults {
			n += len(r.Content)
		}
	}
	return n/4 + 1
}

// RestartNotice is streamed before the deltas of a retried attempt when the
// failed attempt had already streamed text: deltas cannot be taken back, so
// the reader is told that the answer starts over.
const RestartNotice = "\n[retrying after an error: the answer starts over]\n"

// Generate calls the provider, retrying transient failures.
func (e *endpoint) Generate(ctx context.Context, req Request) (*Response, error) {
	var streamed, restarted bool
	if onDelta := req.OnDelta; onDelta != nil {
		// Calls to OnDelta happen inside e.once, never beside this loop.
		req.OnDelta = func(d string) {
			if restarted {
				restarted = false
				onDelta(RestartNotice)
			}
			streamed = true
			onDelta(d)
		}
	}
	for attempt := 0; ; attempt++ {
		if streamed {
			restarted, streamed = true, false
		}
		resp, err := e.once(ctx, req)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctxError(ctx, err)
		}
		if !IsRetryable(err) || attempt+1 >= e.retry.MaxAttempts {
			return nil, err
		}
		delay := e.retry.backoff(attempt)
		var ae *APIError
		if errors.As(err, &ae) && ae.RetryAfter > 0 {
			delay = min(ae.RetryAfter, e.retry.MaxRetryAfter)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
			return nil, fmt.Errorf("%w (not retried: waiting %v would pass the deadline)", err, delay.Round(time.Millisecond))
		}
		e.log.LogAttrs(ctx, slog.LevelWarn, "llm: retrying",
			slog.String("provider", e.provider), slog.String("model", e.model), slog.String("agent", req.Agent),
			slog.Int("attempt", attempt+1), slog.Duration("delay", delay), slog.String("error", err.Error()))
		if err := sleepCtx(ctx, delay); err != nil {
			return nil, ctxError(ctx, err)
		}
	}
}

// once makes one attempt. A tool request to a model that refuses native
// tools is answered in JSON tool mode, at once and from then on.
func (e *endpoint) once(ctx context.Context, req Request) (*Response, error) {
	if len(req.Tools) == 0 {
		return e.call(ctx, req)
	}
	if !e.jsonTools.Load() {
		resp, err := e.call(ctx, req)
		if err == nil || !toolsUnsupported(err) {
			return resp, err
		}
		if e.jsonTools.CompareAndSwap(false, true) {
			e.log.LogAttrs(ctx, slog.LevelWarn, "llm: the model refuses native tool calls; switching it to JSON tool mode",
				slog.String("provider", e.provider), slog.String("model", e.model), slog.String("error", err.Error()))
		}
	}
	resp, err := e.call(ctx, jsonToolRequest(req))
	if err != nil {
		return nil, err
	}
	parseJSONToolAnswer(req, resp)
	return resp, nil
}

func (e *endpoint) call(ctx context.Context, req Request) (*Response, error) {
	est := estimateTokens(req)
	release, err := e.gate.acquire(ctx, est)
	if err != nil {
		return nil, err
	}
	resp, err := e.m.Generate(ctx, req)
	release()
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.StatusCode == 429 && ae.RetryAfter > 0 {
			e.gate.pause(min(ae.RetryAfter, e.retry.MaxRetryAfter))
		}
		return nil, err
	}
	if resp == nil {
		return nil, &APIError{Provider: e.provider, Err: errors.New("provider returned no response")}
	}
	if resp.Provider == "" {
		resp.Provider = e.provider
	}
	if resp.Model == "" {
		resp.Model = e.model
	}
	u := resp.Usage
	e.gate.settle(est, u.InputTokens+u.CacheWriteTokens+u.OutputTokens)
	resp.Cost = e.pricer.Cost(resp.Model, resp.Usage, e.model)
	return resp, nil
}

// ctxError prefers the context's cause but keeps the provider error's text.
func ctxError(ctx context.Context, err error) error {
	cause := context.Cause(ctx)
	if errors.Is(err, cause) {
		return err
	}
	return fmt.Errorf("%w (last error: %v)", cause, err)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
