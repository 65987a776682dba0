package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The work queue's names on NATS. A message on catalyst.tasks.<task_id>
// only says "this task needs a runner": the task itself, its lease and its
// progress are in the store, which stays the authority.
const (
	TaskStream           = "CATALYST_TASKS"
	TaskSubjectPrefix    = "catalyst.tasks."
	TaskConsumer         = "catalyst-workers"
	ControlSubjectPrefix = "catalyst.control."
)

// controlStop is the body of a control message asking the runner of a task
// to look at its stored state now (a cancel) instead of at its next poll.
const controlStop = "stop"

// QueueOptions configure the JetStream work queue.
type QueueOptions struct {
	// Conn is the NATS connection; its owner closes it.
	Conn *nats.Conn
	// LeaseTTL is CATALYST_LEASE_TTL; the consumer's AckWait follows it so
	// that a dead worker's task is redelivered soon after its lease expires.
	LeaseTTL time.Duration
	// Replicas of the stream on a JetStream cluster; 0 means 1.
	Replicas int
	Logger   *slog.Logger
}

// Queue is the JetStream work queue of tasks: stream CATALYST_TASKS (work-
// queue retention, file storage) and one durable pull consumer shared by
// every worker. It is the tasks.Dispatcher of a scaled-out process.
type Queue struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	log      *slog.Logger
	ackWait  time.Duration
	replicas int
}

// AckWaitFor is the consumer's AckWait for a lease TTL: long enough that a
// live worker's progress reports (every AckWait/3) keep its message through
// a short hiccup, short enough that a dead worker's task comes back about
// when its lease expires. Renewals (every TTL/3) and progress reports
// (every AckWait/3) both stop at the death, so with 1.5 TTL the message
// returns between 1 and 1.5 TTL after it, and the lease has expired by
// 1 TTL; a message back a little early waits for the expiry (see settle).
// Two TTLs would make every takeover wait up to twice the TTL.
func AckWaitFor(leaseTTL time.Duration) time.Duration {
	if leaseTTL <= 0 {
		leaseTTL = DefaultLeaseTTL
	}
	return max(leaseTTL*3/2, 2*time.Second)
}

// OpenQueue creates or updates the stream and the consumer, so any process
// may start first; it fails when JetStream does not answer.
func OpenQueue(ctx context.Context, opt QueueOptions) (*Queue, error) {
	if opt.Conn == nil {
		return nil, errors.New("pipeline: work queue needs a NATS connection")
	}
	js, err := jetstream.New(opt.Conn)
	if err != nil {
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q := &Queue{nc: opt.Conn, js: js, log: log.With("component", "jetstream"), ackWait: AckWaitFor(opt.LeaseTTL), replicas: max(opt.Replicas, 1)}
	if _, err := q.ensure(ctx); err != nil {
		return nil, err
	}
	return q, nil
}

// ensure creates or updates the stream and the consumer.
func (q *Queue) ensure(ctx context.Context) (jetstream.Consumer, error) {
	_, err := q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        TaskStream,
		Description: "Catalyst tasks waiting for a worker (the store holds the tasks)",
		Subjects:    []string{TaskSubjectPrefix + "*"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    q.replicas,
		Discard:     jetstream.DiscardOld,
		// Publishes retried after a lost PubAck carry the same id.
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("JetStream stream %s: %w", TaskStream, err)
	}
	cons, err := q.js.CreateOrUpdateConsumer(ctx, TaskStream, jetstream.ConsumerConfig{
		Durable:       TaskConsumer,
		Description:   "every Catalyst worker pulls from this one consumer",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.ackWait,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: TaskSubjectPrefix + "*",
		// Redelivery after a missed AckWait slows down for a message that
		// keeps coming back (a task that crashes its workers); the first
		// ones stay prompt so that a takeover is quick.
		BackOff:       []time.Duration{q.ackWait, q.ackWait, 2 * q.ackWait, 4 * q.ackWait, 8 * q.ackWait},
		MaxAckPending: 100000,
		Replicas:      q.replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("JetStream consumer %s: %w", TaskConsumer, err)
	}
	return cons, nil
}

// AckWait is the consumer's AckWait.
func (q *Queue) AckWait() time.Duration { return q.ackWait }

// TaskSubject returns the work-queue subject of taskID, or an error when the
// id cannot be a single subject token (it would address other subjects).
func TaskSubject(taskID string) (string, error) {
	if !validToken(taskID) {
		return "", fmt.Errorf("pipeline: task id %q cannot be a NATS subject token", taskID)
	}
	return TaskSubjectPrefix + taskID, nil
}

func validToken(s string) bool {
	return s != "" && len(s) <= 128 && !strings.ContainsAny(s, ".*> \t\r\n\x00")
}

// publishTimeout bounds how long a submission waits for JetStream, retrying
// through a reconnect, before the task is failed as "could not be queued".
const publishTimeout = 10 * time.Second

// Dispatch puts taskID on the work queue (tasks.Dispatcher). Each call is
// one submission or retry with its own dedupe id, so a publish retried
// after a lost acknowledgement is stored once.
func (q *Queue) Dispatch(ctx context.Context, taskID string) error {
	subj, err := TaskSubject(taskID)
	if err != nil {
		return err
	}
	msgID := taskID + ":" + uuid.NewString()
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	delay := 100 * time.Millisecond
	for {
		attempt, acancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = q.js.Publish(attempt, subj, []byte(taskID), jetstream.WithMsgID(msgID), jetstream.WithExpectStream(TaskStream))
		acancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("putting the task on the NATS work queue: %w", err)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// Stop asks whichever worker runs taskID to look at its stored state now
// (tasks.Stopper). The stored cancel is the truth; this only saves the
// worker's poll delay, so a lost message costs nothing but that.
func (q *Queue) Stop(taskID string) {
	if !validToken(taskID) {
		return
	}
	if err := q.nc.Publish(ControlSubjectPrefix+taskID, []byte(controlStop)); err != nil {
		q.log.Debug("control message not sent", "task", taskID, "err", err)
	}
}

// Check reports whether NATS and the work queue answer (/api/health).
func (q *Queue) Check(ctx context.Context) error {
	if s := q.nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("NATS connection %s", strings.ToLower(s.String()))
	}
	if _, err := q.js.Stream(ctx, TaskStream); err != nil {
		return fmt.Errorf("JetStream stream %s: %w", TaskStream, err)
	}
	return nil
}
