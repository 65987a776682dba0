package mongo_test

import (
	"testing"

	"github.com/catalyst/catalyst/internal/store"
	"github.com/catalyst/catalyst/internal/store/mongo"
	"github.com/catalyst/catalyst/internal/store/mongo/mongotest"
	"github.com/catalyst/catalyst/internal/store/storetest"
)

// open returns a store on a fresh database of uri.
func open(t testing.TB, uri string) *mongo.Store {
	t.Helper()
	s, err := mongo.Open(t.Context(), uri, mongotest.DBName(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	uri := mongotest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, uri) })
}

func BenchmarkStore(b *testing.B) {
	uri := mongotest.Start(b)
	storetest.Bench(b, func(b *testing.B) store.Store { return open(b, uri) })
}
