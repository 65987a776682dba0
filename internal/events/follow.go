package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

// TaskLogs is what Follow reads from the store: a task's stored events and
// its status.
type TaskLogs interface {
	store.Logs
	GetTask(ctx context.Context, id string) (domain.Task, error)
}

// Ended ends a Follow normally: the task reached a terminal status and every
// event up to it was sent.
type Ended struct{ Status domain.TaskStatus }

func (e *Ended) Error() string { return "task " + string(e.Status) }

const (
	// TerminalGrace is how long a follower of a task already over waits for
	// its terminal task_state event: the executor stores the status before
	// it records that event, so a client arriving in between would
	// otherwise miss it.
	TerminalGrace = 2 * time.Second
	// DefaultPoll is how often an idle follower reads the store: a bus may
	// lose events (NATS between processes; no bus at all between a CLI and
	// a server sharing a data directory), and a lost last event must not
	// leave a client waiting for ever.
	DefaultPoll = time.Second
	// replayBatch is how many stored events one replay query reads.
	replayBatch = 500
	// maxBurst bounds how many events one burst sends before flushing, so
	// a busy task cannot starve a client of partial progress.
	maxBurst = 256
)

// FollowOptions says what to follow and where to send it.
type FollowOptions struct {
	Bus    Bus
	Store  TaskLogs
	TaskID string
	// After is the seq of the last event the client already has.
	After int64
	// Buffer is the subscription's buffer (<= 0: DefaultBuffer).
	Buffer int
	// Send writes one event; raw is its JSON encoding when already known
	// (live events are encoded once for all subscribers), else nil.
	Send func(e domain.AgentLog, raw []byte) error
	// Hold and Flush bracket a burst of sends so that the transport can
	// write them at once; either may be nil.
	Hold  func()
	Flush func() error
	// OnTick runs at every Tick (nil channel: never), e.g. keep-alives.
	Tick   <-chan time.Time
	OnTick func() error
	// Poll is the store poll interval when no stored event arrived live
	// (0: DefaultPoll).
	Poll time.Duration
	// Grace overrides TerminalGrace (0: TerminalGrace).
	Grace time.Duration
}

// Follow streams one task's events: it subscribes first, replays the stored
// events after opts.After, then forwards live ones, skipping those already
// sent and filling any gap from the store, so the client sees every stored
// event once, in seq order. Token deltas (seq 0) are forwarded after the
// replay. It returns *Ended after the task's terminal task_state event,
// ErrSlowConsumer when the client could not keep up (it resumes with After),
// ctx.Err() when ctx is done, or the first error of Send or the store.
func Follow(ctx context.Context, opts FollowOptions) error {
	if opts.Bus == nil || opts.Store == nil || opts.Send == nil || opts.TaskID == "" {
		return errors.New("events.Follow: Bus, Store, Send and TaskID are required")
	}
	if opts.Tick != nil && opts.OnTick == nil {
		return errors.New("events.Follow: Tick without OnTick")
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
	}
	if opts.Grace <= 0 {
		opts.Grace = TerminalGrace
	}
	// Subscribe before the replay: events published meanwhile wait here.
	sub := opts.Bus.Subscribe(opts.TaskID, opts.Buffer)
	defer sub.Close()
	f := &follower{o: &opts, sub: sub, last: opts.After}

	if err := f.burst(func() error { return f.replay(ctx) }); err != nil {
		return err
	}
	var grace <-chan time.Time
	if f.over != "" {
		timer := time.NewTimer(opts.Grace)
		defer timer.Stop()
		grace = timer.C
	}
	poll := time.NewTicker(opts.Poll)
	defer poll.Stop()
	for {
		select {
		case <-grace:
			grace = nil
			if err := f.burst(func() error { return f.graceExpired(ctx) }); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-sub.C():
			if !ok {
				return f.closed()
			}
			if err := f.burst(func() error { return f.drain(ctx, e) }); err != nil {
				return err
			}
		case <-poll.C:
			if f.advanced {
				f.advanced = false // the bus is delivering: no need to ask the store
				continue
			}
			if err := f.burst(func() error { return f.poll(ctx) }); err != nil {
				return err
			}
		case <-opts.Tick:
			if err := opts.OnTick(); err != nil {
				return err
			}
		}
	}
}

type follower struct {
	o    *FollowOptions
	sub  *Subscription
	last int64
	// ended is the terminal status of the latest task_state sent, "" while
	// the task is not (or no longer) terminal.
	ended domain.TaskStatus
	// over is the task's terminal status when the replay found it over
	// before its terminal event was stored.
	over domain.TaskStatus
	// advanced is set when a live event moved last since the last poll.
	advanced bool
}

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

func (f *follower) emit(e domain.AgentLog, raw []byte) error {
	if err := f.o.Send(e, raw); err != nil {
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
// (0: all), and returns how many it sent.
func (f *follower) catchUp(ctx context.Context, limit int64) (int, error) {
	sent := 0
	for {
		batch := int64(replayBatch)
		if limit > 0 && limit < batch {
			batch = limit
		}
		logs, err := f.o.Store.ListLogs(ctx, f.o.TaskID, f.last, int(batch))
		if err != nil {
			return sent, fmt.Errorf("replaying events: %w", err)
		}
		for _, l := range logs {
			if l.Seq <= f.last {
				continue // a store must not answer this, but a duplicate would be a lie
			}
			if err := f.emit(l, nil); err != nil {
				return sent, err
			}
			sent++
		}
		if int64(len(logs)) < batch {
			return sent, nil
		}
		if limit > 0 {
			if limit -= int64(len(logs)); limit <= 0 {
				return sent, nil
			}
		}
	}
}

// replay sends the stored events. It returns *Ended when the task is over
// and its terminal event was sent; when the task is over but that event is
// not stored yet, it sets f.over and Follow waits Grace for it.
func (f *follower) replay(ctx context.Context) error {
	if _, err := f.catchUp(ctx, 0); err != nil {
		return err
	}
	t, err := f.o.Store.GetTask(ctx, f.o.TaskID)
	if err != nil {
		return err
	}
	if !t.Status.Terminal() {
		return nil
	}
	if _, err := f.catchUp(ctx, 0); err != nil {
		return err
	}
	if f.ended != "" {
		return &Ended{Status: f.ended}
	}
	f.over = t.Status
	return nil
}

// graceExpired ends a stream whose terminal event never came (documents of
// the original backend have none): whatever is stored by now is final. A
// task retried meanwhile is running again, and its stream goes on.
func (f *follower) graceExpired(ctx context.Context) error {
	if _, err := f.catchUp(ctx, 0); err != nil {
		return err
	}
	if f.ended != "" {
		return &Ended{Status: f.ended}
	}
	t, err := f.o.Store.GetTask(ctx, f.o.TaskID)
	if err != nil {
		return err
	}
	if !t.Status.Terminal() {
		f.over = ""
		return nil
	}
	return &Ended{Status: t.Status}
}

// poll sends what the store has that the bus did not deliver. Like a live
// event, a stored event that leaves the task terminal ends the stream; a
// poll that finds nothing new changes nothing (a retried task whose new run
// has not recorded anything yet keeps streaming).
func (f *follower) poll(ctx context.Context) error {
	n, err := f.catchUp(ctx, 0)
	if err != nil {
		return err
	}
	if n > 0 && f.ended != "" {
		return &Ended{Status: f.ended}
	}
	return nil
}

// live handles one event from the subscription.
func (f *follower) live(ctx context.Context, ev *Event) error {
	e := ev.AgentLog
	if e.TaskID != f.o.TaskID {
		return nil // a bus routes by task; never forward another task's event
	}
	raw, err := ev.JSON()
	if err != nil {
		return err
	}
	switch {
	case e.Seq == 0:
		return f.o.Send(e, raw)
	case e.Seq <= f.last:
		return nil // already sent
	case e.Seq > f.last+1:
		if _, err := f.catchUp(ctx, e.Seq-f.last-1); err != nil {
			return err
		}
		if e.Seq <= f.last {
			// The catch-up sent it (a store that read past the limit);
			// it may have been the terminal event.
			if f.ended != "" {
				return &Ended{Status: f.ended}
			}
			return nil
		}
		if e.Seq > f.last+1 {
			// The store does not show the events before this one yet
			// (another process's append is not visible here yet): sending
			// it would open a gap, so leave it to a later catch-up.
			return nil
		}
	}
	if err := f.emit(e, raw); err != nil {
		return err
	}
	f.advanced = true
	if f.ended != "" {
		return &Ended{Status: f.ended}
	}
	return nil
}

// burst runs fn between Hold and Flush; fn's error wins over Flush's.
func (f *follower) burst(fn func() error) error {
	if f.o.Hold != nil {
		f.o.Hold()
	}
	err := fn()
	if f.o.Flush != nil {
		if ferr := f.o.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

// drain handles ev and then every event already waiting, up to maxBurst.
func (f *follower) drain(ctx context.Context, ev *Event) error {
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
