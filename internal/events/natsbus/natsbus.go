// Package natsbus is the events.Bus between processes: every event (stored
// ones and token deltas) is published on the core NATS subject
// catalyst.events.<task_id> as the JSON of a domain.AgentLog, and the local
// subscribers of a task receive what any process publishes for it.
//
// Core NATS is at most once: a message published while disconnected, or
// dropped for a slow connection, is gone. That is acceptable because events
// are stored before they are published and events.Follow fills every gap
// from the store; the bus only makes delivery prompt.
//
// Events published in this process reach its own subscribers directly, not
// through NATS, so a process keeps streaming its own tasks while NATS is down;
// the echo of its own messages is recognised by an origin header and ignored.
package natsbus

import (
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
)

// SubjectPrefix precedes the task ID in an event subject.
const SubjectPrefix = "catalyst.events."

// originHeader names the bus that published a message, so that a bus
// ignores the echo of its own events (already delivered locally).
const originHeader = "Catalyst-Origin"

const (
	// DefaultQueue bounds the events waiting to be handed to NATS; beyond
	// it events are not published (followers read them from the store).
	DefaultQueue = 8192
	// pendingMsgs and pendingBytes bound what NATS holds for one task's
	// subscription before it drops messages (again: the store has them).
	pendingMsgs  = 65536
	pendingBytes = 32 << 20
	// subscribeFlush bounds how long Subscribe waits for the server to
	// confirm a new task subscription, so that a follower's replay starts
	// only once the server routes the task's new events here.
	subscribeFlush = 500 * time.Millisecond
	// closeFlush bounds how long Close waits to hand queued events over.
	closeFlush = 2 * time.Second
)

// Options configure a Bus.
type Options struct {
	// Logger reports NATS subscription failures; nil discards.
	Logger *slog.Logger
	// Queue bounds the events waiting to be published (0: DefaultQueue).
	Queue int
}

// Bus is an events.Bus over a NATS connection.
type Bus struct {
	nc     *nats.Conn
	local  *events.Broker
	origin string
	log    *slog.Logger

	mu    sync.Mutex
	tasks map[string]*taskSub

	out  chan *events.Event
	stop chan struct{}
	done chan struct{}
	once sync.Once

	closed   atomic.Bool
	lost     atomic.Int64 // events not handed to NATS
	rejected atomic.Int64 // received messages that were not a valid event of their subject's task
}

// taskSub is the NATS subscription of one task, kept while it has local
// subscribers.
type taskSub struct {
	n   int
	sub *nats.Subscription
}

var _ events.Bus = (*Bus)(nil)

// New returns a Bus publishing and subscribing on nc; Close stops it (nc
// stays open: its owner closes it).
func New(nc *nats.Conn, opts Options) *Bus {
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bus{
		nc:     nc,
		local:  events.NewBroker(),
		origin: uuid.NewString(),
		log:    log,
		tasks:  make(map[string]*taskSub),
		out:    make(chan *events.Event, opts.Queue),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go b.publisher()
	return b
}

// Subject returns the subject of taskID's events, or "" when taskID cannot
// be one subject token (it would address other tasks' subjects).
func Subject(taskID string) string {
	if taskID == "" || strings.ContainsAny(taskID, ".*> \t\r\n\x00") {
		return ""
	}
	return SubjectPrefix + taskID
}

// Publish delivers l to this process's subscribers and queues it for NATS;
// it never blocks: when the queue is full the event is not published (and
// counted in Lost), because blocking would stall the pipeline.
func (b *Bus) Publish(l domain.AgentLog) {
	e := events.NewEvent(l, nil)
	b.local.PublishEvent(e)
	if b.closed.Load() || Subject(l.TaskID) == "" {
		b.lost.Add(1)
		return
	}
	select {
	case b.out <- e:
	default:
		b.lost.Add(1)
	}
}

// publisher hands queued events to NATS in order. nats.go may block a
// publish while it writes its buffer to a slow socket; that happens here,
// not in the pipeline. While reconnecting, nats.go buffers up to its
// ReconnectBufSize and then refuses: those events are lost to NATS only.
func (b *Bus) publisher() {
	defer close(b.done)
	for {
		select {
		case e := <-b.out:
			b.send(e)
		case <-b.stop:
			for {
				select {
				case e := <-b.out:
					b.send(e)
				default:
					if b.nc.IsConnected() {
						_ = b.nc.FlushTimeout(closeFlush)
					}
					return
				}
			}
		}
	}
}

func (b *Bus) send(e *events.Event) {
	data, err := e.JSON()
	if err != nil {
		b.lost.Add(1)
		return
	}
	m := &nats.Msg{Subject: Subject(e.TaskID), Data: data, Header: nats.Header{originHeader: []string{b.origin}}}
	if err := b.nc.PublishMsg(m); err != nil {
		b.lost.Add(1)
	}
}

// Subscribe starts receiving taskID's events from every process. The task's
// NATS subscription is made with its first local subscriber and dropped
// with its last.
func (b *Bus) Subscribe(taskID string, buffer int) *events.Subscription {
	created := false
	b.mu.Lock()
	ts := b.tasks[taskID]
	if ts == nil {
		ts = &taskSub{}
		b.tasks[taskID] = ts
		if subj := Subject(taskID); subj != "" && !b.closed.Load() {
			sub, err := b.nc.Subscribe(subj, b.handler(taskID))
			if err != nil {
				// Still served locally; Follow polls the store for the rest.
				b.log.Warn("NATS subscription failed; task events from other processes arrive by polling the store", "task_id", taskID, "err", err)
			} else {
				_ = sub.SetPendingLimits(pendingMsgs, pendingBytes)
				ts.sub = sub
				created = true
			}
		}
	}
	ts.n++
	b.mu.Unlock()
	if created && b.nc.IsConnected() {
		_ = b.nc.FlushTimeout(subscribeFlush)
	}
	return b.local.SubscribeFunc(taskID, buffer, func() { b.release(taskID) })
}

func (b *Bus) release(taskID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ts := b.tasks[taskID]
	if ts == nil {
		return
	}
	if ts.n--; ts.n > 0 {
		return
	}
	delete(b.tasks, taskID)
	if ts.sub != nil {
		_ = ts.sub.Unsubscribe()
	}
}

// handler delivers the messages of taskID's subject to local subscribers.
// Anything on the subject is untrusted input: it must decode as an event of
// this very task, or it is dropped.
func (b *Bus) handler(taskID string) nats.MsgHandler {
	return func(m *nats.Msg) {
		if m.Header.Get(originHeader) == b.origin {
			return // ours, already delivered locally
		}
		var l domain.AgentLog
		if err := json.Unmarshal(m.Data, &l); err != nil || l.TaskID != taskID || l.Seq < 0 ||
			(l.Seq == 0) != (l.Type == domain.EventTokenDelta) {
			b.rejected.Add(1)
			return
		}
		b.local.PublishEvent(events.NewEvent(l, nil))
	}
}

// Subscribers returns the number of local subscribers of taskID.
func (b *Bus) Subscribers(taskID string) int { return b.local.Subscribers(taskID) }

// TotalSubscribers returns the number of local subscribers of all tasks.
func (b *Bus) TotalSubscribers() int { return b.local.TotalSubscribers() }

// Stats reports token deltas dropped for full local buffers and local
// subscribers evicted for being slow.
func (b *Bus) Stats() (droppedDeltas, evictedSubscribers int64) { return b.local.Stats() }

// Lost returns how many events were not handed to NATS (queue full, NATS
// refusing while disconnected, a task ID that is not a subject token).
func (b *Bus) Lost() int64 { return b.lost.Load() }

// Rejected returns how many received messages were dropped as invalid.
func (b *Bus) Rejected() int64 { return b.rejected.Load() }

// NATSSubscriptions returns how many tasks have a NATS subscription now.
func (b *Bus) NATSSubscriptions() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, ts := range b.tasks {
		if ts.sub != nil {
			n++
		}
	}
	return n
}

// Close publishes what is queued (bounded by a short flush) and drops every
// NATS subscription; local subscriptions stay open until their owners
// close them. Publish after Close still reaches local subscribers.
func (b *Bus) Close() {
	b.once.Do(func() {
		b.closed.Store(true)
		close(b.stop)
		<-b.done
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, ts := range b.tasks {
			if ts.sub != nil {
				_ = ts.sub.Unsubscribe()
				ts.sub = nil
			}
		}
	})
}
