package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// cmdHealth asks a running API node whether it is healthy, for Docker's
// HEALTHCHECK and systemd: the runtime image is static and has no curl.
// Exit 0 means GET /api/health answered 200; anything else is an error
// (exit 1), never 2, which Docker reserves.
func cmdHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := sourceFlags(fs)
	addr := fs.String("addr", "", "host:port to ask (default: loopback and BACKEND_PORT of the configuration)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("health: unexpected argument %q", fs.Arg(0))
	}
	if *timeout <= 0 {
		return fmt.Errorf("health: --timeout must be positive, not %v", *timeout)
	}
	target := *addr
	if target == "" {
		cfg, err := load(*src)
		if err != nil {
			return err
		}
		target = net.JoinHostPort(dialHost(cfg.BindAddress), strconv.Itoa(cfg.BackendPort))
	} else if _, _, err := net.SplitHostPort(target); err != nil {
		return fmt.Errorf("health: --addr %q is not host:port: %w", target, err)
	}
	url := "http://" + target + "/api/health"

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	client := &http.Client{
		// A proxy from the environment must not answer for our own server,
		// and a redirect is not a healthy answer.
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("health: %s: no answer within %v", url, *timeout)
		}
		return fmt.Errorf("health: %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %s: %s", url, resp.Status, printable(body))
	}
	fmt.Fprintf(stdout, "healthy: %s answered %s\n", url, resp.Status)
	return nil
}

// dialHost is where a server listening on bind can be reached from this
// machine: a wildcard listener answers on loopback.
func dialHost(bind string) string {
	switch bind {
	case "", "0.0.0.0":
		return "127.0.0.1"
	case "::", "[::]":
		return "::1"
	}
	return strings.Trim(bind, "[]")
}

// printable keeps a reason short and on one line: Docker stores the output
// of every health check, and a terminal must not get control sequences.
func printable(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(string(b), "?"))
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "..."
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}
