package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"
	"unicode"

	"github.com/catalyst/catalyst/internal/coding"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/workspace"
)

// CodeOutput is the coder's artifact. While the loop runs it is saved after
// every step with State "running", so a node interrupted by a crash resumes
// from its Transcript.
type CodeOutput struct {
	Iteration int           `json:"iteration"`
	Files     []FileChange  `json:"files"`
	Refused   []RefusedPath `json:"refused"`
	Notes     string        `json:"notes"`
	// Steps is the number of model turns; End and Reason say why the loop
	// ended (coding.End*).
	Steps      int                `json:"steps"`
	End        string             `json:"end,omitempty"`
	Reason     string             `json:"reason,omitempty"`
	Transcript *coding.Transcript `json:"transcript,omitempty"`
}

// FileChange is one file the coder wrote or deleted.
type FileChange struct {
	Path   string `json:"path"`
	Bytes  int    `json:"bytes"`
	Action string `json:"action"` // created, updated, deleted
}

// RefusedPath is a model-supplied path that was not written, and why.
type RefusedPath struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Coder writes and fixes the project through tools: the model reads,
// searches, edits and runs the tests in the sandbox until it says it is
// done or a bound (Deps.Coder) ends the loop.
type Coder struct{ Deps }

// Run runs the tool loop, resuming the transcript of an interrupted run of
// the same node and iteration. Model output is untrusted: every path goes
// through the workspace's checks, refusals are logged and listed.
func (c *Coder) Run(ctx context.Context, in Input) (Output, error) {
	ws, err := c.workspace(in.Task.ID)
	if err != nil {
		return Output{}, err
	}
	if c.Models == nil || c.Models.For("coder") == nil {
		return Output{}, fmt.Errorf("coder: no model configured")
	}
	tr, err := c.resume(ctx, in)
	if err != nil {
		return Output{}, err
	}
	if tr == nil {
		first, err := firstMessage(in, ws)
		if err != nil {
			return Output{}, err
		}
		tr = coding.NewTranscript(first)
		if len(in.Feedback) > 0 {
			in.Log(Info, fmt.Sprintf("Fix round %d: addressing %s", in.Iteration-1, feedbackSummary(in.Feedback)))
		} else {
			in.Log(Info, "Writing the files of the design")
		}
	}
	loop := coding.Loop{
		Model:     c.Models.For("coder"),
		Workspace: ws,
		Sandbox:   coding.Sandbox(c.Sandbox),
		Limits:    c.CoderLimits,
		Agent:     "coder",
		System:    prompt("coder"),
		Context:   taskContext(in),
		OnDelta:   in.Delta,
		Log:       in.Log,
		Emit:      func(e coding.Event) { emitToolCall(in, e) },
		Save: func(ctx context.Context, t *coding.Transcript) error {
			if c.Store == nil {
				return nil
			}
			out := codeOutput(in, t, ws, false)
			b, err := json.Marshal(out)
			if err != nil {
				return err
			}
			b = coding.EscapeJSON(b)
			return c.Store.PutArtifact(ctx, domain.Artifact{TaskID: in.Task.ID, Node: in.Node, Iteration: in.Iteration,
				Output: b, Cost: t.Cost, Usage: t.Usage, CreatedAt: time.Now().UTC()})
		},
	}
	if loop.Sandbox == nil {
		loop.Sandbox = defaultSandbox
	}
	runErr := loop.Run(ctx, tr)
	out := codeOutput(in, tr, ws, true)
	res := Output{Usage: tr.Usage, Cost: tr.Cost, Served: tr.Served}
	if runErr != nil {
		return res, fmt.Errorf("coder: %w", runErr)
	}
	if len(out.Files) == 0 && in.Iteration == 1 {
		why := ""
		if tr.Reason != "" {
			why = ": " + tr.Reason
		}
		return res, fmt.Errorf("coder: no file was written (%d refused)%s", len(out.Refused), why)
	}
	if tr.Reason != "" {
		in.Log(Warn, "The coder's loop ended early: "+tr.Reason)
	}
	in.Log(Info, fmt.Sprintf("Wrote %s into the workspace in %s%s", plural(len(out.Files), "file", "files"),
		plural(tr.Steps, "step", "steps"), refusedNote(out.Refused)))
	b, err := json.Marshal(out)
	if err != nil {
		return res, err
	}
	res.Artifact = coding.EscapeJSON(b)
	return res, nil
}

// resume returns the transcript an interrupted run of this node left, nil
// when there is none to continue.
func (c *Coder) resume(ctx context.Context, in Input) (*coding.Transcript, error) {
	if c.Store == nil {
		return nil, nil
	}
	list, err := c.Store.ListArtifacts(ctx, in.Task.ID)
	if err != nil {
		return nil, fmt.Errorf("coder: read the stored transcript: %w", err)
	}
	for _, a := range list {
		if a.Node != in.Node || a.Iteration != in.Iteration {
			continue
		}
		var prev CodeOutput
		if json.Unmarshal(a.Output, &prev) != nil || prev.Transcript == nil || len(prev.Transcript.Messages) == 0 {
			return nil, nil
		}
		// A failed run starts over: the workspace it ran on was restored
		// from the last completed node.
		if prev.Transcript.State == coding.StateFailed {
			return nil, nil
		}
		return prev.Transcript, nil
	}
	return nil, nil
}

// codeOutput builds the artifact from the transcript's applied effects.
func codeOutput(in Input, t *coding.Transcript, ws *workspace.Workspace, final bool) CodeOutput {
	out := CodeOutput{Iteration: in.Iteration, Files: []FileChange{}, Refused: []RefusedPath{}, Notes: t.Summary,
		Steps: t.Steps, End: t.End, Reason: t.Reason, Transcript: t}
	type change struct{ created, deleted bool }
	var order []string
	seen := map[string]*change{}
	for _, e := range t.Effects {
		if !e.Applied {
			continue
		}
		ch := seen[e.Path]
		if ch == nil {
			ch = &change{created: e.Before == "absent"}
			seen[e.Path] = ch
			order = append(order, e.Path)
		}
		ch.deleted = e.After == "absent"
	}
	for _, p := range order {
		ch := seen[p]
		switch {
		case ch.deleted && ch.created:
			continue
		case ch.deleted:
			out.Files = append(out.Files, FileChange{Path: p, Action: "deleted"})
		default:
			action := "updated"
			if ch.created {
				action = "created"
			}
			data, err := ws.ReadFile(p)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				continue
			}
			out.Files = append(out.Files, FileChange{Path: p, Bytes: len(data), Action: action})
		}
	}
	for _, r := range t.Refused {
		out.Refused = append(out.Refused, refused(in, r.Path, r.Reason, final))
	}
	return out
}

// refused records a model path that was not written. The reason says which
// rule refused it, so the model can correct it; the path is quoted
// ASCII-only and capped, since it is hostile input.
func refused(in Input, path, reason string, log bool) RefusedPath {
	quoted := workspace.QuotePath(path)
	if log {
		in.Log(Warn, fmt.Sprintf("Refused to write %s: %s", quoted, reason))
	}
	// The artifact reaches the dashboard: a name that is over-long or holds
	// invisible or reordering characters is stored in its quoted form.
	if len(path) > 1024 || strings.IndexFunc(path, func(r rune) bool {
		return !unicode.IsGraphic(r) || unicode.Is(unicode.Cf, r) || domain.IsBidiControl(r)
	}) >= 0 {
		path = quoted
	}
	return RefusedPath{Path: path, Reason: reason}
}

// emitToolCall turns a tool call into a task event.
func emitToolCall(in Input, e coding.Event) {
	if in.Event == nil {
		return
	}
	level := Info
	if !e.OK {
		level = Warn
	}
	msg := fmt.Sprintf("%s %s: %s", e.Tool, argHint(e.Arguments), e.Summary)
	if e.Resumed {
		msg += " (resumed)"
	}
	in.Event(domain.EventToolCall, level, msg, map[string]any{
		"step": e.Step, "call": e.Call, "tool": e.Tool, "arguments": e.Arguments,
		"result": e.Result, "summary": e.Summary, "ok": e.OK, "resumed": e.Resumed,
	})
}

// argHint is the argument a reader recognises a call by (its path, command
// or pattern), quoted and short.
func argHint(raw string) string {
	var a struct{ Path, Command, Pattern string }
	_ = json.Unmarshal([]byte(raw), &a)
	s := a.Path
	if s == "" {
		s = a.Command
	}
	if s == "" {
		s = a.Pattern
	}
	if len(s) > 80 {
		s = s[:80]
	}
	if s == "" {
		return ""
	}
	return workspace.QuotePath(s)
}

func refusedNote(r []RefusedPath) string {
	if len(r) == 0 {
		return ""
	}
	return fmt.Sprintf("; refused %s", plural(len(r), "path", "paths"))
}

func feedbackSummary(fb []Feedback) string {
	var parts []string
	for _, f := range fb {
		parts = append(parts, fmt.Sprintf("%s (%s)", f.Node, plural(len(f.Findings), "finding", "findings")))
	}
	return strings.Join(parts, ", ")
}

// testOutput returns the trimmed output of a tester artifact, if f is one.
func testOutput(f Feedback) string {
	var t TestOutput
	if f.Artifact.Output == nil || decodeRaw(f.Artifact.Output, &t) != nil {
		return ""
	}
	return t.Output
}

// Bounds of the first message: the loop reads what else it needs.
const (
	maxListedInMessage = 300
	maxRelevantBytes   = 48 << 10
	maxRelevantFile    = 16 << 10
)

// firstMessage starts the loop. The first write gets the files already
// there (names only); a fix round gets the checks' findings, the failing
// output and the files those name — not the whole tree.
func firstMessage(in Input, ws *workspace.Workspace) (string, error) {
	files, err := ws.List()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if len(in.Feedback) == 0 && in.Task.KindOf() == domain.KindChange {
		b.WriteString(changeBrief(in))
	} else if len(in.Feedback) == 0 {
		b.WriteString("Write the project described by the request, the plan and the design above. Create each file with write_file, run the tests with run, fix what fails, then call finish.\n")
	} else {
		fmt.Fprintf(&b, "Fix round %d. The checks sent the work back:\n\n", in.Iteration-1)
		var evidence strings.Builder
		for _, f := range in.Feedback {
			fmt.Fprintf(&b, "## %s\n", f.Node)
			for _, s := range f.Findings {
				b.WriteString("- " + s + "\n")
				evidence.WriteString(s + "\n")
			}
			if out := testOutput(f); out != "" {
				b.WriteString("\nTest output (trimmed):\n" + out + "\n")
				evidence.WriteString(out + "\n")
			}
			b.WriteString("\n")
		}
		relevant := relevantFiles(files, evidence.String())
		relevant = append(relevant, importedBy(ws, files, relevant)...)
		if len(relevant) > 0 {
			b.WriteString("Files named in the failures:\n\n")
			used := 0
			for _, p := range relevant {
				data, err := ws.ReadFile(p)
				if err != nil {
					continue
				}
				if len(data) > maxRelevantFile || used+len(data) > maxRelevantBytes {
					fmt.Fprintf(&b, "%s%s ===\n(%d bytes, not shown: read_file with a line range)\n", filesHeader, p, len(data))
					continue
				}
				used += len(data)
				b.WriteString(filesHeader + p + " ===\n")
				b.Write(data)
				if len(data) > 0 && data[len(data)-1] != '\n' {
					b.WriteString("\n")
				}
			}
			b.WriteString("\n")
		}
		b.WriteString("Change what is needed with edit_file (or write_file for new files), run the tests, then call finish.\n")
	}
	if len(files) > 0 {
		b.WriteString("\nFiles in the workspace (read_file and search show their content):\n")
		for i, f := range files {
			if i == maxListedInMessage {
				fmt.Fprintf(&b, "... and %d more (list_files)\n", len(files)-i)
				break
			}
			fmt.Fprintf(&b, "%s (%d bytes)\n", f.Path, f.Size)
		}
	}
	return b.String(), nil
}

// relevantFiles are the workspace files a failure text names, by path or,
// for distinctive names, by base name.
func relevantFiles(files []workspace.File, text string) []string {
	var out []string
	for _, f := range files {
		base := f.Path[strings.LastIndex(f.Path, "/")+1:]
		if strings.Contains(text, f.Path) || (len(base) >= 5 && strings.Contains(base, ".") && strings.Contains(text, base)) {
			out = append(out, f.Path)
		}
	}
	return out
}

// fileContent is a file a model wrote as part of a structured answer (the
// tester's added tests).
type fileContent struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

// refuse logs and lists a path the workspace would not write, with the
// rule that refused it.
func refuse(in Input, path string, err error) RefusedPath {
	reason := err.Error()
	var pe *workspace.PathError
	switch {
	case errors.As(err, &pe):
		reason = "unsafe path: " + pe.Reason
	case errors.Is(err, workspace.ErrTooLarge):
		reason = fmt.Sprintf("file larger than %d bytes", workspace.MaxFileSize)
	}
	return refused(in, path, reason, true)
}

// importedBy are the files that the given ones import by a relative path
// ('./sum.js', "../lib/sum") or, in Python, by module name: a failing test
// is usually about the code it imports. One level deep.
func importedBy(ws *workspace.Workspace, files []workspace.File, named []string) []string {
	in := map[string]bool{}
	for _, p := range named {
		in[p] = true
	}
	var texts []string
	for _, p := range named {
		if data, err := ws.ReadFile(p); err == nil && len(data) <= maxRelevantFile {
			texts = append(texts, string(data))
		}
	}
	var out []string
	for _, f := range files {
		if in[f.Path] {
			continue
		}
		base := f.Path[strings.LastIndex(f.Path, "/")+1:]
		stem := strings.TrimSuffix(base, path.Ext(base))
		if len(stem) < 2 {
			continue
		}
		needles := []string{"/" + base + "'", "/" + base + `"`, "/" + stem + "'", "/" + stem + `"`}
		if strings.HasSuffix(base, ".py") {
			needles = append(needles, "import "+stem+"\n", "from "+stem+" import")
		}
		for _, t := range texts {
			hit := false
			for _, n := range needles {
				if strings.Contains(t, n) {
					hit = true
					break
				}
			}
			if hit {
				out = append(out, f.Path)
				in[f.Path] = true
				break
			}
		}
	}
	return out
}
