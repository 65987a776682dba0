package explorer

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/catalyst/catalyst/internal/connector"
	"github.com/catalyst/catalyst/internal/domain"
)

// Severities, most severe first.
var severities = []string{"critical", "high", "medium", "low"}

func severityRank(s string) int {
	for i, v := range severities {
		if v == s {
			return i
		}
	}
	return len(severities)
}

// A rule turns facts into at most one risk. It fires on what a fact says,
// never on a missing fact: a source that could not be read proves nothing.
type rule struct {
	id       string
	severity string
	// proposal is what the rule suggests when it fires.
	proposal string
	// eval returns the risk's title and the facts it rests on, or no facts.
	eval func(facts []domain.ScanFact, now time.Time) (title string, cited []domain.ScanFact)
}

// Rules are the explicit risk rules, in the order their risks are listed.
var rules = []rule{
	{"committed-secret", "critical",
		"Rotate the committed credentials now, purge them from the history and add secret scanning to CI.",
		func(fs []domain.ScanFact, _ time.Time) (string, []domain.ScanFact) {
			c := ofKind(fs, connector.KindSecret)
			if len(c) == 0 {
				return "", nil
			}
			return fmt.Sprintf("Committed secrets: %s of API keys or private keys in the repository (first at %s)",
				count(len(c), "match", "matches"), where(c[0])), c
		}},
	{"archived", "high",
		"Plan a replacement or a maintained fork: the repository is archived.",
		func(fs []domain.ScanFact, _ time.Time) (string, []domain.ScanFact) {
			c := filter(ofKind(fs, connector.KindRepository), func(f domain.ScanFact) bool { return isTrue(f.Value, "archived") })
			return "The repository is archived: no further fixes will be published", c
		}},
	{"no-tests", "high",
		"Add automated tests for the critical paths before changing the system, and run them on every change.",
		func(fs []domain.ScanFact, _ time.Time) (string, []domain.ScanFact) {
			c := filter(ofKind(fs, connector.KindTests), func(f domain.ScanFact) bool { return isFalse(f.Value, "present") })
			return "No automated tests were found: any change is unverified", c
		}},
	{"blocker-bugs", "high",
		"Triage the open blocker issues with their owners before new work is planned.",
		func(fs []domain.ScanFact, _ time.Time) (string, []domain.ScanFact) {
			c := filter(ofKind(fs, connector.KindIssue), func(f domain.ScanFact) bool {
				p := strings.ToLower(str(f.Value, "priority"))
				return (p == "blocker" || p == "highest" || isTrue(f.Value, "blocker")) && !done(str(f.Value, "status"))
			})
			return fmt.Sprintf("%s open at blocker priority (%s)", count(len(c), "issue is", "issues are"), refs(c)), c
		}},
	{"recurring-p1-incidents", "high",
		"Run a problem review of the recurring P1 incidents and fix their root cause.",
		func(fs []domain.ScanFact, _ time.Time) (string, []domain.ScanFact) {
			c := filter(ofKind(fs, connector.KindIncident), func(f domain.ScanFact) bool {
				return isP1(str(f.Value, "priority")) && num(f.Value, "recurring") >= 2
			})
			return fmt.Sprintf("Recurring P1 incidents (%s)", refs(c)), c
		}},
	{"risky-dependencies", "medium",
		"Upgrade the flagged dependencies and add automated dependency updates and audits.",
		func(fs []domain.ScanFact, _ time.Time) (string, []domain.ScanFact) {
			c := ofKind(fs, connector.KindDependency)
			var names []string
			for _, f := range c {
				names = append(names, str(f.Value, "name"))
			}
			return fmt.Sprintf("%s stale or vulnerable-looking (%s)", count(len(c), "dependency looks", "dependencies look"), list(names)), c
		}},
	{"no-ci", "medium",
		"Set up continuous integration that builds and tests every change.",
		func(fs []domain.ScanFact, _ time.Time) (string, []domain.ScanFact) {
			ci := ofKind(fs, connector.KindCI)
			wf := ofKind(fs, connector.KindWorkflows)
			for _, f := range ci {
				if isTrue(f.Value, "present") {
					return "", nil
				}
			}
			for _, f := range wf {
				if num(f.Value, "count") > 0 {
					return "", nil
				}
			}
			c := append(filter(ci, func(f domain.ScanFact) bool { return isFalse(f.Value, "present") }),
				filter(wf, func(f domain.ScanFact) bool { return has(f.Value, "count") && num(f.Value, "count") == 0 })...)
			return "No continuous integration was found: nothing checks changes before they land", c
		}},
	{"single-maintainer", "medium",
		"Spread knowledge of the system: pair on changes and document how it is built, run and released.",
		func(fs []domain.ScanFact, _ time.Time) (string, []domain.ScanFact) {
			c := filter(ofKind(fs, connector.KindContributors), func(f domain.ScanFact) bool {
				n := num(f.Value, "count")
				return (has(f.Value, "count") && n == 1) || num(f.Value, "top_share") > 0.8
			})
			if len(c) == 0 {
				return "", nil
			}
			v := c[0].Value
			if num(v, "count") == 1 {
				return "A single person wrote the whole history: the system depends on one maintainer", c
			}
			return fmt.Sprintf("The top contributor wrote %.0f%% of the commits: the system depends on one maintainer", num(v, "top_share")*100), c
		}},
	{"unprotected-default-branch", "medium",
		"Protect the default branch: required reviews and passing checks before merge.",
		func(fs []domain.ScanFact, _ time.Time) (string, []domain.ScanFact) {
			c := filter(ofKind(fs, connector.KindBranchProtection), func(f domain.ScanFact) bool {
				return isTrue(f.Value, "visible") && isFalse(f.Value, "protected")
			})
			if len(c) == 0 {
				return "", nil
			}
			return fmt.Sprintf("The default branch %q is not protected: anyone with write access can push to it", str(c[0].Value, "branch")), c
		}},
	{"inactive", "medium",
		"Confirm who owns the system now; an inactive codebase needs an owner before it is changed.",
		func(fs []domain.ScanFact, now time.Time) (string, []domain.ScanFact) {
			for _, f := range ofKind(fs, connector.KindActivity) {
				if t, err := time.Parse(time.RFC3339, str(f.Value, "last_commit")); err == nil && now.Sub(t) > 365*24*time.Hour {
					return fmt.Sprintf("Inactive: the last commit is %d days old", int(now.Sub(t).Hours()/24)), []domain.ScanFact{f}
				}
			}
			return "", nil
		}},
	{"recurring-incidents", "medium",
		"Look for the common cause of the recurring incidents.",
		func(fs []domain.ScanFact, _ time.Time) (string, []domain.ScanFact) {
			c := filter(ofKind(fs, connector.KindIncident), func(f domain.ScanFact) bool {
				return !isP1(str(f.Value, "priority")) && num(f.Value, "recurring") >= 2
			})
			return fmt.Sprintf("Recurring incidents (%s)", refs(c)), c
		}},
	{"no-licence", "medium",
		"Add a licence file so that the terms of use and reuse are clear.",
		func(fs []domain.ScanFact, _ time.Time) (string, []domain.ScanFact) {
			c := filter(ofKind(fs, connector.KindLicence), func(f domain.ScanFact) bool { return isFalse(f.Value, "present") })
			return "No licence was found: the terms of use are unclear", c
		}},
	{"stale-bugs", "low",
		"Review the stale bugs: close what no longer applies and schedule the rest.",
		func(fs []domain.ScanFact, _ time.Time) (string, []domain.ScanFact) {
			c := filter(ofKind(fs, connector.KindIssue), func(f domain.ScanFact) bool {
				return isTrue(f.Value, "stale") && !done(str(f.Value, "status"))
			})
			return fmt.Sprintf("%s stale (%s)", count(len(c), "open issue is", "open issues are"), refs(c)), c
		}},
	{"no-security-policy", "low",
		"Publish a security policy (SECURITY.md) that says how to report vulnerabilities.",
		func(fs []domain.ScanFact, _ time.Time) (string, []domain.ScanFact) {
			c := filter(ofKind(fs, connector.KindSecurityPolicy), func(f domain.ScanFact) bool { return isFalse(f.Value, "present") })
			return "No security policy: there is no stated way to report vulnerabilities", c
		}},
}

// Evaluate applies every rule to facts: the risks, most severe first (rule
// order within a severity), and the proposals of the rules that fired.
func Evaluate(facts []domain.ScanFact, now time.Time) (risks []domain.ScanRisk, proposals []string) {
	for _, r := range rules {
		title, cited := r.eval(facts, now)
		if len(cited) == 0 {
			continue
		}
		risks = append(risks, domain.ScanRisk{Title: title, Severity: r.severity, Rule: r.id, By: "rule", Evidence: evidence(cited)})
		proposals = append(proposals, r.proposal)
	}
	sort.SliceStable(risks, func(i, j int) bool { return severityRank(risks[i].Severity) < severityRank(risks[j].Severity) })
	return risks, proposals
}

func evidence(fs []domain.ScanFact) []domain.ScanEvidence {
	out := make([]domain.ScanEvidence, 0, len(fs))
	for _, f := range fs {
		out = append(out, domain.ScanEvidence{FactID: f.ID, Summary: f.Summary, Where: f.Where})
	}
	return out
}

func ofKind(fs []domain.ScanFact, k connector.Kind) []domain.ScanFact {
	return filter(fs, func(f domain.ScanFact) bool { return f.Kind == string(k) })
}

func filter(fs []domain.ScanFact, keep func(domain.ScanFact) bool) []domain.ScanFact {
	var out []domain.ScanFact
	for _, f := range fs {
		if keep(f) {
			out = append(out, f)
		}
	}
	return out
}

// Values arrive as JSON gives them back (normalizeFacts): objects are
// map[string]any and numbers float64.
func field(v any, key string) (any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	x, ok := m[key]
	return x, ok
}

func has(v any, key string) bool { _, ok := field(v, key); return ok }

func isTrue(v any, key string) bool { x, _ := field(v, key); b, ok := x.(bool); return ok && b }

func isFalse(v any, key string) bool { x, _ := field(v, key); b, ok := x.(bool); return ok && !b }

func num(v any, key string) float64 { x, _ := field(v, key); n, _ := x.(float64); return n }

func str(v any, key string) string {
	x, _ := field(v, key)
	switch x := x.(type) {
	case string:
		return x
	case float64:
		return fmt.Sprint(x)
	}
	return ""
}

// isP1 reads ServiceNow's "1 - Critical", "1", and "P1".
func isP1(p string) bool {
	p = strings.ToLower(strings.TrimSpace(p))
	return p == "1" || strings.HasPrefix(p, "1 ") || strings.HasPrefix(p, "1-") || p == "p1" || strings.HasPrefix(p, "p1 ")
}

func done(status string) bool {
	switch strings.ToLower(strings.TrimSpace(status)) {
	case "done", "closed", "resolved", "cancelled", "canceled", "won't do", "rejected":
		return true
	}
	return false
}

func where(f domain.ScanFact) string {
	if f.Where == nil || f.Where.Path == "" {
		return f.ID
	}
	if f.Where.Line > 0 {
		return fmt.Sprintf("%s:%d", f.Where.Path, f.Where.Line)
	}
	return f.Where.Path
}

func refs(fs []domain.ScanFact) string {
	var out []string
	for _, f := range fs {
		r := f.ID
		if f.Where != nil && f.Where.Ref != "" {
			r = f.Where.Ref
		}
		out = append(out, r)
	}
	return list(out)
}

// list joins up to five names and counts the rest.
func list(names []string) string {
	if len(names) > 5 {
		return strings.Join(names[:5], ", ") + fmt.Sprintf(" and %d more", len(names)-5)
	}
	return strings.Join(names, ", ")
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
