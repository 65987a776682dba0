package coding

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/sandbox"
	"github.com/catalyst/catalyst/internal/workspace"
)

// Tool names. They are the contract with every model script (the offline
// provider's included), so they never change meaning.
const (
	ToolListFiles  = "list_files"
	ToolReadFile   = "read_file"
	ToolSearch     = "search"
	ToolWriteFile  = "write_file"
	ToolEditFile   = "edit_file"
	ToolDeleteFile = "delete_file"
	ToolRun        = "run"
	ToolFinish     = "finish"
)

// Bounds of what one tool call takes and gives back. A model's context is
// the scarce resource: results are cut with a note saying how to get the
// rest (line ranges, a narrower search) rather than flooding it.
const (
	// MaxArgumentBytes bounds one call's arguments: a file of
	// workspace.MaxFileSize plus JSON escaping headroom. Larger arguments
	// are refused unread and dropped from the transcript.
	MaxArgumentBytes = workspace.MaxFileSize + 64<<10
	maxResultBytes   = 16 << 10
	maxReadBytes     = 64 << 10
	maxReadLines     = 2000
	maxListed        = 2000
	maxMatches       = 100
	maxMatchLine     = 200
	maxPattern       = 500
	maxSearchFile    = 1 << 20
	maxCommand       = 8 << 10
	maxSummary       = 4 << 10
)

func schema(props string, required ...string) json.RawMessage {
	req, _ := json.Marshal(required)
	return json.RawMessage(`{"type":"object","properties":{` + props + `},"required":` + string(req) + `,"additionalProperties":false}`)
}

// Tools are the definitions sent to the model.
func Tools() []llm.Tool {
	str := func(desc string) string {
		d, _ := json.Marshal(desc)
		return `{"type":"string","description":` + string(d) + `}`
	}
	num := func(desc string) string {
		d, _ := json.Marshal(desc)
		return `{"type":"integer","minimum":1,"description":` + string(d) + `}`
	}
	return []llm.Tool{
		{Name: ToolListFiles, Description: "List the workspace's files with their sizes (.git excluded). Optional path lists one directory.",
			Parameters: schema(`"path":` + str("directory to list, relative to the workspace root"))},
		{Name: ToolReadFile, Description: "Read a text file, whole or a range of lines (1-based, inclusive). Long files are cut: ask for a range.",
			Parameters: schema(`"path":`+str("file path relative to the workspace root")+`,"start_line":`+num("first line to read")+`,"end_line":`+num("last line to read"), "path")},
		{Name: ToolSearch, Description: "Search the workspace's text files with a regular expression (RE2 syntax); answers path:line: text for each match, at most 100.",
			Parameters: schema(`"pattern":`+str("regular expression")+`,"path":`+str("file or directory to search in; default the whole workspace"), "pattern")},
		{Name: ToolWriteFile, Description: "Create or replace a file with the full content given. Prefer edit_file to change part of an existing file.",
			Parameters: schema(`"path":`+str("file path relative to the workspace root")+`,"content":`+str("the complete new content"), "path", "content")},
		{Name: ToolEditFile, Description: "Replace one exact occurrence of search with replace in a file. The search text must appear exactly once: include enough surrounding lines to make it unique.",
			Parameters: schema(`"path":`+str("file path relative to the workspace root")+`,"search":`+str("exact text to find, whitespace included")+`,"replace":`+str("text to put in its place"), "path", "search", "replace")},
		{Name: ToolDeleteFile, Description: "Delete a file.",
			Parameters: schema(`"path":`+str("file path relative to the workspace root"), "path")},
		{Name: ToolRun, Description: "Run a shell command (sh -c) in the sandbox on a copy of the workspace: no network, bounded time and output. Use it to run the tests. Files the command writes are not kept: change files with write_file or edit_file.",
			Parameters: schema(`"command":`+str("the shell command, e.g. node --test"), "command")},
		{Name: ToolFinish, Description: "Say the work is done, with a short summary of what changed and why.",
			Parameters: schema(`"summary":`+str("what you changed and why, in a few sentences"), "summary")},
	}
}

// Sandbox runs a command isolated (sandbox.Run's signature).
type Sandbox func(ctx context.Context, spec sandbox.Spec) (sandbox.Result, error)

// toolbox executes tool calls against one workspace.
type toolbox struct {
	ws         *workspace.Workspace
	sandbox    Sandbox
	runTimeout time.Duration
	// intent records an effect before it is applied (the transcript saves
	// it), so a crash between the two is recognised on resume.
	intent func(*Effect) error
	// retract forgets the last recorded effect when applying it failed.
	retract func(*Effect)
}

// outcome is one executed call.
type outcome struct {
	content string // what the model reads
	isError bool
	summary string // one line for events and logs
	effect  *Effect
	refused *Refusal
	finish  string
	// fatal stops the loop: the transcript could not be saved.
	fatal error
}

func fail(format string, a ...any) outcome {
	msg := fmt.Sprintf(format, a...)
	return outcome{content: "error: " + msg, isError: true, summary: msg}
}

// refusal answers a path that the workspace would not accept, saying why so
// the model can correct it.
func refusal(raw string, err error) outcome {
	reason := err.Error()
	var pe *workspace.PathError
	switch {
	case errors.As(err, &pe):
		reason = "unsafe path: " + pe.Reason
	case errors.Is(err, workspace.ErrTooLarge):
		reason = fmt.Sprintf("file larger than %d bytes", workspace.MaxFileSize)
	}
	o := fail("%s refused: %s", workspace.QuotePath(raw), reason)
	o.refused = &Refusal{Path: raw, Reason: reason}
	return o
}

// Hash is how effects name a file's content: "absent" for no file.
func Hash(data []byte, exists bool) string {
	if !exists {
		return "absent"
	}
	s := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(s[:])
}

func (tb *toolbox) current(p string) ([]byte, bool, error) {
	data, err := tb.ws.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return data, true, nil
}

type args struct {
	Path      string `json:"path"`
	StartLine int    `json:"start_line"`
	EndLine   int    `json:"end_line"`
	Pattern   string `json:"pattern"`
	Content   string `json:"content"`
	Search    string `json:"search"`
	Replace   string `json:"replace"`
	Command   string `json:"command"`
	Summary   string `json:"summary"`
	// Refused marks arguments the transcript dropped (sanitize).
	Refused string `json:"_refused"`
}

// decodeArgs checks a call's arguments: a bounded JSON object.
func decodeArgs(raw json.RawMessage) (args, error) {
	var a args
	if len(raw) > MaxArgumentBytes {
		return a, fmt.Errorf("the arguments are %d bytes, over the %d-byte limit: write large files in parts (write_file then edit_file) or change them with edit_file", len(raw), MaxArgumentBytes)
	}
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		t = []byte("{}")
	}
	if t[0] != '{' {
		return a, errors.New("the arguments must be a JSON object")
	}
	if err := json.Unmarshal(t, &a); err != nil {
		return a, fmt.Errorf("the arguments are not valid JSON for this tool: %v", err)
	}
	return a, nil
}

// exec runs one call. It never panics on hostile arguments; every failure
// is an error result the model can act on.
func (tb *toolbox) exec(ctx context.Context, call llm.ToolCall) outcome {
	a, err := decodeArgs(call.Arguments)
	if err != nil {
		return fail("%s", err)
	}
	if a.Refused != "" {
		return fail("%s", a.Refused)
	}
	switch call.Name {
	case ToolListFiles:
		return tb.list(a)
	case ToolReadFile:
		return tb.read(a)
	case ToolSearch:
		return tb.search(a)
	case ToolWriteFile:
		return tb.write(call.ID, a)
	case ToolEditFile:
		return tb.edit(call.ID, a)
	case ToolDeleteFile:
		return tb.remove(call.ID, a)
	case ToolRun:
		return tb.run(ctx, a)
	case ToolFinish:
		s := strings.TrimSpace(a.Summary)
		if len(s) > maxSummary {
			s = truncUTF8(s, maxSummary)
		}
		return outcome{content: "ok", summary: "done", finish: s}
	}
	return fail("unknown tool %s; the tools are %s", workspace.QuotePath(call.Name), strings.Join(toolNames(), ", "))
}

func toolNames() []string {
	var n []string
	for _, t := range Tools() {
		n = append(n, t.Name)
	}
	return n
}

func (tb *toolbox) list(a args) outcome {
	prefix := ""
	if a.Path != "" && a.Path != "." && a.Path != "/" {
		p, err := workspace.CheckPath(a.Path, workspace.Read)
		if err != nil {
			return refusal(a.Path, err)
		}
		prefix = p + "/"
	}
	files, err := tb.ws.List()
	if err != nil {
		return fail("%v", err)
	}
	var b strings.Builder
	n := 0
	for _, f := range files {
		if !strings.HasPrefix(f.Path, prefix) {
			continue
		}
		if n == maxListed {
			fmt.Fprintf(&b, "... more files not shown: list a directory\n")
			break
		}
		fmt.Fprintf(&b, "%s (%d bytes)\n", f.Path, f.Size)
		n++
	}
	if n == 0 {
		return outcome{content: "(no files)", summary: "no files"}
	}
	return outcome{content: b.String(), summary: plural(n, "file", "files")}
}

func (tb *toolbox) read(a args) outcome {
	p, err := workspace.CheckPath(a.Path, workspace.Read)
	if err != nil {
		return refusal(a.Path, err)
	}
	data, err := tb.ws.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fail("%s does not exist; list_files shows what does", workspace.QuotePath(p))
	}
	if err != nil {
		return refusal(a.Path, err)
	}
	if bytes.IndexByte(data, 0) >= 0 || !utf8.Valid(data) {
		return fail("%s is a binary file (%d bytes)", workspace.QuotePath(p), len(data))
	}
	lines := strings.SplitAfter(string(data), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	total := len(lines)
	start, end := 1, total
	if a.StartLine > 0 {
		start = a.StartLine
	}
	if a.EndLine > 0 && a.EndLine < end {
		end = a.EndLine
	}
	if total == 0 {
		return outcome{content: "(empty file)", summary: "empty"}
	}
	if start > total || start > end {
		return fail("lines %d-%d are outside %s, which has %d lines", start, max(end, a.EndLine), workspace.QuotePath(p), total)
	}
	var b strings.Builder
	last := start - 1
	for i := start; i <= end; i++ {
		if i-start >= maxReadLines || b.Len()+len(lines[i-1]) > maxReadBytes {
			break
		}
		b.WriteString(lines[i-1])
		last = i
	}
	body := b.String()
	if !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	header := fmt.Sprintf("%s lines %d-%d of %d\n", p, start, last, total)
	if last < end {
		body += fmt.Sprintf("[cut at line %d: read from start_line %d for more]\n", last, last+1)
	}
	return outcome{content: header + body, summary: fmt.Sprintf("lines %d-%d of %d", start, last, total)}
}

func (tb *toolbox) search(a args) outcome {
	if a.Pattern == "" {
		return fail("pattern is empty")
	}
	if len(a.Pattern) > maxPattern {
		return fail("pattern longer than %d bytes", maxPattern)
	}
	re, err := regexp.Compile(a.Pattern)
	if err != nil {
		return fail("invalid regular expression: %v", err)
	}
	scope := ""
	if a.Path != "" && a.Path != "." {
		p, err := workspace.CheckPath(a.Path, workspace.Read)
		if err != nil {
			return refusal(a.Path, err)
		}
		scope = p
	}
	files, err := tb.ws.List()
	if err != nil {
		return fail("%v", err)
	}
	var b strings.Builder
	n, more := 0, false
	for _, f := range files {
		if scope != "" && f.Path != scope && !strings.HasPrefix(f.Path, scope+"/") {
			continue
		}
		if f.Size > maxSearchFile {
			continue
		}
		data, err := tb.ws.ReadFile(f.Path)
		if err != nil || bytes.IndexByte(data, 0) >= 0 {
			continue
		}
		for i, line := range strings.Split(string(data), "\n") {
			if !re.MatchString(line) {
				continue
			}
			if n == maxMatches {
				more = true
				break
			}
			fmt.Fprintf(&b, "%s:%d: %s\n", f.Path, i+1, truncUTF8(strings.TrimRight(line, "\r"), maxMatchLine))
			n++
		}
		if more {
			break
		}
	}
	if n == 0 {
		return outcome{content: "no match", summary: "no match"}
	}
	if more {
		fmt.Fprintf(&b, "[stopped at %d matches: narrow the pattern or the path]\n", maxMatches)
	}
	return outcome{content: b.String(), summary: plural(n, "match", "matches")}
}

// mutate applies new content (nil: delete) to p and records the effect.
// The effect carries the hashes before and after, which is what makes a
// resumed loop apply it at most once.
func (tb *toolbox) mutate(callID, tool, p string, before []byte, existed bool, after []byte, remove bool) (*Effect, error) {
	e := &Effect{CallID: callID, Tool: tool, Path: p, Before: Hash(before, existed), After: Hash(after, !remove)}
	if tb.intent != nil {
		if err := tb.intent(e); err != nil {
			return nil, &fatalError{err}
		}
	}
	var err error
	if remove {
		err = tb.ws.Remove(p)
	} else {
		err = tb.ws.WriteFile(p, after)
	}
	if err != nil {
		if tb.retract != nil {
			tb.retract(e)
		}
		return nil, err
	}
	e.Applied = true
	return e, nil
}

type fatalError struct{ err error }

func (f *fatalError) Error() string { return f.err.Error() }

// planned computes what a mutating call would do without doing it: the
// path, the content before and after, or a refusal.
func (tb *toolbox) planned(tool string, a args) (p string, before []byte, existed bool, after []byte, remove bool, o *outcome) {
	bad := func(x outcome) (string, []byte, bool, []byte, bool, *outcome) { return "", nil, false, nil, false, &x }
	p, err := workspace.CheckPath(a.Path, workspace.Write)
	if err != nil {
		return bad(refusal(a.Path, err))
	}
	before, existed, err = tb.current(p)
	if err != nil {
		return bad(refusal(a.Path, err))
	}
	switch tool {
	case ToolWriteFile:
		if len(a.Content) > workspace.MaxFileSize {
			return bad(refusal(a.Path, workspace.ErrTooLarge))
		}
		return p, before, existed, []byte(a.Content), false, nil
	case ToolDeleteFile:
		if !existed {
			return bad(fail("%s does not exist", workspace.QuotePath(p)))
		}
		return p, before, existed, nil, true, nil
	}
	// edit_file
	if !existed {
		return bad(fail("%s does not exist: create it with write_file", workspace.QuotePath(p)))
	}
	if a.Search == "" {
		return bad(fail("search is empty: give the exact text to replace"))
	}
	text := string(before)
	switch n := strings.Count(text, a.Search); {
	case n == 0:
		hint := ""
		if first := firstLine(a.Search); first != "" {
			if at := linesContaining(text, strings.TrimSpace(first), 5); len(at) > 0 {
				hint = fmt.Sprintf(" (its first line, trimmed, appears at line %s: read those lines and copy the text exactly, whitespace included)", joinInts(at))
			}
		}
		return bad(fail("search text not found in %s%s", workspace.QuotePath(p), hint))
	case n > 1:
		return bad(fail("search text found %d times in %s, at lines %s: include more surrounding lines so it matches exactly once",
			n, workspace.QuotePath(p), joinInts(matchLines(text, a.Search, 10))))
	}
	after = []byte(strings.Replace(text, a.Search, a.Replace, 1))
	if len(after) > workspace.MaxFileSize {
		return bad(refusal(a.Path, workspace.ErrTooLarge))
	}
	return p, before, existed, after, false, nil
}

func (tb *toolbox) write(id string, a args) outcome { return tb.apply(id, ToolWriteFile, a) }
func (tb *toolbox) edit(id string, a args) outcome  { return tb.apply(id, ToolEditFile, a) }
func (tb *toolbox) remove(id string, a args) outcome {
	return tb.apply(id, ToolDeleteFile, a)
}

func (tb *toolbox) apply(id, tool string, a args) outcome {
	p, before, existed, after, remove, o := tb.planned(tool, a)
	if o != nil {
		return *o
	}
	e, err := tb.mutate(id, tool, p, before, existed, after, remove)
	var fe *fatalError
	if errors.As(err, &fe) {
		return outcome{fatal: fe.err}
	}
	if err != nil {
		return refusal(a.Path, err)
	}
	var msg string
	switch {
	case remove:
		msg = "deleted " + p
	case tool == ToolEditFile:
		msg = fmt.Sprintf("edited %s (%d bytes now)", p, len(after))
	case existed:
		msg = fmt.Sprintf("replaced %s (%d bytes)", p, len(after))
	default:
		msg = fmt.Sprintf("created %s (%d bytes)", p, len(after))
	}
	return outcome{content: "ok: " + msg, summary: msg, effect: e}
}

func (tb *toolbox) run(ctx context.Context, a args) outcome {
	cmd := strings.TrimSpace(a.Command)
	if cmd == "" {
		return fail("command is empty")
	}
	if len(cmd) > maxCommand {
		return fail("command longer than %d bytes", maxCommand)
	}
	if tb.sandbox == nil {
		return fail("no sandbox is available to run commands")
	}
	res, err := tb.sandbox(ctx, sandbox.Spec{Dir: tb.ws.Root(), Command: []string{"sh", "-c", cmd}, Timeout: tb.runTimeout})
	if err != nil && ctx.Err() == nil {
		return fail("the command could not run: %v", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "exit code %d", res.ExitCode)
	if res.TimedOut {
		fmt.Fprintf(&b, " (timed out after %s)", res.Timeout)
	}
	if res.QuotaExceeded {
		b.WriteString(" (disk quota exceeded)")
	}
	b.WriteString("\n")
	half := maxResultBytes / 2
	if s := res.Stdout; s != "" {
		b.WriteString("--- stdout ---\n" + headTail(s, half) + "\n")
	}
	if s := res.Stderr; s != "" {
		b.WriteString("--- stderr ---\n" + headTail(s, half) + "\n")
	}
	summary := fmt.Sprintf("exit %d", res.ExitCode)
	if res.TimedOut {
		summary += ", timed out"
	}
	return outcome{content: b.String(), summary: summary, isError: res.ExitCode != 0}
}

// headTail keeps the start and the end of long output: a failing test's
// name tends to be at one end and its assertion at the other.
func headTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	h := truncUTF8(s, n/4)
	t := s[len(s)-(n-n/4):]
	for len(t) > 0 && !utf8.RuneStart(t[0]) {
		t = t[1:]
	}
	return h + fmt.Sprintf("\n[... %d bytes cut ...]\n", len(s)-len(h)-len(t)) + t
}

func truncUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			return l
		}
	}
	return ""
}

func linesContaining(text, needle string, limit int) []int {
	var at []int
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, needle) {
			at = append(at, i+1)
			if len(at) == limit {
				break
			}
		}
	}
	return at
}

// matchLines gives the line number where each occurrence of s starts.
func matchLines(text, s string, limit int) []int {
	var at []int
	off := 0
	for len(at) < limit {
		i := strings.Index(text[off:], s)
		if i < 0 {
			break
		}
		at = append(at, strings.Count(text[:off+i], "\n")+1)
		off += i + max(1, len(s))
		if off > len(text) {
			break
		}
	}
	return at
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
