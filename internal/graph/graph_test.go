package graph

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCompileRefusesBrokenGraphs(t *testing.T) {
	check := func(json.RawMessage) (bool, []string) { return true, nil }
	bad := map[string]*Graph{
		"cycle":        {Kind: "x", Nodes: []Node{{ID: "a"}, {ID: "b"}}, Edges: []Edge{{"a", "b", Always}, {"b", "a", Always}}},
		"unknown node": {Kind: "x", Nodes: []Node{{ID: "a"}}, Edges: []Edge{{"a", "z", Always}}},
		"duplicate":    {Kind: "x", Nodes: []Node{{ID: "a"}, {ID: "a"}}},
		"no check":     {Kind: "x", Nodes: []Node{{ID: "a"}, {ID: "b"}}, Edges: []Edge{{"a", "b", Always}, {"b", "a", Fail}}},
		"fix forward": {Kind: "x", Nodes: []Node{{ID: "a", Check: check}, {ID: "b"}},
			Edges: []Edge{{"a", "b", Always}, {"a", "b", Fail}}},
		"no kind": {Nodes: []Node{{ID: "a"}}},
		"no id":   {Kind: "x", Nodes: []Node{{}}},
	}
	for name, g := range bad {
		if _, err := Compile(g); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewRegistry(Build(), Build()); err == nil {
		t.Error("a kind registered twice was accepted")
	}
}

func TestBuildGraph(t *testing.T) {
	p, ok := Builtin().Lookup("")
	if !ok {
		t.Fatal("no graph for the empty kind (old documents)")
	}
	if strings.Join(p.Order, ",") != "planner,architect,coder,tester,reviewer,deployer" || p.Target != "coder" ||
		len(p.Body) != 3 || !p.Body["coder"] || !p.Body["tester"] || !p.Body["reviewer"] {
		t.Fatalf("order %v target %s body %v", p.Order, p.Target, p.Body)
	}
	if p.Iteration("deployer", 2) != 1 || p.Iteration("coder", 2) != 3 {
		t.Fatal("iterations")
	}
	d := p.Describe()
	if d.Kind != "build" || len(d.Nodes) != 6 || d.Nodes[0].Label != "Planner" || d.FixLoop == nil ||
		strings.Join(d.FixLoop.Body, ",") != "coder,tester,reviewer" || strings.Join(d.FixLoop.Checks, ",") != "tester,reviewer" {
		t.Fatalf("description %+v", d)
	}
	fails := 0
	for _, e := range d.Edges {
		if e.When == "fail" {
			fails++
			if e.To != "coder" {
				t.Errorf("fail edge %+v", e)
			}
		}
	}
	if fails != 2 {
		t.Errorf("%d fail edges", fails)
	}
}

func TestExploreGraph(t *testing.T) {
	p, ok := Builtin().Lookup("explore")
	if !ok {
		t.Fatal("no graph for explore tasks")
	}
	if strings.Join(p.Order, ",") != "gather,analyse,report" || p.Target != "" {
		t.Fatalf("order %v target %q", p.Order, p.Target)
	}
	d := p.Describe()
	if d.FixLoop != nil || len(d.Edges) != 2 || d.Nodes[1].Label != "Analyst" {
		t.Fatalf("description %+v", d)
	}
}
