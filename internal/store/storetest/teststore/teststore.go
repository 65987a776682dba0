// Package teststore opens the store a test runs on, chosen by one switch:
// CATALYST_TEST_STORE=mongo runs it on a MongoDB-wire server (the embedded
// FerretDB, or CATALYST_TEST_MONGO_URL), anything else on SQLite. The api,
// pipeline and CLI tests go through it, so scripts/test.sh runs each of
// them once per store, as gotosocial runs its suite on both databases.
package teststore

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/mongo"
	"github.com/catalyst/catalyst/internal/store/mongo/mongotest"
	"github.com/catalyst/catalyst/internal/store/sqlite"
)

// Env is the switch.
const Env = "CATALYST_TEST_STORE"

var opened sync.Map // dir -> [uri, db]

// Mongo reports whether the tests run on MongoDB.
func Mongo() bool { return os.Getenv(Env) == "mongo" }

// Open returns a fresh store for t: SQLite in dir (a temporary directory
// when empty), or a new database on the MongoDB-wire server. It is closed
// when t ends.
func Open(t testing.TB, dir string) store.Store {
	t.Helper()
	s, _ := OpenURL(t, dir)
	return s
}

// OpenURL is Open that also returns what a child process needs to open the
// same store: the MongoDB URI and database name as environment variables
// (MONGO_URL, DB_NAME), or none for SQLite in dir.
func OpenURL(t testing.TB, dir string) (store.Store, []string) {
	t.Helper()
	ctx := context.Background()
	if dir == "" {
		dir = t.TempDir()
	}
	if Mongo() {
		// Reopening the same dir (a restarted process) reopens the same database.
		var uri, db string
		if v, ok := opened.Load(dir); ok {
			uri, db = v.([2]string)[0], v.([2]string)[1]
		} else {
			uri, db = mongotest.Start(t), mongotest.DBName(t)
			opened.Store(dir, [2]string{uri, db})
		}
		s, err := mongo.Open(ctx, uri, db)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, []string{"MONGO_URL=" + uri, "DB_NAME=" + db}
	}
	s, err := sqlite.Open(ctx, filepath.Join(dir, "catalyst.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, nil
}
