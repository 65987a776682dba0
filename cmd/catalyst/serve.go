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
	"time"

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
	logger := newLogger(stderr, cfg.LogLevel, cfg)

	// Listen first: with BACKEND_PORT=0 the real port is known only now, and
	// preview links must carry it.
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.BindAddress, strconv.Itoa(cfg.BackendPort)))
	if err != nil {
		return fmt.Errorf("listen: %w (is another server on port %d? set BACKEND_PORT)", err, cfg.BackendPort)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if cfg.BackendPort == 0 && cfg.PublicURL == "http://localhost:0" {
		cfg.PublicURL = fmt.Sprintf("http://localhost:%d", port)
	}

	a, err := app.New(ctx, cfg, logger)
	if err != nil {
		ln.Close()
		return err
	}
	handler, err := a.Handler()
	if err != nil {
		ln.Close()
		a.Close(context.Background())
		return err
	}

	if ip := net.ParseIP(cfg.BindAddress); ip == nil || !ip.IsLoopback() {
		logger.Warn("listening beyond loopback: the API has no authentication yet; anyone who can reach this address can use it",
			"bind", cfg.BindAddress)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	if err := a.Start(ctx, true); err != nil {
		srv.Close()
		a.Close(context.Background())
		return fmt.Errorf("starting executor: %w", err)
	}

	url := fmt.Sprintf("http://%s", net.JoinHostPort(displayHost(cfg.BindAddress), strconv.Itoa(port)))
	fmt.Fprintf(stdout, "Catalyst %s listening on %s\n", app.Version, url)
	fmt.Fprintf(stdout, "  dashboard %s/   API %s/api/   docs %s/docs\n", url, url, url)
	fmt.Fprintf(stdout, "  store: %s\n  LLM:   %s\n", a.StoreKind, a.Models.Describe("").String())

	select {
	case err := <-serveErr:
		a.Close(context.Background())
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: no new connections; finishing in-flight requests")
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(shutCtx)
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
