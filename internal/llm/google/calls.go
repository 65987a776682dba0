package google

import (
	"encoding/json"
	"strconv"
	"strings"

	"google.golang.org/genai"

	"github.com/catalyst/catalyst/internal/llm"
)

// callAssembler joins the function calls of a response or stream. The
// Gemini API sends each call whole in one part (a stream may spread several
// calls over chunks); Vertex AI can stream one call's arguments as
// partialArgs with willContinue, which are merged into the open call here.
type callAssembler struct {
	calls []*pending
	open  *pending // the call whose willContinue was true
}

type pending struct {
	call genai.FunctionCall
	args any // map[string]any unless partial paths said otherwise
	sig  []byte
	bad  bool // a partial argument path could not be applied
}

func (a *callAssembler) add(fc *genai.FunctionCall, sig []byte) {
	p := a.open
	if p == nil || (fc.ID != "" && p.call.ID != "" && fc.ID != p.call.ID) {
		p = &pending{call: genai.FunctionCall{ID: fc.ID, Name: fc.Name}}
		a.calls = append(a.calls, p)
	}
	if p.call.Name == "" {
		p.call.Name = fc.Name
	}
	if p.call.ID == "" {
		p.call.ID = fc.ID
	}
	if len(sig) > 0 {
		p.sig = sig
	}
	if fc.Args != nil {
		if m, ok := p.args.(map[string]any); ok {
			for k, v := range fc.Args {
				m[k] = v
			}
		} else {
			p.args = fc.Args
		}
	}
	for _, pa := range fc.PartialArgs {
		if pa != nil && !p.setPath(pa) {
			p.bad = true
		}
	}
	if fc.WillContinue != nil && *fc.WillContinue {
		a.open = p
	} else {
		a.open = nil
	}
}

// setPath applies one partial argument: strings are appended (they arrive
// in pieces), other values set. Paths are RFC 9535 in the simple forms
// Vertex sends: $.a.b, $.a[0].c, $['a'].
func (p *pending) setPath(pa *genai.PartialArg) bool {
	segs, ok := parsePath(pa.JsonPath)
	if !ok || len(segs) == 0 || len(segs) > 32 {
		return false
	}
	if p.args == nil {
		p.args = map[string]any{}
	}
	var val any
	switch {
	case pa.NumberValue != nil:
		val = *pa.NumberValue
	case pa.BoolValue != nil:
		val = *pa.BoolValue
	case pa.NULLValue != "":
		val = nil
	default:
		val = pa.StringValue
	}
	root := p.args
	ok = set(&root, segs, val)
	p.args = root
	return ok
}

// set walks container (creating maps and slices as needed) and appends or
// stores val at the end of segs. A segment is a string key or an int index.
func set(container *any, segs []any, val any) bool {
	seg := segs[0]
	last := len(segs) == 1
	switch k := seg.(type) {
	case string:
		m, ok := (*container).(map[string]any)
		if !ok {
			if *container != nil {
				return false
			}
			m = map[string]any{}
			*container = m
		}
		if last {
			if s, ok := val.(string); ok {
				if prev, ok := m[k].(string); ok {
					m[k] = prev + s
					return true
				}
			}
			m[k] = val
			return true
		}
		child := m[k]
		ok = set(&child, segs[1:], val)
		m[k] = child
		return ok
	case int:
		sl, ok := (*container).([]any)
		if !ok && *container != nil {
			return false
		}
		if k < 0 || k > len(sl) || k > 10000 {
			return false
		}
		if k == len(sl) {
			sl = append(sl, nil)
		}
		if last {
			if s, ok := val.(string); ok {
				if prev, ok := sl[k].(string); ok {
					sl[k] = prev + s
					*container = sl
					return true
				}
			}
			sl[k] = val
			*container = sl
			return true
		}
		child := sl[k]
		ok = set(&child, segs[1:], val)
		sl[k] = child
		*container = sl
		return ok
	}
	return false
}

func parsePath(path string) ([]any, bool) {
	s, ok := strings.CutPrefix(path, "$")
	if !ok {
		return nil, false
	}
	var segs []any
	for s != "" {
		switch s[0] {
		case '.':
			s = s[1:]
			i := strings.IndexAny(s, ".[")
			if i < 0 {
				i = len(s)
			}
			if i == 0 {
				return nil, false
			}
			segs = append(segs, s[:i])
			s = s[i:]
		case '[':
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return nil, false
			}
			in := s[1:end]
			s = s[end+1:]
			if len(in) >= 2 && (in[0] == '\'' || in[0] == '"') && in[len(in)-1] == in[0] {
				segs = append(segs, in[1:len(in)-1])
				continue
			}
			n, err := strconv.Atoi(in)
			if err != nil {
				return nil, false
			}
			segs = append(segs, n)
		default:
			return nil, false
		}
	}
	return segs, true
}

func (a *callAssembler) result() []llm.ToolCall {
	var out []llm.ToolCall
	for _, p := range a.calls {
		var args json.RawMessage
		b, err := json.Marshal(p.args)
		switch {
		case p.bad || err != nil:
			// Keep what arrived, flagged, so the caller answers with an error.
			raw, _ := json.Marshal(p.args)
			args = json.RawMessage(`"partial arguments could not be assembled: ` + strings.ReplaceAll(string(raw), `"`, `'`) + `"`)
		case p.args == nil:
			args = json.RawMessage(`{}`)
		default:
			args = b
		}
		out = append(out, llm.ToolCall{ID: p.call.ID, Name: p.call.Name, Arguments: args, Signature: p.sig})
	}
	return out
}
