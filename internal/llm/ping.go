package llm

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// Ping is `catalyst llm ping`: it prints which provider and model the
// default route uses and why, makes one tiny call, and prints latency,
// tokens and cost.
func Ping(ctx context.Context, r *Router, w io.Writer) error {
	sel := r.Describe("")
	if sel.Offline() {
		fmt.Fprintf(w, "provider: %s\n", OfflineLabel)
	} else {
		fmt.Fprintf(w, "provider: %s\nmodel:    %s\nwhy:      %s\n", sel.Provider, sel.Model, sel.Reason)
		fmt.Fprintf(w, "max out:  %d tokens (calls that set no max_tokens)\n", sel.MaxTokens)
		if sel.BaseURL != "" {
			fmt.Fprintf(w, "base URL: %s\n", sel.BaseURL)
		}
		for _, f := range sel.Fallback {
			fmt.Fprintf(w, "fallback: %s/%s (%s)\n", f.Provider, f.Model, f.Reason)
		}
	}
	start := time.Now()
	resp, err := r.For("").Generate(ctx, Request{
		Agent:     "ping",
		System:    "You are a connectivity check. Answer with one word.",
		Messages:  []Message{{Role: RoleUser, Content: "Say pong."}},
		MaxTokens: 16,
	})
	lat := time.Since(start)
	if err != nil {
		fmt.Fprintf(w, "call:     FAILED after %v: %v\n", lat.Round(time.Millisecond), err)
		return err
	}
	answer := strings.TrimSpace(resp.Text)
	if len(answer) > 80 {
		answer = answer[:80] + "..."
	}
	u := resp.Usage
	fmt.Fprintf(w, "answered: %s/%s: %q\n", resp.Provider, resp.Model, answer)
	fmt.Fprintf(w, "latency:  %v\n", lat.Round(time.Millisecond))
	fmt.Fprintf(w, "tokens:   %d in, %d out, %d cache read, %d cache write\n",
		u.InputTokens, u.OutputTokens, u.CacheReadTokens, u.CacheWriteTokens)
	fmt.Fprintf(w, "cost:     $%.6f\n", resp.Cost)
	return nil
}
