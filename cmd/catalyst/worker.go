package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/catalyst/catalyst/internal/app"
	"github.com/catalyst/catalyst/internal/config"
)

// cmdWorker runs tasks from the NATS JetStream work queue and nothing else:
// no HTTP API. It shares only MongoDB and NATS with the API nodes and other
// workers; its data directory is scratch space for the workspaces of the
// tasks it runs, restored from the store when it takes one over.
func cmdWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := sourceFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("worker: unexpected argument %q", fs.Arg(0))
	}
	cfg, err := load(*src)
	if err != nil {
		return err
	}
	switch {
	case cfg.NATSURL == "" && cfg.MongoURL == "":
		return errors.New("worker: set NATS_URL and MONGO_URL: a worker takes tasks from the NATS JetStream work queue and keeps them in MongoDB, shared with the API nodes (to run everything in one process, use catalyst serve)")
	case cfg.NATSURL == "":
		return errors.New("worker: set NATS_URL: a worker takes its tasks from the NATS JetStream work queue (to run everything in one process, use catalyst serve)")
	case cfg.MongoURL == "":
		return errors.New("worker: set MONGO_URL: workers and API nodes share tasks through MongoDB; the embedded SQLite file cannot be shared across machines")
	}
	logger := newLogger(stderr, cfg.LogLevel, cfg)
	a, err := app.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if err := a.StartWorker(ctx); err != nil {
		a.Close(context.Background())
		return fmt.Errorf("starting worker: %w", err)
	}
	fmt.Fprintf(stdout, "Catalyst %s worker %s: up to %d tasks at once\n", app.Version, a.Executor.Owner(), cfg.MaxConcurrentTasks)
	fmt.Fprintf(stdout, "  store: %s\n  LLM:   %s\n", a.StoreKind, a.Models.Describe("").String())

	<-ctx.Done()
	logger.Info("shutting down: returning running tasks to the queue")
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := a.Close(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	fmt.Fprintln(stdout, "Catalyst worker stopped.")
	return nil
}

// applyWorkers maps serve's --workers to the configuration: N > 0 caps the
// tasks this node runs; 0 makes it an API node, which only makes sense when
// workers elsewhere take its tasks.
func applyWorkers(cfg *config.Config, n int) error {
	switch {
	case n < -1:
		return fmt.Errorf("serve: --workers must be 0 or more, not %d", n)
	case n == 0 && cfg.NATSURL == "":
		return errors.New("serve: --workers 0 needs NATS_URL (and MONGO_URL): without the work queue no other process would run this node's tasks")
	case n > 0:
		cfg.MaxConcurrentTasks = n
	}
	return nil
}
