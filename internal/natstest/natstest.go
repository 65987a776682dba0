// Package natstest runs real NATS servers with JetStream inside a test
// process: one server, or a cluster of them, each on a loopback port with
// its store in a t.TempDir(). A server can be shut down and restarted on
// the same port and store directory, so clients see a real disconnect and
// reconnect and JetStream keeps its streams.
//
//	s := natstest.Start(t)
//	nc := s.Connect(t)          // closed when the test ends
//	s.Shutdown(); s.Restart()   // same URL, same JetStream data
//
//	nodes := natstest.StartCluster(t, 3)
//	nc := natstest.Connect(t, natstest.ClusterURL(nodes))
package natstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// readyTimeout bounds how long a (re)started server may take to accept
// clients and, in a cluster, to elect its JetStream meta leader.
const readyTimeout = 30 * time.Second

// Server is one embedded nats-server with JetStream.
type Server struct {
	tb   testing.TB
	mu   sync.Mutex
	opts server.Options // ports fixed after the first start, so restarts keep them
	srv  *server.Server
}

// Start runs a single server with JetStream on a random loopback port; it is
// shut down when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{tb: tb, opts: baseOptions(tb, "catalyst-test")}
	s.opts.Port = freePort(tb)
	s.start()
	s.waitReady(false)
	tb.Cleanup(s.Shutdown)
	return s
}

// StartCluster runs n clustered servers (n >= 3 for a JetStream quorum that
// survives losing one) and waits until JetStream has a meta leader. Each
// node can be shut down and restarted like a single server.
func StartCluster(tb testing.TB, n int) []*Server {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("natstest: a cluster needs at least one node, got %d", n)
	}
	clusterPorts := make([]int, n)
	for i := range clusterPorts {
		clusterPorts[i] = freePort(tb)
	}
	nodes := make([]*Server, n)
	for i := range nodes {
		o := baseOptions(tb, fmt.Sprintf("catalyst-test-%d", i+1))
		o.Port = freePort(tb)
		o.Cluster = server.ClusterOpts{Name: "catalyst-test", Host: "127.0.0.1", Port: clusterPorts[i]}
		for j, p := range clusterPorts {
			if j != i {
				o.Routes = append(o.Routes, server.RoutesFromStr(fmt.Sprintf("nats://127.0.0.1:%d", p))...)
			}
		}
		nodes[i] = &Server{tb: tb, opts: o}
	}
	// Start all before waiting: a JetStream cluster needs its peers to
	// elect a leader.
	for _, s := range nodes {
		s.start()
	}
	for _, s := range nodes {
		s.waitReady(true)
		tb.Cleanup(s.Shutdown)
	}
	return nodes
}

// ClusterURL returns the client URLs of servers joined by commas, as
// nats.Connect and NATS_URL take them.
func ClusterURL(servers []*Server) string {
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// URL is the server's client URL (nats://127.0.0.1:port); it stays the same
// across restarts.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port)
}

// StoreDir is where JetStream keeps this server's data.
func (s *Server) StoreDir() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.StoreDir
}

// Running reports whether the server is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv != nil
}

// Connect opens a client connection to this server; see Connect.
func (s *Server) Connect(tb testing.TB, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	return Connect(tb, s.URL(), opts...)
}

// Connect opens a client connection to url (one server or a ClusterURL);
// opts apply after the defaults (a name, reconnecting for ever every 50ms).
// It is closed when the test ends.
func Connect(tb testing.TB, url string, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	all := append([]nats.Option{
		nats.Name("natstest " + tb.Name()),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
		nats.ReconnectJitter(0, 0),
	}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		tb.Fatalf("natstest: connecting to %s: %v", url, err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// Shutdown stops the server and waits until it is down; clients start
// reconnecting. Safe to call when it is already down.
func (s *Server) Shutdown() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Shutdown()
	srv.WaitForShutdown()
}

// Restart starts a server that was shut down, on the same port and store
// directory (its JetStream streams and consumers come back).
func (s *Server) Restart() {
	s.tb.Helper()
	if s.Running() {
		s.tb.Fatal("natstest: Restart of a running server; Shutdown first")
	}
	s.start()
	s.waitReady(len(s.opts.Routes) > 0)
}

// NATSServer is the running server, for inspection (nil while down).
func (s *Server) NATSServer() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

func baseOptions(tb testing.TB, name string) server.Options {
	return server.Options{
		ServerName: name,
		Host:       "127.0.0.1",
		JetStream:  true,
		StoreDir:   tb.TempDir(),
		NoLog:      true,
		NoSigs:     true,
	}
}

func (s *Server) start() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.opts // NewServer keeps and mutates its options
	srv, err := server.NewServer(&o)
	if err != nil {
		s.tb.Fatalf("natstest: %v", err)
	}
	srv.Start()
	s.srv = srv
}

// waitReady waits until clients can connect and, when clustered, until
// JetStream has a meta leader this node knows of.
func (s *Server) waitReady(clustered bool) {
	s.tb.Helper()
	srv := s.NATSServer()
	if !srv.ReadyForConnections(readyTimeout) {
		s.tb.Fatalf("natstest: server %s not ready within %v", s.opts.ServerName, readyTimeout)
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		h := srv.Healthz(&server.HealthzOptions{JSMetaOnly: clustered, JSServerOnly: !clustered})
		if h.Status == "ok" {
			return
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("natstest: JetStream of %s not ready: %s %s", s.opts.ServerName, h.Status, h.Error)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns a loopback port nothing listens on now. Fixed ports,
// rather than the server's own random choice, let a restarted server come
// back where its clients and cluster peers expect it.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
