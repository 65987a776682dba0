package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/coder/websocket"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
)

// statusTooSlow closes a WebSocket whose client could not keep up.
const statusTooSlow websocket.StatusCode = 4000

// originAllowed checks a WebSocket Origin: absent (non-browser clients),
// the server's own origin (the embedded dashboard), or allowed by
// CORS_ORIGINS.
func (s *server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || s.corsAllowed(origin) {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// handleWebSocket serves WS /ws/{task_id}.
func (s *server) handleWebSocket(w http.ResponseWriter, r *http.Request) {
	taskID := r.PathValue("task_id")
	after, err := parseSeq(r.URL.Query().Get("after"))
	if err != nil {
		writeProblem(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.originAllowed(r) {
		writeProblem(w, http.StatusForbidden, "origin "+r.Header.Get("Origin")+" is not allowed by CORS_ORIGINS")
		return
	}
	if _, err := s.tasks.Get(r.Context(), actor(r.Context()), taskID); err != nil {
		s.writeError(w, r, "task "+taskID, err)
		return
	}
	cw := &corkingWriter{ResponseWriter: w, timeout: s.writeTimeout}
	c, err := websocket.Accept(cw, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the origin was checked above
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept answered the client
	}
	defer c.CloseNow()
	// Clients send nothing; CloseRead handles control frames (pongs, close)
	// and cancels ctx when the client goes away.
	ctx := c.CloseRead(r.Context())

	go s.pingLoop(ctx, c)

	opts := events.FollowOptions{Bus: s.broker, Store: s.store, TaskID: taskID, After: after, Buffer: s.subBuffer,
		Send: func(e domain.AgentLog, b []byte) error {
			if b == nil {
				var err error
				if b, err = json.Marshal(e); err != nil {
					return err
				}
			}
			if cw.conn != nil {
				// Sends happen in bursts, into the cork's buffer; its flush
				// carries the write timeout, without a context per message.
				return c.Write(ctx, websocket.MessageText, b)
			}
			wctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
			defer cancel()
			return c.Write(wctx, websocket.MessageText, b)
		}}
	if cw.conn != nil {
		opts.Hold, opts.Flush = cw.conn.Cork, cw.conn.Uncork
	}
	err = events.Follow(ctx, opts)
	var ended *events.Ended
	switch {
	case errors.As(err, &ended):
		_ = c.Close(websocket.StatusNormalClosure, "task "+string(ended.Status))
	case errors.Is(err, events.ErrSlowConsumer):
		s.log.WarnContext(ctx, "websocket client too slow, disconnected", "task_id", taskID)
		_ = c.Close(statusTooSlow, "too slow: event buffer full; reconnect with ?after=last seq")
	case ctx.Err() != nil:
		// the client left
	default:
		s.log.WarnContext(ctx, "websocket stream ended", "task_id", taskID, "err", err)
		_ = c.Close(websocket.StatusInternalError, "stream error")
	}
}

// pingLoop pings every WEBSOCKET_PING_INTERVAL; a client that does not answer
// within the write timeout is disconnected.
func (s *server) pingLoop(ctx context.Context, c *websocket.Conn) {
	t := time.NewTicker(s.cfg.WebSocketPingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
			err := c.Ping(pctx)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					_ = c.CloseNow()
				}
				return
			}
		}
	}
}
