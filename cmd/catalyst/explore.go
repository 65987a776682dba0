package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/catalyst/catalyst/internal/app"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/explorer"
	"github.com/catalyst/catalyst/internal/logging"
	"github.com/catalyst/catalyst/internal/tasks"
	"github.com/catalyst/catalyst/internal/termui"
)

// cmdExplore runs one Explorer scan in the terminal with progress and
// prints its brief, risks with evidence, and proposals. Exit status: 0 when
// the scan completed, 1 when it failed or was cancelled, 2 for bad usage.
func cmdExplore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := sourceFlags(fs)
	var r explorer.Request
	fs.StringVar(&r.RepoURL, "repo", "", "git repository URL: http(s)://, git://, ssh:// or git@host:path")
	fs.StringVar(&r.JiraProject, "jira", "", "Jira project key (needs JIRA_URL, JIRA_USERNAME, JIRA_API_TOKEN)")
	fs.StringVar(&r.ServiceNowCI, "servicenow", "", "ServiceNow configuration item (needs SERVICENOW_URL, _USERNAME, _PASSWORD)")
	fs.StringVar(&r.GitHubRepo, "github", "", "GitHub repository owner/name (derived from a github.com --repo when omitted)")
	fs.StringVar(&r.SystemName, "name", "", "the system's name (default: from --repo, --github, --jira or --servicenow)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "catalyst explore: unexpected argument %q (flags go before nothing else)\n", fs.Arg(0))
		return 2
	}
	if r.RepoURL == "" && r.GitHubRepo == "" && r.JiraProject == "" && r.ServiceNowCI == "" {
		fmt.Fprintln(stderr, "catalyst explore: give at least one of --repo URL, --github owner/name, --jira KEY, --servicenow CI")
		return 2
	}
	if r.SystemName == "" {
		r.SystemName = defaultSystemName(r)
	}
	if _, err := r.Normalize(); err != nil {
		fmt.Fprintln(stderr, "catalyst explore:", strings.TrimPrefix(err.Error(), domain.ErrInvalid.Error()+": "))
		return 2
	}
	cfg, err := load(*src)
	if err != nil {
		fmt.Fprintln(stderr, "catalyst:", err)
		return 1
	}
	level := cfg.LogLevel
	if logging.Level(level) < logging.Level("WARNING") {
		level = "WARNING"
	}
	a, err := app.New(ctx, cfg, newLogger(stderr, level, cfg))
	if err != nil {
		fmt.Fprintln(stderr, "catalyst:", err)
		return 1
	}
	defer a.Close(context.Background())
	if err := a.Start(ctx, false); err != nil {
		fmt.Fprintln(stderr, "catalyst:", err)
		return 1
	}
	sc, err := a.Explorer.Start(ctx, tasks.Local(), r)
	if err != nil {
		fmt.Fprintln(stderr, "catalyst:", err)
		return 1
	}
	fmt.Fprintf(stdout, "Scan %s of %s · model: %s\n", sc.ID, sc.SystemName, a.Models.Describe(explorer.AgentName).String())
	if _, err := termui.Follow(ctx, a.Bus, a.Store, sc.TaskID, stdout, isTerminal(stdout)); err != nil {
		if ctx.Err() != nil {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			a.Tasks.Cancel(cctx, tasks.Local(), sc.TaskID)
			cancel()
			fmt.Fprintln(stderr, "catalyst: interrupted; scan cancelled")
			return 130
		}
		fmt.Fprintln(stderr, "catalyst:", err)
		return 1
	}
	sc, err = a.Explorer.Get(context.Background(), tasks.Local(), sc.ID)
	if err != nil {
		fmt.Fprintln(stderr, "catalyst:", err)
		return 1
	}
	printScan(stdout, sc)
	if sc.Status != domain.ScanCompleted {
		return 1
	}
	return 0
}

// defaultSystemName names a scan after what it reads.
func defaultSystemName(r explorer.Request) string {
	for _, s := range []string{r.GitHubRepo, r.RepoURL, r.JiraProject, r.ServiceNowCI} {
		if s != "" {
			s = strings.TrimSuffix(strings.TrimRight(s, "/"), ".git")
			if i := strings.LastIndexAny(s, "/:"); i >= 0 && i < len(s)-1 {
				s = s[i+1:]
			}
			return s
		}
	}
	return "system"
}

// printScan writes the scan for a terminal. Everything in it came from the
// scanned system or a model: control characters are shown, not obeyed.
func printScan(w io.Writer, sc domain.ExplorerScan) {
	fmt.Fprintf(w, "\nScan %s\n", sc.Status)
	if sc.Error != "" {
		fmt.Fprintf(w, "  Reason: %s\n", clean(sc.Error))
	}
	for _, s := range sc.Sources {
		line := fmt.Sprintf("  Source %-10s %s", s.Source, s.Status)
		if s.Status == "ok" {
			line += fmt.Sprintf(", %d facts in %dms", s.Facts, s.DurationMS)
		}
		if s.Error != "" {
			line += ": " + clean(s.Error)
		}
		fmt.Fprintln(w, line)
	}
	if sc.Status != domain.ScanCompleted {
		return
	}
	fmt.Fprintf(w, "\nBrief\n  %s\n", clean(sc.Brief))
	fmt.Fprintf(w, "\nRisks (%d)\n", len(sc.RiskDetails))
	for _, r := range sc.RiskDetails {
		fmt.Fprintf(w, "  [%s] %s (%s)\n", r.Severity, clean(r.Title), r.By)
		for _, e := range r.Evidence {
			loc := ""
			if e.Where != nil {
				switch {
				case e.Where.Path != "" && e.Where.Line > 0:
					loc = fmt.Sprintf(" at %s:%d", e.Where.Path, e.Where.Line)
				case e.Where.Path != "":
					loc = " at " + e.Where.Path
				case e.Where.Ref != "":
					loc = " " + e.Where.Ref
				}
			}
			fmt.Fprintf(w, "      %s%s: %s\n", e.FactID, clean(loc), clean(e.Summary))
		}
	}
	fmt.Fprintf(w, "\nProposals (%d)\n", len(sc.Proposals))
	for i, p := range sc.Proposals {
		fmt.Fprintf(w, "  %d. %s\n", i+1, clean(p))
	}
}

// clean replaces control characters (terminal escape sequences included)
// and bidi controls with visible escapes.
func clean(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(' ')
		case r < 0x20 || (r >= 0x7f && r <= 0x9f) || domain.IsBidiControl(r):
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
