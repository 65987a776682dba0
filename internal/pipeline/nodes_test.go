package pipeline

import "github.com/catalyst/catalyst/internal/graph"

// buildNodes lists the build graph's nodes in topological order, from the
// registry the server runs (no copy of the graph in the tests).
func buildNodes() []string {
	p, _ := graph.Builtin().Lookup("build")
	return p.Order
}
