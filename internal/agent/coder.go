package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"unicode"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/workspace"
)

// CodeOutput is the coder's artifact.
type CodeOutput struct {
	Iteration int           `json:"iteration"`
	Files     []FileChange  `json:"files"`
	Refused   []RefusedPath `json:"refused"`
	Notes     string        `json:"notes"`
}

// FileChange is one file the coder wrote or deleted.
type FileChange struct {
	Path   string `json:"path"`
	Bytes  int    `json:"bytes"`
	Action string `json:"action"` // created, updated, deleted
}

// fileContent is a file a model wrote.
type fileContent struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

// RefusedPath is a model-supplied path that was not written, and why.
type RefusedPath struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// codeAnswer is what the coder asks the model for (schemas/coder.json).
type codeAnswer struct {
	Files  []fileContent `json:"files"`
	Delete []string      `json:"delete"`
	Notes  string        `json:"notes"`
}

// Coder writes the project's files into the task's workspace; in a fix round
// it changes them from the checks' findings.
type Coder struct{ Deps }

// Run asks the model for files and writes them. Paths from the model are
// untrusted: the workspace refuses unsafe ones, which are logged and listed.
func (c *Coder) Run(ctx context.Context, in Input) (Output, error) {
	ws, err := c.workspace(in.Task.ID)
	if err != nil {
		return Output{}, err
	}
	msg := "Write all the files of the design above."
	if len(in.Feedback) > 0 {
		quoted, _, err := quoteFiles(ws)
		if err != nil {
			return Output{}, err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "Fix round %d. The checks sent the work back:\n\n", in.Iteration-1)
		for _, f := range in.Feedback {
			fmt.Fprintf(&b, "## %s\n", f.Node)
			for _, s := range f.Findings {
				b.WriteString("- " + s + "\n")
			}
			if out := testOutput(f); out != "" {
				b.WriteString("\nTest output (trimmed):\n" + out + "\n")
			}
			b.WriteString("\n")
		}
		b.WriteString("Current files:\n\n" + quoted)
		msg = b.String()
		in.Log(Info, fmt.Sprintf("Fix round %d: addressing %s", in.Iteration-1, feedbackSummary(in.Feedback)))
	} else {
		in.Log(Info, "Writing the files of the design")
	}
	var k call
	var ans codeAnswer
	if err := k.ask(ctx, c.Deps, in, "coder", prompt("coder"), taskContext(in), msg, &ans); err != nil {
		return Output{}, err
	}
	out := CodeOutput{Iteration: in.Iteration, Files: []FileChange{}, Refused: []RefusedPath{}, Notes: ans.Notes}
	for _, f := range ans.Files {
		// The canonical path is what the file list, the zip and the reviewer
		// show, so the artifact and the logs name the file the same way.
		p, err := workspace.CheckPath(f.Path, workspace.Write)
		if err != nil {
			out.Refused = append(out.Refused, refuse(in, f.Path, err))
			continue
		}
		action := "created"
		if _, err := ws.ReadFile(p); err == nil {
			action = "updated"
		}
		if err := ws.WriteFile(p, []byte(f.Content)); err != nil {
			out.Refused = append(out.Refused, refuse(in, f.Path, err))
			continue
		}
		out.Files = append(out.Files, FileChange{Path: p, Bytes: len(f.Content), Action: action})
		in.Log(Info, fmt.Sprintf("%s %s (%d bytes)", strings.ToUpper(action[:1])+action[1:], p, len(f.Content)))
	}
	for _, raw := range ans.Delete {
		p, err := workspace.CheckPath(raw, workspace.Write)
		if err == nil {
			err = ws.Remove(p)
		}
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, os.ErrNotExist) {
				continue
			}
			out.Refused = append(out.Refused, refuse(in, raw, err))
			continue
		}
		out.Files = append(out.Files, FileChange{Path: p, Action: "deleted"})
		in.Log(Info, "Deleted "+p)
	}
	if len(out.Files) == 0 && in.Iteration == 1 {
		return Output{}, fmt.Errorf("coder: no file was written (%d refused)", len(out.Refused))
	}
	in.Log(Info, fmt.Sprintf("Wrote %s into the workspace%s", plural(len(out.Files), "file", "files"), refusedNote(out.Refused)))
	return k.result(out)
}

// refuse records a model path that was not written. The reason says which
// rule refused it, so the model can correct it in a fix round; the path is
// quoted ASCII-only and capped, since it is hostile input.
func refuse(in Input, path string, err error) RefusedPath {
	reason := err.Error()
	var pe *workspace.PathError
	switch {
	case errors.As(err, &pe):
		reason = "unsafe path: " + pe.Reason
	case errors.Is(err, workspace.ErrTooLarge):
		reason = fmt.Sprintf("file larger than %d bytes", workspace.MaxFileSize)
	}
	quoted := workspace.QuotePath(path)
	in.Log(Warn, fmt.Sprintf("Refused to write %s: %s", quoted, reason))
	// The artifact reaches the dashboard: a name that is over-long or holds
	// invisible or reordering characters is stored in its quoted form.
	if len(path) > 1024 || strings.IndexFunc(path, func(r rune) bool {
		return !unicode.IsGraphic(r) || unicode.Is(unicode.Cf, r) || domain.IsBidiControl(r)
	}) >= 0 {
		path = quoted
	}
	return RefusedPath{Path: path, Reason: reason}
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
