// Package mongotest gives tests a MongoDB-wire server.
//
// With CATALYST_TEST_MONGO_URL set, tests use that server (a real MongoDB);
// otherwise each call starts an embedded FerretDB v1 on 127.0.0.1 with its
// SQLite backend in a temporary directory, stopped when the test ends.
// FerretDB has no transactions, change streams, $lookup, $facet or TTL
// indexes, so code that passes here only uses what every server honours.
//
// Typical use:
//
//	uri := mongotest.Start(t)
//	s, err := mongo.Open(ctx, uri, mongotest.DBName(t))
package mongotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// EnvURL names the variable that points the tests at a real MongoDB.
const EnvURL = "CATALYST_TEST_MONGO_URL"

// Start returns the URI of a MongoDB-wire server for t: the one in
// CATALYST_TEST_MONGO_URL, or a new embedded FerretDB stopped on t.Cleanup.
// Use a fresh database name per test (DBName) since the server may be shared.
func Start(t testing.TB) (uri string) {
	t.Helper()
	if uri := os.Getenv(EnvURL); uri != "" {
		return uri
	}
	return StartFerretDB(t).URI
}

// Server is an embedded FerretDB.
type Server struct {
	URI  string
	t    testing.TB
	dir  string // its SQLite data, kept across Restart
	addr string
	stop func()
}

// Stop shuts the server down and waits for it; safe to call more than once.
// Tests of what happens when the database goes away use it.
func (s *Server) Stop() { s.stop() }

// Restart starts a stopped server again on the same address with the same
// data, as a database that comes back after an outage; clients reconnect.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.run()
}

// StartFerretDB always starts an embedded FerretDB (never the external
// server), so a test can Stop it. It is stopped on t.Cleanup as well.
func StartFerretDB(t testing.TB) *Server {
	t.Helper()
	srv := &Server{t: t, dir: t.TempDir(), addr: "127.0.0.1:0"}
	srv.run()
	t.Cleanup(srv.Stop)
	return srv
}

func (s *Server) run() {
	s.t.Helper()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: s.addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + s.dir + "/",
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		s.t.Fatalf("mongotest: start FerretDB: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }() // Run binds the listener that MongoDBURI reports

	s.URI = f.MongoDBURI()
	if u, err := url.Parse(s.URI); err == nil {
		s.addr = u.Host // a restart binds the same port
	}
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			s.t.Errorf("mongotest: FerretDB did not stop within 10s")
		}
	}
}

var unsafe = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// DBName returns a database name unique to this call, readable after the
// test's name. MongoDB limits names to 63 bytes and forbids /\. "$.
func DBName(t testing.TB) string {
	var b [4]byte
	rand.Read(b[:])
	name := strings.Trim(unsafe.ReplaceAllString(t.Name(), "_"), "_")
	if len(name) > 50 {
		name = name[len(name)-50:]
	}
	return name + "_" + hex.EncodeToString(b[:])
}
