package events

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
)

// memTasks adds task status to memLogs, for Follow.
type memTasks struct {
	memLogs
	mu     sync.Mutex
	status domain.TaskStatus
	reads  int
}

func (m *memTasks) GetTask(_ context.Context, id string) (domain.Task, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id != "t" {
		return domain.Task{}, domain.ErrNotFound
	}
	return domain.Task{ID: id, Status: m.status}, nil
}

func (m *memTasks) setStatus(s domain.TaskStatus) {
	m.mu.Lock()
	m.status = s
	m.mu.Unlock()
}

// store appends without publishing: an event the bus lost.
func (m *memTasks) store(t *testing.T, typ domain.EventType, data string) domain.AgentLog {
	t.Helper()
	l := domain.AgentLog{TaskID: "t", Type: typ}
	if data != "" {
		l.Data = json.RawMessage(data)
	}
	l, err := m.AppendLog(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type sink struct {
	mu   sync.Mutex
	seqs []int64
	kind []domain.EventType
}

func (s *sink) send(e domain.AgentLog, _ []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seqs = append(s.seqs, e.Seq)
	s.kind = append(s.kind, e.Type)
	return nil
}

func (s *sink) snapshot() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.seqs...)
}

func startFollow(t *testing.T, b Bus, st *memTasks, after int64, poll time.Duration) (*sink, chan error) {
	t.Helper()
	out := &sink{}
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	go func() {
		done <- Follow(ctx, FollowOptions{Bus: b, Store: st, TaskID: "t", After: after, Poll: poll, Grace: 200 * time.Millisecond, Send: out.send})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for b.Subscribers("t") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Follow did not subscribe")
		}
		time.Sleep(time.Millisecond)
	}
	return out, done
}

func wantEnded(t *testing.T, done chan error, status domain.TaskStatus) {
	t.Helper()
	select {
	case err := <-done:
		var ended *Ended
		if !errors.As(err, &ended) || ended.Status != status {
			t.Fatalf("Follow returned %v, want the task %s", err, status)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Follow did not end")
	}
}

func wantSeqs(t *testing.T, got []int64, want ...int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("sent seqs %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("sent seqs %v, want %v", got, want)
		}
	}
}

// A live event ahead of the next expected seq first brings the missing ones
// from the store; a live event already sent is skipped.
func TestFollowFillsAGapFromTheStore(t *testing.T) {
	st := &memTasks{status: domain.TaskRunning}
	b := NewBroker()
	st.store(t, domain.EventLog, "")
	out, done := startFollow(t, b, st, 0, time.Hour)
	st.store(t, domain.EventLog, "") // 2 and 3 never published
	st.store(t, domain.EventLog, "")
	four := st.store(t, domain.EventLog, "")
	b.Publish(four)
	b.Publish(four) // duplicate delivery
	b.Publish(domain.AgentLog{TaskID: "t", Type: domain.EventTokenDelta, Message: "x"})
	st.setStatus(domain.TaskCompleted)
	b.Publish(st.store(t, domain.EventTaskState, `{"status":"completed"}`))
	wantEnded(t, done, domain.TaskCompleted)
	wantSeqs(t, out.snapshot(), 1, 2, 3, 4, 0, 5)
}

// With a bus that delivers nothing (another process writing the same store
// without a shared bus), the idle poll alone streams the task to its end.
func TestFollowPollsTheStoreWhenTheBusIsSilent(t *testing.T) {
	st := &memTasks{status: domain.TaskRunning}
	out, done := startFollow(t, NewBroker(), st, 0, 20*time.Millisecond)
	for range 3 {
		st.store(t, domain.EventLog, "")
		time.Sleep(30 * time.Millisecond)
	}
	st.setStatus(domain.TaskFailed)
	st.store(t, domain.EventTaskState, `{"status":"failed"}`)
	wantEnded(t, done, domain.TaskFailed)
	wantSeqs(t, out.snapshot(), 1, 2, 3, 4)
}

// A retried task whose old terminal event was replayed keeps streaming while
// polls find nothing new, and ends with the new run's terminal event.
func TestFollowPollDoesNotEndARetriedTask(t *testing.T) {
	st := &memTasks{status: domain.TaskRunning}
	st.store(t, domain.EventTaskState, `{"status":"failed"}`) // the first run ended
	b := NewBroker()
	out, done := startFollow(t, b, st, 0, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // several idle polls
	select {
	case err := <-done:
		t.Fatalf("Follow of a retried task ended on idle polls: %v", err)
	default:
	}
	b.Publish(st.store(t, domain.EventTaskState, `{"status":"running"}`))
	st.setStatus(domain.TaskCompleted)
	b.Publish(st.store(t, domain.EventTaskState, `{"status":"completed"}`))
	wantEnded(t, done, domain.TaskCompleted)
	wantSeqs(t, out.snapshot(), 1, 2, 3)
}

// A live event the store does not show yet is not sent ahead of the events
// before it: the next catch-up sends all of them in order.
func TestFollowNeverSendsPastAHole(t *testing.T) {
	st := &memTasks{status: domain.TaskRunning}
	b := NewBroker()
	out, done := startFollow(t, b, st, 0, 20*time.Millisecond)
	b.Publish(domain.AgentLog{TaskID: "t", Seq: 2, Type: domain.EventLog}) // published, 1 not visible yet
	time.Sleep(50 * time.Millisecond)
	if got := out.snapshot(); len(got) != 0 {
		t.Fatalf("sent %v past a hole", got)
	}
	st.store(t, domain.EventLog, "")
	st.store(t, domain.EventLog, "")
	st.setStatus(domain.TaskCompleted)
	st.store(t, domain.EventTaskState, `{"status":"completed"}`)
	wantEnded(t, done, domain.TaskCompleted)
	wantSeqs(t, out.snapshot(), 1, 2, 3)
}

// Another task's event, however it got onto this task's subscription, is
// never sent.
func TestFollowIgnoresOtherTasksEvents(t *testing.T) {
	st := &memTasks{status: domain.TaskRunning}
	b := NewBroker()
	out, done := startFollow(t, b, st, 0, time.Hour)
	sub := b.Subscribe("t", 1) // a second subscriber to see the stray event arrive
	defer sub.Close()
	b.mu.RLock()
	for s := range b.subs["t"] {
		s.ch <- &Event{AgentLog: domain.AgentLog{TaskID: "other", Seq: 1, Type: domain.EventLog}}
	}
	b.mu.RUnlock()
	st.setStatus(domain.TaskCompleted)
	b.Publish(st.store(t, domain.EventTaskState, `{"status":"completed"}`))
	wantEnded(t, done, domain.TaskCompleted)
	wantSeqs(t, out.snapshot(), 1)
}

func TestFollowSlowConsumerAndBadOptions(t *testing.T) {
	if err := Follow(context.Background(), FollowOptions{}); err == nil {
		t.Fatal("Follow without a bus, store or send")
	}
	st := &memTasks{status: domain.TaskRunning}
	b := NewBroker()
	block := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Follow(context.Background(), FollowOptions{Bus: b, Store: st, TaskID: "t", Buffer: 2, Poll: time.Hour,
			Send: func(domain.AgentLog, []byte) error { <-block; return nil }})
	}()
	for b.Subscribers("t") == 0 {
		time.Sleep(time.Millisecond)
	}
	for range 10 {
		b.Publish(st.store(t, domain.EventLog, ""))
	}
	close(block)
	select {
	case err := <-done:
		if !errors.Is(err, ErrSlowConsumer) {
			t.Fatalf("Follow returned %v, want ErrSlowConsumer", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("slow follower not evicted")
	}
	if _, err := (&memTasks{}).GetTask(context.Background(), "nope"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatal(err)
	}
	err := Follow(context.Background(), FollowOptions{Bus: b, Store: st, TaskID: "nope", Send: (&sink{}).send})
	if !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("Follow of an unknown task: %v", err)
	}
}
