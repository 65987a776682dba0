package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

// WorkerOptions configure the JetStream driver of an executor.
type WorkerOptions struct {
	Queue *Queue
	// Executor runs the tasks; it is started (without Recover: the queue
	// is the trigger) before the worker, and the worker shuts it down.
	Executor *Executor
	Store    store.Store
	// PullWait bounds one pull request; 0 means a second.
	PullWait time.Duration
	Logger   *slog.Logger
}

// Worker feeds an executor from the work queue. It pulls only as many
// messages as the executor has free slots, reports progress on the ones it
// holds while their tasks run, and settles each when its run ends. A
// message is acknowledged only when its task is over: every other outcome
// returns it to the queue, so a task always has a message until it ends,
// whoever holds its lease and whatever happened to NATS meanwhile.
type Worker struct {
	q    *Queue
	exec *Executor
	st   store.Store
	log  *slog.Logger
	wait time.Duration

	mu      sync.Mutex
	cons    jetstream.Consumer
	held    map[string][]jetstream.Msg
	stopped bool

	wake     chan struct{}
	cancel   context.CancelFunc
	loops    sync.WaitGroup // intake and progress
	settling sync.WaitGroup // settle, control and ack goroutines
	ctrl     *nats.Subscription
}

// NewWorker returns a driver for opt.Executor; Start starts it.
func NewWorker(opt WorkerOptions) *Worker {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Worker{
		q: opt.Queue, exec: opt.Executor, st: opt.Store,
		log:  log.With("component", "jetstream", "owner", opt.Executor.Owner()),
		wait: opt.PullWait,
		held: map[string][]jetstream.Msg{},
		wake: make(chan struct{}, 1),
	}
	if w.wait <= 0 {
		w.wait = time.Second
	}
	opt.Executor.OnDone(w.runEnded)
	return w
}

// Start begins pulling tasks.
func (w *Worker) Start(ctx context.Context) error {
	cons, err := w.q.ensure(ctx)
	if err != nil {
		return err
	}
	ctrl, err := w.q.nc.Subscribe(ControlSubjectPrefix+"*", w.control)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.cons, w.ctrl = cons, ctrl
	w.mu.Unlock()
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancel = cancel
	w.loops.Add(2)
	go w.intake(runCtx)
	go w.progress(runCtx)
	return nil
}

// Stop stops pulling, shuts the executor down (its runs release their
// leases) and returns every message it holds at once, so that another
// worker resumes the tasks without waiting for a lease to expire.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return nil
	}
	w.stopped = true
	ctrl := w.ctrl
	w.mu.Unlock()
	if w.cancel != nil {
		w.cancel()
	}
	if ctrl != nil {
		_ = ctrl.Unsubscribe()
	}
	err := w.exec.Shutdown(ctx)
	done := make(chan struct{})
	go func() { w.settling.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, ctx.Err())
	}
	w.loops.Wait()
	// Queued tasks that never started have no run to settle them.
	w.mu.Lock()
	left := w.held
	w.held = map[string][]jetstream.Msg{}
	w.mu.Unlock()
	for _, msgs := range left {
		for _, m := range msgs {
			_ = m.Nak()
		}
	}
	if w.q.nc.Status() == nats.CONNECTED {
		_ = w.q.nc.FlushTimeout(2 * time.Second)
	}
	return err
}

// Held returns how many tasks this worker holds messages of (tests).
func (w *Worker) Held() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.held)
}

func (w *Worker) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// intake pulls at most the executor's free slots at a time. While NATS is
// disconnected it pulls nothing; running tasks go on, and their messages
// stay held (or come back to the queue if the outage outlasts AckWait).
func (w *Worker) intake(ctx context.Context) {
	defer w.loops.Done()
	var lastErr time.Time
	pause := func(d time.Duration) {
		select {
		case <-ctx.Done():
		case <-w.wake:
		case <-time.After(d):
		}
	}
	for ctx.Err() == nil {
		if w.q.nc.Status() != nats.CONNECTED {
			pause(250 * time.Millisecond)
			continue
		}
		n := w.exec.Free()
		if n == 0 {
			pause(time.Second)
			continue
		}
		w.mu.Lock()
		cons := w.cons
		w.mu.Unlock()
		fctx, cancel := context.WithTimeout(ctx, w.wait)
		batch, err := cons.Fetch(n, jetstream.FetchContext(fctx))
		if err == nil {
			for m := range batch.Messages() {
				w.take(ctx, m)
			}
			err = batch.Error()
		}
		cancel()
		if err == nil || ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			continue
		}
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrNoHeartbeat) {
			// NATS lost its state (a server without its store): make the
			// stream and consumer again; the store's pending tasks stay
			// pending until resubmitted or swept.
			ectx, ecancel := context.WithTimeout(ctx, 5*time.Second)
			if c, eerr := w.q.ensure(ectx); eerr == nil {
				w.mu.Lock()
				w.cons = c
				w.mu.Unlock()
			}
			ecancel()
		}
		if time.Since(lastErr) > 10*time.Second {
			w.log.Warn("pulling tasks from the work queue", "err", err)
			lastErr = time.Now()
		}
		pause(250 * time.Millisecond)
	}
}

// take hands one delivered message to the executor.
func (w *Worker) take(ctx context.Context, m jetstream.Msg) {
	id, ok := strings.CutPrefix(m.Subject(), TaskSubjectPrefix)
	if !ok || !validToken(id) {
		// Not a task of ours: it would come back for ever.
		_ = m.Term()
		return
	}
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		_ = m.Nak()
		return
	}
	w.held[id] = append(w.held[id], m)
	w.mu.Unlock()
	if err := w.exec.Enqueue(ctx, id); err != nil {
		w.mu.Lock()
		w.drop(id, m)
		w.mu.Unlock()
		_ = m.Nak()
	}
}

// drop forgets one held message; w.mu is held.
func (w *Worker) drop(id string, m jetstream.Msg) {
	msgs := w.held[id]
	for i, x := range msgs {
		if x == m {
			msgs = append(msgs[:i], msgs[i+1:]...)
			break
		}
	}
	if len(msgs) == 0 {
		delete(w.held, id)
	} else {
		w.held[id] = msgs
	}
}

// progress tells JetStream every AckWait/3 that the held tasks still run.
// While disconnected the reports are buffered by the client or lost; a
// message whose AckWait passes meanwhile is redelivered, and its lease
// makes that harmless.
func (w *Worker) progress(ctx context.Context) {
	defer w.loops.Done()
	tick := time.NewTicker(max(w.q.ackWait/3, 100*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		w.mu.Lock()
		var msgs []jetstream.Msg
		for _, ms := range w.held {
			msgs = append(msgs, ms...)
		}
		w.mu.Unlock()
		for _, m := range msgs {
			_ = m.InProgress()
		}
	}
}

// runEnded is the executor's OnDone: a run of id ended.
func (w *Worker) runEnded(id string, runErr error) {
	w.mu.Lock()
	msgs := w.held[id]
	delete(w.held, id)
	w.mu.Unlock()
	w.signal()
	if len(msgs) == 0 {
		return // a run the executor started on its own (a retry)
	}
	w.settling.Add(1)
	go func() {
		defer w.settling.Done()
		w.settle(id, runErr, msgs)
	}()
}

// Delays of a message returned to the queue.
const (
	errorDelayFirst = time.Second
	errorDelayMax   = time.Minute
	leaseMargin     = 250 * time.Millisecond
)

// settle acknowledges the messages of a task that is over and returns the
// others to the queue: at once when the lease was released (shutdown), when
// the lease expires when another process holds it (its own run may have
// lost its message; if that process dies, this message brings the task
// back), with a growing delay after an error.
func (w *Worker) settle(id string, runErr error, msgs []jetstream.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t, err := w.st.GetTask(ctx, id)
	cancel()
	now := time.Now()
	var delay time.Duration
	switch {
	case errors.Is(err, domain.ErrNotFound), err == nil && t.Status.Terminal():
		for _, m := range msgs {
			w.ack(m)
		}
		return
	case err != nil:
		runErr = err
		fallthrough
	case runErr != nil:
		delay = errorDelay(msgs[0])
		w.log.Warn("task returned to the work queue after an error", "task", id, "err", runErr, "retry_in", delay)
	case t.LeaseLive(now) && t.LeaseOwner != w.exec.Owner():
		delay = min(t.LeaseExpiresAt.Sub(now)+leaseMargin, w.q.ackWait)
	}
	for _, m := range msgs {
		if delay > 0 {
			_ = m.NakWithDelay(delay)
		} else {
			_ = m.Nak()
		}
	}
}

func errorDelay(m jetstream.Msg) time.Duration {
	n := uint64(1)
	if md, err := m.Metadata(); err == nil && md.NumDelivered > 0 {
		n = md.NumDelivered
	}
	return min(errorDelayFirst<<min(n-1, 10), errorDelayMax)
}

// ack acknowledges m and waits for JetStream to confirm, retrying through a
// reconnect for up to two AckWaits: by then an unconfirmed message has been
// redelivered, and whoever gets it finds the task over and acks it.
func (w *Worker) ack(m jetstream.Msg) {
	deadline := time.Now().Add(2 * w.q.ackWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := m.DoubleAck(ctx)
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrMsgAlreadyAckd) || time.Now().After(deadline) {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// control handles catalyst.control.<task_id>: if the stored task is no
// longer ours to run (cancelled, finished, taken over), stop it now. The
// message itself is not trusted: only the store decides.
func (w *Worker) control(msg *nats.Msg) {
	id, ok := strings.CutPrefix(msg.Subject, ControlSubjectPrefix)
	if !ok || !validToken(id) || string(msg.Data) != controlStop {
		return
	}
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.settling.Add(1)
	w.mu.Unlock()
	go func() {
		defer w.settling.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t, err := w.st.GetTask(ctx, id)
		cancel()
		if err != nil || (t.Status == domain.TaskRunning && t.LeaseOwner == w.exec.Owner()) || t.Status == domain.TaskPending {
			return
		}
		w.exec.Stop(id)
		// A run calls OnDone before Stop returns; messages still held
		// belong to a task that was only queued, and no run will settle
		// them.
		w.mu.Lock()
		msgs := w.held[id]
		delete(w.held, id)
		w.mu.Unlock()
		if len(msgs) > 0 {
			w.settle(id, nil, msgs)
		}
	}()
}
