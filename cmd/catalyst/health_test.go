package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// health runs `catalyst health` as Docker's HEALTHCHECK does: the real
// binary, configuration from the environment, judged by its exit status.
func health(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"health"}, args...)...)
	cmd.Dir = t.TempDir() // no config.yaml or .env of the repository
	cmd.Env = append([]string{"CATALYST_OLLAMA_URL=off"}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("catalyst health: %v", err)
		}
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

func portOf(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

func TestHealthAgainstARealServer(t *testing.T) {
	s := startServer(t, t.TempDir())
	env := []string{"BACKEND_PORT=" + portOf(t, s.URL), "CATALYST_BIND=127.0.0.1"}
	code, out, errs := health(t, env)
	if code != 0 || !strings.Contains(out, "200") {
		t.Fatalf("healthy server: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("server exit %d", code)
	}
	code, _, errs = health(t, env)
	if code != 1 || !strings.Contains(errs, "/api/health") {
		t.Fatalf("stopped server: exit %d, stderr %q", code, errs)
	}
}

func TestHealthWildcardBindIsAskedOnLoopback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/health" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"status":"healthy"}`))
	}))
	defer srv.Close()
	port := portOf(t, srv.URL)
	code, out, errs := health(t, []string{"BACKEND_PORT=" + port, "CATALYST_BIND=0.0.0.0"})
	if code != 0 || !strings.Contains(out, "http://127.0.0.1:"+port+"/api/health") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestHealthUnhealthyAnswers(t *testing.T) {
	// The body is the server's, but a health check's output lands in
	// `docker inspect` and terminals: no control sequences, bounded length.
	hostile := "store down\x1b[2J\x1b]0;owned\x07" + strings.Repeat("x", 5000)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, hostile, http.StatusServiceUnavailable)
	}))
	defer down.Close()
	code, _, errs := health(t, nil, "--addr", "127.0.0.1:"+portOf(t, down.URL))
	if code != 1 || !strings.Contains(errs, "503") || !strings.Contains(errs, "store down") {
		t.Fatalf("503: exit %d, stderr %q", code, errs)
	}
	if strings.ContainsAny(strings.TrimSuffix(errs, "\n"), "\x1b\x07\n") || len(errs) > 600 {
		t.Fatalf("503 body reached the output raw (%d bytes): %q", len(errs), errs)
	}

	// A redirect is not health, even towards a server that answers 200.
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	moved := httptest.NewServer(http.RedirectHandler(ok.URL+"/api/health", http.StatusFound))
	defer moved.Close()
	code, _, errs = health(t, nil, "--addr", "127.0.0.1:"+portOf(t, moved.URL))
	if code != 1 || !strings.Contains(errs, "302") {
		t.Fatalf("redirect: exit %d, stderr %q", code, errs)
	}
}

func TestHealthGivesUpOnASilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn // accepted, never answered
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	start := time.Now()
	code, _, errs := health(t, nil, "--addr", ln.Addr().String(), "--timeout", "300ms")
	if code != 1 || !strings.Contains(errs, "no answer within 300ms") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v despite --timeout 300ms", d)
	}
}

func TestHealthRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"--addr", "no-port"}, "not host:port"},
		{nil, []string{"--timeout", "0s"}, "--timeout must be positive"},
		{nil, []string{"extra"}, `unexpected argument "extra"`},
		{[]string{"BACKEND_PORT=eighty"}, nil, "BACKEND_PORT"},
	} {
		code, _, errs := health(t, tc.env, tc.args...)
		if code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v %v: exit %d, stderr %q; want 1 and %q", tc.env, tc.args, code, errs, tc.want)
		}
	}
}
