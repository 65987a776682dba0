package storetest

import (
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/store"
)

// Bench runs the store benchmarks: CreateTask (one insert), ListTasks (a
// page of 50 among 10,000 tasks, deep in the list) and AppendLog.
func Bench(b *testing.B, open func(b *testing.B) store.Store) {
	b.Run("CreateTask", func(b *testing.B) {
		s := open(b)
		p := newProject(T0)
		if err := s.CreateProject(b.Context(), p); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if err := s.CreateTask(b.Context(), newTask(p.ID, T0.Add(time.Duration(i)*time.Millisecond))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ListTasks50of10k", func(b *testing.B) {
		s := open(b)
		p := newProject(T0)
		if err := s.CreateProject(b.Context(), p); err != nil {
			b.Fatal(err)
		}
		const n = 10_000
		for i := range n {
			if err := s.CreateTask(b.Context(), newTask(p.ID, T0.Add(time.Duration(i)*time.Millisecond))); err != nil {
				b.Fatal(err)
			}
		}
		// Start from a cursor in the middle, as a client paging through does.
		_, mid, err := s.ListTasks(b.Context(), store.TaskFilter{Scope: store.All()}, store.Page{Limit: n / 2})
		if err != nil {
			b.Fatal(err)
		}
		filter := store.TaskFilter{Scope: store.All(), ProjectID: p.ID}
		b.ReportAllocs()
		for b.Loop() {
			items, _, err := s.ListTasks(b.Context(), filter, store.Page{Limit: 50, Cursor: mid})
			if err != nil || len(items) != 50 {
				b.Fatalf("ListTasks: %d items, %v", len(items), err)
			}
		}
	})
	b.Run("AppendLog", func(b *testing.B) {
		s := open(b)
		p := newProject(T0)
		task := newTask(p.ID, T0)
		if err := s.CreateProject(b.Context(), p); err != nil {
			b.Fatal(err)
		}
		if err := s.CreateTask(b.Context(), task); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			_, err := s.AppendLog(b.Context(), domain.AgentLog{
				TaskID: task.ID, Type: domain.EventLog, AgentName: "Coder", Message: "wrote main.go (42 lines)",
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
