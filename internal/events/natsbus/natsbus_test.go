package natsbus_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
	"github.com/catalyst/catalyst/internal/events/natsbus"
	"github.com/catalyst/catalyst/internal/natstest"
	"github.com/catalyst/catalyst/internal/store/sqlite"
)

// proc is one Catalyst process as far as events go: its own NATS
// connection, bus, store handle and recorder.
type proc struct {
	nc  *nats.Conn
	bus *natsbus.Bus
	st  *sqlite.Store
	rec *events.Recorder
}

func newProc(t *testing.T, srv *natstest.Server, db string, opts ...nats.Option) *proc {
	t.Helper()
	nc := srv.Connect(t, opts...)
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	bus := natsbus.New(nc, natsbus.Options{})
	t.Cleanup(bus.Close)
	return &proc{nc: nc, bus: bus, st: st, rec: &events.Recorder{Store: st, Broker: bus}}
}

// world is one NATS server, one database file and two processes on them.
type world struct {
	t    *testing.T
	srv  *natstest.Server
	a, b *proc
	task string
}

func newWorld(t *testing.T, aOpts ...nats.Option) *world {
	t.Helper()
	srv := natstest.Start(t)
	db := filepath.Join(t.TempDir(), "catalyst.db")
	w := &world{t: t, srv: srv, a: newProc(t, srv, db, aOpts...), b: newProc(t, srv, db)}
	ctx := context.Background()
	now := time.Now().UTC()
	if err := w.a.st.CreateProject(ctx, domain.Project{ID: "p", Name: "p", Status: domain.ProjectActive, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	w.task = uuid.NewString()
	if err := w.a.st.CreateTask(ctx, domain.Task{ID: w.task, ProjectID: "p", Prompt: "x", Status: domain.TaskRunning,
		GraphState: domain.NewGraphState([]string{domain.NodePlanner, domain.NodeArchitect, domain.NodeCoder, domain.NodeTester, domain.NodeReviewer, domain.NodeDeployer}), CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) record(msg string) domain.AgentLog {
	w.t.Helper()
	l, err := w.a.rec.Record(context.Background(), domain.AgentLog{TaskID: w.task, AgentName: "Coder", Message: msg})
	if err != nil {
		w.t.Fatal(err)
	}
	return l
}

// finish completes the task as the pipeline does: status, then the event.
func (w *world) finish() domain.AgentLog {
	w.t.Helper()
	if _, err := w.a.st.UpdateTask(context.Background(), w.task, func(t *domain.Task) error {
		t.Status = domain.TaskCompleted
		return nil
	}); err != nil {
		w.t.Fatal(err)
	}
	l, err := w.a.rec.Record(context.Background(), domain.AgentLog{TaskID: w.task, Type: domain.EventTaskState,
		Message: "Task completed", Data: json.RawMessage(`{"status":"completed"}`)})
	if err != nil {
		w.t.Fatal(err)
	}
	return l
}

// follower runs events.Follow on process p and collects what it sends.
type follower struct {
	mu     sync.Mutex
	stored []domain.AgentLog
	deltas int
	done   chan error
}

func (w *world) follow(ctx context.Context, p *proc, poll time.Duration) *follower {
	f := &follower{done: make(chan error, 1)}
	go func() {
		f.done <- events.Follow(ctx, events.FollowOptions{Bus: p.bus, Store: p.st, TaskID: w.task, Poll: poll,
			Send: func(e domain.AgentLog, _ []byte) error {
				f.mu.Lock()
				defer f.mu.Unlock()
				if e.Seq == 0 {
					f.deltas++
				} else {
					f.stored = append(f.stored, e)
				}
				return nil
			}})
	}()
	waitFor(w.t, "the follower's subscription", func() bool { return p.bus.Subscribers(w.task) == 1 })
	return f
}

func (f *follower) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.stored)
}

// wait returns when Follow ended and checks that it ended with the task,
// having sent seq 1..last exactly once, in order.
func (f *follower) wait(t *testing.T, last int64) {
	t.Helper()
	select {
	case err := <-f.done:
		var ended *events.Ended
		if !errors.As(err, &ended) || ended.Status != domain.TaskCompleted {
			t.Fatalf("Follow ended with %v, want the task completed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("Follow did not end; got %d events", f.count())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if int64(len(f.stored)) != last {
		t.Fatalf("got %d stored events, want %d", len(f.stored), last)
	}
	for i, e := range f.stored {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d (gap or duplicate)", i, e.Seq)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A follower on process B receives every event recorded by process A, live
// through NATS: the store poll is off, and token deltas (never stored) can
// only have come over NATS.
func TestFollowerOnAnotherProcessReceivesEveryEvent(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := w.follow(ctx, w.b, time.Hour)
	const n = 200
	for i := 1; i <= n; i++ {
		w.record(fmt.Sprint("line ", i))
		w.a.rec.Delta(w.task, "Coder", "typing")
	}
	last := w.finish()
	f.wait(t, last.Seq)
	if f.deltas != n {
		t.Fatalf("got %d token deltas over NATS, want %d", f.deltas, n)
	}
	if lost := w.a.bus.Lost(); lost != 0 {
		t.Fatalf("A lost %d events with NATS up", lost)
	}
	// The task's NATS subscription went with its last follower.
	waitFor(t, "the NATS subscription to go", func() bool { return w.b.bus.NATSSubscriptions() == 0 && w.b.nc.NumSubscriptions() == 0 })
}

// Events A records while NATS is down never reach NATS (A's reconnect
// buffer is off); B's follower still gets them from the store, in order,
// when the next live event shows the gap.
func TestEventsMissedByNATSComeFromTheStore(t *testing.T) {
	w := newWorld(t, nats.ReconnectBufSize(-1))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := w.follow(ctx, w.b, time.Hour) // no poll: only the gap fill can recover
	for i := range 5 {
		w.record(fmt.Sprint("before ", i))
	}
	waitFor(t, "the first events", func() bool { return f.count() == 5 })

	w.srv.Shutdown()
	waitFor(t, "A to notice", func() bool { return !w.a.nc.IsConnected() })
	for i := range 5 {
		w.record(fmt.Sprint("while down ", i))
	}
	waitFor(t, "A's publishes to fail", func() bool { return w.a.bus.Lost() == 5 })
	if got := f.count(); got != 5 {
		t.Fatalf("follower got %d events while NATS was down, want 5", got)
	}

	w.srv.Restart()
	waitFor(t, "both to reconnect", func() bool { return w.a.nc.IsConnected() && w.b.nc.IsConnected() })
	if err := w.b.nc.Flush(); err != nil { // B's subscription is back on the server
		t.Fatal(err)
	}
	w.record("after")
	last := w.finish()
	f.wait(t, last.Seq)
}

// When the last events, the terminal one included, are lost on the bus, the
// follower's store poll still ends the stream.
func TestLostTerminalEventEndsByPolling(t *testing.T) {
	w := newWorld(t, nats.ReconnectBufSize(-1))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := w.follow(ctx, w.b, 100*time.Millisecond)
	w.record("hello")
	waitFor(t, "the first event", func() bool { return f.count() == 1 })
	w.srv.Shutdown()
	waitFor(t, "A to notice", func() bool { return !w.a.nc.IsConnected() })
	w.record("lost")
	last := w.finish()
	f.wait(t, last.Seq)
}

// NATS restarting while A records loses nothing for B's follower.
func TestNATSRestartMidStreamLosesNothing(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := w.follow(ctx, w.b, 0)
	for i := 1; i <= 300; i++ {
		if i == 100 {
			w.srv.Shutdown()
		}
		if i == 200 {
			w.srv.Restart()
		}
		w.record(fmt.Sprint("line ", i))
		time.Sleep(time.Millisecond)
	}
	last := w.finish()
	f.wait(t, last.Seq)
}

// A subscriber that does not read is evicted when a stored event does not
// fit its buffer, token deltas that do not fit are dropped without
// eviction, other subscribers keep everything, and the NATS subscription is
// dropped with the last local subscriber.
func TestSlowSubscriberEvictedOverNATS(t *testing.T) {
	w := newWorld(t)
	deltaOnly := w.b.bus.Subscribe(w.task, 1)
	slow := w.b.bus.Subscribe(w.task, 4)
	fast := w.b.bus.Subscribe(w.task, 100)
	for range 10 {
		w.a.bus.Publish(domain.AgentLog{TaskID: w.task, Type: domain.EventTokenDelta, Message: "t"})
	}
	waitFor(t, "deltas to be dropped", func() bool { d, _ := w.b.bus.Stats(); return d >= 9+6 })
	if deltaOnly.Err() != nil || slow.Err() != nil {
		t.Fatalf("closed for dropped deltas: %v %v", deltaOnly.Err(), slow.Err())
	}
	deltaOnly.Close()
	for i := 1; i <= 20; i++ {
		w.a.bus.Publish(domain.AgentLog{TaskID: w.task, Seq: int64(i), Type: domain.EventLog})
	}
	var got []int64
	for len(got) < 20 {
		select {
		case e := <-fast.C():
			if e.Seq > 0 {
				got = append(got, e.Seq)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("fast subscriber got %v", got)
		}
	}
	for i, s := range got {
		if s != int64(i+1) {
			t.Fatalf("fast subscriber got %v", got)
		}
	}
	waitFor(t, "the slow subscriber's eviction", func() bool { return errors.Is(slow.Err(), events.ErrSlowConsumer) })
	if _, evicted := w.b.bus.Stats(); evicted != 1 {
		t.Fatalf("evicted = %d, want 1", evicted)
	}
	if w.b.bus.NATSSubscriptions() != 1 {
		t.Fatal("NATS subscription dropped while a subscriber remains")
	}
	fast.Close()
	if w.b.bus.NATSSubscriptions() != 0 || w.b.bus.Subscribers(w.task) != 0 {
		t.Fatalf("after the last subscriber left: %d NATS subscriptions, %d subscribers", w.b.bus.NATSSubscriptions(), w.b.bus.Subscribers(w.task))
	}
}

// A process's own events reach its own subscribers once (not again as the
// NATS echo), also while NATS is down.
func TestOwnEventsDeliveredOnceEvenWithoutNATS(t *testing.T) {
	w := newWorld(t)
	sub := w.a.bus.Subscribe(w.task, 100)
	defer sub.Close()
	publish := func() {
		for i := range 5 {
			w.a.bus.Publish(domain.AgentLog{TaskID: w.task, Type: domain.EventTokenDelta, Message: fmt.Sprint(i)})
		}
	}
	expect := func(n int) {
		t.Helper()
		for i := range n {
			select {
			case <-sub.C():
			case <-time.After(5 * time.Second):
				t.Fatalf("got %d of %d events", i, n)
			}
		}
		// The echo, had it not been recognised, arrives within a round trip.
		if err := w.a.nc.FlushTimeout(time.Second); err == nil {
			time.Sleep(50 * time.Millisecond)
		}
		if extra := len(sub.C()); extra != 0 {
			t.Fatalf("%d events delivered twice", extra)
		}
	}
	publish()
	expect(5)
	w.srv.Shutdown()
	publish()
	expect(5)
}

// Anything on an event subject is untrusted: a message that is not an event
// of the subject's own task never reaches a subscriber, and a task ID that
// is not a single subject token never becomes a wildcard subscription or
// publication.
func TestHostileMessagesAndTaskIDs(t *testing.T) {
	w := newWorld(t)
	other := uuid.NewString()
	sub := w.b.bus.Subscribe(w.task, 100)
	defer sub.Close()
	victim := w.b.bus.Subscribe(other, 100)
	defer victim.Close()
	raw := w.srv.Connect(t)
	subj := natsbus.SubjectPrefix + w.task
	for _, body := range []string{
		`{"task_id":"` + other + `","seq":1,"type":"log","message":"for another task"}`,
		`not json`,
		`{"task_id":"` + w.task + `","seq":-1,"type":"log"}`,
		`{"task_id":"` + w.task + `","seq":7,"type":"token_delta"}`,
		`{"task_id":"` + w.task + `","seq":0,"type":"log"}`,
	} {
		if err := raw.Publish(subj, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Publish(subj, []byte(`{"task_id":"`+w.task+`","seq":1,"type":"log","message":"valid"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-sub.C():
		if e.Message != "valid" {
			t.Fatalf("delivered %+v", e.AgentLog)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the valid event was not delivered")
	}
	if n := w.b.bus.Rejected(); n != 5 {
		t.Fatalf("rejected %d messages, want 5", n)
	}
	if len(victim.C()) != 0 || len(sub.C()) != 0 {
		t.Fatal("a hostile message was delivered")
	}

	// Wildcard task IDs: no NATS subscription, no NATS publication.
	spy, err := raw.SubscribeSync(natsbus.SubjectPrefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{">", "*", "a.b", "x >", ""} {
		s := w.b.bus.Subscribe(id, 1)
		if natsbus.Subject(id) != "" {
			t.Fatalf("Subject(%q) = %q", id, natsbus.Subject(id))
		}
		if n := w.b.bus.NATSSubscriptions(); n != 2 {
			t.Fatalf("task ID %q made a NATS subscription (%d)", id, n)
		}
		s.Close()
		w.a.bus.Publish(domain.AgentLog{TaskID: id, Seq: 1, Type: domain.EventLog, Message: "wild"})
	}
	w.a.bus.Publish(domain.AgentLog{TaskID: w.task, Seq: 2, Type: domain.EventLog, Message: "tame"})
	m, err := spy.NextMsg(5 * time.Second)
	if err != nil || !strings.Contains(string(m.Data), "tame") || m.Subject != subj {
		t.Fatalf("first message on the event subjects: %v %v; want the tame one", m, err)
	}
}

// Publish returns at once while NATS is down, however much is published:
// the queue and nats.go's reconnect buffer are bounded, the rest is lost to
// NATS (the store has it) and counted.
func TestPublishNeverBlocksWhileDisconnected(t *testing.T) {
	w := newWorld(t)
	w.srv.Shutdown()
	waitFor(t, "A to notice", func() bool { return !w.a.nc.IsConnected() })
	msg := strings.Repeat("x", 1024)
	const n = 50_000 // 50 MB: far beyond the 8 MB reconnect buffer
	var slowest time.Duration
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		w.a.bus.Publish(domain.AgentLog{TaskID: w.task, Seq: int64(i + 1), Type: domain.EventLog, Message: msg})
		slowest = max(slowest, time.Since(t0))
	}
	t.Logf("%d publishes while disconnected in %v (slowest %v), %d lost to NATS", n, time.Since(start), slowest, w.a.bus.Lost())
	// A blocking Publish would wait for the server, which stays down: any
	// bound well below the test timeout tells the two apart, and a loose
	// one tolerates GC pauses of the race detector on a busy machine.
	if slowest > 2*time.Second {
		t.Fatalf("a Publish took %v while NATS was down", slowest)
	}
	waitFor(t, "the overflow to be counted", func() bool { return w.a.bus.Lost() > n/2 })
}

// stalledServer speaks just enough NATS to accept a client, then stops
// reading: the client's socket fills and its writes block, as with a NATS
// server that hangs or a network that black-holes.
func stalledServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				fmt.Fprintf(c, "INFO {\"server_id\":\"stalled\",\"version\":\"2.15.2\",\"proto\":1,\"headers\":true,\"max_payload\":1048576}\r\n")
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.HasPrefix(line, "PING") {
						fmt.Fprint(c, "PONG\r\n")
						return // handshake done: never read again
					}
				}
			}()
		}
	}()
	return "nats://" + l.Addr().String()
}

// Publish returns at once when the NATS connection is up but its socket
// does not drain: the blocking write happens on the bus's own goroutine.
func TestPublishNeverBlocksOnAStalledConnection(t *testing.T) {
	nc, err := nats.Connect(stalledServer(t), nats.MaxReconnects(0))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	bus := natsbus.New(nc, natsbus.Options{Queue: 64})
	defer func() {
		nc.Close() // unblocks the publisher so that Close returns
		bus.Close()
	}()
	msg := strings.Repeat("x", 4096)
	const n = 20_000 // 80 MB: far beyond any socket buffer
	var slowest time.Duration
	for i := range n {
		t0 := time.Now()
		bus.Publish(domain.AgentLog{TaskID: "t", Seq: int64(i + 1), Type: domain.EventLog, Message: msg})
		slowest = max(slowest, time.Since(t0))
	}
	t.Logf("%d publishes to a stalled server, slowest %v, %d lost to NATS", n, slowest, bus.Lost())
	if slowest > 2*time.Second {
		t.Fatalf("a Publish took %v on a stalled connection", slowest)
	}
	if bus.Lost() == 0 {
		t.Fatal("nothing was lost: the connection did not stall, the test proves nothing")
	}
}
