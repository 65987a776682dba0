package natsbus_test

import (
	"testing"
	"time"

	"github.com/catalyst/catalyst/internal/domain"
	"github.com/catalyst/catalyst/internal/events"
	"github.com/catalyst/catalyst/internal/events/natsbus"
	"github.com/catalyst/catalyst/internal/natstest"
)

// BenchmarkPublishToDeliver measures one event's latency from Publish to a
// subscriber's channel, one at a time: in process, and from one process's
// bus to another's through an embedded NATS server on loopback.
func BenchmarkPublishToDeliver(b *testing.B) {
	msg := domain.AgentLog{TaskID: "task-1", Type: domain.EventLog, AgentName: "Coder", Message: "wrote app.js (42 lines)",
		Timestamp: time.Now().UTC()}
	run := func(b *testing.B, pub, sub events.Bus) {
		s := sub.Subscribe("task-1", 16)
		defer s.Close()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			msg.Seq = int64(i + 1)
			pub.Publish(msg)
			select {
			case e := <-s.C():
				if e.Seq != msg.Seq {
					b.Fatalf("got seq %d, want %d", e.Seq, msg.Seq)
				}
			case <-time.After(5 * time.Second):
				b.Fatal("event not delivered")
			}
		}
	}
	b.Run("in-process", func(b *testing.B) {
		br := events.NewBroker()
		run(b, br, br)
	})
	b.Run("nats", func(b *testing.B) {
		srv := natstest.Start(b)
		pub := natsbus.New(srv.Connect(b), natsbus.Options{})
		defer pub.Close()
		sub := natsbus.New(srv.Connect(b), natsbus.Options{})
		defer sub.Close()
		run(b, pub, sub)
	})
}
