package explorer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/connector"
	"github.com/catalyst/catalyst/internal/domain"
)

// Bounds on what one scan keeps: a hostile repository or tracker must not
// grow the scan document, the prompt or the page without limit.
const (
	maxFacts        = 1000
	maxFactsPerSrc  = 400
	maxSummaryRunes = 400
	maxValueBytes   = 8 << 10
	maxErrorRunes   = 500
)

// gathered is the gather step's artifact.
type gathered struct {
	Facts   []domain.ScanFact   `json:"facts"`
	Sources []domain.ScanSource `json:"sources"`
}

// wanted says whether source name has its input in t, and which input it
// misses otherwise. Sources Catalyst does not know always run.
func wanted(name string, t connector.Target) (bool, string) {
	switch name {
	case "git":
		return t.RepoURL != "", "no repo_url given"
	case "github":
		return t.GitHubRepo != "", "no github_repo given and repo_url is not on github.com"
	case "jira":
		return t.JiraProject != "", "no jira_project given"
	case "servicenow":
		return t.ServiceNowCI != "", "no servicenow_ci given"
	}
	return true, ""
}

func (s *Service) gather(ctx context.Context, in agent.Input) (agent.Output, error) {
	sc, err := s.scanOf(ctx, in.Task)
	if err != nil {
		return agent.Output{}, err
	}
	target := targetOf(sc)
	results := make([]domain.ScanSource, len(s.opt.Sources))
	run := make([]bool, len(s.opt.Sources))
	for i, src := range s.opt.Sources {
		results[i] = domain.ScanSource{Source: src.Name(), Status: "running"}
		if ok, why := wanted(src.Name(), target); !ok {
			results[i] = domain.ScanSource{Source: src.Name(), Status: "skipped", Error: why}
			continue
		}
		run[i] = true
	}
	if _, err := s.markRunning(ctx, sc.ID, func(sc *domain.ExplorerScan) {
		sc.Sources = append([]domain.ScanSource(nil), results...)
	}); err != nil {
		return agent.Output{}, err
	}
	if len(s.opt.Sources) == 0 {
		in.Log(agent.Warn, "No connector is configured in this process: the scan has no facts")
	}

	var mu sync.Mutex
	facts := make([][]domain.ScanFact, len(s.opt.Sources))
	var wg sync.WaitGroup
	for i, src := range s.opt.Sources {
		if !run[i] {
			in.Log(agent.Info, fmt.Sprintf("%s: skipped (%s)", src.Name(), results[i].Error))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.Log(agent.Info, src.Name()+": reading…")
			start := time.Now()
			got, err := s.runSource(ctx, src, target)
			res := domain.ScanSource{Source: src.Name(), DurationMS: time.Since(start).Milliseconds()}
			switch {
			case ctx.Err() != nil:
				res.Status, res.Error = "failed", "cancelled"
			case errors.Is(err, connector.ErrSkip):
				res.Status, res.Error = "skipped", cleanError(err)
				in.Log(agent.Info, fmt.Sprintf("%s: skipped (%s)", src.Name(), res.Error))
			case err != nil:
				res.Status, res.Error = "failed", cleanError(err)
				in.Log(agent.Warn, fmt.Sprintf("%s: failed after %s: %s", src.Name(), time.Since(start).Round(time.Millisecond), res.Error))
			default:
				kept := normalizeFacts(src.Name(), got, in.Log)
				res.Status, res.Facts = "ok", len(kept)
				facts[i] = kept
				in.Log(agent.Info, fmt.Sprintf("%s: %d facts in %s", src.Name(), len(kept), time.Since(start).Round(time.Millisecond)))
			}
			mu.Lock()
			results[i] = res
			snapshot := append([]domain.ScanSource(nil), results...)
			mu.Unlock()
			if ctx.Err() == nil {
				// Live progress for the page; the final list is stored below.
				_, _ = s.opt.Store.UpdateScan(ctx, sc.ID, func(sc *domain.ExplorerScan) error {
					sc.Sources = snapshot
					return nil
				})
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return agent.Output{}, err
	}
	out := gathered{Facts: []domain.ScanFact{}, Sources: results}
	seen := map[string]bool{}
	for _, fs := range facts {
		for _, f := range fs {
			if seen[f.ID] {
				in.Log(agent.Warn, fmt.Sprintf("fact %s is reported twice; the first is kept", f.ID))
				continue
			}
			if len(out.Facts) == maxFacts {
				in.Log(agent.Warn, fmt.Sprintf("more than %d facts: the rest are not kept", maxFacts))
				break
			}
			seen[f.ID] = true
			out.Facts = append(out.Facts, f)
		}
	}
	failed := 0
	for _, r := range results {
		if r.Status == "failed" {
			failed++
		}
	}
	in.Log(agent.Info, fmt.Sprintf("Gathered %d facts from %d sources (%d failed)", len(out.Facts), len(results), failed))
	if _, err := s.opt.Store.UpdateScan(ctx, sc.ID, func(sc *domain.ExplorerScan) error {
		sc.Facts, sc.Sources = out.Facts, out.Sources
		return nil
	}); err != nil {
		return agent.Output{}, err
	}
	b, err := json.Marshal(out)
	return agent.Output{Artifact: b}, err
}

// runSource runs one source under its timeout; a panic is its failure,
// not the scan's.
func (s *Service) runSource(ctx context.Context, src connector.Source, t connector.Target) (facts []connector.Fact, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.opt.SourceTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the connector crashed: %v", p)
		}
	}()
	facts, err = src.Gather(ctx, t)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %s", s.opt.SourceTimeout)
	}
	return facts, err
}

// userinfo matches the credentials part of a URL inside a message.
var userinfo = regexp.MustCompile(`(?i)([a-z][a-z0-9+.-]*://)[^/@\s]+@`)

// cleanError makes a source's error fit for the scan document and events:
// one bounded line, no credentials of URLs it quotes. Configured secrets
// are scrubbed again by the event recorder.
func cleanError(err error) string {
	msg := userinfo.ReplaceAllString(err.Error(), "${1}***@")
	msg = strings.Join(strings.Fields(msg), " ")
	return truncateRunes(msg, maxErrorRunes)
}

// normalizeFacts makes a source's facts storable and comparable: ids
// present and namespaced by source, values as JSON would give them back
// (the rules read them the same whether fresh or stored), summaries one
// bounded line, links http(s) only.
func normalizeFacts(source string, in []connector.Fact, log func(level, msg string)) []domain.ScanFact {
	out := make([]domain.ScanFact, 0, len(in))
	for i, f := range in {
		if len(out) == maxFactsPerSrc {
			log(agent.Warn, fmt.Sprintf("%s: more than %d facts; the rest are not kept", source, maxFactsPerSrc))
			break
		}
		id := strings.TrimSpace(f.ID)
		if id == "" || !utf8.ValidString(id) || len(id) > 200 {
			id = fmt.Sprintf("%s.%s.%d", source, f.Kind, i+1)
		}
		if !strings.HasPrefix(id, source+".") {
			id = source + "." + id
		}
		sf := domain.ScanFact{ID: id, Source: source, Kind: string(f.Kind),
			Summary: truncateRunes(strings.Join(strings.Fields(strings.ToValidUTF8(f.Summary, "�")), " "), maxSummaryRunes)}
		if f.Value != nil {
			if b, err := json.Marshal(f.Value); err == nil && len(b) <= maxValueBytes {
				var v any
				if json.Unmarshal(b, &v) == nil {
					sf.Value = v
				}
			} else if err == nil {
				log(agent.Warn, fmt.Sprintf("%s: the value of fact %s is over %d bytes and is not kept", source, id, maxValueBytes))
			}
		}
		if w := f.Where; w != nil {
			loc := &domain.ScanLocation{Path: truncateRunes(w.Path, 500), Line: max(w.Line, 0), Ref: truncateRunes(w.Ref, 200)}
			if SafeURL(w.URL) {
				loc.URL = w.URL
			}
			if *loc != (domain.ScanLocation{}) {
				sf.Where = loc
			}
		}
		out = append(out, sf)
	}
	return out
}

// SafeURL reports whether raw is a link a page may render: absolute http
// or https, no credentials.
func SafeURL(raw string) bool {
	if raw == "" || len(raw) > 2048 {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return false
	}
	return u.Scheme == "http" || u.Scheme == "https"
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}
