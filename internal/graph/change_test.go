package graph

import (
	"slices"
	"testing"
)

func TestChangeGraph(t *testing.T) {
	p, ok := Builtin().Lookup("change")
	if !ok {
		t.Fatal("no change graph")
	}
	if !slices.Equal(p.Order, []string{"clone", "baseline", "planner", "coder", "tester", "reviewer", "deployer"}) {
		t.Fatalf("order %v", p.Order)
	}
	// A fix round reruns the coder and the checks, never the clone or the baseline.
	if p.Target != "coder" || !slices.Equal(p.BodyNodes(), []string{"coder", "tester", "reviewer"}) {
		t.Fatalf("fix loop %s %v", p.Target, p.BodyNodes())
	}
	d := p.Describe()
	if d.Nodes[0].Label != "Git" || d.Nodes[1].Label != "Tester" || !d.Nodes[4].Check {
		t.Fatalf("description %+v", d.Nodes)
	}
}
