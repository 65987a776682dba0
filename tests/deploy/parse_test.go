package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/catalyst/catalyst/internal/config"
	"go.yaml.in/yaml/v3"
)

// root is the repository root, where the artefacts live.
const root = "../.."

// pending are variables the lock-down work adds to config.Variables; the
// artefacts already use them. Remove this list once they are merged.
var pending = []string{"CATALYST_API_TOKEN", "CATALYST_ALLOWED_HOSTS", "CATALYST_PREVIEW_PORT"}

// pendingSecret are the secrets among pending.
var pendingSecret = []string{"CATALYST_API_TOKEN"}

// composeOnly are read by compose and the MongoDB and NATS containers, never
// by Catalyst (`catalyst config env` writes the MONGO_ROOT_* pair too).
var composeOnly = map[string]bool{"MONGO_ROOT_USERNAME": false, "MONGO_ROOT_PASSWORD": true, "NATS_TOKEN": true} // name -> secret

// catalystVar reports whether Catalyst's configuration reads name.
func catalystVar(name string) bool {
	for _, v := range config.Variables {
		if v.Name == name {
			return true
		}
	}
	for _, p := range pending {
		if p == name {
			return true
		}
	}
	return false
}

func secretVar(name string) bool {
	for _, v := range config.Variables {
		if v.Name == name {
			return v.Secret
		}
	}
	for _, p := range pendingSecret {
		if p == name {
			return true
		}
	}
	return composeOnly[name]
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ---- compose ----

type composeFile struct {
	Name       string             `yaml:"name"`
	Services   map[string]service `yaml:"services"`
	Volumes    map[string]any     `yaml:"volumes"`
	Extensions map[string]any     `yaml:",inline"` // x-* blocks for anchors
}

type service struct {
	Image       string                    `yaml:"image"`
	Build       *struct{ Context string } `yaml:"build"`
	PullPolicy  string                    `yaml:"pull_policy"`
	Command     []string                  `yaml:"command"`
	Environment map[string]string         `yaml:"environment"`
	EnvFile     []struct {
		Path     string `yaml:"path"`
		Required *bool  `yaml:"required"`
	} `yaml:"env_file"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Ports       yaml.Node `yaml:"ports"`
	Volumes     []string  `yaml:"volumes"`
	SecurityOpt []string  `yaml:"security_opt"`
	CapDrop     []string  `yaml:"cap_drop"`
	Healthcheck *struct {
		Test        []string `yaml:"test"`
		Interval    string   `yaml:"interval"`
		Timeout     string   `yaml:"timeout"`
		Retries     int      `yaml:"retries"`
		StartPeriod string   `yaml:"start_period"`
		Disable     bool     `yaml:"disable"`
	} `yaml:"healthcheck"`
	Restart string `yaml:"restart"`
	Logging *struct {
		Driver  string            `yaml:"driver"`
		Options map[string]string `yaml:"options"`
	} `yaml:"logging"`
	Deploy *struct {
		Resources struct {
			Limits struct {
				CPUs   string `yaml:"cpus"`
				Memory string `yaml:"memory"`
				Pids   int    `yaml:"pids"`
			} `yaml:"limits"`
		} `yaml:"resources"`
	} `yaml:"deploy"`
}

// ports returns the published ports and whether the list carries compose's
// !reset tag (an overlay removing what the base file publishes).
func (s service) ports(t *testing.T) (list []string, reset bool) {
	t.Helper()
	if s.Ports.Kind == 0 {
		return nil, false
	}
	if err := s.Ports.Decode(&list); err != nil {
		t.Fatalf("ports: %v", err)
	}
	return list, s.Ports.Tag == "!reset"
}

// loadCompose decodes a compose file strictly: a misspelt key is an error,
// not a setting compose would ignore or refuse at deploy time.
func loadCompose(t *testing.T, name string) (composeFile, *yaml.Node) {
	t.Helper()
	data := read(t, name)
	var cf composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&cf); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for k := range cf.Extensions {
		if !strings.HasPrefix(k, "x-") {
			t.Errorf("%s: unknown top-level key %q", name, k)
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	return cf, &doc
}

var varRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

// referencedVars lists every variable compose interpolates in the document's
// values (comments are not values; $$ is a literal dollar).
func referencedVars(n *yaml.Node) map[string]bool {
	out := map[string]bool{}
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode {
			for _, m := range varRef.FindAllStringSubmatch(strings.ReplaceAll(n.Value, "$$", ""), -1) {
				out[m[1]] = true
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return out
}

// interpolate expands a compose value as Compose does: $VAR, ${VAR},
// ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error},
// ${VAR:+alt}, ${VAR+alt}, nested operands and $$.
func interpolate(s string, env map[string]string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] != '{' {
			m := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`).FindString(s[i+1:])
			if m == "" {
				b.WriteByte('$')
				continue
			}
			b.WriteString(env[m])
			i += len(m)
			continue
		}
		// ${...}: find the matching brace.
		depth, j := 1, i+2
		for ; j < len(s) && depth > 0; j++ {
			switch {
			case s[j] == '$' && j+1 < len(s) && s[j+1] == '{':
				depth++
				j++
			case s[j] == '}':
				depth--
			}
		}
		if depth != 0 {
			return "", fmt.Errorf("unclosed ${ in %q", s)
		}
		body := s[i+2 : j-1]
		name := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`).FindString(body)
		if name == "" {
			return "", fmt.Errorf("bad variable in %q", s)
		}
		op, operand := "", ""
		for _, o := range []string{":-", ":?", ":+", "-", "?", "+"} {
			if strings.HasPrefix(body[len(name):], o) {
				op, operand = o, body[len(name)+len(o):]
				break
			}
		}
		if op == "" && len(body) != len(name) {
			return "", fmt.Errorf("unsupported expression ${%s}", body)
		}
		val, set := env[name]
		nonEmpty := set && val != ""
		expand := func() (string, error) { return interpolate(operand, env) }
		var err error
		switch op {
		case ":-":
			if !nonEmpty {
				val, err = expand()
			}
		case "-":
			if !set {
				val, err = expand()
			}
		case ":?", "?":
			if op == ":?" && !nonEmpty || op == "?" && !set {
				msg, _ := expand()
				return "", fmt.Errorf("required variable %s is missing a value: %s", name, msg)
			}
		case ":+":
			val = ""
			if nonEmpty {
				val, err = expand()
			}
		case "+":
			val = ""
			if set {
				val, err = expand()
			}
		}
		if err != nil {
			return "", err
		}
		b.WriteString(val)
		i = j - 1
	}
	return b.String(), nil
}

// ---- .env.example ----

type envLine struct{ key, value string }

func loadEnvExample(t *testing.T) []envLine {
	t.Helper()
	var out []envLine
	sc := bufio.NewScanner(strings.NewReader(string(read(t, ".env.example"))))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`).MatchString(k) {
			t.Fatalf(".env.example:%d: not KEY=value: %q", n, line)
		}
		out = append(out, envLine{k, v})
	}
	return out
}

// ---- Dockerfile ----

type instruction struct {
	cmd  string // upper case
	args string
}

// dockerfile splits the Dockerfile into stages of instructions, joining
// continuation lines and dropping comments as the builder does.
func dockerfile(t *testing.T) [][]instruction {
	t.Helper()
	var stages [][]instruction
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile: %s before FROM", in.cmd)
			}
			return
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	for _, raw := range strings.Split(string(read(t, "Dockerfile")), "\n") {
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return stages
}

// execForm decodes a JSON-array (exec form) argument list.
func execForm(t *testing.T, what, args string) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil {
		t.Fatalf("Dockerfile %s: want the exec form [\"...\"], got %s", what, args)
	}
	return argv
}

// ---- .dockerignore ----

type ignoreRule struct {
	pattern string
	negate  bool
}

func dockerignore(t *testing.T) []ignoreRule {
	t.Helper()
	var rules []ignoreRule
	for _, line := range strings.Split(string(read(t, ".dockerignore")), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if strings.HasPrefix(line, "!") {
			r.negate, line = true, line[1:]
		}
		r.pattern = strings.TrimSuffix(strings.TrimPrefix(path.Clean(line), "/"), "/")
		rules = append(rules, r)
	}
	return rules
}

// ignored reports whether the build context leaves p out: the last matching
// rule wins, and a rule matching a directory covers what is inside it.
func ignored(rules []ignoreRule, p string) bool {
	out := false
	for _, r := range rules {
		if matchIgnore(r.pattern, p) {
			out = !r.negate
		}
	}
	return out
}

func matchIgnore(pattern, p string) bool {
	parts := strings.Split(p, "/")
	for end := 1; end <= len(parts); end++ {
		prefix := strings.Join(parts[:end], "/")
		if rest, ok := strings.CutPrefix(pattern, "**/"); ok {
			for start := 0; start < end; start++ {
				if m, _ := path.Match(rest, strings.Join(parts[start:end], "/")); m {
					return true
				}
			}
			continue
		}
		if m, _ := path.Match(pattern, prefix); m {
			return true
		}
	}
	return false
}

// ---- systemd ----

type unit map[string]map[string][]string // section -> key -> values

func loadUnit(t *testing.T, name string) unit {
	t.Helper()
	u := unit{}
	section := ""
	for n, line := range strings.Split(string(read(t, filepath.Join("deploy", "systemd", name))), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not key=value in a section: %q", name, n+1, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// one returns the single value of key in section.
func (u unit) one(t *testing.T, name, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Fatalf("%s: [%s] %s= set %d times, want once", name, section, key, len(v))
	}
	return v[0]
}
