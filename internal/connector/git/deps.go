package git

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// manifest is the Value of a KindManifest fact.
type manifest struct {
	Path         string `json:"path"`
	Ecosystem    string `json:"ecosystem"`
	Dependencies []dep  `json:"dependencies"`
}

type dep struct {
	Name    string `json:"name"`
	Version string `json:"version"` // as written: "^4.17.0", "==2.19.0", "v0.3.0", "" (any)
	line    int
}

// maxDepsPerManifest bounds one manifest's list.
const maxDepsPerManifest = 500

func parseManifest(p string, data []byte) (manifest, bool) {
	base := path.Base(p)
	m := manifest{Path: p}
	switch {
	case base == "go.mod":
		m.Ecosystem, m.Dependencies = "go", parseGoMod(data)
	case base == "package.json":
		m.Ecosystem, m.Dependencies = "npm", parsePackageJSON(data)
	case base == "requirements.txt" || (strings.HasPrefix(base, "requirements") && strings.HasSuffix(base, ".txt")):
		m.Ecosystem, m.Dependencies = "pypi", parseRequirements(data)
	case base == "pyproject.toml":
		m.Ecosystem, m.Dependencies = "pypi", parsePyproject(data)
	case base == "pom.xml":
		m.Ecosystem, m.Dependencies = "maven", parsePom(data)
	case base == "Gemfile":
		m.Ecosystem, m.Dependencies = "rubygems", parseGemfile(data)
	case base == "Cargo.toml":
		m.Ecosystem, m.Dependencies = "cargo", parseCargo(data)
	case base == "build.gradle" || base == "build.gradle.kts":
		m.Ecosystem, m.Dependencies = "maven", parseGradle(data)
	default:
		return m, false
	}
	if len(m.Dependencies) > maxDepsPerManifest {
		m.Dependencies = m.Dependencies[:maxDepsPerManifest]
	}
	if m.Dependencies == nil {
		m.Dependencies = []dep{}
	}
	return m, true
}

func lines(data []byte) []string { return strings.Split(string(data), "\n") }

// lineOf is the first line (1-based) containing needle, or 0.
func lineOf(data []byte, needle string) int {
	i := bytes.Index(data, []byte(needle))
	if i < 0 {
		return 0
	}
	return bytes.Count(data[:i], []byte("\n")) + 1
}

func parseGoMod(data []byte) []dep {
	var out []dep
	block := false
	for i, l := range lines(data) {
		l = strings.TrimSpace(l)
		if c := strings.Index(l, "//"); c >= 0 {
			l = strings.TrimSpace(l[:c])
		}
		switch {
		case l == "require (":
			block = true
			continue
		case block && l == ")":
			block = false
			continue
		case strings.HasPrefix(l, "require "):
			l = strings.TrimSpace(strings.TrimPrefix(l, "require "))
		case !block:
			continue
		}
		if f := strings.Fields(l); len(f) >= 2 {
			out = append(out, dep{Name: f[0], Version: f[1], line: i + 1})
		}
	}
	return out
}

func parsePackageJSON(data []byte) []dep {
	var pj struct {
		Dependencies    map[string]string `json:"dependencies"`
		DevDependencies map[string]string `json:"devDependencies"`
	}
	if json.Unmarshal(data, &pj) != nil {
		return nil
	}
	var out []dep
	for _, m := range []map[string]string{pj.Dependencies, pj.DevDependencies} {
		for _, name := range sortedKeys(m) {
			out = append(out, dep{Name: name, Version: m[name], line: lineOf(data, strconv.Quote(name))})
		}
	}
	return out
}

var pyReq = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)$`)

func parseRequirements(data []byte) []dep {
	var out []dep
	for i, l := range lines(data) {
		if c := strings.Index(l, "#"); c >= 0 {
			l = l[:c]
		}
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "-") {
			continue
		}
		if d, ok := pep508(l); ok {
			d.line = i + 1
			out = append(out, d)
		}
	}
	return out
}

func pep508(s string) (dep, bool) {
	s, _, _ = strings.Cut(s, ";") // environment markers
	m := pyReq.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return dep{}, false
	}
	return dep{Name: strings.ToLower(m[1]), Version: strings.ReplaceAll(strings.TrimSpace(m[3]), " ", "")}, true
}

var (
	tomlSection = regexp.MustCompile(`^\[([^\]]+)\]\s*$`)
	tomlKV      = regexp.MustCompile(`^([A-Za-z0-9_.-]+)\s*=\s*(.+)$`)
	tomlVersion = regexp.MustCompile(`version\s*=\s*"([^"]*)"`)
	quoted      = regexp.MustCompile(`"([^"]+)"|'([^']+)'`)
)

func parsePyproject(data []byte) []dep {
	var out []dep
	section, inArray := "", false
	for i, l := range lines(data) {
		t := strings.TrimSpace(l)
		if m := tomlSection.FindStringSubmatch(t); m != nil {
			section, inArray = m[1], false
			continue
		}
		if section == "project" && strings.HasPrefix(t, "dependencies") && strings.Contains(t, "[") {
			inArray = true
			t = t[strings.Index(t, "[")+1:]
		}
		if inArray {
			for _, q := range quoted.FindAllStringSubmatch(t, -1) {
				if d, ok := pep508(q[1] + q[2]); ok {
					d.line = i + 1
					out = append(out, d)
				}
			}
			if strings.Contains(t, "]") {
				inArray = false
			}
			continue
		}
		if strings.HasPrefix(section, "tool.poetry") && strings.HasSuffix(section, "dependencies") {
			if m := tomlKV.FindStringSubmatch(t); m != nil && m[1] != "python" {
				out = append(out, dep{Name: strings.ToLower(m[1]), Version: tomlValueVersion(m[2]), line: i + 1})
			}
		}
	}
	return out
}

func tomlValueVersion(v string) string {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "{") {
		if m := tomlVersion.FindStringSubmatch(v); m != nil {
			return m[1]
		}
		return ""
	}
	return strings.Trim(v, `"'`)
}

func parseCargo(data []byte) []dep {
	var out []dep
	section := ""
	for i, l := range lines(data) {
		t := strings.TrimSpace(l)
		if m := tomlSection.FindStringSubmatch(t); m != nil {
			section = m[1]
			continue
		}
		if section == "dependencies" || section == "dev-dependencies" || section == "build-dependencies" || section == "workspace.dependencies" {
			if m := tomlKV.FindStringSubmatch(t); m != nil {
				out = append(out, dep{Name: m[1], Version: tomlValueVersion(m[2]), line: i + 1})
			}
		}
	}
	return out
}

func parsePom(data []byte) []dep {
	type xdep struct {
		GroupID    string `xml:"groupId"`
		ArtifactID string `xml:"artifactId"`
		Version    string `xml:"version"`
	}
	var pom struct {
		Deps    []xdep `xml:"dependencies>dependency"`
		Managed []xdep `xml:"dependencyManagement>dependencies>dependency"`
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = false
	dec.Entity = xml.HTMLEntity
	if dec.Decode(&pom) != nil {
		return nil
	}
	var out []dep
	for _, d := range append(pom.Deps, pom.Managed...) {
		name := strings.TrimSpace(d.GroupID) + ":" + strings.TrimSpace(d.ArtifactID)
		out = append(out, dep{Name: name, Version: strings.TrimSpace(d.Version), line: lineOf(data, "<artifactId>"+strings.TrimSpace(d.ArtifactID)+"</artifactId>")})
	}
	return out
}

var gemLine = regexp.MustCompile(`^\s*gem\s+["']([^"']+)["']\s*(?:,\s*["']([^"']+)["'])?`)

func parseGemfile(data []byte) []dep {
	var out []dep
	for i, l := range lines(data) {
		if m := gemLine.FindStringSubmatch(l); m != nil {
			out = append(out, dep{Name: m[1], Version: strings.ReplaceAll(m[2], " ", ""), line: i + 1})
		}
	}
	return out
}

var gradleLine = regexp.MustCompile(`^\s*(?:implementation|api|compile|compileOnly|runtimeOnly|testImplementation|testCompile|annotationProcessor|kapt)\s*\(?\s*["']([^:"']+):([^:"']+)(?::([^"'@]+))?["']`)

func parseGradle(data []byte) []dep {
	var out []dep
	for i, l := range lines(data) {
		if m := gradleLine.FindStringSubmatch(l); m != nil {
			out = append(out, dep{Name: m[1] + ":" + m[2], Version: m[3], line: i + 1})
		}
	}
	return out
}

// ---- heuristics ----

// depFinding is a dependency that looks stale or vulnerable.
type depFinding struct {
	Name, Version, Why string
	reason             string // unpinned, old-major, known-vulnerable
	ecosystem, path    string
	line               int
}

// vuln is one entry of the embedded list: versions below fixed are affected
// (fixed "" means every version: the package itself is abandoned).
type vuln struct{ fixed, id string }

// knownVulnerable is deliberately small and well known: it catches the
// famous cases offline, it is not a vulnerability database.
var knownVulnerable = map[string]map[string]vuln{
	"npm": {
		"lodash": {"4.17.21", "CVE-2021-23337"}, "minimist": {"1.2.6", "CVE-2021-44906"},
		"jquery": {"3.5.0", "CVE-2020-11022"}, "node-fetch": {"2.6.7", "CVE-2022-0235"},
		"jsonwebtoken": {"9.0.0", "CVE-2022-23529"},
	},
	"pypi": {
		"requests": {"2.31.0", "CVE-2023-32681"}, "pyyaml": {"5.4", "CVE-2020-14343"},
		"urllib3": {"1.26.5", "CVE-2021-33503"}, "jinja2": {"2.11.3", "CVE-2020-28493"},
		"flask": {"2.2.5", "CVE-2023-30861"},
	},
	"maven": {
		"org.apache.logging.log4j:log4j-core": {"2.17.1", "CVE-2021-44228 (Log4Shell) and follow-ups"},
		"org.springframework:spring-beans":    {"5.3.18", "CVE-2022-22965 (Spring4Shell)"},
		"log4j:log4j":                         {"", "Log4j 1.x is end-of-life (CVE-2019-17571)"},
	},
	"go": {
		"golang.org/x/crypto":         {"0.31.0", "CVE-2024-45337"},
		"golang.org/x/net":            {"0.33.0", "CVE-2024-45338"},
		"github.com/dgrijalva/jwt-go": {"", "unmaintained, CVE-2020-26160"},
	},
}

// oldMajor names well-known packages whose major versions below the given
// one are long out of support.
var oldMajor = map[string]map[string]int{
	"npm":      {"react": 16, "vue": 3, "@angular/core": 14, "express": 4, "jquery": 3, "webpack": 4, "angular": 2},
	"pypi":     {"django": 3, "flask": 2, "sqlalchemy": 1, "celery": 4},
	"maven":    {"org.springframework:spring-core": 5, "org.springframework.boot:spring-boot-starter": 2, "junit:junit": 4, "org.hibernate:hibernate-core": 5},
	"rubygems": {"rails": 6, "rack": 2},
	"go":       {},
	"cargo":    {"tokio": 1},
}

func assess(m manifest) []depFinding {
	var out []depFinding
	for _, d := range m.Dependencies {
		f := depFinding{Name: d.Name, Version: d.Version, ecosystem: m.Ecosystem, path: m.Path, line: d.line}
		r := parseRange(m.Ecosystem, d.Version)
		if v, ok := knownVulnerable[m.Ecosystem][strings.ToLower(d.Name)]; ok {
			switch {
			case v.fixed == "":
				f.reason, f.Why = "known-vulnerable", v.id
			case r.ok && r.below(parseVersion(v.fixed)):
				f.reason, f.Why = "known-vulnerable", fmt.Sprintf("every version allowed is below %s, which fixes %s", v.fixed, v.id)
			}
		}
		if f.reason == "" && r.ok {
			if major, ok := oldMajor[m.Ecosystem][strings.ToLower(d.Name)]; ok && r.high != nil && r.low[0] < major && r.high[0] <= major {
				f.reason, f.Why = "old-major", fmt.Sprintf("major version %d; %d or later is current", r.low[0], major)
			}
		}
		if f.reason == "" && r.unpinned && m.Ecosystem != "go" {
			f.reason, f.Why = "unpinned", "no version constraint pins it: builds may change without a commit"
		}
		if f.reason != "" {
			out = append(out, f)
		}
	}
	return out
}

// vrange is the set of versions a constraint allows: [low, high), high nil
// meaning unbounded.
type vrange struct {
	low, high []int
	ok        bool // low could be read
	unpinned  bool // no upper bound at all
}

// below reports whether every allowed version is below v.
func (r vrange) below(v []int) bool {
	if r.high == nil {
		return false
	}
	return cmpVersion(r.high, v) <= 0
}

var versionNums = regexp.MustCompile(`\d+(?:\.\d+){0,3}`)

func parseVersion(s string) []int {
	m := versionNums.FindString(s)
	if m == "" {
		return nil
	}
	var out []int
	for _, p := range strings.Split(m, ".") {
		n, _ := strconv.Atoi(p)
		out = append(out, n)
	}
	for len(out) < 3 {
		out = append(out, 0)
	}
	return out
}

func cmpVersion(a, b []int) int {
	for i := 0; i < max(len(a), len(b)); i++ {
		x, y := 0, 0
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// parseRange reads the common constraint forms: exact (1.2.3, ==1.2.3,
// v1.2.3), caret (^1.2.3; Cargo's bare 1.2.3), tilde (~1.2.3, ~=1.2, ~>
// 1.2), lower bounds (>=1.2) and "any" ("", *, latest, x). A constraint it
// cannot read yields ok=false and is not judged.
func parseRange(eco, s string) vrange {
	s = strings.TrimSpace(s)
	if s == "" || s == "*" || s == "latest" || s == "x" || s == "X" {
		return vrange{unpinned: true}
	}
	if strings.ContainsAny(s, "|,[](") || strings.Contains(s, " - ") || strings.Contains(s, "${") {
		if strings.Contains(s, "${") { // Maven property: the version is elsewhere
			return vrange{}
		}
		if strings.HasPrefix(s, ">") && !strings.Contains(s, "<") {
			return vrange{unpinned: true}
		}
		return vrange{}
	}
	v := parseVersion(s)
	if v == nil {
		return vrange{}
	}
	next := func(i int) []int {
		h := append([]int(nil), v...)
		h[i]++
		for j := i + 1; j < len(h); j++ {
			h[j] = 0
		}
		return h
	}
	caret := func() []int {
		switch {
		case v[0] > 0:
			return next(0)
		case v[1] > 0:
			return next(1)
		default:
			return next(2)
		}
	}
	switch {
	case strings.HasPrefix(s, ">") && !strings.Contains(s, "<"):
		return vrange{low: v, ok: true, unpinned: true}
	case strings.HasPrefix(s, "<"):
		return vrange{}
	case strings.HasPrefix(s, "^"):
		return vrange{low: v, high: caret(), ok: true}
	case strings.HasPrefix(s, "~>") || strings.HasPrefix(s, "~="):
		// Ruby and Python: ~> 2.1 allows < 3.0, ~> 2.1.3 allows < 2.2.
		parts := strings.Count(versionNums.FindString(s), ".")
		if parts <= 1 {
			return vrange{low: v, high: next(0), ok: true}
		}
		return vrange{low: v, high: next(1), ok: true}
	case strings.HasPrefix(s, "~"):
		return vrange{low: v, high: next(1), ok: true}
	case eco == "cargo" && s[0] >= '0' && s[0] <= '9':
		return vrange{low: v, high: caret(), ok: true}
	case eco == "npm" && strings.HasSuffix(s, ".x"):
		return vrange{low: v, high: next(strings.Count(s, ".") - 1), ok: true}
	}
	// Exact: the one version; high is just above it.
	h := append(append([]int(nil), v...), 0)
	h[len(h)-1] = 1
	return vrange{low: v, high: h, ok: true}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}
