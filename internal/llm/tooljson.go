package llm

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// JSON tool mode: for models behind OpenAI-compatible servers that have no
// native tool calling (a 400 "does not support tools"). The tools are
// described in the system prompt; the model answers with one JSON object,
// {"tool": name, "arguments": {...}} to call a tool or {"done": summary}
// to finish; earlier calls and results are written into the conversation
// as text. The endpoint remembers the switch per model, so only the first
// call of a model pays the refused request.

// jsonToolPrompt is appended to the system prompt in JSON tool mode.
func jsonToolPrompt(tools []Tool) string {
	var b strings.Builder
	b.WriteString("\n\n# Tools\nYou work by calling tools. Answer with exactly one JSON object and nothing else:\n")
	b.WriteString(`{"tool": "<tool name>", "arguments": {<arguments>}}` + " to call a tool; you will get its result in the next message.\n")
	b.WriteString(`{"done": "<summary>"}` + " when the work is finished.\n\nAvailable tools:\n")
	for _, t := range tools {
		schema, _ := json.Marshal(ToolSchema(t))
		fmt.Fprintf(&b, "- %s: %s\n  arguments (JSON Schema): %s\n", t.Name, oneLine(t.Description), schema)
	}
	return b.String()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// jsonToolRequest rewrites a tool request for a model without tool calling.
func jsonToolRequest(req Request) Request {
	out := req
	out.Tools = nil
	out.System = strings.TrimRight(req.System, "\n") + jsonToolPrompt(req.Tools)
	out.Messages = make([]Message, 0, len(req.Messages))
	for _, m := range req.Messages {
		var b strings.Builder
		if m.Role == RoleUser {
			for _, r := range m.ToolResults {
				status := "result"
				if r.IsError {
					status = "error"
				}
				fmt.Fprintf(&b, "Tool %s %s (call %s):\n%s\n\n", r.Name, status, r.CallID, r.Content)
			}
		}
		b.WriteString(m.Content)
		if m.Role == RoleAssistant {
			for _, c := range m.ToolCalls {
				call, _ := json.Marshal(map[string]any{"tool": c.Name, "arguments": NormalizeArguments(string(c.Arguments))})
				if b.Len() > 0 {
					b.WriteString("\n")
				}
				b.Write(call)
			}
		}
		out.Messages = append(out.Messages, Message{Role: m.Role, Content: b.String()})
	}
	return out
}

// parseJSONToolAnswer turns a JSON-mode answer into tool calls. {"done":
// summary} becomes a call of "finish" when the request offers a tool of
// that name (the coder's convention), else the plain answer summary. An
// answer without a tool object stays a plain text answer.
func parseJSONToolAnswer(req Request, resp *Response) {
	doc, err := ExtractJSON(resp.Text)
	if err != nil {
		return
	}
	var a struct {
		Tool      *string         `json:"tool"`
		Arguments json.RawMessage `json:"arguments"`
		Done      json.RawMessage `json:"done"`
	}
	if json.Unmarshal(doc, &a) != nil {
		return
	}
	// IDs from the turn's position: a replayed transcript gets the same.
	id := "json_" + strconv.Itoa(len(req.Messages))
	switch {
	case a.Tool != nil:
		resp.ToolCalls = FinishToolCalls([]ToolCall{{ID: id, Name: *a.Tool, Arguments: a.Arguments}}, len(req.Messages))
		resp.Text = ""
	case len(a.Done) > 0:
		var summary string
		if json.Unmarshal(a.Done, &summary) != nil {
			summary = string(a.Done)
		}
		for _, t := range req.Tools {
			if t.Name == "finish" {
				args, _ := json.Marshal(map[string]string{"summary": summary})
				resp.ToolCalls = []ToolCall{{ID: id, Name: "finish", Arguments: args}}
				resp.Text = ""
				break
			}
		}
		if len(resp.ToolCalls) == 0 {
			resp.Text = summary
		}
	default:
		return
	}
	resp.StopReason = FinalStop(resp.StopReason, len(resp.ToolCalls))
}

// toolsUnsupported recognises a server's refusal of the tools parameter:
// Ollama's "registry.ollama.ai/library/gemma:2b does not support tools",
// vLLM's "tool choice requires --enable-auto-tool-choice", LiteLLM's
// "... does not support parameters: ['tools']".
func toolsUnsupported(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) || (ae.StatusCode != 400 && ae.StatusCode != 422 && ae.StatusCode != 501) {
		return false
	}
	msg := strings.ToLower(ae.Message + " " + fmt.Sprint(ae.Err))
	if !strings.Contains(msg, "tool") {
		return false
	}
	for _, s := range []string{"does not support", "not supported", "unsupported", "enable-auto-tool-choice", "no tool support"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
