package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
)

// replayBatch is how many stored events one replay query reads.
const replayBatch = 500

// errTaskEnded ends a stream normally: the task reached a terminal status and
// every event up to it was sent.
type errTaskEnded struct{ status domain.TaskStatus }

func (e errTaskEnded) Error() string { return "task " + string(e.status) }

// terminalStatus returns the status of a task_state event that ends a task.
func terminalStatus(e domain.AgentLog) (domain.TaskStatus, bool) {
	if e.Type != domain.EventTaskState || len(e.Data) == 0 {
		return "", false
	}
	var d struct {
		Status domain.TaskStatus `json:"status"`
	}
	if json.Unmarshal(e.Data, &d) != nil || !d.Status.Terminal() {
		return "", false
	}
	return d.Status, true
}

// parseSeq parses an ?after= or Last-Event-ID value.
func parseSeq(raw string) (int64, error) {
	if raw == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("after must be a non-negative event seq, got %q", raw)
	}
	return n, nil
}

// follower streams one task's events to one client: the stored ones after a
// seq, then live ones from a subscription made BEFORE the replay, so that
// nothing published during the replay is missed. Live events already
// replayed (seq <= last) are skipped; a live event that arrives ahead of a
// missing seq (two recorders publishing out of order) first fills the gap
// from the store. Token deltas (seq 0) are forwarded after the replay.
type follower struct {
	s      *server
	taskID string
	sub    *events.Subscription
	// send writes one event; raw is its JSON encoding when already known
	// (live events are encoded once for all subscribers), else nil.
	send func(e domain.AgentLog, raw []byte) error
	// hold and flush bracket a burst of sends so that the transport can
	// write them at once; either may be nil.
	hold  func()
	flush func() error
	last  int64
	// ended is the terminal status of the latest task_state sent, "" while
	// the task is not (or no longer) terminal.
	ended domain.TaskStatus
	// over is the task's terminal status when the replay found it over
	// before its terminal event was stored.
	over domain.TaskStatus
}

func (f *follower) emit(e domain.AgentLog, raw []byte) error {
	if err := f.send(e, raw); err != nil {
		return err
	}
	if e.Seq > 0 {
		f.last = e.Seq
	}
	if e.Type == domain.EventTaskState {
		f.ended, _ = terminalStatus(e)
	}
	return nil
}

// catchUp sends the stored events after f.last, at most limit of them
// (0: all).
func (f *follower) catchUp(ctx context.Context, limit int64) error {
	for limit >= 0 {
		batch := int64(replayBatch)
		if limit > 0 && limit < batch {
			batch = limit
		}
		logs, err := f.s.store.ListLogs(ctx, f.taskID, f.last, int(batch))
		if err != nil {
			return fmt.Errorf("replaying events: %w", err)
		}
		for _, l := range logs {
			if err := f.emit(l, nil); err != nil {
				return err
			}
		}
		if int64(len(logs)) < batch {
			return nil
		}
		if limit > 0 {
			if limit -= int64(len(logs)); limit == 0 {
				return nil
			}
		}
	}
	return nil
}

// terminalGrace is how long a stream of a task already over waits for its
// terminal task_state event: the executor stores the status before it records
// that event, so a client arriving in between would otherwise miss it.
const terminalGrace = 2 * time.Second

// replay sends the stored events. It returns errTaskEnded when the task is
// over and its terminal event was sent; when the task is over but that event
// is not stored yet, it sets f.over and the caller waits terminalGrace for it.
func (f *follower) replay(ctx context.Context) error {
	if err := f.catchUp(ctx, 0); err != nil {
		return err
	}
	t, err := f.s.store.GetTask(ctx, f.taskID)
	if err != nil {
		return err
	}
	if !t.Status.Terminal() {
		return nil
	}
	if err := f.catchUp(ctx, 0); err != nil {
		return err
	}
	if f.ended != "" {
		return errTaskEnded{status: f.ended}
	}
	f.over = t.Status
	return nil
}

// graceExpired ends a stream whose terminal event never came (documents of
// the original backend have none): whatever is stored by now is final. A
// task retried meanwhile is running again, and its stream goes on.
func (f *follower) graceExpired(ctx context.Context) error {
	if err := f.catchUp(ctx, 0); err != nil {
		return err
	}
	if f.ended != "" {
		return errTaskEnded{status: f.ended}
	}
	t, err := f.s.store.GetTask(ctx, f.taskID)
	if err != nil {
		return err
	}
	if !t.Status.Terminal() {
		f.over = ""
		return nil
	}
	return errTaskEnded{status: t.Status}
}

// live handles one event from the subscription.
func (f *follower) live(ctx context.Context, ev *events.Event) error {
	e := ev.AgentLog
	raw, err := ev.JSON()
	if err != nil {
		return err
	}
	switch {
	case e.Seq == 0:
		return f.send(e, raw)
	case e.Seq <= f.last:
		return nil // already replayed
	case e.Seq > f.last+1:
		if err := f.catchUp(ctx, e.Seq-f.last-1); err != nil {
			return err
		}
		if e.Seq <= f.last {
			return nil
		}
	}
	if err := f.emit(e, raw); err != nil {
		return err
	}
	if f.ended != "" {
		return errTaskEnded{status: f.ended}
	}
	return nil
}

// maxBurst bounds how many events one burst sends before flushing, so a
// busy task cannot starve a client of partial progress.
const maxBurst = 256

// burst runs fn between hold and flush; fn's error wins over flush's.
func (f *follower) burst(fn func() error) error {
	if f.hold != nil {
		f.hold()
	}
	err := fn()
	if f.flush != nil {
		if ferr := f.flush(); err == nil {
			err = ferr
		}
	}
	return err
}

// drain handles ev and then every event already waiting, up to maxBurst.
func (f *follower) drain(ctx context.Context, ev *events.Event) error {
	if err := f.live(ctx, ev); err != nil {
		return err
	}
	for range maxBurst - 1 {
		select {
		case ev, ok := <-f.sub.C():
			if !ok {
				return f.closed()
			}
			if err := f.live(ctx, ev); err != nil {
				return err
			}
		default:
			return nil
		}
	}
	return nil
}

// closed reports why the subscription channel closed.
func (f *follower) closed() error {
	if err := f.sub.Err(); err != nil {
		return err
	}
	return errors.New("subscription closed")
}
