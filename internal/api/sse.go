package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
)

// handleSSE serves GET /api/tasks/{id}/events: the Server-Sent Events twin of
// the WebSocket for clients that cannot open one. Each event's id is its seq,
// so an EventSource that reconnects resumes with Last-Event-ID.
func (s *server) handleSSE(w http.ResponseWriter, r *http.Request) {
	taskID := r.PathValue("id")
	raw := r.Header.Get("Last-Event-ID")
	if raw == "" {
		raw = r.URL.Query().Get("after")
	}
	after, err := parseSeq(raw)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx := r.Context()
	t, err := s.tasks.Get(ctx, actor(ctx), taskID)
	if err != nil {
		s.writeError(w, r, "task "+taskID, err)
		return
	}
	if t.Status.Terminal() {
		// A finished task with nothing new: 204 tells EventSource to stop
		// reconnecting.
		if more, err := s.store.ListLogs(ctx, taskID, after, 1); err == nil && len(more) == 0 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// put writes a frame into the response buffer; write also flushes it.
	put := func(frame string) error {
		_ = rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
		_, err := io.WriteString(w, frame)
		return err
	}
	write := func(frame string) error {
		if err := put(frame); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := write(": catalyst task " + taskID + "\nretry: 3000\n\n"); err != nil {
		return
	}

	tick := time.NewTicker(s.cfg.WebSocketPingInterval)
	defer tick.Stop()
	err = events.Follow(ctx, events.FollowOptions{Bus: s.broker, Store: s.store, TaskID: taskID, After: after, Buffer: s.subBuffer,
		Send: func(e domain.AgentLog, b []byte) error {
			if b == nil {
				var err error
				if b, err = json.Marshal(e); err != nil {
					return err
				}
			}
			frame := "data: " + string(b) + "\n\n"
			if e.Seq > 0 {
				frame = "id: " + strconv.FormatInt(e.Seq, 10) + "\n" + frame
			}
			return put(frame)
		},
		Flush: rc.Flush,
		Tick:  tick.C, OnTick: func() error { return write(": ping\n\n") },
	})

	var ended *events.Ended
	switch {
	case errors.As(err, &ended):
		_ = write(fmt.Sprintf("event: end\ndata: {\"status\":%q}\n\n", ended.Status))
	case errors.Is(err, events.ErrSlowConsumer):
		// The client reconnects with Last-Event-ID and resumes.
		_ = write(": too slow: event buffer full\n\n")
	case ctx.Err() == nil && err != nil:
		s.log.WarnContext(ctx, "event stream ended", "task_id", taskID, "err", err)
	}
}
