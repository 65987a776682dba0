package app

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/catalyst/catalyst/internal/events/natsbus"
	"github.com/catalyst/catalyst/internal/pipeline"
)

// connectTimeout bounds the first connection to NATS at start.
const connectTimeout = 15 * time.Second

// openNATS connects to NATS_URL, makes the event bus and the work queue.
// The connection reconnects for ever: losing NATS pauses the intake of new
// tasks and the live event stream (followers poll the store meanwhile),
// nothing more.
func (a *App) openNATS(ctx context.Context) error {
	cfg := a.Config
	log := a.Logger.With("component", "nats")
	nc, err := nats.Connect(cfg.NATSURL,
		nats.Name("catalyst "+Version),
		nats.Timeout(connectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectBufSize(8<<20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("NATS disconnected; task intake paused, reconnecting", "err", scrub(err, cfg.NATSURL))
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("NATS reconnected; task intake resumed") }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("NATS", "err", scrub(err, cfg.NATSURL))
		}),
	)
	if err != nil {
		return fmt.Errorf("connecting to NATS (NATS_URL): %s", scrub(err, cfg.NATSURL))
	}
	qctx, cancel := context.WithTimeout(ctx, connectTimeout)
	q, err := pipeline.OpenQueue(qctx, pipeline.QueueOptions{Conn: nc, LeaseTTL: cfg.LeaseTTL, Logger: a.Logger})
	cancel()
	if err != nil {
		nc.Close()
		return fmt.Errorf("NATS JetStream work queue (is JetStream enabled, nats-server -js?): %s", scrub(err, cfg.NATSURL))
	}
	a.NATS, a.Queue = nc, q
	a.Broker = natsbus.New(nc, natsbus.Options{Logger: a.Logger})
	return nil
}

// scrub removes NATS_URL and its credentials from an error message: the
// URL may carry a token, and parse errors quote it.
func scrub(err error, raw string) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if raw == "" {
		return msg
	}
	secrets := []string{raw}
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		secrets = append(secrets, u.User.String(), u.User.Username())
		if p, ok := u.User.Password(); ok {
			secrets = append(secrets, p)
		}
	}
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "<redacted>")
		}
	}
	return msg
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

// closeNATS stops the worker (its tasks go back to the queue at once), the
// bus and the connection, in that order: the worker's last naks and the
// bus's last events still need the connection.
func (a *App) closeNATS(ctx context.Context) error {
	var errs []error
	if a.Worker != nil {
		errs = append(errs, a.Worker.Stop(ctx))
	}
	if a.Executor != nil {
		errs = append(errs, a.Executor.Shutdown(ctx))
	}
	if b, ok := a.Broker.(*natsbus.Bus); ok {
		b.Close()
	}
	if a.NATS != nil {
		_ = a.NATS.FlushTimeout(2 * time.Second)
		a.NATS.Close()
	}
	return errors.Join(errs...)
}

// natsCheck is the NATS part of /api/health; nil when not scaled out.
func (a *App) natsCheck() func(context.Context) error {
	if a.Queue == nil {
		return nil
	}
	return a.Queue.Check
}
