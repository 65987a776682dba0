package offline

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/catalyst/catalyst/internal/llm"
)

// The coder's tool names (internal/agent's tool loop offers them); the
// script below uses write_file and finish.
const (
	toolWriteFile = "write_file"
	toolFinish    = "finish"
)

// toolTurn answers one turn of the coder's tool loop with a script: the
// first turn writes every file of the app it would otherwise return as one
// JSON document (one write_file call per file), every later turn calls
// finish. The turn is counted from the assistant turns with tool calls in
// the transcript, so a resumed loop continues the script where it stopped.
func toolTurn(req llm.Request) (*llm.Response, error) {
	if strings.ToLower(req.Agent) != "coder" {
		return nil, fmt.Errorf("offline provider: no tool script for agent %q (only the coder's)", req.Agent)
	}
	offered := map[string]bool{}
	for _, t := range req.Tools {
		offered[t.Name] = true
	}
	for _, n := range []string{toolWriteFile, toolFinish} {
		if !offered[n] {
			return nil, fmt.Errorf("offline provider: the coder's tools lack %s", n)
		}
	}
	step, failed := 0, 0
	for _, m := range req.Messages {
		if m.Role == llm.RoleAssistant && len(m.ToolCalls) > 0 {
			step++
		}
		for _, r := range m.ToolResults {
			if r.IsError {
				failed++
			}
		}
	}
	files, notes, err := codeFiles(promptOf(req))
	if err != nil {
		return nil, err
	}
	resp := &llm.Response{Provider: Provider, Model: ModelName, StopReason: llm.StopToolUse, ProviderStopReason: "tool_use"}
	if step == 0 {
		resp.Text = fmt.Sprintf("Writing %d files.", len(files))
		for i, f := range files {
			args, err := marshal(map[string]string{"path": f.Path, "content": f.Content})
			if err != nil {
				return nil, err
			}
			resp.ToolCalls = append(resp.ToolCalls, llm.ToolCall{ID: fmt.Sprintf("offline_%d_%d", step, i), Name: toolWriteFile, Arguments: args})
		}
		return resp, nil
	}
	summary := notes
	if failed > 0 {
		summary += fmt.Sprintf(" (%d tool calls failed)", failed)
	}
	args, err := marshal(map[string]string{"summary": summary})
	if err != nil {
		return nil, err
	}
	resp.Text = "Done."
	resp.ToolCalls = []llm.ToolCall{{ID: fmt.Sprintf("offline_%d_0", step), Name: toolFinish, Arguments: args}}
	return resp, nil
}

// marshal encodes without HTML escaping, like a model's own JSON.
func marshal(v any) (json.RawMessage, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return json.RawMessage(strings.TrimSuffix(b.String(), "\n")), nil
}
