package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/catalyst/catalyst/internal/pipeline"
)

// queueTimeout bounds creating the work queue's stream and consumer at start.
const queueTimeout = 15 * time.Second

// openQueue makes (or updates) the JetStream work queue; any process may
// start first.
func openQueue(ctx context.Context, nc *nats.Conn, leaseTTL time.Duration, logger *slog.Logger) (*pipeline.Queue, error) {
	ctx, cancel := context.WithTimeout(ctx, queueTimeout)
	defer cancel()
	q, err := pipeline.OpenQueue(ctx, pipeline.QueueOptions{Conn: nc, LeaseTTL: leaseTTL, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("NATS JetStream work queue (is JetStream enabled: nats-server -js?): %w", err)
	}
	return q, nil
}

// StartWorker runs tasks from the work queue in this process, at most
// MAX_CONCURRENT_TASKS at once (`catalyst worker`, `serve --workers N`).
func (a *App) StartWorker(ctx context.Context) error {
	if a.Queue == nil {
		return errors.New("a worker needs NATS_URL (and MONGO_URL): it takes tasks from the NATS JetStream work queue")
	}
	// No sweep of the store: the queue is the trigger, and its redelivery
	// brings back the task of a worker that died.
	a.Executor.SetRecover(false)
	if err := a.Executor.Start(ctx); err != nil {
		return err
	}
	a.Worker = pipeline.NewWorker(pipeline.WorkerOptions{Queue: a.Queue, Executor: a.Executor, Store: a.Store, Logger: a.Logger})
	return a.Worker.Start(ctx)
}
