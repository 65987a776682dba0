package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// InvalidArgumentsKey is the one property of ToolCall.Arguments when the
// model's arguments were not a JSON object (invalid JSON, cut off by the
// output limit, an array, a bare string): its value is the raw text the
// model produced, cut to MaxInvalidArguments bytes.
//
// Wrapping keeps Arguments a valid JSON object, so that the call can be
// sent back to the provider in the next turn's Messages (every vendor
// insists on that), while the caller sees exactly what went wrong and
// answers with an error ToolResult instead of running the tool.
const InvalidArgumentsKey = "_invalid_arguments"

// MaxInvalidArguments bounds the raw text kept for arguments that are not
// a JSON object: it is useless to the tool and is echoed to the model.
const MaxInvalidArguments = 16 << 10

// InvalidArguments reports whether the model's arguments were unusable and
// returns the raw text it sent (see InvalidArgumentsKey).
func (c ToolCall) InvalidArguments() (raw string, invalid bool) {
	var w map[string]json.RawMessage
	if json.Unmarshal(c.Arguments, &w) != nil {
		return string(c.Arguments), true
	}
	v, ok := w[InvalidArgumentsKey]
	if !ok || len(w) != 1 {
		return "", false
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return string(v), true
	}
	return s, true
}

// NormalizeArguments turns what a model sent as a tool call's arguments into
// a JSON object: "" and null become {}, a JSON object (in valid UTF-8) is
// kept as it is, and anything else is wrapped under InvalidArgumentsKey.
func NormalizeArguments(raw string) json.RawMessage {
	t := strings.TrimSpace(raw)
	if t == "" || t == "null" {
		return json.RawMessage(`{}`)
	}
	// Invalid UTF-8 passes json.Valid but not every vendor's parser.
	if t[0] == '{' && utf8.ValidString(t) && json.Valid([]byte(t)) {
		return json.RawMessage(t)
	}
	if len(t) > MaxInvalidArguments {
		t = truncateUTF8(t, MaxInvalidArguments)
	}
	b, _ := json.Marshal(map[string]string{InvalidArgumentsKey: t})
	return b
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune (invalid
// bytes are replaced by json.Marshal anyway).
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// FinishToolCalls gives every call an ID (Gemini and JSON-mode answers may
// come without) and a JSON object as arguments. turn is the position of the
// answer in the conversation (len(Request.Messages)): made-up IDs,
// "call_<turn>_<i>", are unique across a transcript and the same when it is
// replayed.
func FinishToolCalls(calls []ToolCall, turn int) []ToolCall {
	seen := map[string]bool{}
	for i := range calls {
		c := &calls[i]
		if c.ID == "" || seen[c.ID] {
			c.ID = "call_" + strconv.Itoa(turn) + "_" + strconv.Itoa(i)
			for seen[c.ID] {
				c.ID += "_"
			}
		}
		seen[c.ID] = true
		c.Arguments = NormalizeArguments(string(c.Arguments))
	}
	return calls
}

// FinalStop returns the normalised stop reason of an answer: some servers
// (Ollama, Gemini) say "stop" although the answer ends with tool calls.
func FinalStop(stop string, calls int) string {
	if stop == "" {
		stop = StopEnd
	}
	if calls > 0 && stop == StopEnd {
		return StopToolUse
	}
	return stop
}

var toolName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidateRequest refuses requests no provider could serve correctly, with
// a message that says what to fix.
func ValidateRequest(req Request) error {
	if len(req.Tools) > 0 && len(req.Schema) > 0 {
		return errors.New("llm: a request cannot have both Tools and a Schema")
	}
	names := map[string]bool{}
	for i, t := range req.Tools {
		if !toolName.MatchString(t.Name) {
			return fmt.Errorf("llm: tool %d: name %q must be 1 to 64 letters, digits, '_' or '-'", i, t.Name)
		}
		if names[t.Name] {
			return fmt.Errorf("llm: tool %q is declared twice", t.Name)
		}
		names[t.Name] = true
		if len(bytes.TrimSpace(t.Parameters)) > 0 {
			var obj map[string]any
			if err := json.Unmarshal(t.Parameters, &obj); err != nil {
				return fmt.Errorf("llm: tool %q: parameters must be a JSON Schema object: %v", t.Name, err)
			}
		}
	}
	for i, m := range req.Messages {
		if len(m.ToolCalls) > 0 && m.Role != RoleAssistant {
			return fmt.Errorf("llm: message %d: only assistant messages carry tool calls", i)
		}
		if len(m.ToolResults) > 0 && m.Role != RoleUser {
			return fmt.Errorf("llm: message %d: only user messages carry tool results", i)
		}
	}
	return nil
}

// ToolSchema returns a tool's parameters as a JSON Schema object, {"type":
// "object"} when the tool declared none.
func ToolSchema(t Tool) map[string]any {
	var obj map[string]any
	if len(bytes.TrimSpace(t.Parameters)) > 0 {
		_ = json.Unmarshal(t.Parameters, &obj)
	}
	if obj == nil {
		obj = map[string]any{}
	}
	if _, ok := obj["type"]; !ok {
		obj["type"] = "object"
	}
	delete(obj, "$schema")
	return obj
}

// ArgumentsMap decodes normalised arguments for SDKs that want a map
// (Gemini's FunctionCall.Args, Anthropic's tool_use input).
func ArgumentsMap(args json.RawMessage) map[string]any {
	var m map[string]any
	if json.Unmarshal(NormalizeArguments(string(args)), &m) != nil || m == nil {
		return map[string]any{}
	}
	return m
}
