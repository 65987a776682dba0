package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/catalyst/catalyst/internal/api"
	"github.com/catalyst/catalyst/internal/app"
	"github.com/catalyst/catalyst/internal/config"
)

// shutdownGrace bounds how long in-flight requests may take after SIGTERM.
const shutdownGrace = 30 * time.Second

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := sourceFlags(fs)
	printConfig := fs.Bool("print-config", false, "print the effective configuration (secrets redacted) and exit")
	workers := fs.Int("workers", -1, "tasks this node runs at once, -1: MAX_CONCURRENT_TASKS; 0: API only, tasks run on catalyst worker processes (needs NATS_URL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *printConfig {
		rows, err := config.Redacted(*src)
		if err != nil {
			return err
		}
		for _, r := range rows {
			fmt.Fprintf(stdout, "%s=%s\n", r[0], r[1])
		}
		return nil
	}
	cfg, err := load(*src)
	if err != nil {
		return err
	}
	if err := applyWorkers(cfg, *workers); err != nil {
		return err
	}
	// The token first: the logger and the event recorder scrub every secret
	// of the configuration, this one included.
	tokenFromFile := cfg.APIToken == ""
	tokenCreated, err := app.EnsureAPIToken(cfg)
	if err != nil {
		return fmt.Errorf("API token: %w", err)
	}
	logger := newLogger(stderr, cfg.LogLevel, cfg)

	// Listen first: with BACKEND_PORT=0 (or CATALYST_PREVIEW_PORT=0) the real
	// ports are known only now, and links must carry them.
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.BindAddress, strconv.Itoa(cfg.BackendPort)))
	if err != nil {
		return fmt.Errorf("listen: %w (is another server on port %d? set BACKEND_PORT)", err, cfg.BackendPort)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if cfg.BackendPort == 0 && cfg.PublicURL == "http://localhost:0" {
		cfg.PublicURL = fmt.Sprintf("http://localhost:%d", port)
	}
	// Generated apps get their own origin: their scripts must never be
	// same-origin with the dashboard.
	pln, err := net.Listen("tcp", net.JoinHostPort(cfg.BindAddress, strconv.Itoa(cfg.PreviewPort)))
	if err != nil {
		ln.Close()
		return fmt.Errorf("listen for previews: %w (is another server on port %d? set CATALYST_PREVIEW_PORT)", err, cfg.PreviewPort)
	}
	previewPort := pln.Addr().(*net.TCPAddr).Port
	if strings.HasSuffix(cfg.PreviewURL, ":0") {
		cfg.PreviewURL = strings.TrimSuffix(cfg.PreviewURL, "0") + strconv.Itoa(previewPort)
	}
	closeListeners := func() { ln.Close(); pln.Close() }

	a, err := app.New(ctx, cfg, logger)
	if err != nil {
		closeListeners()
		return err
	}
	handler, err := a.Handler()
	var preview http.Handler
	if err == nil {
		preview, err = a.PreviewHandler()
	}
	if err != nil {
		closeListeners()
		a.Close(context.Background())
		return err
	}

	if ip := net.ParseIP(cfg.BindAddress); ip == nil || !ip.IsLoopback() {
		logger.Warn("listening beyond loopback: requests need the API token, but plain HTTP carries it in clear; put TLS in front (and set CATALYST_PUBLIC_URL to its https:// address)",
			"bind", cfg.BindAddress)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
	}
	previewSrv := &http.Server{Handler: preview, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(ln) }()
	go func() { serveErr <- previewSrv.Serve(pln) }()

	if *workers == 0 {
		logger.Info("API node only (--workers 0): tasks run on catalyst worker processes")
	} else if err := a.Start(ctx, true); err != nil {
		srv.Close()
		previewSrv.Close()
		a.Close(context.Background())
		return fmt.Errorf("starting executor: %w", err)
	}

	url := fmt.Sprintf("http://%s", net.JoinHostPort(displayHost(cfg.BindAddress), strconv.Itoa(port)))
	fmt.Fprintf(stdout, "Catalyst %s listening on %s\n", app.Version, url)
	fmt.Fprintf(stdout, "  dashboard %s/   API %s/api/   docs %s/docs\n", url, url, url)
	fmt.Fprintf(stdout, "  previews  %s/apps/{task_id}/ (their own origin)\n", cfg.PreviewURL)
	fmt.Fprintf(stdout, "  store: %s\n  LLM:   %s\n", a.StoreKind, a.Models.Describe("").String())
	// The sign-in link goes to stdout only, never to the log (stderr).
	where := "CATALYST_API_TOKEN"
	if tokenFromFile {
		where = filepath.Join(cfg.DataDir, api.TokenFile)
		if tokenCreated {
			where += ", created now"
		}
	}
	fmt.Fprintf(stdout, "  sign in: %s/?token=%s\n", strings.TrimRight(cfg.PublicURL, "/"), cfg.APIToken)
	fmt.Fprintf(stdout, "  scripts: Authorization: Bearer <token> (token from %s)\n", where)

	select {
	case err := <-serveErr:
		srv.Close()
		previewSrv.Close()
		a.Close(context.Background())
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: no new connections; finishing in-flight requests")
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err = errors.Join(srv.Shutdown(shutCtx), previewSrv.Shutdown(shutCtx))
	if closeErr := a.Close(shutCtx); closeErr != nil {
		err = errors.Join(err, closeErr)
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	fmt.Fprintln(stdout, "Catalyst stopped.")
	return nil
}

// displayHost turns a wildcard bind into a host a browser can open.
func displayHost(bind string) string {
	switch bind {
	case "", "0.0.0.0", "::", "127.0.0.1":
		return "localhost"
	}
	return bind
}
