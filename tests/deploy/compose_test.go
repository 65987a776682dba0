package deploy

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/catalyst/catalyst/internal/config"
)

// exampleEnv is .env.example with its required secrets filled in, as a user
// would: the environment compose interpolates with.
func exampleEnv(t *testing.T) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, l := range loadEnvExample(t) {
		env[l.key] = l.value
	}
	env["MONGO_ROOT_PASSWORD"] = "s3cretpw"
	env["NATS_TOKEN"] = "n4tstoken"
	return env
}

func resolve(t *testing.T, where, s string, env map[string]string) string {
	t.Helper()
	v, err := interpolate(s, env)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	return v
}

func catalystServices(cf composeFile) []string {
	var out []string
	for name, s := range cf.Services {
		if s.Build != nil {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func TestComposeServices(t *testing.T) {
	cf, _ := loadCompose(t, "docker-compose.yml")
	var names []string
	for n := range cf.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	if want := []string{"api", "mongodb", "nats", "worker-1", "worker-2"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v (the guide's frontend service is replaced by the embedded dashboard)", names, want)
	}
	if got := catalystServices(cf); !slices.Equal(got, []string{"api", "worker-1", "worker-2"}) {
		t.Fatalf("services built from the Dockerfile: %v", got)
	}
	api := cf.Services["api"]
	if _, err := os.Stat(filepath.Join(root, api.Build.Context, "Dockerfile")); err != nil {
		t.Errorf("api builds from %q, which has no Dockerfile: %v", api.Build.Context, err)
	}
	for _, name := range catalystServices(cf) {
		s := cf.Services[name]
		if s.Image != api.Image || s.PullPolicy != "build" {
			t.Errorf("%s: image %q pull_policy %q; want the api's locally built image (%q) and pull_policy build, never a registry image of that name", name, s.Image, s.PullPolicy, api.Image)
		}
		for _, dep := range []string{"mongodb", "nats"} {
			if s.DependsOn[dep].Condition != "service_healthy" {
				t.Errorf("%s: depends_on %s: %q, want service_healthy", name, dep, s.DependsOn[dep].Condition)
			}
		}
		if !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
			t.Errorf("%s: security_opt lacks no-new-privileges:true", name)
		}
		if s.Environment["CATALYST_DATA_DIR"] != "/data" || !hasVolumeAt(s.Volumes, "/data") {
			t.Errorf("%s: CATALYST_DATA_DIR %q, volumes %v: want /data on a volume", name, s.Environment["CATALYST_DATA_DIR"], s.Volumes)
		}
		for _, key := range []string{"MONGO_URL", "NATS_URL"} {
			if s.Environment[key] == "" {
				t.Errorf("%s: no %s: API nodes and workers meet only in MongoDB and NATS", name, key)
			}
		}
	}

	if got := api.Command; !slices.Equal(got, []string{"serve", "--workers", "0"}) {
		t.Errorf("api command %q, want serve --workers 0", got)
	}
	if api.Environment["CATALYST_BIND"] != "0.0.0.0" {
		t.Errorf("api CATALYST_BIND %q: inside a container loopback cannot be published", api.Environment["CATALYST_BIND"])
	}
	if api.Healthcheck != nil && api.Healthcheck.Disable {
		t.Error("api: health check disabled; the image's `catalyst health` is meant for it")
	}
	for _, name := range []string{"worker-1", "worker-2"} {
		w := cf.Services[name]
		if !slices.Equal(w.Command, []string{"worker"}) {
			t.Errorf("%s command %q, want [worker]", name, w.Command)
		}
		if p, _ := w.ports(t); len(p) > 0 {
			t.Errorf("%s publishes %v; a worker has no HTTP API", name, p)
		}
		// The image's HEALTHCHECK asks an HTTP API a worker does not have.
		if w.Healthcheck == nil || !w.Healthcheck.Disable {
			t.Errorf("%s: the image's HTTP health check would mark it unhealthy for ever; disable it", name)
		}
	}

	// Workers share nothing but MongoDB and NATS: no volume is mounted by two
	// Catalyst services, and every named volume is declared.
	owner := map[string]string{}
	for name, s := range cf.Services {
		for _, v := range s.Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("%s mounts %s, which is not in the repository: %v", name, src, err)
				}
				continue
			}
			if _, ok := cf.Volumes[src]; !ok {
				t.Errorf("%s: volume %q is not declared under volumes:", name, src)
			}
			if prev, ok := owner[src]; ok {
				t.Errorf("volume %q is mounted by %s and %s; workers and API nodes must share no disk", src, prev, name)
			}
			owner[src] = name
		}
	}
}

func hasVolumeAt(vols []string, target string) bool {
	for _, v := range vols {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == target && !strings.HasPrefix(parts[0], ".") && !strings.HasPrefix(parts[0], "/") {
			return true
		}
	}
	return false
}

func TestComposeMongoRequiresAuthentication(t *testing.T) {
	cf, _ := loadCompose(t, "docker-compose.yml")
	m := cf.Services["mongodb"]
	if !regexp.MustCompile(`^mongo:7(\.|$)`).MatchString(m.Image) {
		t.Errorf("mongodb image %q, want mongo:7", m.Image)
	}
	if m.Environment["MONGO_INITDB_ROOT_USERNAME"] == "" {
		t.Error("mongodb: no MONGO_INITDB_ROOT_USERNAME: without a root user mongod runs without authentication")
	}
	if !strings.Contains(m.Environment["MONGO_INITDB_ROOT_PASSWORD"], "${MONGO_ROOT_PASSWORD:?") {
		t.Errorf("mongodb password %q: must be required from the environment (${MONGO_ROOT_PASSWORD:?...}), never defaulted", m.Environment["MONGO_INITDB_ROOT_PASSWORD"])
	}
	if !hasVolumeAt(m.Volumes, "/data/db") {
		t.Errorf("mongodb volumes %v: want a named volume at /data/db", m.Volumes)
	}
	if m.Healthcheck == nil || m.Healthcheck.Disable || !slices.Contains(m.Healthcheck.Test, "mongosh") {
		t.Error("mongodb: want a mongosh health check (API and workers wait for service_healthy)")
	}
	if p, _ := m.ports(t); len(p) > 0 {
		for _, port := range p {
			if !strings.HasPrefix(port, "127.0.0.1:") {
				t.Errorf("mongodb publishes %q beyond loopback", port)
			}
		}
	}

	// The URL the Catalyst services get opens this server with its root user.
	env := exampleEnv(t)
	user := resolve(t, "mongodb user", m.Environment["MONGO_INITDB_ROOT_USERNAME"], env)
	pass := resolve(t, "mongodb password", m.Environment["MONGO_INITDB_ROOT_PASSWORD"], env)
	for _, name := range catalystServices(cf) {
		raw := resolve(t, name+" MONGO_URL", cf.Services[name].Environment["MONGO_URL"], env)
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%s MONGO_URL %q: %v", name, raw, err)
		}
		p, _ := u.User.Password()
		if u.Scheme != "mongodb" || u.Hostname() != "mongodb" || u.Port() != "27017" || u.User.Username() != user || p != pass {
			t.Errorf("%s MONGO_URL %q does not reach the mongodb service as %s with its password", name, raw, user)
		}
		if u.Query().Get("authSource") != "admin" {
			t.Errorf("%s MONGO_URL %q: the root user lives in admin; want authSource=admin", name, raw)
		}
	}
	// No password, no start: compose refuses instead of running an open database.
	delete(env, "MONGO_ROOT_PASSWORD")
	if _, err := interpolate(m.Environment["MONGO_INITDB_ROOT_PASSWORD"], env); err == nil {
		t.Error("mongodb starts without MONGO_ROOT_PASSWORD")
	}
}

func TestComposeNatsHasJetStreamAndAToken(t *testing.T) {
	cf, _ := loadCompose(t, "docker-compose.yml")
	n := cf.Services["nats"]
	if !strings.HasPrefix(n.Image, "nats:2") {
		t.Errorf("nats image %q, want nats:2", n.Image)
	}
	js := slices.Contains(n.Command, "-js") || slices.Contains(n.Command, "--jetstream")
	storeDir := ""
	confPath := ""
	for i, a := range n.Command {
		if i+1 < len(n.Command) && (a == "-sd" || a == "--store_dir") {
			storeDir = n.Command[i+1]
		}
		if i+1 < len(n.Command) && (a == "-c" || a == "--config") {
			confPath = n.Command[i+1]
		}
	}
	if !js || storeDir == "" {
		t.Fatalf("nats command %q: want JetStream (-js) with a store directory (-sd DIR)", n.Command)
	}
	if !hasVolumeAt(n.Volumes, storeDir) {
		t.Errorf("nats: the JetStream store %s is not on a named volume (%v): tasks in the queue would not survive a restart", storeDir, n.Volumes)
	}
	if n.Healthcheck == nil || n.Healthcheck.Disable || !strings.Contains(strings.Join(n.Healthcheck.Test, " "), "/healthz") {
		t.Error("nats: want a /healthz health check")
	}

	// The token: the server reads it from its environment through nats.conf.
	mounted := ""
	for _, v := range n.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) == 3 && parts[1] == confPath {
			if parts[2] != "ro" {
				t.Errorf("nats.conf mounted %q, want read-only", v)
			}
			mounted = parts[0]
		}
	}
	if confPath == "" || mounted == "" {
		t.Fatalf("nats: want -c CONF with CONF mounted from the repository (command %q, volumes %v)", n.Command, n.Volumes)
	}
	conf := string(read(t, mounted))
	if !regexp.MustCompile(`(?s)authorization\s*\{[^}]*token:\s*\$NATS_TOKEN\b`).MatchString(conf) {
		t.Errorf("%s: want authorization { token: $NATS_TOKEN }: code a model wrote can reach an unauthenticated NATS", mounted)
	}
	port := regexp.MustCompile(`(?m)^port:\s*(\d+)`).FindStringSubmatch(conf)
	if port == nil {
		t.Fatalf("%s: no port", mounted)
	}
	if !strings.Contains(n.Environment["NATS_TOKEN"], "${NATS_TOKEN:?") {
		t.Errorf("nats NATS_TOKEN %q: must be required from the environment", n.Environment["NATS_TOKEN"])
	}
	env := exampleEnv(t)
	token := resolve(t, "nats token", n.Environment["NATS_TOKEN"], env)
	for _, name := range catalystServices(cf) {
		raw := resolve(t, name+" NATS_URL", cf.Services[name].Environment["NATS_URL"], env)
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%s NATS_URL %q: %v", name, raw, err)
		}
		if u.Scheme != "nats" || u.Hostname() != "nats" || u.Port() != port[1] || u.User.Username() != token {
			t.Errorf("%s NATS_URL %q does not reach the nats service (port %s) with its token", name, raw, port[1])
		}
	}
	delete(env, "NATS_TOKEN")
	if _, err := interpolate(n.Environment["NATS_TOKEN"], env); err == nil {
		t.Error("nats starts without NATS_TOKEN")
	}
}

func TestComposeAPIPorts(t *testing.T) {
	cf, _ := loadCompose(t, "docker-compose.yml")
	api := cf.Services["api"]
	ports, _ := api.ports(t)
	for _, tc := range []struct {
		backend, preview string
	}{{"", ""}, {"9001", "9002"}} {
		env := exampleEnv(t)
		delete(env, "BACKEND_PORT")
		delete(env, "CATALYST_PREVIEW_PORT")
		if tc.backend != "" {
			env["BACKEND_PORT"], env["CATALYST_PREVIEW_PORT"] = tc.backend, tc.preview
		}
		wantAPI, wantPreview := "8001", "8002"
		if tc.backend != "" {
			wantAPI, wantPreview = tc.backend, tc.preview
		}
		var got []string
		for _, p := range ports {
			got = append(got, resolve(t, "api ports", p, env))
		}
		// Loopback only (no authentication yet; a TLS proxy serves others),
		// and the same port inside and out so that preview links and
		// `catalyst health` agree with what is published.
		want := []string{"127.0.0.1:" + wantAPI + ":" + wantAPI, "127.0.0.1:" + wantPreview + ":" + wantPreview}
		if !slices.Equal(got, want) {
			t.Errorf("BACKEND_PORT=%q: api publishes %v, want %v", tc.backend, got, want)
		}
		if v := resolve(t, "api BACKEND_PORT", api.Environment["BACKEND_PORT"], env); v != wantAPI {
			t.Errorf("BACKEND_PORT=%q: the api listens on %q inside, publishes %s", tc.backend, v, wantAPI)
		}
		if v := resolve(t, "api CATALYST_PREVIEW_PORT", api.Environment["CATALYST_PREVIEW_PORT"], env); v != wantPreview {
			t.Errorf("CATALYST_PREVIEW_PORT=%q: previews on %q inside, published %s", tc.preview, v, wantPreview)
		}
		if v := resolve(t, "api CATALYST_PUBLIC_URL", api.Environment["CATALYST_PUBLIC_URL"], env); v != "http://localhost:"+wantAPI {
			t.Errorf("CATALYST_PUBLIC_URL resolves to %q, want http://localhost:%s", v, wantAPI)
		}
	}
}

// Every variable the compose files name is one Catalyst reads (or one of
// the few compose-only ones), and .env.example lists each.
func TestComposeVariablesExist(t *testing.T) {
	example := map[string]bool{}
	for _, l := range loadEnvExample(t) {
		example[l.key] = true
	}
	base, _ := loadCompose(t, "docker-compose.yml")
	for _, file := range []string{"docker-compose.yml", "docker-compose.prod.yml"} {
		cf, doc := loadCompose(t, file)
		for v := range referencedVars(doc) {
			if !catalystVar(v) {
				if _, ok := composeOnly[v]; !ok {
					t.Errorf("%s uses ${%s}, which Catalyst's configuration does not read (internal/config Variables)", file, v)
				}
			}
			if !example[v] {
				t.Errorf("%s uses ${%s}, which .env.example does not list", file, v)
			}
		}
		for _, name := range catalystServices(base) {
			for key := range cf.Services[name].Environment {
				if !catalystVar(key) {
					t.Errorf("%s: %s sets %s, which Catalyst's configuration does not read", file, name, key)
				}
			}
		}
	}
}

func TestComposeProductionOverlay(t *testing.T) {
	base, _ := loadCompose(t, "docker-compose.yml")
	prod, _ := loadCompose(t, "docker-compose.prod.yml")
	for name := range prod.Services {
		if _, ok := base.Services[name]; !ok {
			// An overlay's misspelt service is a new, half-defined service.
			t.Errorf("docker-compose.prod.yml: service %q is not in docker-compose.yml", name)
		}
	}
	for name := range base.Services {
		p, ok := prod.Services[name]
		if !ok {
			t.Errorf("docker-compose.prod.yml leaves %s without restart policy, limits and log rotation", name)
			continue
		}
		if p.Restart != "unless-stopped" && p.Restart != "always" {
			t.Errorf("prod %s: restart %q", name, p.Restart)
		}
		if p.Logging == nil || p.Logging.Driver != "json-file" || p.Logging.Options["max-size"] == "" || p.Logging.Options["max-file"] == "" {
			t.Errorf("prod %s: want json-file logs rotated by max-size and max-file", name)
		}
		if p.Deploy == nil || p.Deploy.Resources.Limits.Memory == "" || p.Deploy.Resources.Limits.CPUs == "" {
			t.Errorf("prod %s: want memory and CPU limits", name)
		}
	}
	for _, name := range []string{"mongodb", "nats"} {
		ports, reset := prod.Services[name].ports(t)
		if !reset || len(ports) != 0 {
			t.Errorf("prod %s: ports must be `!reset []`: overlay ports are appended to the base file's, so MongoDB and NATS would stay published", name)
		}
	}
	for _, name := range catalystServices(base) {
		if got := prod.Services[name].Environment["ENVIRONMENT"]; got != "production" {
			t.Errorf("prod %s: ENVIRONMENT %q", name, got)
		}
	}
	for _, name := range []string{"worker-1", "worker-2"} {
		if d := prod.Services[name].Deploy; d == nil || d.Resources.Limits.Pids == 0 {
			t.Errorf("prod %s: no pids limit; generated tests run there", name)
		}
	}
	tok := prod.Services["api"].Environment["CATALYST_API_TOKEN"]
	if !strings.Contains(tok, "${CATALYST_API_TOKEN:?") {
		t.Errorf("prod api CATALYST_API_TOKEN %q: must be required, never defaulted", tok)
	}
	env := exampleEnv(t)
	if _, err := interpolate(tok, env); err == nil {
		t.Error("prod api starts without CATALYST_API_TOKEN (.env.example leaves it empty)")
	}
}

func TestEnvExample(t *testing.T) {
	lines := loadEnvExample(t)
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l.key] {
			t.Errorf(".env.example sets %s twice", l.key)
		}
		seen[l.key] = true
		if _, ok := composeOnly[l.key]; !ok && !catalystVar(l.key) {
			t.Errorf(".env.example: %s is not a variable Catalyst reads", l.key)
		}
		if secretVar(l.key) && l.value != "" {
			t.Errorf(".env.example: secret %s has a value; secrets stay empty in the example", l.key)
		}
		if l.key == "CATALYST_DATA_DIR" {
			t.Error(".env.example sets CATALYST_DATA_DIR: compose and the systemd units give each process its own, and an env file would override the units'")
		}
	}
	// The example is a valid configuration as it stands.
	empty := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(empty, []byte("{}\n"), 0o600)
	if _, err := config.Load(config.Sources{YAMLFile: empty, DotEnvFile: filepath.Join(root, ".env.example"), Environ: func() []string { return nil }}); err != nil {
		t.Errorf(".env.example does not load: %v", err)
	}
}
