package app

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

const (
	// natsReconnectBuf bounds what nats.go holds for the server while
	// reconnecting; beyond it publishes fail fast (events are in the store).
	natsReconnectBuf = 8 << 20
	// natsMaxBackoff caps the wait between reconnect rounds.
	natsMaxBackoff = 10 * time.Second
	// natsCloseFlush bounds how long Close waits for NATS to take what is
	// buffered.
	natsCloseFlush = 2 * time.Second
)

// connectNATS connects to rawURL (one URL or several, comma-separated). The
// first connection must succeed, so a wrong address or credentials stop
// start-up with a clear error; after that the connection is retried for
// ever, with backoff. Nothing logged or returned carries the URL's
// credentials: only hosts.
func connectNATS(rawURL string, logger *slog.Logger) (*nats.Conn, error) {
	hosts := natsHosts(rawURL)
	host, _ := os.Hostname()
	nc, err := nats.Connect(rawURL,
		nats.Name(fmt.Sprintf("catalyst %s pid %d", host, os.Getpid())),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(natsBackoff),
		nats.ReconnectBufSize(natsReconnectBuf),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err == nil {
				return // closed on purpose
			}
			logger.Warn("NATS disconnected; reconnecting", "servers", hosts, "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("NATS reconnected", "server", nc.ConnectedAddr())
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			logger.Warn("NATS error", "subject", subject, "err", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s (NATS_URL): %w", hosts, err)
	}
	logger.Info("NATS connected", "server", nc.ConnectedAddr())
	return nc, nil
}

// natsBackoff is the wait before reconnect round attempts: doubling from a
// quarter second up to natsMaxBackoff, with jitter so that many processes
// losing one server do not come back in step.
func natsBackoff(attempts int) time.Duration {
	d := natsMaxBackoff
	if attempts < 6 {
		d = min(natsMaxBackoff, 250*time.Millisecond<<max(attempts-1, 0))
	}
	return d/2 + rand.N(d/2+1)
}

// natsHosts lists the host:port of each server in rawURL, without user,
// password or token.
func natsHosts(rawURL string) string {
	var hosts []string
	for _, part := range strings.Split(rawURL, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil || u.Host == "" {
			hosts = append(hosts, "(unparsable URL)")
			continue
		}
		hosts = append(hosts, u.Host)
	}
	return strings.Join(hosts, ",")
}

// natsHealth reports the NATS connection for /api/health; nil without NATS.
func (a *App) natsHealth() func() error {
	nc := a.NATS
	if nc == nil {
		return nil
	}
	return func() error {
		if nc.IsConnected() {
			return nil
		}
		return errors.New(strings.ToLower(nc.Status().String()))
	}
}

// closeNATS stops the NATS bus, hands NATS what is buffered (bounded) and
// closes the connection.
func (a *App) closeNATS() {
	if a.natsBus != nil {
		a.natsBus.Close()
	}
	if a.NATS != nil {
		if a.NATS.IsConnected() {
			_ = a.NATS.FlushTimeout(natsCloseFlush)
		}
		a.NATS.Close()
	}
}
