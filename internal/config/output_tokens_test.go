package config

import (
	"os"
	"strings"
	"testing"
)

func TestMaxOutputTokens(t *testing.T) {
	c, err := Load(isolated(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.LLM.MaxOutputTokens != 0 {
		t.Fatalf("default %d, want 0 (the catalogue)", c.LLM.MaxOutputTokens)
	}
	yaml := writeFile(t, "config.yaml", `
llm:
  agents:
    coder: {max_output_tokens: 32000}
    reviewer: {provider: openai, model: gpt-4.1, max_output_tokens: 4000}
`)
	c, err = Load(Sources{YAMLFile: yaml, DotEnvFile: os.DevNull, Environ: environ("LLM_MAX_OUTPUT_TOKENS=16000")})
	if err != nil {
		t.Fatal(err)
	}
	if c.LLM.MaxOutputTokens != 16000 || c.LLM.Agents["coder"] != (ModelChoice{MaxOutputTokens: 32000}) ||
		c.LLM.Agents["reviewer"] != (ModelChoice{Provider: "openai", Model: "gpt-4.1", MaxOutputTokens: 4000}) {
		t.Fatalf("%d %+v", c.LLM.MaxOutputTokens, c.LLM.Agents)
	}

	for _, tc := range []struct{ env, yaml, want string }{
		{"LLM_MAX_OUTPUT_TOKENS=-1", "{}\n", `LLM_MAX_OUTPUT_TOKENS="-1" is invalid: accepted values are whole numbers from 0 to 1000000`},
		{"LLM_MAX_OUTPUT_TOKENS=lots", "{}\n", `LLM_MAX_OUTPUT_TOKENS="lots" is invalid`},
		{"", "llm:\n  agents:\n    coder: {max_output_tokens: 5000000}\n", `llm.agents.coder.max_output_tokens="5000000" is invalid: accepted values are whole numbers from 0 (default) to 1000000`},
		{"", "llm:\n  agents:\n    coder: {max_tokens: 5000}\n", `llm.agents.coder.max_tokens="max_tokens" is invalid: accepted values are provider, model, max_output_tokens`},
	} {
		_, err := Load(Sources{YAMLFile: writeFile(t, "config.yaml", tc.yaml), DotEnvFile: os.DevNull, Environ: environ(tc.env)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: error %v does not report %s", tc.env, tc.yaml, err, tc.want)
		}
	}
}
