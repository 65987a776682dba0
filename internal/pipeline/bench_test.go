package pipeline

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/domain"
)

// The benchmarks run the standard graph's shape with stub steps (no model,
// no sandbox: an instant step, or one that sleeps like a 1 s model call) on
// the embedded SQLite store, so they measure the engine: scheduling, the
// store writes of every transition, artifacts and events.

func runBatch(b *testing.B, e *env, n int) {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.submit(fmt.Sprintf("task %d", i)).ID
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			if t, err := e.exec.Wait(ctx, id); err != nil || t.Status != domain.TaskCompleted {
				b.Errorf("task %s: %v %s %s", id, err, t.Status, t.Error)
			}
		}()
	}
	wg.Wait()
}

// BenchmarkNodeOverhead: one task at a time, instant steps.
func BenchmarkNodeOverhead(b *testing.B) {
	e := newEnv(b, "")
	e.cfg.MaxConcurrentTasks = 1
	e.start(nil, stubGraph(instant))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runBatch(b, e, 1)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(buildNodes())), "µs/node")
}

// BenchmarkTasks: n tasks submitted at once, all allowed to run concurrently.
func BenchmarkTasks(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("concurrent=%d", n), func(b *testing.B) {
			e := newEnv(b, "")
			e.cfg.MaxConcurrentTasks = n
			e.start(nil, stubGraph(instant))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				runBatch(b, e, n)
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "tasks/s")
		})
	}
}

// BenchmarkInFlight10k: 10,000 tasks in flight at once, each in a model call
// (its planner waits until all 10,000 are in flight, then 1 s; every other
// node takes 1 s too); reports the heap and goroutines at that moment.
func BenchmarkInFlight10k(b *testing.B) {
	const n = 10000
	for i := 0; i < b.N; i++ {
		e := newEnv(b, "")
		e.cfg.MaxConcurrentTasks = n
		e.cfg.AgentTimeout = 15 * time.Minute // admitting 10,000 tasks takes the store minutes
		var entered atomic.Int64
		all := make(chan struct{})
		e.start(nil, stubGraph(func(ctx context.Context, in agent.Input) (agent.Output, error) {
			if in.Node == domain.NodePlanner && entered.Add(1) == n {
				close(all)
			}
			if in.Node == domain.NodePlanner {
				select {
				case <-all:
				case <-ctx.Done():
					return agent.Output{}, ctx.Err()
				}
			}
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return agent.Output{}, ctx.Err()
			}
			return instant(ctx, in)
		}))
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		done := make(chan struct{})
		start := time.Now()
		go func() { runBatch(b, e, n); close(done) }()
		<-all
		b.ReportMetric(time.Since(start).Seconds(), "s-to-10k-in-flight")
		var at runtime.MemStats
		runtime.ReadMemStats(&at)
		b.ReportMetric(float64(at.HeapInuse-before.HeapInuse)/(1<<20), "MB-heap-in-flight")
		b.ReportMetric(float64(at.HeapInuse-before.HeapInuse)/n/1024, "KB/task")
		b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
		<-done
	}
}
