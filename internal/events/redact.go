package events

import (
	"bytes"
	"encoding/json"
)

// redactData applies redact to every string inside an event's JSON data.
// The data of a task_state event carries the task's error text, and a node's
// data may carry model output: a secret there would otherwise reach the
// store and every subscriber although the message beside it was scrubbed.
func redactData(raw json.RawMessage, redact func(string) string) json.RawMessage {
	if len(raw) == 0 {
		return raw
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // numbers pass through unchanged
	var v any
	if err := dec.Decode(&v); err != nil {
		// Not JSON: keep it only as a redacted string.
		b, _ := json.Marshal(redact(string(raw)))
		return b
	}
	out, err := json.Marshal(redactValue(v, redact))
	if err != nil {
		b, _ := json.Marshal(redact(string(raw)))
		return b
	}
	return out
}

func redactValue(v any, redact func(string) string) any {
	switch x := v.(type) {
	case string:
		return redact(x)
	case []any:
		for i := range x {
			x[i] = redactValue(x[i], redact)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = redactValue(e, redact)
		}
	}
	return v
}
