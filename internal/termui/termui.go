// Package termui renders a task's progress in a terminal for `catalyst run`:
// live lines per agent (a spinner with elapsed time and cost when the output
// is a terminal, plain lines otherwise), then a summary of what was built.
package termui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/store"
)

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// view is the state of the display.
type view struct {
	w       io.Writer
	tty     bool
	start   time.Time
	lastSeq int64
	cost    float64
	running []string // agents running now, in start order
	typing  int      // token deltas seen, for the spinner
	frame   int
	status  bool // a status line is on screen (tty)
	ended   *domain.TaskStatus
}

// Follow shows the events of taskID, stored ones first and then live ones,
// until the task ends; then it prints a summary and returns the final task.
func Follow(ctx context.Context, broker *events.Broker, st store.Store, taskID string, w io.Writer, tty bool) (domain.Task, error) {
	v := &view{w: w, tty: tty, start: time.Now()}
	if t, err := st.GetTask(ctx, taskID); err == nil && t.StartedAt != nil {
		v.start = *t.StartedAt
	}
	sub := broker.Subscribe(taskID, 0)
	defer func() { sub.Close() }()
	if err := v.replay(ctx, st, taskID); err != nil {
		return domain.Task{}, err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastPoll := time.Now()
	for v.ended == nil {
		select {
		case <-ctx.Done():
			v.clearStatus()
			return domain.Task{}, ctx.Err()
		case e, ok := <-sub.C():
			if !ok {
				// Evicted for being slow: catch up from the store and go on.
				sub = broker.Subscribe(taskID, 0)
				if err := v.replay(ctx, st, taskID); err != nil {
					return domain.Task{}, err
				}
				continue
			}
			if e.Type == domain.EventTokenDelta {
				v.typing++
				continue
			}
			if e.Seq <= v.lastSeq {
				continue // already shown by the replay
			}
			if e.Seq > v.lastSeq+1 {
				if err := v.replay(ctx, st, taskID); err != nil {
					return domain.Task{}, err
				}
			}
			if e.Seq == v.lastSeq+1 {
				v.show(e.AgentLog)
			}
		case <-tick.C:
			v.drawStatus()
			// A safety net for events published by another process.
			if time.Since(lastPoll) > 2*time.Second {
				lastPoll = time.Now()
				if err := v.replay(ctx, st, taskID); err != nil {
					return domain.Task{}, err
				}
			}
		}
	}
	v.clearStatus()
	t, err := st.GetTask(ctx, taskID)
	if err != nil {
		return t, err
	}
	summary(ctx, w, st, t, v)
	return t, nil
}

func (v *view) replay(ctx context.Context, st store.Store, taskID string) error {
	logs, err := st.ListLogs(ctx, taskID, v.lastSeq, 0)
	if err != nil {
		return err
	}
	for _, l := range logs {
		if v.ended != nil {
			break
		}
		v.show(l)
	}
	return nil
}

func (v *view) show(e domain.AgentLog) {
	v.lastSeq = e.Seq
	var d struct {
		Node   string            `json:"node"`
		State  domain.NodeState  `json:"state"`
		Status domain.TaskStatus `json:"status"`
		Cost   float64           `json:"cost"`
	}
	json.Unmarshal(e.Data, &d)
	mark := "  "
	switch e.Type {
	case domain.EventNodeState:
		switch d.State {
		case domain.NodeRunning:
			v.running = append(v.running, e.AgentName)
			mark = "▶ "
		case domain.NodeCompleted:
			mark = "✓ "
			v.stopped(e.AgentName)
		case domain.NodeFailed:
			mark = "✗ "
			v.stopped(e.AgentName)
		default:
			v.stopped(e.AgentName)
		}
	case domain.EventCost:
		v.cost = d.Cost
	case domain.EventTaskState:
		if d.Status.Terminal() {
			s := d.Status
			v.ended = &s
		}
		mark = "■ "
	}
	if e.Level == "warn" && mark == "  " {
		mark = "! "
	}
	if e.Level == "error" && mark == "  " {
		mark = "✗ "
	}
	// The header and the summary name the offline provider; each line need not.
	msg := strings.TrimSuffix(e.Message, " ["+llm.OfflineLabel+"]")
	v.clearStatus()
	fmt.Fprintf(v.w, "%7s %s%-9s %s\n", elapsed(e.Timestamp.Sub(v.start)), mark, e.AgentName, msg)
	v.drawStatus()
}

func (v *view) stopped(agentName string) {
	if i := slices.Index(v.running, agentName); i >= 0 {
		v.running = slices.Delete(v.running, i, i+1)
	}
}

func (v *view) drawStatus() {
	if !v.tty || v.ended != nil {
		return
	}
	v.frame++
	who := "waiting"
	if len(v.running) > 0 {
		who = strings.Join(v.running, " + ") + " working"
	}
	fmt.Fprintf(v.w, "\r\x1b[K%s %s · %s · $%.4f", spinner[v.frame%len(spinner)], who, elapsed(time.Since(v.start)), v.cost)
	v.status = true
}

func (v *view) clearStatus() {
	if v.tty && v.status {
		fmt.Fprint(v.w, "\r\x1b[K")
		v.status = false
	}
}

func elapsed(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

// summary prints what the task produced, from its artifacts and deployment.
func summary(ctx context.Context, w io.Writer, st store.Store, t domain.Task, v *view) {
	took := time.Since(v.start)
	if t.StartedAt != nil && t.FinishedAt != nil {
		took = t.FinishedAt.Sub(*t.StartedAt)
	}
	fmt.Fprintf(w, "\nTask %s %s in %s · cost $%.4f", t.ID, t.Status, elapsed(took), t.Cost)
	if l := t.Served().Label(); l != "" {
		fmt.Fprintf(w, " · %s", l)
	}
	fmt.Fprintln(w)
	if t.Error != "" {
		fmt.Fprintf(w, "  Reason:  %s\n", t.Error)
	}
	arts, _ := st.ListArtifacts(ctx, t.ID)
	latest := map[string]domain.Artifact{}
	files := map[string]string{} // path -> last action
	for _, a := range arts {
		if cur, ok := latest[a.Node]; !ok || a.Iteration >= cur.Iteration {
			latest[a.Node] = a
		}
		if a.Node == domain.NodeCoder {
			var c struct {
				Files []struct{ Path, Action string }
			}
			json.Unmarshal(a.Output, &c)
			for _, f := range c.Files {
				files[f.Path] = f.Action
			}
		}
	}
	var written []string
	for p, act := range files {
		if act != "deleted" {
			written = append(written, p)
		}
	}
	slices.Sort(written)
	if len(written) > 0 {
		fmt.Fprintf(w, "  Files:   %d written: %s\n", len(written), strings.Join(written, ", "))
	}
	if a, ok := latest[domain.NodeTester]; ok {
		var r struct {
			Command     string `json:"command"`
			Passed      int    `json:"passed"`
			Failed      int    `json:"failed"`
			ExitCode    int    `json:"exit_code"`
			ToolMissing bool   `json:"tool_missing"`
		}
		json.Unmarshal(a.Output, &r)
		if r.ToolMissing {
			fmt.Fprintf(w, "  Tests:   not run: the toolchain is missing (%s)\n", r.Command)
		} else {
			fmt.Fprintf(w, "  Tests:   %d passed, %d failed (%s, exit %d)\n", r.Passed, r.Failed, r.Command, r.ExitCode)
		}
	}
	if a, ok := latest[domain.NodeReviewer]; ok {
		var r struct {
			Approved bool `json:"approved"`
			Findings []struct {
				Severity string `json:"severity"`
			} `json:"findings"`
		}
		json.Unmarshal(a.Output, &r)
		verdict := "approved"
		if !r.Approved {
			verdict = "changes requested"
		}
		fmt.Fprintf(w, "  Review:  %s (%d findings)\n", verdict, len(r.Findings))
	}
	if t.FixIteration > 0 {
		fmt.Fprintf(w, "  Fixes:   %d fix rounds\n", t.FixIteration)
	}
	if d, err := st.GetDeployment(ctx, t.ID); err == nil {
		fmt.Fprintf(w, "  Commit:  %s\n", d.CommitSHA)
		fmt.Fprintf(w, "  Preview: %s\n", d.URL)
		switch {
		case d.PullRequestURL != "":
			fmt.Fprintf(w, "  PR:      %s (branch %s)\n", d.PullRequestURL, d.Branch)
		case d.Mock:
			fmt.Fprintln(w, "  Publish: external publishing simulated (MOCK_DEPLOYMENT=true)")
		}
	}
}
