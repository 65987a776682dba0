package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
	"github.com/catalyst/catalyst/internal/graph"
	"github.com/catalyst/catalyst/internal/natstest"
	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/mongo"
	"github.com/catalyst/catalyst/internal/store/mongo/mongotest"
	"github.com/catalyst/catalyst/internal/tasks"
)

// The drivers compared on the MongoDB-wire server (the store of a scaled-out
// deployment), with stub steps, so the figures are the engine's: the local
// executor, and 1, 2 and 4 workers fed by the JetStream work queue, each
// worker with its own store client and NATS connection as a process has.
//
//	go test ./internal/pipeline -run '^$' -bench 'Drivers|Takeover' -benchtime 1x

type benchCluster struct {
	b     *testing.B
	uri   string
	db    string
	srv   *natstest.Server
	svc   *tasks.Service
	reg   *graph.Registry
	g     *testGraph
	store store.Store
}

func newBenchCluster(b *testing.B, g *testGraph) *benchCluster {
	c := &benchCluster{b: b, uri: mongotest.Start(b), db: mongotest.DBName(b), g: g}
	c.store = c.open()
	now := time.Now().UTC()
	if err := c.store.CreateProject(context.Background(), domain.Project{ID: "p1", Name: "bench", Status: domain.ProjectActive, CreatedAt: now, UpdatedAt: now}); err != nil {
		b.Fatal(err)
	}
	var err error
	if c.reg, err = graph.NewRegistry(g.g); err != nil {
		b.Fatal(err)
	}
	return c
}

func (c *benchCluster) open() store.Store {
	s, err := mongo.Open(context.Background(), c.uri, c.db)
	if err != nil {
		c.b.Fatal(err)
	}
	c.b.Cleanup(func() { s.Close() })
	return s
}

func (c *benchCluster) executor(st store.Store, maxConcurrent int, ttl time.Duration) *Executor {
	return New(Options{
		Store: st, Recorder: &events.Recorder{Store: st, Broker: events.NewBroker()}, Graphs: c.reg,
		Steps:    func(string) map[string]agent.Step { return c.g.steps },
		LeaseTTL: ttl, MaxConcurrent: maxConcurrent, AgentTimeout: time.Minute,
	})
}

// local makes the task use cases run tasks on one local executor.
func (c *benchCluster) local(maxConcurrent int) {
	st := c.open()
	e := c.executor(st, maxConcurrent, 15*time.Second)
	if err := e.Start(context.Background()); err != nil {
		c.b.Fatal(err)
	}
	c.b.Cleanup(func() { e.Shutdown(context.Background()) })
	c.svc = tasks.New(tasks.Options{Store: st, Recorder: &events.Recorder{Store: st, Broker: events.NewBroker()}, Graphs: c.reg, Dispatcher: e})
}

// queued makes the task use cases submit to the work queue, run by n workers.
func (c *benchCluster) queued(n, maxConcurrent int, ttl time.Duration) []*Worker {
	c.srv = natstest.Start(c.b)
	q, err := OpenQueue(context.Background(), QueueOptions{Conn: c.srv.Connect(c.b), LeaseTTL: ttl})
	if err != nil {
		c.b.Fatal(err)
	}
	st := c.open()
	c.svc = tasks.New(tasks.Options{Store: st, Recorder: &events.Recorder{Store: st, Broker: events.NewBroker()}, Graphs: c.reg, Dispatcher: q})
	var ws []*Worker
	for range n {
		ws = append(ws, c.worker(maxConcurrent, ttl))
	}
	return ws
}

func (c *benchCluster) worker(maxConcurrent int, ttl time.Duration) *Worker {
	e := c.executor(c.open(), maxConcurrent, ttl)
	if err := e.Start(context.Background()); err != nil {
		c.b.Fatal(err)
	}
	wq, err := OpenQueue(context.Background(), QueueOptions{Conn: c.srv.Connect(c.b), LeaseTTL: ttl})
	if err != nil {
		c.b.Fatal(err)
	}
	w := NewWorker(WorkerOptions{Queue: wq, Executor: e, Store: e.opt.Store, PullWait: 500 * time.Millisecond})
	if err := w.Start(context.Background()); err != nil {
		c.b.Fatal(err)
	}
	c.b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		w.Stop(ctx)
	})
	return w
}

// batch submits n tasks and waits for all of them.
func (c *benchCluster) batch(n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ids := make([]string, n)
	for i := range ids {
		t, err := c.svc.Submit(ctx, tasks.Local(), tasks.Submission{ProjectID: "p1", Prompt: fmt.Sprintf("task %d", i)})
		if err != nil {
			c.b.Fatal(err)
		}
		ids[i] = t.ID
	}
	for _, id := range ids {
		t, err := c.svc.Wait(ctx, tasks.Local(), id)
		if err != nil || t.Status != domain.TaskCompleted {
			c.b.Fatalf("task %s: %v %s %s", id, err, t.Status, t.Error)
		}
	}
}

// BenchmarkDrivers: tasks/s of 16 tasks submitted at once, 4 at a time per
// runner, and the overhead per node of one task at a time.
func BenchmarkDrivers(b *testing.B) {
	const tasksPerBatch, slots = 16, 4
	for _, name := range []string{"local", "workers=1", "workers=2", "workers=4"} {
		b.Run(name+"/throughput", func(b *testing.B) {
			c := newBenchCluster(b, stubGraph(instant))
			switch name {
			case "local":
				c.local(slots)
			default:
				var n int
				fmt.Sscanf(name, "workers=%d", &n)
				c.queued(n, slots, 15*time.Second)
			}
			b.ResetTimer()
			for range b.N {
				c.batch(tasksPerBatch)
			}
			b.ReportMetric(float64(b.N*tasksPerBatch)/b.Elapsed().Seconds(), "tasks/s")
		})
	}
	for _, name := range []string{"local", "workers=1"} {
		b.Run(name+"/per-node", func(b *testing.B) {
			c := newBenchCluster(b, stubGraph(instant))
			if name == "local" {
				c.local(1)
			} else {
				c.queued(1, 1, 15*time.Second)
			}
			b.ResetTimer()
			for range b.N {
				c.batch(1)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*len(buildNodes())), "ms/node")
		})
	}
}

// BenchmarkTakeover: a worker dies holding a task (its message unacked,
// its lease live with CATALYST_LEASE_TTL=2s); the figure is how long until
// another worker claims the task, and how long after the lease expired.
func BenchmarkTakeover(b *testing.B) {
	const ttl = 2 * time.Second
	for range b.N {
		b.StopTimer()
		c := newBenchCluster(b, stubGraph(instant))
		c.queued(0, 1, ttl)
		t, err := c.svc.Submit(context.Background(), tasks.Local(), tasks.Submission{ProjectID: "p1", Prompt: "t"})
		if err != nil {
			b.Fatal(err)
		}
		js, _ := jetstream.New(c.srv.Connect(b))
		cons, err := js.Consumer(context.Background(), TaskStream, TaskConsumer)
		if err != nil {
			b.Fatal(err)
		}
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		for range batch.Messages() {
		}
		// The dead worker's last heartbeat: the lease runs ttl from now, and
		// its message's last progress report was now too.
		if _, err := c.store.UpdateTask(context.Background(), t.ID, func(tk *domain.Task) error {
			_, err := tk.Claim("dead", time.Now().UTC(), ttl, buildNodes())
			return err
		}); err != nil {
			b.Fatal(err)
		}
		died := time.Now()
		w := c.worker(1, ttl)
		b.StartTimer()
		for {
			tk, err := c.store.GetTask(context.Background(), t.ID)
			if err == nil && tk.LeaseOwner == w.exec.Owner() || tk.Status.Terminal() {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		took := time.Since(died)
		b.StopTimer()
		b.ReportMetric(took.Seconds(), "s/takeover")
		b.ReportMetric((took - ttl).Seconds(), "s_after_lease_expiry")
	}
}
