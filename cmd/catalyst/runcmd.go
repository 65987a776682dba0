package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/app"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/llm"
	"github.com/catalyst/catalyst/internal/logging"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/tasks"
	"github.com/catalyst/catalyst/internal/termui"
)

// cmdRun runs one task in the terminal and returns the exit status: 0 when
// the task completed, 1 when it failed or was cancelled, 2 for bad usage.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := sourceFlags(fs)
	projectName := fs.String("project", "Terminal runs", "project the task belongs to (created when missing)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	prompt := strings.TrimSpace(strings.Join(fs.Args(), " "))
	if prompt == "" {
		fmt.Fprintln(stderr, `catalyst run: give a prompt, e.g. catalyst run "Build a todo app"`)
		return 2
	}
	cfg, err := load(*src)
	if err != nil {
		fmt.Fprintln(stderr, "catalyst:", err)
		return 1
	}
	// Progress goes to stdout; only warnings and errors are logged beside it.
	level := cfg.LogLevel
	if logging.Level(level) < logging.Level("WARNING") {
		level = "WARNING"
	}
	logger := newLogger(stderr, level, cfg)

	a, err := app.New(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "catalyst:", err)
		return 1
	}
	defer a.Close(context.Background())

	project, err := findOrCreateProject(ctx, a, *projectName)
	if err != nil {
		fmt.Fprintln(stderr, "catalyst:", err)
		return 1
	}
	// Only the task submitted here runs in this process: a server on the same
	// data directory keeps running (and serving) its own.
	if err := a.Start(ctx, false); err != nil {
		fmt.Fprintln(stderr, "catalyst:", err)
		return 1
	}
	task, err := a.SubmitTask(ctx, project.ID, prompt)
	if err != nil {
		fmt.Fprintln(stderr, "catalyst:", err)
		return 1
	}
	fmt.Fprintf(stdout, "Task %s · model: %s\n", task.ID, a.Models.Describe("").String())
	final, err := termui.Follow(ctx, a.Bus, a.Store, task.ID, stdout, isTerminal(stdout))
	if err != nil {
		if ctx.Err() != nil {
			// Ctrl-C: stop the task for real, not just the display.
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			a.Tasks.Cancel(cctx, tasks.Local(), task.ID)
			cancel()
			fmt.Fprintln(stderr, "catalyst: interrupted; task cancelled")
			return 130
		}
		fmt.Fprintln(stderr, "catalyst:", err)
		return 1
	}
	fmt.Fprintf(stdout, "  Where:   %s (a git repository)\n", a.WorkspaceDir(task.ID))
	if final.Status != domain.TaskCompleted {
		fmt.Fprintf(stdout, "  Retry:   catalyst serve, then POST /api/tasks/%s/retry (resumes at the first unfinished node)\n", task.ID)
		return 1
	}
	fmt.Fprintln(stdout, "  The preview is served while `catalyst serve` runs on the same data directory.")
	return 0
}

func findOrCreateProject(ctx context.Context, a *app.App, name string) (domain.Project, error) {
	page := ""
	for {
		ps, next, err := a.Store.ListProjects(ctx, store.All(), storePage(page))
		if err != nil {
			return domain.Project{}, err
		}
		for _, p := range ps {
			if p.Name == name && p.Status == domain.ProjectActive {
				return p, nil
			}
		}
		if next == "" {
			break
		}
		page = next
	}
	now := time.Now().UTC()
	p := domain.Project{ID: uuid.NewString(), Name: name, Description: "Tasks started with `catalyst run`.",
		Status: domain.ProjectActive, CreatedAt: now, UpdatedAt: now}
	return p, a.Store.CreateProject(ctx, p)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func pingModels(ctx context.Context, r *llm.Router, w io.Writer) error {
	return llm.Ping(ctx, r, w)
}

func storePage(cursor string) store.Page { return store.Page{Limit: store.MaxLimit, Cursor: cursor} }
