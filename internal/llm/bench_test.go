package llm

import (
	"context"
	"testing"

	"github.com/catalyst/catalyst/internal/config"
)

// BenchmarkLayerOverhead measures what the router adds to a call (timeout,
// breaker, concurrency and TPM gates, pricing, redaction, schema
// validation) around a model that answers at once.
func BenchmarkLayerOverhead(b *testing.B) {
	m := &fakeModel{fn: okText(`{"title":"x","points":3}`)}
	req := Request{System: "You plan.", Messages: []Message{{Role: RoleUser, Content: "Build a todo app"}}, Schema: storySchema}
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.Generate(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, name := range []string{"routed-text", "routed-schema"} {
		b.Run(name, func(b *testing.B) {
			r, err := NewRouter(config.LLMConfig{AnthropicKey: "sk-ant-bench-key"}, RouterOptions{
				Providers:    map[string]Factory{ProviderAnthropic: func(ProviderConfig) (Model, error) { return m, nil }},
				AgentTimeout: 300e9,
			})
			if err != nil {
				b.Fatal(err)
			}
			rq := req
			if name == "routed-text" {
				rq.Schema = nil
			}
			routed := r.For("planner")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := routed.Generate(context.Background(), rq); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
