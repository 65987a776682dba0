package agent

import (
	"context"
	"encoding/json"
	"fmt"
)

// ReviewOutput is the reviewer's artifact.
type ReviewOutput struct {
	Approved bool      `json:"approved"`
	Summary  string    `json:"summary"`
	Findings []Finding `json:"findings"`
	// Diff is the change reviewed (tasks of kind change), with its context.
	Diff string `json:"diff,omitempty"`
}

// Finding is one review remark.
type Finding struct {
	Severity string `json:"severity"` // critical, major, minor, info
	File     string `json:"file"`
	Line     int    `json:"line"`
	Message  string `json:"message"`
}

// Reviewer reads the files and approves or requests changes.
type Reviewer struct{ Deps }

// Run asks the model to review the workspace files.
func (r *Reviewer) Run(ctx context.Context, in Input) (Output, error) {
	ws, err := r.workspace(in.Task.ID)
	if err != nil {
		return Output{}, err
	}
	quoted, files, err := quoteFiles(ws)
	if err != nil {
		return Output{}, err
	}
	in.Log(Info, fmt.Sprintf("Reviewing %s", plural(len(files), "file", "files")))
	var c call
	var rev ReviewOutput
	if err := c.ask(ctx, r.Deps, in, "reviewer", prompt("reviewer"), taskContext(in),
		"Review this project.\n\n"+quoted, &rev); err != nil {
		return Output{}, err
	}
	if rev.Findings == nil {
		rev.Findings = []Finding{}
	}
	logReview(in, rev)
	return c.result(rev)
}

// logReview logs a review's findings and verdict.
func logReview(in Input, rev ReviewOutput) {
	counts := map[string]int{}
	for _, f := range rev.Findings {
		counts[f.Severity]++
		if f.Severity != "info" {
			in.Log(Warn, fmt.Sprintf("[%s] %s:%d %s", f.Severity, f.File, f.Line, oneLine(f.Message, 200)))
		}
	}
	verdict := "approved"
	level := Info
	if !rev.Approved {
		verdict, level = "changes requested", Warn
	}
	in.Log(level, fmt.Sprintf("Review %s: %s (%d critical, %d major, %d minor, %d info)", verdict, oneLine(rev.Summary, 200),
		counts["critical"], counts["major"], counts["minor"], counts["info"]))
}

// ReviewVerdict is the fix-loop condition on a reviewer artifact: approved,
// or the findings that must be fixed.
func ReviewVerdict(raw json.RawMessage) (bool, []string) {
	var r ReviewOutput
	if err := decodeRaw(raw, &r); err != nil {
		return false, []string{"unreadable review: " + err.Error()}
	}
	if r.Approved {
		return true, nil
	}
	var f []string
	for _, x := range r.Findings {
		if x.Severity == "info" {
			continue
		}
		f = append(f, fmt.Sprintf("review [%s] %s:%d: %s", x.Severity, x.File, x.Line, oneLine(x.Message, 300)))
	}
	if len(f) == 0 {
		f = append(f, "review requested changes: "+oneLine(r.Summary, 300))
	}
	return false, f
}
