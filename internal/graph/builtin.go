package graph

import (
	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/domain"
)

// Build is the graph of build tasks:
//
//	planner -> architect -> coder -> { tester , reviewer } -> deployer
//	                          ^          |          |
//	                          +-- fix ---+----------+
func Build() *Graph {
	n := func(id, desc string, check Check) Node {
		return Node{ID: id, Agent: agent.Names[id], Description: desc, Check: check}
	}
	return &Graph{
		Kind:  domain.KindBuild,
		Label: "Build an application",
		Nodes: []Node{
			n(domain.NodePlanner, "breaks the request into requirements and steps", nil),
			n(domain.NodeArchitect, "designs files, components and the test strategy", nil),
			n(domain.NodeCoder, "writes the code and its tests", nil),
			n(domain.NodeTester, "runs the tests in the sandbox", agent.TestVerdict),
			n(domain.NodeReviewer, "reviews the code", agent.ReviewVerdict),
			n(domain.NodeDeployer, "commits, serves a preview, publishes", nil),
		},
		Edges: []Edge{
			{domain.NodePlanner, domain.NodeArchitect, Always},
			{domain.NodeArchitect, domain.NodeCoder, Always},
			{domain.NodeCoder, domain.NodeTester, Always},
			{domain.NodeCoder, domain.NodeReviewer, Always},
			{domain.NodeTester, domain.NodeDeployer, Pass},
			{domain.NodeReviewer, domain.NodeDeployer, Pass},
			{domain.NodeTester, domain.NodeCoder, Fail},
			{domain.NodeReviewer, domain.NodeCoder, Fail},
		},
	}
}

// Builtin returns the registry of every graph Catalyst runs.
func Builtin() *Registry {
	r, err := NewRegistry(Build())
	if err != nil {
		panic(err) // the built-in graphs are constants of this package
	}
	return r
}
