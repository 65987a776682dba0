// Package events is the per-task ordered event stream. Every event except a
// token delta is stored in agent_logs (with its per-task sequence number)
// before it is published on a Bus, so a follower that replays the store and
// then follows the bus (Follow) sees every event exactly once.
//
// Delivery rules: Publish never blocks. Token deltas may be dropped for a
// subscriber whose buffer is full; any other event that does not fit closes
// that subscriber with ErrSlowConsumer, because a gap would be a lie. A slow
// subscriber therefore never slows the pipeline or other subscribers.
//
// A Bus may lose events between processes (NATS core subjects are at most
// once); Follow fills every gap from the store, so only the store has to be
// lossless.
package events

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

// ErrSlowConsumer is the reason a subscriber was closed for not keeping up.
var ErrSlowConsumer = errors.New("subscriber too slow: event buffer full")

// DefaultBuffer is the per-subscriber buffer size used when none is given.
const DefaultBuffer = 1024

// Bus carries published events to the subscribers of their task. Broker is
// the in-process Bus; natsbus carries events between processes.
type Bus interface {
	// Publish delivers l to the subscribers of l.TaskID without blocking.
	Publish(l domain.AgentLog)
	// Subscribe starts receiving live events of taskID; buffer <= 0 means
	// DefaultBuffer.
	Subscribe(taskID string, buffer int) *Subscription
	// Subscribers returns the number of live local subscribers of taskID.
	Subscribers(taskID string) int
	// TotalSubscribers returns the number of live local subscribers.
	TotalSubscribers() int
	// Stats reports dropped token deltas and evicted subscribers.
	Stats() (droppedDeltas, evictedSubscribers int64)
}

var _ Bus = (*Broker)(nil)

// Broker fans events of each task out to its subscribers within one process.
type Broker struct {
	mu   sync.RWMutex
	subs map[string]map[*Subscription]struct{}

	dropped atomic.Int64 // token deltas dropped for full buffers
	evicted atomic.Int64 // subscribers closed for being slow
}

// NewBroker returns an empty broker.
func NewBroker() *Broker {
	return &Broker{subs: make(map[string]map[*Subscription]struct{})}
}

// Event is one published event. A single Event is shared by every
// subscriber of its task, so it is read-only; its JSON encoding is computed
// once for all of them (a task watched by 1,000 clients is not encoded
// 1,000 times), and a subscriber's buffer holds pointers, not copies.
type Event struct {
	domain.AgentLog

	once sync.Once
	raw  []byte
	err  error
}

// JSON returns the event's wire encoding (the domain.AgentLog fields).
func (e *Event) JSON() ([]byte, error) {
	e.once.Do(func() { e.raw, e.err = json.Marshal(e.AgentLog) })
	return e.raw, e.err
}

// Subscription receives the events of one task.
type Subscription struct {
	TaskID string
	b      *Broker
	ch     chan *Event
	once   sync.Once
	mu     sync.Mutex
	err    error
	// onClose runs once after the subscription ended, however it ended
	// (a NATS bus drops its task's NATS subscription with the last one).
	onClose func()
}

// C delivers events; it is closed when the subscription ends (see Err).
func (s *Subscription) C() <-chan *Event { return s.ch }

// Err says why C was closed: nil after Close, ErrSlowConsumer after eviction.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription; safe to call more than once.
func (s *Subscription) Close() { s.b.remove(s, nil) }

// Subscribe starts receiving live events of taskID. buffer <= 0 means DefaultBuffer.
func (b *Broker) Subscribe(taskID string, buffer int) *Subscription {
	return b.SubscribeFunc(taskID, buffer, nil)
}

// SubscribeFunc is Subscribe with onClose run once when the subscription
// ends: closed by its owner or evicted. It lets a Bus built on a Broker keep
// per-task resources exactly as long as the task has subscribers.
func (b *Broker) SubscribeFunc(taskID string, buffer int, onClose func()) *Subscription {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	s := &Subscription{TaskID: taskID, b: b, ch: make(chan *Event, buffer), onClose: onClose}
	b.mu.Lock()
	set := b.subs[taskID]
	if set == nil {
		set = make(map[*Subscription]struct{})
		b.subs[taskID] = set
	}
	set[s] = struct{}{}
	b.mu.Unlock()
	return s
}

func (b *Broker) remove(s *Subscription, reason error) {
	s.once.Do(func() {
		b.mu.Lock()
		if set := b.subs[s.TaskID]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(b.subs, s.TaskID)
			}
		}
		b.mu.Unlock()
		s.mu.Lock()
		s.err = reason
		s.mu.Unlock()
		close(s.ch)
		if s.onClose != nil {
			s.onClose()
		}
	})
}

// Publish delivers l to the subscribers of l.TaskID without blocking.
func (b *Broker) Publish(l domain.AgentLog) {
	b.PublishEvent(&Event{AgentLog: l})
}

// PublishEvent is Publish of an Event whose encoding may already be cached,
// so a Bus that also sends it elsewhere encodes it once.
func (b *Broker) PublishEvent(e *Event) {
	b.mu.RLock()
	var slow []*Subscription
	for s := range b.subs[e.TaskID] {
		select {
		case s.ch <- e:
		default:
			if e.Type == domain.EventTokenDelta {
				b.dropped.Add(1)
				continue
			}
			slow = append(slow, s)
		}
	}
	b.mu.RUnlock()
	for _, s := range slow {
		b.evicted.Add(1)
		b.remove(s, ErrSlowConsumer)
	}
}

// Subscribers returns the number of live subscribers of taskID.
func (b *Broker) Subscribers(taskID string) int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs[taskID])
}

// TotalSubscribers returns the number of live subscribers of all tasks.
func (b *Broker) TotalSubscribers() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	n := 0
	for _, set := range b.subs {
		n += len(set)
	}
	return n
}

// Stats reports dropped token deltas and evicted subscribers.
func (b *Broker) Stats() (droppedDeltas, evictedSubscribers int64) {
	return b.dropped.Load(), b.evicted.Load()
}

// NewEvent wraps l, with raw as its known JSON encoding (nil: encode on
// first use). raw must be the encoding of l: it is sent to clients as is.
func NewEvent(l domain.AgentLog, raw []byte) *Event {
	e := &Event{AgentLog: l}
	if raw != nil {
		e.once.Do(func() { e.raw = raw })
	}
	return e
}

// Recorder stores events, then publishes them: the one way the pipeline emits.
type Recorder struct {
	Store store.Logs
	// Broker is the Bus events are published to (in-process or NATS); the
	// field keeps its historical name so wiring written for the in-process
	// broker stays valid.
	Broker Bus
	// Redact, when set, is applied to every message and every string of
	// the data before it is stored or published (secrets, PII).
	Redact func(string) string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Record stores l (assigning ID, Seq, Timestamp) and publishes the stored event.
func (r *Recorder) Record(ctx context.Context, l domain.AgentLog) (domain.AgentLog, error) {
	if l.ID == "" {
		l.ID = uuid.NewString()
	}
	if l.Type == "" {
		l.Type = domain.EventLog
	}
	if l.Timestamp.IsZero() {
		l.Timestamp = r.now()
	}
	if r.Redact != nil {
		l.Message = r.Redact(l.Message)
		l.Data = redactData(l.Data, r.Redact)
	}
	stored, err := r.Store.AppendLog(ctx, l)
	if err != nil {
		return domain.AgentLog{}, err
	}
	if r.Broker != nil {
		r.Broker.Publish(stored)
	}
	return stored, nil
}

// Delta publishes a token delta without storing it. Its Seq is 0: deltas sit
// between stored events and are never replayed.
func (r *Recorder) Delta(taskID, agentName, text string) {
	if r.Broker == nil || text == "" {
		return
	}
	if r.Redact != nil {
		text = r.Redact(text)
	}
	r.Broker.Publish(domain.AgentLog{
		ID:        uuid.NewString(),
		TaskID:    taskID,
		Type:      domain.EventTokenDelta,
		AgentName: agentName,
		Message:   text,
		Timestamp: r.now(),
	})
}

func (r *Recorder) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}
