package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/catalyst/catalyst/internal/domain"
)

// memLogs is an in-memory store.Logs for testing the broker's contract in
// isolation; the real stores run the same rules in storetest.
type memLogs struct {
	mu   sync.Mutex
	logs map[string][]domain.AgentLog
	fail error
}

func (m *memLogs) AppendLog(_ context.Context, l domain.AgentLog) (domain.AgentLog, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return domain.AgentLog{}, m.fail
	}
	if m.logs == nil {
		m.logs = map[string][]domain.AgentLog{}
	}
	l.Seq = int64(len(m.logs[l.TaskID]) + 1)
	m.logs[l.TaskID] = append(m.logs[l.TaskID], l)
	return l, nil
}

func (m *memLogs) ListLogs(_ context.Context, taskID string, after int64, limit int) ([]domain.AgentLog, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []domain.AgentLog
	for _, l := range m.logs[taskID] {
		if l.Seq > after && (limit == 0 || len(out) < limit) {
			out = append(out, l)
		}
	}
	return out, nil
}

func TestRecordStoresBeforePublishing(t *testing.T) {
	logs := &memLogs{}
	b := NewBroker()
	r := &Recorder{Store: logs, Broker: b, Redact: func(s string) string { return strings.ReplaceAll(s, "sk-secret", "[redacted]") }}
	sub := b.Subscribe("t1", 10)
	defer sub.Close()
	got, err := r.Record(context.Background(), domain.AgentLog{TaskID: "t1", AgentName: "Planner", Message: "key sk-secret"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 1 || got.ID == "" || got.Timestamp.IsZero() || got.Type != domain.EventLog {
		t.Fatalf("stored event not completed: %+v", got)
	}
	ev := <-sub.C()
	if ev.ID != got.ID || ev.Seq != 1 || strings.Contains(ev.Message, "sk-secret") {
		t.Fatalf("published %+v", ev)
	}
	stored, _ := logs.ListLogs(context.Background(), "t1", 0, 0)
	if len(stored) != 1 || strings.Contains(stored[0].Message, "sk-secret") {
		t.Fatalf("stored %+v", stored)
	}

	logs.fail = errors.New("disk full")
	if _, err := r.Record(context.Background(), domain.AgentLog{TaskID: "t1", Message: "lost"}); err == nil {
		t.Fatal("a failed store write was not reported")
	}
	select {
	case ev := <-sub.C():
		t.Fatalf("an event that was not stored was published: %+v", ev)
	default:
	}
}

func TestSlowSubscriberIsEvictedOthersKeepReceiving(t *testing.T) {
	b := NewBroker()
	slow := b.Subscribe("t", 2)
	fast := b.Subscribe("t", 100)
	other := b.Subscribe("other-task", 1)
	for i := 1; i <= 10; i++ {
		b.Publish(domain.AgentLog{TaskID: "t", Seq: int64(i), Type: domain.EventLog})
	}
	n := 0
	for range slow.C() {
		n++
	}
	if n != 2 || !errors.Is(slow.Err(), ErrSlowConsumer) {
		t.Fatalf("slow subscriber got %d events, err %v", n, slow.Err())
	}
	for i := 1; i <= 10; i++ {
		if ev := <-fast.C(); ev.Seq != int64(i) {
			t.Fatalf("fast subscriber got seq %d, want %d", ev.Seq, i)
		}
	}
	if len(other.C()) != 0 {
		t.Fatal("event leaked to another task's subscriber")
	}
	if _, evicted := b.Stats(); evicted != 1 {
		t.Fatalf("evicted = %d", evicted)
	}
	if b.Subscribers("t") != 1 {
		t.Fatalf("subscribers = %d", b.Subscribers("t"))
	}
}

func TestTokenDeltasAreDroppedNotFatal(t *testing.T) {
	b := NewBroker()
	r := &Recorder{Store: &memLogs{}, Broker: b}
	sub := b.Subscribe("t", 1)
	defer sub.Close()
	for i := 0; i < 5; i++ {
		r.Delta("t", "Coder", fmt.Sprint(i))
	}
	if sub.Err() != nil {
		t.Fatalf("subscriber closed for dropped deltas: %v", sub.Err())
	}
	if ev := <-sub.C(); ev.Type != domain.EventTokenDelta || ev.Seq != 0 || ev.Message != "0" {
		t.Fatalf("delta %+v", ev)
	}
	if dropped, _ := b.Stats(); dropped != 4 {
		t.Fatalf("dropped = %d", dropped)
	}
}

func TestCloseIsIdempotentAndConcurrentSafe(t *testing.T) {
	b := NewBroker()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(2)
		s := b.Subscribe("t", 1)
		go func() { defer wg.Done(); s.Close(); s.Close() }()
		go func() { defer wg.Done(); b.Publish(domain.AgentLog{TaskID: "t", Type: domain.EventLog}) }()
	}
	wg.Wait()
	if b.Subscribers("t") != 0 {
		t.Fatalf("subscribers left: %d", b.Subscribers("t"))
	}
}

func BenchmarkPublish1000Subscribers(b *testing.B) {
	br := NewBroker()
	subs := make([]*Subscription, 1000)
	for i := range subs {
		subs[i] = br.Subscribe("t", 1<<16)
	}
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range s.C() {
			}
		}()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		br.Publish(domain.AgentLog{TaskID: "t", Seq: int64(i), Type: domain.EventLog})
	}
	b.StopTimer()
	for _, s := range subs {
		s.Close()
	}
	wg.Wait()
}
