package natstest_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/catalyst/catalyst/internal/natstest"
)

// A stream written before a restart is still there after it, on the same
// URL, and a client connected before reconnects by itself.
func TestRestartKeepsPortAndJetStreamData(t *testing.T) {
	s := natstest.Start(t)
	reconnected := make(chan struct{}, 1)
	nc := s.Connect(t, nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.1", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	url := s.URL()
	s.Shutdown()
	if nc.IsConnected() {
		// the client notices a moment later; wait for it
		deadline := time.Now().Add(5 * time.Second)
		for nc.IsConnected() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if nc.IsConnected() {
		t.Fatal("client still connected after Shutdown")
	}
	s.Restart()
	if s.URL() != url {
		t.Fatalf("URL changed across restart: %s -> %s", url, s.URL())
	}
	select {
	case <-reconnected:
	case <-time.After(10 * time.Second):
		t.Fatal("client did not reconnect")
	}
	stream, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, "t.1")
	if err != nil || string(msg.Data) != "kept" {
		t.Fatalf("stream after restart: %v %v", msg, err)
	}
}

// A three-node cluster keeps a replicated stream writable when one node is
// lost, and the node rejoins after a restart.
func TestClusterSurvivesANodeLoss(t *testing.T) {
	nodes := natstest.StartCluster(t, 3)
	nc := natstest.Connect(t, natstest.ClusterURL(nodes))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R", Subjects: []string{"r.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	nodes[1].Shutdown()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := js.Publish(ctx, "r.1", []byte("x"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish with one node down: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	nodes[1].Restart()
	info, err := js.Stream(ctx, "R")
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("stream has %d messages, want 1", n)
	}
}
