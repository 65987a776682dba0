package git

import (
	"bytes"
	"math"
	"path"
	"regexp"
	"sort"
	"strings"
)

var languages = map[string]string{
	".go": "Go", ".py": "Python", ".js": "JavaScript", ".mjs": "JavaScript", ".cjs": "JavaScript", ".jsx": "JavaScript",
	".ts": "TypeScript", ".tsx": "TypeScript", ".java": "Java", ".kt": "Kotlin", ".kts": "Kotlin", ".scala": "Scala",
	".groovy": "Groovy", ".rb": "Ruby", ".rs": "Rust", ".c": "C", ".h": "C", ".cc": "C++", ".cpp": "C++", ".cxx": "C++",
	".hpp": "C++", ".cs": "C#", ".php": "PHP", ".swift": "Swift", ".m": "Objective-C", ".sh": "Shell", ".bash": "Shell",
	".ps1": "PowerShell", ".sql": "SQL", ".html": "HTML", ".css": "CSS", ".scss": "SCSS", ".vue": "Vue", ".svelte": "Svelte",
	".lua": "Lua", ".pl": "Perl", ".r": "R", ".dart": "Dart", ".ex": "Elixir", ".exs": "Elixir", ".erl": "Erlang",
	".clj": "Clojure", ".hs": "Haskell", ".tf": "HCL", ".xml": "XML", ".yaml": "YAML", ".yml": "YAML",
}

func language(p string) string {
	if path.Base(p) == "Dockerfile" {
		return "Dockerfile"
	}
	return languages[strings.ToLower(path.Ext(p))]
}

var testName = regexp.MustCompile(`(?i)(_test\.go|^test_.*\.py|_test\.py|\.(test|spec)\.(js|jsx|ts|tsx|mjs|cjs)|Tests?\.(java|kt|cs|scala)|_spec\.rb|_test\.rb|Test\.php|_test\.(c|cc|cpp|rs|exs))$`)

var sourceExt = map[string]bool{".go": true, ".py": true, ".js": true, ".ts": true, ".jsx": true, ".tsx": true, ".java": true, ".kt": true, ".rb": true, ".rs": true, ".cs": true, ".php": true, ".scala": true, ".c": true, ".cc": true, ".cpp": true, ".mjs": true}

// classifyPath counts tests and recognises CI configuration by path alone.
func classifyPath(p string, sc *scan) {
	base := path.Base(p)
	lower := "/" + strings.ToLower(p)
	switch {
	case testName.MatchString(base):
		sc.testFiles++
	case sourceExt[strings.ToLower(path.Ext(p))] &&
		(strings.Contains(lower, "/test/") || strings.Contains(lower, "/tests/") || strings.Contains(lower, "/__tests__/") || strings.Contains(lower, "/spec/")):
		sc.testFiles++
	}
	switch {
	case strings.HasPrefix(p, ".github/workflows/") && (strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")):
		sc.ci["GitHub Actions"] = true
	case p == ".gitlab-ci.yml":
		sc.ci["GitLab CI"] = true
	case base == "Jenkinsfile":
		sc.ci["Jenkins"] = true
	case strings.HasPrefix(p, ".circleci/"):
		sc.ci["CircleCI"] = true
	case p == ".travis.yml":
		sc.ci["Travis CI"] = true
	case p == "azure-pipelines.yml" || strings.HasPrefix(p, ".azure-pipelines/"):
		sc.ci["Azure Pipelines"] = true
	case p == "bitbucket-pipelines.yml":
		sc.ci["Bitbucket Pipelines"] = true
	case p == ".drone.yml":
		sc.ci["Drone"] = true
	case strings.HasPrefix(p, ".buildkite/"):
		sc.ci["Buildkite"] = true
	case p == ".woodpecker.yml" || strings.HasPrefix(p, ".woodpecker/"):
		sc.ci["Woodpecker"] = true
	}
}

func isLicenceFile(p string) bool {
	if strings.Contains(p, "/") {
		return false
	}
	n := strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(p, ".md"), ".txt"), ".rst"))
	return n == "LICENSE" || n == "LICENCE" || n == "COPYING" || n == "LICENSE-MIT" || n == "LICENSE-APACHE" || n == "UNLICENSE"
}

var spdxLine = regexp.MustCompile(`SPDX-License-Identifier:\s*([A-Za-z0-9.+-]+)`)

// guessSPDX recognises the common licence texts by their distinctive
// sentences; "" when none matches.
func guessSPDX(data []byte) string {
	if m := spdxLine.FindSubmatch(data); m != nil {
		return string(m[1])
	}
	t := strings.Join(strings.Fields(strings.ToLower(string(data[:min(len(data), 20000)]))), " ")
	has := strings.Contains
	switch {
	case has(t, "gnu affero general public license"):
		return "AGPL-3.0"
	case has(t, "gnu lesser general public license"):
		if has(t, "version 2.1") {
			return "LGPL-2.1"
		}
		return "LGPL-3.0"
	case has(t, "gnu general public license"):
		if has(t, "version 2,") || has(t, "version 2 ") {
			return "GPL-2.0"
		}
		return "GPL-3.0"
	case has(t, "apache license") && has(t, "version 2.0"):
		return "Apache-2.0"
	case has(t, "mozilla public license") && has(t, "2.0"):
		return "MPL-2.0"
	case has(t, "permission is hereby granted, free of charge"):
		return "MIT"
	case has(t, "redistribution and use in source and binary forms"):
		if has(t, "neither the name") {
			return "BSD-3-Clause"
		}
		return "BSD-2-Clause"
	case has(t, "permission to use, copy, modify, and/or distribute this software for any purpose"):
		return "ISC"
	case has(t, "this is free and unencumbered software released into the public domain"):
		return "Unlicense"
	case has(t, "eclipse public license"):
		return "EPL-2.0"
	}
	return ""
}

type secretHit struct {
	rule string
	path string
	line int
}

type secretRule struct {
	name string
	re   *regexp.Regexp
	// entropy, when > 0, is the least Shannon entropy (bits per character)
	// of the rule's first group: a real key is random, "changeme" is not.
	entropy float64
}

var secretRules = []secretRule{
	{name: "aws-access-key", re: regexp.MustCompile(`\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b`)},
	{name: "aws-secret-key", re: regexp.MustCompile(`(?i)aws_?secret_?(?:access_?)?key["']?\s*[:=]\s*["']?([A-Za-z0-9/+=]{40})\b`), entropy: 3.5},
	{name: "github-token", re: regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b`)},
	{name: "slack-token", re: regexp.MustCompile(`\bxox[abposr]-[A-Za-z0-9-]{10,}`)},
	{name: "slack-webhook", re: regexp.MustCompile(`https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+`)},
	{name: "private-key", re: regexp.MustCompile(`-----BEGIN (?:RSA |DSA |EC |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----`)},
	{name: "stripe-key", re: regexp.MustCompile(`\b[sr]k_live_[A-Za-z0-9]{20,}\b`)},
	{name: "google-api-key", re: regexp.MustCompile(`\bAIza[0-9A-Za-z_-]{35}\b`)},
	{name: "generic-api-key", re: regexp.MustCompile(`(?i)(?:api[_-]?key|apikey|secret[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token|password|passwd|secret)["']?\s*[:=]\s*["']([^"'\s]{16,})["']`), entropy: 3.5},
}

// findSecrets reports which rule matched on which line. The matched text
// is dropped here and never leaves this function.
func findSecrets(data []byte) []secretHit {
	var out []secretHit
	line := 0
	for len(data) > 0 {
		line++
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			l, data = data, nil
		}
		if len(l) > 4096 {
			l = l[:4096] // minified lines: enough to see a key, bounded regexp work
		}
		for _, r := range secretRules {
			m := r.re.FindSubmatch(l)
			if m == nil {
				continue
			}
			if r.entropy > 0 && (len(m) < 2 || shannon(m[1]) < r.entropy) {
				continue
			}
			out = append(out, secretHit{rule: r.name, line: line})
			break // one finding per line is enough to point a person at it
		}
	}
	return out
}

func shannon(b []byte) float64 {
	if len(b) == 0 {
		return 0
	}
	var counts [256]int
	for _, c := range b {
		counts[c]++
	}
	var h float64
	for _, n := range counts {
		if n > 0 {
			p := float64(n) / float64(len(b))
			h -= p * math.Log2(p)
		}
	}
	return h
}

func sortStrings(s []string) { sort.Strings(s) }
