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
		Edges: append([]Edge{
			{domain.NodePlanner, domain.NodeArchitect, Always},
			{domain.NodeArchitect, domain.NodeCoder, Always},
		}, checkedEdges()...),
	}
}

// checkedEdges are what build and change share: the coder's work is checked by
// the tester and the reviewer, deployed when both pass, and sent back to
// the coder when either fails.
func checkedEdges() []Edge {
	return []Edge{
		{domain.NodeCoder, domain.NodeTester, Always},
		{domain.NodeCoder, domain.NodeReviewer, Always},
		{domain.NodeTester, domain.NodeDeployer, Pass},
		{domain.NodeReviewer, domain.NodeDeployer, Pass},
		{domain.NodeTester, domain.NodeCoder, Fail},
		{domain.NodeReviewer, domain.NodeCoder, Fail},
	}
}

// Change is the graph of tasks on an existing repository (kind change):
//
//	clone -> baseline -> planner -> coder -> { tester , reviewer } -> deployer
//	                                  ^          |          |
//	                                  +-- fix ---+----------+
//
// The baseline records the repository's own test results before the change,
// so the tester sends back only what the change broke.
func Change() *Graph {
	n := func(id, agentName, desc string, check Check) Node {
		return Node{ID: id, Agent: agentName, Description: desc, Check: check}
	}
	return &Graph{
		Kind:  domain.KindChange,
		Label: "Change an existing repository",
		Nodes: []Node{
			n(agent.NodeClone, agent.ChangeNames[agent.NodeClone], "clones the repository on the task branch", nil),
			n(agent.NodeBaseline, agent.ChangeNames[agent.NodeBaseline], "runs the repository's tests before the change", nil),
			n(domain.NodePlanner, agent.Names[domain.NodePlanner], "breaks the request into steps", nil),
			n(domain.NodeCoder, agent.Names[domain.NodeCoder], "changes the code", nil),
			n(domain.NodeTester, agent.Names[domain.NodeTester], "runs the tests again and compares them with the baseline", agent.TestVerdict),
			n(domain.NodeReviewer, agent.Names[domain.NodeReviewer], "reviews the diff against the base", agent.ReviewVerdict),
			n(domain.NodeDeployer, agent.Names[domain.NodeDeployer], "commits on the branch; pushes and opens a pull request, or offers the patch", nil),
		},
		Edges: append([]Edge{
			{agent.NodeClone, agent.NodeBaseline, Always},
			{agent.NodeBaseline, domain.NodePlanner, Always},
			{domain.NodePlanner, domain.NodeCoder, Always},
		}, checkedEdges()...),
	}
}

// Explore is the graph of explore tasks (an Explorer scan):
//
//	gather -> analyse -> report
//
// gather runs the sources concurrently and keeps their facts; analyse
// computes the rule risks and has the model write brief, risks and
// proposals over those facts only; report stores the result on the scan.
// Model calls happen in analyse alone, so a retry after a failed model call
// does not clone or query the sources again.
func Explore() *Graph {
	return &Graph{
		Kind:  domain.KindExplore,
		Label: "Explore an existing system",
		Nodes: []Node{
			{ID: domain.NodeGather, Agent: "Gatherer", Description: "reads the repository, GitHub, Jira and ServiceNow into facts"},
			{ID: domain.NodeAnalyse, Agent: "Analyst", Description: "computes risks by rules, then writes brief, risks and proposals that cite facts"},
			{ID: domain.NodeReport, Agent: "Reporter", Description: "stores the brief, risks, evidence and proposals on the scan"},
		},
		Edges: []Edge{
			{domain.NodeGather, domain.NodeAnalyse, Always},
			{domain.NodeAnalyse, domain.NodeReport, Always},
		},
	}
}

// Builtin returns the registry of every graph Catalyst runs.
func Builtin() *Registry {
	r, err := NewRegistry(Build(), Change(), Explore())
	if err != nil {
		panic(err) // the built-in graphs are constants of this package
	}
	return r
}
