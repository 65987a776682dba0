package deploy

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// binaryPath is where the image and the systemd units install catalyst.
const binaryPath = "/usr/local/bin/catalyst"

func flagValue(args, flag string) string {
	f := strings.Fields(args)
	for i, a := range f {
		if a == flag && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

func TestDockerfile(t *testing.T) {
	stages := dockerfile(t)
	if len(stages) != 2 {
		t.Fatalf("Dockerfile has %d stages, want 2 (builder, runtime)", len(stages))
	}
	build, runtime := stages[0], stages[1]

	// Builder: the Go of go.mod, a static binary of ./cmd/catalyst.
	from := strings.Fields(build[0].args)
	if len(from) != 3 || !strings.EqualFold(from[1], "AS") {
		t.Fatalf("builder FROM %q: want IMAGE AS NAME", build[0].args)
	}
	builder := from[2]
	goMod := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(read(t, "go.mod")))
	if !regexp.MustCompile(`^golang:` + regexp.QuoteMeta(goMod[1]) + `(-|$)`).MatchString(from[0]) {
		t.Errorf("builder image %q: want golang:%s, the Go of go.mod", from[0], goMod[1])
	}
	out := ""
	for _, in := range build {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/catalyst"} {
				if !strings.Contains(in.args, want) {
					t.Errorf("builder `go build` lacks %s: %s", want, in.args)
				}
			}
			out = flagValue(in.args, "-o")
		}
	}
	if out == "" {
		t.Fatal("builder: no `go build -o PATH ./cmd/catalyst`")
	}

	// Runtime: copies exactly that binary to binaryPath.
	var copied, user, healthcheck, entrypoint, cmd string
	var env, expose, volume, installs, runs []string
	goCopied := false
	for _, in := range runtime {
		switch in.cmd {
		case "COPY":
			f := strings.Fields(in.args)
			if len(f) == 3 && f[0] == "--from="+builder {
				if f[1] == out {
					copied = f[2]
				}
				if f[1] == "/usr/local/go" {
					goCopied = true
				}
			}
		case "USER":
			user = in.args
		case "HEALTHCHECK":
			healthcheck = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "CMD":
			cmd = in.args
		case "ENV":
			env = append(env, strings.Fields(in.args)...)
		case "EXPOSE":
			expose = append(expose, strings.Fields(in.args)...)
		case "VOLUME":
			volume = append(volume, execForm(t, "VOLUME", in.args)...)
		case "RUN":
			runs = append(runs, in.args)
			if strings.Contains(in.args, "apt-get install") {
				installs = append(installs, strings.Fields(in.args)...)
			}
		}
	}
	if copied != binaryPath {
		t.Errorf("runtime copies the builder's %s to %q, want %s", out, copied, binaryPath)
	}
	for _, pkg := range []string{"nodejs", "python3", "python3-pytest", "git", "util-linux", "iproute2", "tini"} {
		if !slices.Contains(installs, pkg) {
			t.Errorf("runtime image lacks %s (the tester's toolchains and the sandbox's tools)", pkg)
		}
	}
	if !goCopied {
		t.Errorf("runtime image lacks Go: want COPY --from=%s /usr/local/go /usr/local/go (the sandbox looks there)", builder)
	}

	// Non-root, and the user exists.
	u, _, _ := strings.Cut(user, ":")
	if u == "" || u == "root" || u == "0" {
		t.Fatalf("runtime USER %q: want a non-root user", user)
	}
	if uid, err := strconv.Atoi(u); err == nil {
		created := false
		for _, r := range runs {
			if strings.Contains(r, "useradd") && strings.Contains(r, "--uid "+strconv.Itoa(uid)) {
				created = true
			}
		}
		if !created {
			t.Errorf("USER %d is not created by a useradd --uid %d", uid, uid)
		}
	}

	hc := strings.Fields(healthcheck)
	i := slices.Index(hc, "CMD")
	if i < 0 {
		t.Fatalf("HEALTHCHECK %q: want CMD [...]", healthcheck)
	}
	argv := execForm(t, "HEALTHCHECK", strings.Join(hc[i+1:], " "))
	if len(argv) < 2 || argv[0] != binaryPath || argv[1] != "health" {
		t.Errorf("HEALTHCHECK runs %q, want %s health", argv, binaryPath)
	}
	if ep := execForm(t, "ENTRYPOINT", entrypoint); ep[len(ep)-1] != binaryPath {
		t.Errorf("ENTRYPOINT %q does not end with %s", ep, binaryPath)
	}
	if c := execForm(t, "CMD", cmd); !slices.Equal(c, []string{"serve"}) {
		t.Errorf("CMD %q, want [serve]", c)
	}
	for _, p := range []string{"8001", "8002"} {
		if !slices.Contains(expose, p) {
			t.Errorf("EXPOSE %v lacks %s", expose, p)
		}
	}
	if !slices.Contains(volume, "/data") || !slices.Contains(env, "CATALYST_DATA_DIR=/data") {
		t.Errorf("want VOLUME /data and CATALYST_DATA_DIR=/data (VOLUME %v, ENV %v)", volume, env)
	}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k != "PATH" && !catalystVar(k) {
			t.Errorf("Dockerfile ENV %s is not a variable Catalyst reads", k)
		}
	}
}

func TestDockerignore(t *testing.T) {
	rules := dockerignore(t)
	// What the build needs: the module, the sources and the committed
	// dashboard that go:embed takes in.
	for _, p := range []string{"go.mod", "go.sum", "cmd/catalyst/main.go", "internal/config/load.go", "web/embed.go", "web/dist/index.html"} {
		if ignored(rules, p) {
			t.Errorf(".dockerignore leaves %s out of the build", p)
		}
	}
	// Secrets and local state never enter an image layer.
	for _, p := range []string{".env", "backend/.env", "frontend/.env", "prod.env", "config.yaml", "data/catalyst.db", ".git/config", "web/node_modules/x/index.js"} {
		if !ignored(rules, p) {
			t.Errorf(".dockerignore sends %s into the build context", p)
		}
	}
}

func TestSystemdUnits(t *testing.T) {
	units := map[string]string{"catalyst.service": "serve", "catalyst-worker@.service": "worker"}
	for name, sub := range units {
		u := loadUnit(t, name)
		exec := strings.Fields(u.one(t, name, "Service", "ExecStart"))
		if len(exec) < 2 || exec[0] != binaryPath || exec[1] != sub {
			t.Errorf("%s: ExecStart %q, want %s %s", name, exec, binaryPath, sub)
		}
		if user := u.one(t, name, "Service", "User"); user == "" || user == "root" || user == "0" {
			t.Errorf("%s: User=%q, want an unprivileged user", name, user)
		}
		if f := strings.TrimPrefix(u.one(t, name, "Service", "EnvironmentFile"), "-"); f != "/etc/catalyst/catalyst.env" {
			t.Errorf("%s: EnvironmentFile=%q", name, f)
		}
		for key, want := range map[string]string{"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "ProtectHome": "yes"} {
			if got := u.one(t, name, "Service", key); got != want {
				t.Errorf("%s: %s=%q, want %s", name, key, got, want)
			}
		}
		if r := u.one(t, name, "Service", "Restart"); r != "on-failure" && r != "always" {
			t.Errorf("%s: Restart=%q", name, r)
		}
		// Hardening that breaks the sandbox's namespaces or cgroups: each
		// would quietly turn isolation off for generated tests.
		for _, key := range []string{"RestrictNamespaces", "PrivateUsers", "ProtectKernelTunables", "ProtectKernelLogs", "ProtectProc", "SystemCallFilter", "PrivateDevices"} {
			if v, ok := u["Service"][key]; ok {
				t.Errorf("%s: %s=%v breaks the sandbox (see the unit's comment)", name, key, v)
			}
		}
		if v := u["Service"]["ProtectControlGroups"]; len(v) > 0 && v[len(v)-1] != "no" {
			t.Errorf("%s: ProtectControlGroups=%v makes the delegated cgroup read-only", name, v)
		}
		if u.one(t, name, "Service", "Delegate") != "yes" {
			t.Errorf("%s: want Delegate=yes for per-run cgroup limits", name)
		}
		dataDir := ""
		for _, e := range u["Service"]["Environment"] {
			if v, ok := strings.CutPrefix(e, "CATALYST_DATA_DIR="); ok {
				dataDir = v
			}
		}
		if !strings.HasPrefix(dataDir, "/var/lib/") || !strings.Contains(u.one(t, name, "Service", "StateDirectory"), strings.TrimPrefix(dataDir, "/var/lib/")) {
			t.Errorf("%s: CATALYST_DATA_DIR=%q is not one of its StateDirectory= (%v)", name, dataDir, u["Service"]["StateDirectory"])
		}
		if name == "catalyst-worker@.service" && !strings.Contains(dataDir, "%i") {
			t.Errorf("%s: CATALYST_DATA_DIR=%q is the same for every instance; workers share no disk", name, dataDir)
		}
		if got := u.one(t, name, "Install", "WantedBy"); got != "multi-user.target" {
			t.Errorf("%s: WantedBy=%q", name, got)
		}
	}
}
