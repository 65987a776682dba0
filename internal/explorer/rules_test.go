package explorer

import (
	"strings"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fact(id, kind string, value map[string]any) domain.ScanFact {
	return domain.ScanFact{ID: id, Source: strings.SplitN(id, ".", 2)[0], Kind: kind, Summary: id + " summary", Value: value}
}

// ruleRisk returns the risk of rule id among risks.
func ruleRisk(risks []domain.ScanRisk, id string) (domain.ScanRisk, bool) {
	for _, r := range risks {
		if r.Rule == id {
			return r, true
		}
	}
	return domain.ScanRisk{}, false
}

func TestEveryRuleFiresOnItsFactsAndCitesThem(t *testing.T) {
	recent := now.Add(-10 * 24 * time.Hour).Format(time.RFC3339)
	old := now.Add(-400 * 24 * time.Hour).Format(time.RFC3339)
	cases := []struct {
		rule, severity string
		fires          []domain.ScanFact
		cites          []string
		quiet          []domain.ScanFact // similar facts that must not fire it
		title          string
	}{
		{"committed-secret", "critical",
			[]domain.ScanFact{{ID: "git.secret.1", Kind: "secret", Value: map[string]any{"rule": "aws-access-key"}, Where: &domain.ScanLocation{Path: "config/prod.env", Line: 7}},
				{ID: "git.secret.2", Kind: "secret", Value: map[string]any{"rule": "private-key"}}},
			[]string{"git.secret.1", "git.secret.2"}, nil, "config/prod.env:7"},
		{"archived", "high", []domain.ScanFact{fact("github.repository", "repository", map[string]any{"archived": true})},
			[]string{"github.repository"}, []domain.ScanFact{fact("github.repository", "repository", map[string]any{"archived": false})}, "archived"},
		{"no-tests", "high", []domain.ScanFact{fact("git.tests", "tests", map[string]any{"present": false, "files": 0.0})},
			[]string{"git.tests"}, []domain.ScanFact{fact("git.tests", "tests", map[string]any{"present": true, "files": 3.0})}, "No automated tests"},
		{"blocker-bugs", "high",
			[]domain.ScanFact{fact("jira.issue.P-1", "issue", map[string]any{"key": "P-1", "priority": "Blocker", "status": "Open"}),
				fact("jira.issue.P-2", "issue", map[string]any{"key": "P-2", "priority": "Highest", "status": "In Progress"})},
			[]string{"jira.issue.P-1", "jira.issue.P-2"},
			[]domain.ScanFact{fact("jira.issue.P-3", "issue", map[string]any{"priority": "Blocker", "status": "Done"}),
				fact("jira.issue.P-4", "issue", map[string]any{"priority": "Low", "status": "Open"})}, "2 issues are open"},
		{"recurring-p1-incidents", "high",
			[]domain.ScanFact{fact("servicenow.incident.1", "incident", map[string]any{"number": "INC1", "priority": "1 - Critical", "recurring": 3.0})},
			[]string{"servicenow.incident.1"},
			[]domain.ScanFact{fact("servicenow.incident.2", "incident", map[string]any{"priority": "1 - Critical", "recurring": 1.0})}, "Recurring P1"},
		{"risky-dependencies", "medium",
			[]domain.ScanFact{fact("git.dependency.1", "dependency", map[string]any{"name": "log4j-core", "version": "2.14.1", "why": "CVE-2021-44228"})},
			[]string{"git.dependency.1"}, nil, "log4j-core"},
		{"no-ci", "medium",
			[]domain.ScanFact{fact("git.ci", "ci", map[string]any{"present": false}), fact("github.workflows", "workflows", map[string]any{"count": 0.0})},
			[]string{"git.ci", "github.workflows"},
			[]domain.ScanFact{fact("git.ci", "ci", map[string]any{"present": false}), fact("github.workflows", "workflows", map[string]any{"count": 2.0})}, "No continuous integration"},
		{"single-maintainer", "medium", []domain.ScanFact{fact("git.contributors", "contributors", map[string]any{"count": 4.0, "top_share": 0.93})},
			[]string{"git.contributors"}, []domain.ScanFact{fact("git.contributors", "contributors", map[string]any{"count": 4.0, "top_share": 0.5})}, "93%"},
		{"unprotected-default-branch", "medium",
			[]domain.ScanFact{fact("github.branch_protection", "branch_protection", map[string]any{"branch": "main", "protected": false, "visible": true})},
			[]string{"github.branch_protection"},
			[]domain.ScanFact{fact("github.branch_protection", "branch_protection", map[string]any{"branch": "main", "protected": false, "visible": false})}, `"main"`},
		{"inactive", "medium", []domain.ScanFact{fact("git.activity", "activity", map[string]any{"last_commit": old, "commits_90d": 0.0})},
			[]string{"git.activity"}, []domain.ScanFact{fact("git.activity", "activity", map[string]any{"last_commit": recent})}, "400 days"},
		{"recurring-incidents", "medium",
			[]domain.ScanFact{fact("servicenow.incident.3", "incident", map[string]any{"priority": "3 - Moderate", "recurring": 4.0})},
			[]string{"servicenow.incident.3"}, nil, "Recurring incidents"},
		{"no-licence", "medium", []domain.ScanFact{fact("git.licence", "licence", map[string]any{"present": false, "spdx": ""})},
			[]string{"git.licence"}, []domain.ScanFact{fact("git.licence", "licence", map[string]any{"present": true, "spdx": "MIT"})}, "No licence"},
		{"stale-bugs", "low", []domain.ScanFact{fact("jira.issue.P-9", "issue", map[string]any{"stale": true, "status": "Open", "priority": "Low"})},
			[]string{"jira.issue.P-9"}, []domain.ScanFact{fact("jira.issue.P-9", "issue", map[string]any{"stale": true, "status": "Closed"})}, "stale"},
		{"no-security-policy", "low", []domain.ScanFact{fact("github.security_policy", "security_policy", map[string]any{"present": false})},
			[]string{"github.security_policy"}, []domain.ScanFact{fact("github.security_policy", "security_policy", map[string]any{"present": true})}, "security policy"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.rule] = true
		risks, proposals := Evaluate(c.fires, now)
		r, ok := ruleRisk(risks, c.rule)
		if !ok {
			t.Errorf("%s: did not fire on %+v (risks %+v)", c.rule, c.fires, risks)
			continue
		}
		if r.Severity != c.severity || r.By != "rule" || !strings.Contains(r.Title, c.title) || len(proposals) == 0 {
			t.Errorf("%s: risk %+v, proposals %v", c.rule, r, proposals)
		}
		var got []string
		for _, e := range r.Evidence {
			got = append(got, e.FactID)
		}
		if strings.Join(got, ",") != strings.Join(c.cites, ",") {
			t.Errorf("%s: cites %v, want %v", c.rule, got, c.cites)
		}
		if c.quiet != nil {
			if risks, _ := Evaluate(c.quiet, now); len(risks) > 0 {
				t.Errorf("%s: fired on facts that show no problem: %+v", c.rule, risks)
			}
		}
	}
	for _, r := range rules {
		if !seen[r.id] {
			t.Errorf("rule %s has no test case", r.id)
		}
	}
}

func TestRulesNeedFactsAndOrderBySeverity(t *testing.T) {
	if risks, _ := Evaluate(nil, now); len(risks) != 0 {
		t.Fatalf("no facts gave risks: %+v", risks)
	}
	// A fact without the field a rule reads proves nothing.
	if risks, _ := Evaluate([]domain.ScanFact{fact("git.tests", "tests", map[string]any{}), fact("git.licence", "licence", nil)}, now); len(risks) != 0 {
		t.Fatalf("facts without values gave risks: %+v", risks)
	}
	risks, _ := Evaluate([]domain.ScanFact{
		fact("github.security_policy", "security_policy", map[string]any{"present": false}),
		fact("git.tests", "tests", map[string]any{"present": false}),
		{ID: "git.secret.1", Kind: "secret", Value: map[string]any{"rule": "x"}},
	}, now)
	var sev []string
	for _, r := range risks {
		sev = append(sev, r.Severity)
	}
	if strings.Join(sev, ",") != "critical,high,low" {
		t.Fatalf("order %v", sev)
	}
}
