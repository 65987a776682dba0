package git

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"github.com/catalyst/catalyst/internal/connector"
)

// Caps on what one scan reports, so a hostile repository cannot flood the
// scan's document.
const (
	maxSecretFacts   = 50
	maxManifestFacts = 40
	maxDepFacts      = 60
	maxReadBytes     = 64 << 20 // total bytes read for content scanning
)

// skipDirs are vendored or generated trees: their files are not the
// project's own code, tests or secrets.
var skipDirs = map[string]bool{"node_modules": true, "vendor": true, "third_party": true, ".git": true, "dist": true, "build": true, "target": true, "__pycache__": true, ".venv": true, "venv": true}

type scan struct {
	langs       map[string]int64
	manifests   []manifest
	testFiles   int
	ci          map[string]bool
	licence     string // SPDX guess; "unknown" when a licence file exists but is not recognised
	licencePath string
	secrets     []secretHit
	files       int
	truncated   bool
}

func (s *Source) measure(ctx context.Context, c *cloned) ([]connector.Fact, error) {
	tree, err := c.head.Tree()
	if err != nil {
		return nil, fmt.Errorf("git: read tree: %w", err)
	}
	sc := &scan{langs: map[string]int64{}, ci: map[string]bool{}}
	var read int64
	// A recursive walk of our own: it prunes vendored directories, which
	// go-git's walker cannot.
	if err := s.walk(ctx, tree, "", sc, &read); err != nil {
		return nil, err
	}
	return s.facts(c, sc), nil
}

func (s *Source) walk(ctx context.Context, t *object.Tree, dir string, sc *scan, read *int64) error {
	for _, e := range t.Entries {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("git: %w", err)
		}
		p := e.Name
		if dir != "" {
			p = dir + "/" + e.Name
		}
		switch e.Mode {
		case filemode.Dir:
			if skipDirs[e.Name] {
				continue
			}
			sub, err := t.Tree(e.Name)
			if err != nil {
				return fmt.Errorf("git: read tree %s: %w", p, err)
			}
			if err := s.walk(ctx, sub, p, sc, read); err != nil {
				return err
			}
		case filemode.Regular, filemode.Executable, filemode.Deprecated:
			s.file(t, e, p, sc, read)
		default:
			// Symlinks and submodules are recorded by nothing: a symlink's
			// target is not the project's content and a submodule is not
			// fetched.
		}
	}
	return nil
}

func (s *Source) file(t *object.Tree, e object.TreeEntry, p string, sc *scan, read *int64) {
	sc.files++
	classifyPath(p, sc)
	f, err := t.TreeEntryFile(&e)
	if err != nil {
		return
	}
	blob := &f.Blob
	if lang := language(p); lang != "" {
		sc.langs[lang] += blob.Size
	}
	if blob.Size > s.o.MaxFileSize || blob.Size == 0 {
		return
	}
	if sc.files > s.o.MaxFiles || *read+blob.Size > maxReadBytes {
		sc.truncated = true
		return
	}
	r, err := blob.Reader()
	if err != nil {
		return
	}
	data, err := io.ReadAll(io.LimitReader(r, s.o.MaxFileSize+1))
	r.Close()
	if err != nil {
		return
	}
	*read += int64(len(data))
	if bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0 {
		return // binary
	}
	if m, ok := parseManifest(p, data); ok && len(sc.manifests) < maxManifestFacts {
		sc.manifests = append(sc.manifests, m)
	}
	if isLicenceFile(p) && sc.licencePath == "" {
		sc.licencePath, sc.licence = p, guessSPDX(data)
	}
	if len(sc.secrets) < maxSecretFacts {
		for _, h := range findSecrets(data) {
			if len(sc.secrets) >= maxSecretFacts {
				break
			}
			h.path = p
			sc.secrets = append(sc.secrets, h)
		}
	}
}

func (s *Source) facts(c *cloned, sc *scan) []connector.Fact {
	link := func(p string, line int) string {
		if c.webURL == "" {
			return ""
		}
		u := c.webURL + "/blob/" + c.head.Hash.String() + "/" + p
		if line > 0 {
			u += fmt.Sprintf("#L%d", line)
		}
		return u
	}
	var out []connector.Fact
	add := func(f connector.Fact) { f.Source = "git"; out = append(out, f) }

	add(connector.Fact{ID: "git.repository", Kind: connector.KindRepository,
		Summary: fmt.Sprintf("cloned %s (branch %s at %s, %d files%s)", c.url, c.branch, c.head.Hash.String()[:12], sc.files, map[bool]string{true: ", scan truncated", false: ""}[sc.truncated]),
		Value: map[string]any{"url": c.url, "default_branch": c.branch, "head": c.head.Hash.String(), "files": sc.files,
			"bytes_transferred": c.bytes, "shallow": c.shallow, "truncated": sc.truncated},
		Where: &connector.Location{Ref: c.head.Hash.String(), URL: c.webURL}})

	add(connector.Fact{ID: "git.languages", Kind: connector.KindLanguages, Summary: languageSummary(sc.langs), Value: sc.langs})

	sort.Slice(sc.manifests, func(i, j int) bool { return sc.manifests[i].Path < sc.manifests[j].Path })
	var flagged []depFinding
	for i, m := range sc.manifests {
		add(connector.Fact{ID: fmt.Sprintf("git.manifest.%d", i+1), Kind: connector.KindManifest,
			Summary: fmt.Sprintf("%s manifest %s declares %d dependencies", m.Ecosystem, m.Path, len(m.Dependencies)),
			Value:   m, Where: &connector.Location{Path: m.Path, URL: link(m.Path, 0)}})
		flagged = append(flagged, assess(m)...)
	}
	for i, d := range flagged {
		if i >= maxDepFacts {
			break
		}
		add(connector.Fact{ID: fmt.Sprintf("git.dependency.%d", i+1), Kind: connector.KindDependency,
			Summary: fmt.Sprintf("%s %s in %s: %s", d.Name, orAny(d.Version), d.path, d.Why),
			Value:   map[string]any{"name": d.Name, "version": d.Version, "why": d.Why, "ecosystem": d.ecosystem, "reason": d.reason},
			Where:   &connector.Location{Path: d.path, Line: d.line, URL: link(d.path, d.line)}})
	}

	tests := fmt.Sprintf("%d test files", sc.testFiles)
	if sc.testFiles == 0 {
		tests = "no test files found"
	}
	add(connector.Fact{ID: "git.tests", Kind: connector.KindTests, Summary: tests,
		Value: map[string]any{"present": sc.testFiles > 0, "files": sc.testFiles}})

	systems := make([]string, 0, len(sc.ci))
	for k := range sc.ci {
		systems = append(systems, k)
	}
	sort.Strings(systems)
	ci := "no CI configuration found"
	if len(systems) > 0 {
		ci = "CI: " + strings.Join(systems, ", ")
	}
	add(connector.Fact{ID: "git.ci", Kind: connector.KindCI, Summary: ci,
		Value: map[string]any{"present": len(systems) > 0, "systems": systems}})

	lic := connector.Fact{ID: "git.licence", Kind: connector.KindLicence, Summary: "no licence file found",
		Value: map[string]any{"present": false, "spdx": ""}}
	if sc.licencePath != "" {
		spdx := sc.licence
		lic.Summary = fmt.Sprintf("licence file %s (%s)", sc.licencePath, orText(spdx, "not recognised"))
		lic.Value = map[string]any{"present": true, "spdx": spdx}
		lic.Where = &connector.Location{Path: sc.licencePath, URL: link(sc.licencePath, 0)}
	}
	add(lic)

	h := history(c.storer, c.head, s.o.Depth, s.o.Now())
	share := 0.0
	if h.commits > 0 {
		share = float64(h.topCount) / float64(h.commits)
	}
	add(connector.Fact{ID: "git.contributors", Kind: connector.KindContributors,
		Summary: fmt.Sprintf("%d contributors in the last %d commits; the most active wrote %.0f%%", len(h.authors), h.commits, share*100),
		Value:   map[string]any{"count": len(h.authors), "top_share": share, "commits_seen": h.commits}})
	add(connector.Fact{ID: "git.activity", Kind: connector.KindActivity,
		Summary: fmt.Sprintf("last commit %s; %d commits in the last 90 days%s", h.last.UTC().Format("2006-01-02"), h.recent, map[bool]string{true: " (history truncated)", false: ""}[h.truncated]),
		Value:   map[string]any{"last_commit": h.last.UTC(), "commits_90d": h.recent, "history_truncated": h.truncated},
		Where:   &connector.Location{Ref: c.head.Hash.String()}})

	sort.Slice(sc.secrets, func(i, j int) bool {
		a, b := sc.secrets[i], sc.secrets[j]
		if a.path != b.path {
			return a.path < b.path
		}
		if a.line != b.line {
			return a.line < b.line
		}
		return a.rule < b.rule
	})
	for i, sh := range sc.secrets {
		add(connector.Fact{ID: fmt.Sprintf("git.secret.%d", i+1), Kind: connector.KindSecret,
			Summary: fmt.Sprintf("possible %s committed in %s line %d (value not shown)", sh.rule, sh.path, sh.line),
			Value:   map[string]any{"rule": sh.rule},
			Where:   &connector.Location{Path: sh.path, Line: sh.line, URL: link(sh.path, sh.line)}})
	}
	return out
}

type hist struct {
	authors   map[string]int
	commits   int
	topCount  int
	recent    int
	last      time.Time
	truncated bool
}

// history walks at most limit commits from head (breadth first, so merges
// count once). A shallow clone ends where parents are missing.
func history(st storer.EncodedObjectStorer, head *object.Commit, limit int, now time.Time) hist {
	h := hist{authors: map[string]int{}, last: head.Committer.When}
	seen := map[plumbing.Hash]bool{head.Hash: true}
	queue := []*object.Commit{head}
	cutoff := now.AddDate(0, 0, -90)
	for len(queue) > 0 {
		if h.commits >= limit {
			h.truncated = true
			break
		}
		c := queue[0]
		queue = queue[1:]
		h.commits++
		who := strings.ToLower(strings.TrimSpace(c.Author.Email))
		if who == "" {
			who = c.Author.Name
		}
		h.authors[who]++
		if h.authors[who] > h.topCount {
			h.topCount = h.authors[who]
		}
		if c.Committer.When.After(cutoff) {
			h.recent++
		}
		if c.Committer.When.After(h.last) {
			h.last = c.Committer.When
		}
		for _, p := range c.ParentHashes {
			if seen[p] {
				continue
			}
			seen[p] = true
			parent, err := object.GetCommit(st, p)
			if err != nil {
				h.truncated = true // shallow boundary
				continue
			}
			queue = append(queue, parent)
		}
	}
	return h
}

func languageSummary(m map[string]int64) string {
	if len(m) == 0 {
		return "no source files in known languages"
	}
	type kv struct {
		k string
		v int64
	}
	var all []kv
	var total int64
	for k, v := range m {
		all = append(all, kv{k, v})
		total += v
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v || all[i].v == all[j].v && all[i].k < all[j].k })
	var parts []string
	for i, e := range all {
		if i == 4 {
			break
		}
		pct := 0.0
		if total > 0 {
			pct = float64(e.v) * 100 / float64(total)
		}
		parts = append(parts, fmt.Sprintf("%s %.0f%%", e.k, pct))
	}
	return "languages by size: " + strings.Join(parts, ", ")
}

func orAny(v string) string { return orText(v, "(any version)") }

func orText(v, alt string) string {
	if v == "" {
		return alt
	}
	return v
}
