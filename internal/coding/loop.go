// Package coding is a model editing a workspace through tools: list, read,
// search, write, edit (exact search/replace), delete, run a command in the
// sandbox, finish. The loop is bounded by steps, tokens and cost, stops a
// model that repeats the same failing call, and keeps a transcript that is
// saved after every step: a loop interrupted by a crash resumes from it and
// applies no file effect twice.
//
// Everything the model sends is hostile input: paths go through
// workspace.CheckPath and the workspace's os.Root, arguments are size-capped,
// commands run only in the sandbox, on a copy of the workspace.
package coding

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/workspace"
)

// Limits bound one loop. Zero fields take the Default* values.
type Limits struct {
	// MaxSteps is the number of model turns.
	MaxSteps int
	// MaxTokens bounds every token the turns process: input, output and
	// cache reads and writes.
	MaxTokens int64
	// MaxCost in USD; 0 means no bound beyond the task's budget.
	MaxCost float64
	// Repeats ends the loop when the same failing call (tool and
	// arguments) comes this many times in a row.
	Repeats int
	// RunTimeout is the wall clock of one run command.
	RunTimeout time.Duration
}

// Defaults of Limits.
const (
	DefaultMaxSteps   = 40
	DefaultMaxTokens  = 2_000_000
	DefaultRepeats    = 3
	DefaultRunTimeout = 2 * time.Minute
	// maxLengthRetries is how many answers in a row may be cut by the
	// output limit before the loop gives up.
	maxLengthRetries = 2
)

func (l Limits) withDefaults() Limits {
	if l.MaxSteps <= 0 {
		l.MaxSteps = DefaultMaxSteps
	}
	if l.MaxTokens <= 0 {
		l.MaxTokens = DefaultMaxTokens
	}
	if l.Repeats <= 0 {
		l.Repeats = DefaultRepeats
	}
	if l.RunTimeout <= 0 {
		l.RunTimeout = DefaultRunTimeout
	}
	return l
}

// Why a loop ended (Transcript.End).
const (
	EndFinish     = "finish"      // the model called finish
	EndAnswer     = "answer"      // the model answered without tool calls
	EndMaxSteps   = "max_steps"   // Limits.MaxSteps reached
	EndMaxTokens  = "max_tokens"  // Limits.MaxTokens reached
	EndMaxCost    = "max_cost"    // Limits.MaxCost reached
	EndRepetition = "repetition"  // the same failing call Limits.Repeats times in a row
	EndLength     = "length"      // answers kept being cut by the output limit
	EndWholeFiles = "whole_files" // a whole-file JSON answer was applied (a model without tool calling)
)

// Transcript states.
const (
	StateRunning  = "running"
	StateFinished = "finished"
	StateFailed   = "failed"
)

// Transcript is the loop's durable record: the conversation, the file
// effects and the accounting. It is saved after every step.
type Transcript struct {
	State    string        `json:"state"`
	Messages []llm.Message `json:"messages"`
	// Pending holds the results of the last assistant turn's calls so far;
	// it becomes a user message when every call has its result.
	Pending []llm.ToolResult `json:"pending,omitempty"`
	Steps   int              `json:"steps"`
	// Calls counts tool calls, numbering their events.
	Calls   int           `json:"calls"`
	Effects []*Effect     `json:"effects"`
	Refused []Refusal     `json:"refused,omitempty"`
	Usage   domain.Usage  `json:"usage"`
	Cost    float64       `json:"cost"`
	Served  domain.Served `json:"served"`
	Summary string        `json:"summary,omitempty"`
	End     string        `json:"end,omitempty"`
	// Reason says in words why the loop ended.
	Reason  string `json:"reason,omitempty"`
	Resumes int    `json:"resumes,omitempty"`
	// Note rides on the next results message (a resume's findings).
	Note string `json:"note,omitempty"`
	// LengthRetries counts consecutive length-stopped answers.
	LengthRetries int `json:"length_retries,omitempty"`
	// FailKey and FailCount track the same failing call in a row.
	FailKey   string `json:"fail_key,omitempty"`
	FailCount int    `json:"fail_count,omitempty"`
}

// Effect is one change to a file, with the content hash before and after
// (Hash). It is recorded before it is applied: on resume, a file whose hash
// is After has it, one whose hash is Before gets it applied again, anything
// else is reported to the model as changed outside the loop.
type Effect struct {
	CallID  string `json:"call_id"`
	Tool    string `json:"tool"`
	Path    string `json:"path"`
	Before  string `json:"before"`
	After   string `json:"after"`
	Applied bool   `json:"applied"`
}

// Refusal is a model-supplied path that was not accepted, and why.
type Refusal struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// NewTranscript starts a loop with the first user message.
func NewTranscript(first string) *Transcript {
	return &Transcript{State: StateRunning, Messages: []llm.Message{{Role: llm.RoleUser, Content: first}}, Effects: []*Effect{}}
}

// Event is one tool call and its result, for the task's event stream.
type Event struct {
	Step      int    `json:"step"`
	Call      int    `json:"call"`
	Tool      string `json:"tool"`
	Arguments string `json:"arguments"` // truncated JSON
	Result    string `json:"result"`    // truncated
	Summary   string `json:"summary"`
	OK        bool   `json:"ok"`
	Resumed   bool   `json:"resumed,omitempty"`
}

// Loop runs a model over a workspace.
type Loop struct {
	Model     llm.Model
	Workspace *workspace.Workspace
	Sandbox   Sandbox
	Limits    Limits
	// Agent, System and Context form the requests' stable prefix.
	Agent, System, Context string
	OnDelta                func(string)
	// Save persists the transcript; it is called after every step and
	// before every file effect. An error stops the loop.
	Save func(ctx context.Context, t *Transcript) error
	// Emit receives every tool call and its result; may be nil.
	Emit func(Event)
	// Log receives human-readable lines; may be nil.
	Log func(level, msg string)
}

func (l *Loop) log(level, msg string) {
	if l.Log != nil {
		l.Log(level, msg)
	}
}

func (l *Loop) save(ctx context.Context, t *Transcript) error {
	if l.Save == nil {
		return nil
	}
	if err := l.Save(context.WithoutCancel(ctx), t); err != nil {
		return fmt.Errorf("coding: save the transcript: %w", err)
	}
	return nil
}

// Run drives t until the model finishes or a bound ends the loop. A
// transcript in state running that already has steps is resumed. Run
// returns an error when the loop could not go on (the model or the store
// failed, ctx ended); t then says how far it got.
func (l *Loop) Run(ctx context.Context, t *Transcript) error {
	lim := l.Limits.withDefaults()
	tb := &toolbox{ws: l.Workspace, sandbox: l.Sandbox, runTimeout: lim.RunTimeout}
	tb.intent = func(e *Effect) error {
		t.Effects = append(t.Effects, e)
		return l.save(ctx, t)
	}
	tb.retract = func(e *Effect) {
		if n := len(t.Effects); n > 0 && t.Effects[n-1] == e {
			t.Effects = t.Effects[:n-1]
		}
	}
	if t.State != StateRunning {
		if t.State == StateFinished {
			// The loop ended but its node did not complete: the workspace
			// may have been restored from before it.
			l.reconcile(tb, t)
		}
		return nil
	}
	if t.Steps > 0 || len(t.Effects) > 0 {
		t.Resumes++
		if notes := l.reconcile(tb, t); len(notes) > 0 {
			l.note(t, "The run was resumed after an interruption. "+strings.Join(notes, " "))
		}
		l.log("info", fmt.Sprintf("Resuming the coder's tool loop at step %d (%s recorded)", t.Steps, plural(len(t.Effects), "file effect", "file effects")))
	}
	for {
		if calls := pendingCalls(t); calls != nil {
			if err := l.execute(ctx, tb, t, calls, lim); err != nil {
				return l.failed(ctx, t, err)
			}
			if t.End != "" {
				return l.finished(ctx, t)
			}
		}
		if end, why := l.bounded(t, lim); end != "" {
			t.End, t.Reason = end, why
			l.log("warn", "The coder stopped: "+why)
			return l.finished(ctx, t)
		}
		if err := ctx.Err(); err != nil {
			return l.failed(ctx, t, err)
		}
		req := llm.Request{Agent: l.Agent, System: l.System, Context: l.Context, Messages: t.Messages, Tools: Tools(), OnDelta: l.OnDelta}
		resp, err := l.Model.Generate(ctx, req)
		if err != nil {
			return l.failed(ctx, t, fmt.Errorf("model call: %w", err))
		}
		t.Steps++
		t.Usage = t.Usage.Add(resp.Usage)
		t.Cost += resp.Cost
		if sv := servedBy(resp); sv != (domain.Served{}) {
			t.Served = sv
		}
		if resp.StopReason == llm.StopLength {
			// A cut answer is never parsed: its tool arguments may be half a
			// file. Ask again for less.
			t.LengthRetries++
			if t.LengthRetries > maxLengthRetries {
				t.End = EndLength
				t.Reason = fmt.Sprintf("%d answers in a row were cut off by the output limit", t.LengthRetries)
				return l.finished(ctx, t)
			}
			l.log("warn", "The model's answer was cut off by its output limit; asking for a smaller step")
			l.note(t, "Your last answer was cut off by the output limit and was discarded. Do less per turn: one tool call at a time, edit_file instead of rewriting whole files, and split a large new file into a first write_file and later edit_file calls.")
			if err := l.save(ctx, t); err != nil {
				return err
			}
			continue
		}
		t.LengthRetries = 0
		calls := sanitize(resp.ToolCalls, usedIDs(t))
		if len(calls) == 0 {
			if legacy := wholeFiles(resp.Text); legacy != nil && len(t.Effects) == 0 {
				// A model without tool calling answered with every file as
				// one JSON document (the previous protocol): apply it through
				// the same tools, so paths get the same checks.
				calls = legacy
				t.End = EndWholeFiles
			} else {
				t.Messages = append(t.Messages, llm.Message{Role: llm.RoleAssistant, Content: resp.Text})
				t.End, t.Summary = EndAnswer, truncUTF8(strings.TrimSpace(resp.Text), maxSummary)
				return l.finished(ctx, t)
			}
		}
		t.Messages = append(t.Messages, llm.Message{Role: llm.RoleAssistant, Content: resp.Text, ToolCalls: calls})
		if err := l.save(ctx, t); err != nil {
			return err
		}
	}
}

// note adds text to the next user turn (the pending results' message, or
// the last user message when no call is pending).
func (l *Loop) note(t *Transcript, text string) {
	last := &t.Messages[len(t.Messages)-1]
	if last.Role == llm.RoleUser {
		if last.Content != "" {
			last.Content += "\n\n"
		}
		last.Content += text
		return
	}
	// After an assistant turn with pending calls, the note rides on the
	// results message execute builds; keep it in a user message otherwise.
	if len(last.ToolCalls) == 0 {
		t.Messages = append(t.Messages, llm.Message{Role: llm.RoleUser, Content: text})
		return
	}
	t.Note = appendNote(t.Note, text)
}

func appendNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "\n\n" + b
}

func (l *Loop) bounded(t *Transcript, lim Limits) (string, string) {
	total := t.Usage.InputTokens + t.Usage.OutputTokens + t.Usage.CacheReadTokens + t.Usage.CacheWriteTokens
	switch {
	case t.Steps >= lim.MaxSteps:
		return EndMaxSteps, fmt.Sprintf("step limit reached (%d model turns; CODER_MAX_STEPS)", lim.MaxSteps)
	case total >= lim.MaxTokens:
		return EndMaxTokens, fmt.Sprintf("token limit reached (%d of %d tokens; CODER_MAX_TOKENS)", total, lim.MaxTokens)
	case lim.MaxCost > 0 && t.Cost >= lim.MaxCost:
		return EndMaxCost, fmt.Sprintf("cost limit reached ($%.4f of $%.4f; CODER_MAX_COST_USD)", t.Cost, lim.MaxCost)
	}
	return "", ""
}

func (l *Loop) finished(ctx context.Context, t *Transcript) error {
	t.State = StateFinished
	return l.save(ctx, t)
}

func (l *Loop) failed(ctx context.Context, t *Transcript, err error) error {
	if ctx.Err() != nil {
		// Cancelled, timed out or shutting down: the transcript stays
		// resumable as it was last saved.
		return err
	}
	t.State = StateFailed
	t.Reason = err.Error()
	if serr := l.save(ctx, t); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

// pendingCalls returns the calls of the last assistant turn that have no
// result yet, nil when nothing is pending.
func pendingCalls(t *Transcript) []llm.ToolCall {
	last := t.Messages[len(t.Messages)-1]
	if last.Role != llm.RoleAssistant || len(last.ToolCalls) == 0 {
		return nil
	}
	done := map[string]bool{}
	for _, r := range t.Pending {
		done[r.CallID] = true
	}
	var out []llm.ToolCall
	for _, c := range last.ToolCalls {
		if !done[c.ID] {
			out = append(out, c)
		}
	}
	return out
}

// execute runs the pending calls of the last turn, saving after each, then
// closes the turn with their results.
func (l *Loop) execute(ctx context.Context, tb *toolbox, t *Transcript, calls []llm.ToolCall, lim Limits) error {
	recorded := map[string]*Effect{}
	for _, e := range t.Effects {
		recorded[e.CallID] = e
	}
	for _, c := range calls {
		if err := ctx.Err(); err != nil {
			return err
		}
		t.Calls++
		var o outcome
		resumed := false
		if e, ok := recorded[c.ID]; ok {
			// Recorded before a crash: reconcile already put the file in
			// its after-state (or said why not); never apply it again.
			resumed = true
			if e.Applied {
				o = outcome{content: "ok: " + e.Tool + " " + e.Path + " (applied before an interruption)", summary: e.Tool + " " + e.Path + " (applied before an interruption)"}
			} else {
				o = fail("%s was changed outside this run; read it again before changing it", workspace.QuotePath(e.Path))
			}
		} else {
			// Read-only calls and commands (which run on a copy of the
			// workspace) are safe to run again after an interruption.
			o = tb.exec(ctx, c)
		}
		if o.fatal != nil {
			return o.fatal
		}
		if o.refused != nil {
			t.Refused = append(t.Refused, *o.refused)
		}
		content := o.content
		if len(content) > maxResultBytes {
			content = headTail(content, maxResultBytes)
		}
		t.Pending = append(t.Pending, llm.ToolResult{CallID: c.ID, Name: c.Name, Content: content, IsError: o.isError})
		if c.Name == ToolFinish && !o.isError {
			t.Summary = o.finish
			if t.Summary == "" {
				t.Summary = "done"
			}
			if t.End == "" {
				t.End = EndFinish
			}
		}
		// The same failing call again and again: the model is stuck.
		key := c.Name + "\x00" + string(c.Arguments)
		switch {
		case !o.isError:
			t.FailKey, t.FailCount = "", 0
		case key == t.FailKey:
			t.FailCount++
		default:
			t.FailKey, t.FailCount = key, 1
		}
		l.emit(t, c, o, content, resumed)
		if err := l.save(ctx, t); err != nil {
			return err
		}
		if t.FailCount >= lim.Repeats {
			t.End = EndRepetition
			t.Reason = fmt.Sprintf("the model made the same failing call %d times in a row: %s %s: %s", t.FailCount, c.Name, clip(string(c.Arguments), 200), o.summary)
			l.log("warn", "The coder stopped: "+t.Reason)
			break
		}
	}
	// Every call gets a result, as the providers require, even when the
	// loop ended before running it.
	for _, c := range pendingCalls(t) {
		t.Pending = append(t.Pending, llm.ToolResult{CallID: c.ID, Name: c.Name, Content: "not run: the loop ended", IsError: true})
	}
	msg := llm.Message{Role: llm.RoleUser, ToolResults: t.Pending, Content: t.Note}
	t.Messages = append(t.Messages, msg)
	t.Pending, t.Note = nil, ""
	return l.save(ctx, t)
}

// reconcile puts the workspace in the state the transcript recorded: an
// effect whose file still has its before-hash is applied (the workspace
// was restored from an earlier snapshot, or the crash came between
// recording and applying), one whose file has its after-hash is left
// alone. It returns notes for the model about files found in neither
// state.
func (l *Loop) reconcile(tb *toolbox, t *Transcript) []string {
	calls := map[string]llm.ToolCall{}
	for _, m := range t.Messages {
		for _, c := range m.ToolCalls {
			calls[c.ID] = c
		}
	}
	var order []string
	byPath := map[string][]*Effect{}
	for _, e := range t.Effects {
		if byPath[e.Path] == nil {
			order = append(order, e.Path)
		}
		byPath[e.Path] = append(byPath[e.Path], e)
	}
	var notes []string
	reapplied := 0
	for _, p := range order {
		effs := byPath[p]
		data, exists, err := tb.current(p)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s could not be read (%v).", workspace.QuotePath(p), err))
			continue
		}
		cur := Hash(data, exists)
		if cur == effs[len(effs)-1].After {
			for _, e := range effs {
				e.Applied = true
			}
			continue
		}
		start := -1
		for i, e := range effs {
			if e.Before == cur {
				start = i
				break
			}
		}
		if start < 0 {
			effs[len(effs)-1].Applied = false
			notes = append(notes, fmt.Sprintf("%s is not in the state your changes left it: read it again before changing it.", workspace.QuotePath(p)))
			continue
		}
		for _, e := range effs[start:] {
			if !l.reapply(tb, calls[e.CallID], e) {
				e.Applied = false
				notes = append(notes, fmt.Sprintf("Your change to %s (call %s) could not be applied again: read the file before changing it.", workspace.QuotePath(p), e.CallID))
				break
			}
			e.Applied = true
			reapplied++
		}
	}
	if reapplied > 0 {
		l.log("info", fmt.Sprintf("Re-applied %s recorded before the interruption", plural(reapplied, "file effect", "file effects")))
	}
	return notes
}

// reapply applies e's call again on a file in e's before-state and checks
// that it yields e's after-state.
func (l *Loop) reapply(tb *toolbox, c llm.ToolCall, e *Effect) bool {
	if c.ID == "" {
		return false
	}
	a, err := decodeArgs(c.Arguments)
	if err != nil {
		return false
	}
	p, _, _, after, remove, o := tb.planned(e.Tool, a)
	if o != nil || p != e.Path || Hash(after, !remove) != e.After {
		return false
	}
	if remove {
		err = tb.ws.Remove(p)
	} else {
		err = tb.ws.WriteFile(p, after)
	}
	return err == nil
}

func (l *Loop) emit(t *Transcript, c llm.ToolCall, o outcome, content string, resumed bool) {
	if l.Emit == nil {
		return
	}
	l.Emit(Event{Step: t.Steps, Call: t.Calls, Tool: Visible(clip(c.Name, 64)), Arguments: Visible(clipArgs(c.Arguments)),
		Result: Visible(clip(content, 1000)), Summary: Visible(clip(o.summary, 300)), OK: !o.isError, Resumed: resumed})
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return truncUTF8(s, n) + fmt.Sprintf("… [%d bytes]", len(s))
}

// clipArgs shortens each long string of a call's arguments, so that a
// reader of the event still sees every key (the path beside a long content).
func clipArgs(raw json.RawMessage) string {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return clip(string(raw), 500)
	}
	for k, v := range m {
		if s, ok := v.(string); ok && len(s) > 300 {
			m[k] = clip(s, 300)
		}
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(m) != nil {
		return clip(string(raw), 500)
	}
	return clip(strings.TrimSpace(b.String()), 2000)
}

// usedIDs are the call ids of the transcript so far.
func usedIDs(t *Transcript) map[string]bool {
	used := map[string]bool{}
	for _, m := range t.Messages {
		for _, c := range m.ToolCalls {
			used[c.ID] = true
		}
	}
	return used
}

// sanitize bounds what a model's turn puts in the transcript: oversized or
// non-object arguments are replaced by a marker (their call is refused with
// the reason when it runs), and every call gets an id unique in the
// transcript — effects are matched to calls by id on resume, and some
// servers number calls per turn (call_0 every time) or send none.
func sanitize(calls []llm.ToolCall, used map[string]bool) []llm.ToolCall {
	out := make([]llm.ToolCall, 0, len(calls))
	for i, c := range calls {
		if len(c.ID) > 64 || strings.IndexFunc(c.ID, func(r rune) bool {
			return !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) >= 0 {
			c.ID = ""
		}
		if c.ID == "" || used[c.ID] {
			base := c.ID
			if base == "" {
				base = "call"
			}
			for n := len(used) + i + 1; ; n++ {
				if id := fmt.Sprintf("%s_%d", base, n); !used[id] {
					c.ID = id
					break
				}
			}
		}
		used[c.ID] = true
		if len(c.Name) > 64 {
			c.Name = truncUTF8(c.Name, 64)
		}
		if _, err := decodeArgs(c.Arguments); err != nil {
			c.Arguments = invalidArgs(err)
		}
		out = append(out, c)
	}
	return out
}

// invalidArgs replaces refused arguments; exec sees the marker and answers
// with the original reason.
func invalidArgs(err error) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"_refused": err.Error()})
	return b
}

func servedBy(r *llm.Response) domain.Served {
	if r == nil || r.Provider == "" {
		return domain.Served{}
	}
	if r.Provider == llm.ProviderOffline {
		return domain.Served{Provider: llm.ProviderOffline, Offline: true}
	}
	return domain.Served{Provider: r.Provider, Model: r.Model}
}

// wholeFiles reads a whole-file JSON answer ({"files":[{path,content}],
// "delete":[...], "notes":...}) as the calls it stands for; nil when text is
// not one.
func wholeFiles(text string) []llm.ToolCall {
	var doc struct {
		Files []struct {
			Path    string `json:"path"`
			Content string `json:"content"`
		} `json:"files"`
		Delete []string `json:"delete"`
		Notes  string   `json:"notes"`
	}
	s := strings.TrimSpace(text)
	if !strings.HasPrefix(s, "{") || json.Unmarshal([]byte(s), &doc) != nil || len(doc.Files)+len(doc.Delete) == 0 {
		return nil
	}
	var calls []llm.ToolCall
	add := func(name string, v any) {
		b, _ := json.Marshal(v)
		calls = append(calls, llm.ToolCall{ID: fmt.Sprintf("whole_%d", len(calls)+1), Name: name, Arguments: b})
	}
	for _, f := range doc.Files {
		add(ToolWriteFile, map[string]string{"path": f.Path, "content": f.Content})
	}
	for _, p := range doc.Delete {
		add(ToolDeleteFile, map[string]string{"path": p})
	}
	notes := strings.TrimSpace(doc.Notes)
	if notes == "" {
		notes = "whole-file answer applied"
	}
	add(ToolFinish, map[string]string{"summary": notes})
	return calls
}

// hidden reports runes a reader must not get raw: controls, bidi
// reordering and invisible formatting characters (a file name or
// argument could otherwise display as something it is not).
func hidden(r rune) bool {
	if r == '\n' || r == '\t' {
		return false
	}
	return !unicode.IsGraphic(r) && r != ' ' || unicode.Is(unicode.Cf, r) || domain.IsBidiControl(r)
}

// Visible spells hidden runes as \uXXXX for display.
func Visible(s string) string {
	if strings.IndexFunc(s, hidden) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if hidden(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// EscapeJSON rewrites hidden runes inside a JSON document as \u escapes:
// the same document once decoded, but no raw reordering character reaches
// a reader of the stored bytes.
func EscapeJSON(doc []byte) []byte {
	s := string(doc)
	if strings.IndexFunc(s, hidden) < 0 {
		return doc
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !hidden(r):
			b.WriteRune(r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return []byte(b.String())
}
