// Package pipeline runs the task graph: the graph is data (nodes, edges with
// conditions, a bounded fix loop) declared once, and executors run it. The
// local executor here is the embedded default; a Temporal executor will
// implement the same Runner interface.
package pipeline

import (
	"encoding/json"
	"fmt"

	"github.com/catalyst/catalyst/internal/agent"
	"github.com/catalyst/catalyst/internal/domain"
)

// Condition says when an edge is followed.
type Condition int

const (
	// Always: the target waits for the source to complete.
	Always Condition = iota
	// Pass: the target waits for the source to complete with a passing check.
	Pass
	// Fail: a failing check sends the work back to the target (a fix round).
	Fail
)

// Check judges a node's output: pass, or the findings that send the work
// back. Findings must be stable for the same problem: a fix round whose
// findings equal the previous round's is a stalled loop.
type Check func(output json.RawMessage) (pass bool, findings []string)

// Node is one step of the graph.
type Node struct {
	ID string
	// Agent names the agent in logs ("Planner").
	Agent string
	Step  agent.Step
	// Check, when set, makes the node a condition of Pass/Fail edges.
	Check Check
}

// Edge connects two nodes.
type Edge struct {
	From, To string
	When     Condition
}

// Graph is a task graph. Forward edges (Always, Pass) must be acyclic; Fail
// edges go back from checks to the one node they send work to.
type Graph struct {
	Nodes []Node
	Edges []Edge
	// MaxFixRounds bounds the fix loop; 0 means Config.MaxFixIterations
	// (and 3 if that is 0 too).
	MaxFixRounds int
}

// Standard returns the standard graph:
//
//	planner -> architect -> coder -> { tester , reviewer } -> deployer
//	                          ^          |          |
//	                          +-- fix ---+----------+
func Standard(steps map[string]agent.Step) *Graph {
	n := func(id string, check Check) Node {
		return Node{ID: id, Agent: agent.Names[id], Step: steps[id], Check: check}
	}
	return &Graph{
		Nodes: []Node{
			n(domain.NodePlanner, nil),
			n(domain.NodeArchitect, nil),
			n(domain.NodeCoder, nil),
			n(domain.NodeTester, agent.TestVerdict),
			n(domain.NodeReviewer, agent.ReviewVerdict),
			n(domain.NodeDeployer, nil),
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

// plan is a validated graph with the relations the executor needs.
type plan struct {
	g     *Graph
	order []string         // topological order of the forward edges
	nodes map[string]*Node // by id
	deps  map[string][]string
	// loop: the fix target, the checks that send work to it, and the loop
	// body (the target, the checks and the nodes between them) whose nodes
	// run again in a fix round.
	target string
	checks []string
	body   map[string]bool
}

func compile(g *Graph) (*plan, error) {
	p := &plan{g: g, nodes: map[string]*Node{}, deps: map[string][]string{}, body: map[string]bool{}}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		if n.ID == "" || n.Step == nil {
			return nil, fmt.Errorf("pipeline: node %q has no id or step", n.ID)
		}
		if p.nodes[n.ID] != nil {
			return nil, fmt.Errorf("pipeline: duplicate node %q", n.ID)
		}
		if n.Agent == "" {
			n.Agent = n.ID
		}
		p.nodes[n.ID] = n
	}
	succ := map[string][]string{}
	for _, e := range g.Edges {
		if p.nodes[e.From] == nil || p.nodes[e.To] == nil {
			return nil, fmt.Errorf("pipeline: edge %s -> %s names an unknown node", e.From, e.To)
		}
		if e.When != Always && p.nodes[e.From].Check == nil {
			return nil, fmt.Errorf("pipeline: conditional edge from %s, which has no check", e.From)
		}
		if e.When == Fail {
			if p.target != "" && p.target != e.To {
				return nil, fmt.Errorf("pipeline: fix edges must all go to one node (%s and %s)", p.target, e.To)
			}
			p.target = e.To
			p.checks = append(p.checks, e.From)
			continue
		}
		p.deps[e.To] = append(p.deps[e.To], e.From)
		succ[e.From] = append(succ[e.From], e.To)
	}
	// Kahn's algorithm in declaration order, so the order is stable.
	indeg := map[string]int{}
	for to, ds := range p.deps {
		indeg[to] = len(ds)
	}
	var queue []string
	for _, n := range g.Nodes {
		if indeg[n.ID] == 0 {
			queue = append(queue, n.ID)
		}
	}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		p.order = append(p.order, id)
		for _, s := range succ[id] {
			if indeg[s]--; indeg[s] == 0 {
				queue = append(queue, s)
			}
		}
	}
	if len(p.order) != len(g.Nodes) {
		return nil, fmt.Errorf("pipeline: the forward edges have a cycle")
	}
	if p.target != "" {
		// The body: nodes reachable from the target that reach a check.
		reach := func(from string, next map[string][]string) map[string]bool {
			seen := map[string]bool{from: true}
			stack := []string{from}
			for len(stack) > 0 {
				id := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				for _, s := range next[id] {
					if !seen[s] {
						seen[s] = true
						stack = append(stack, s)
					}
				}
			}
			return seen
		}
		down := reach(p.target, succ)
		for _, c := range p.checks {
			if !down[c] {
				return nil, fmt.Errorf("pipeline: fix edge from %s to %s, which does not lead to it", c, p.target)
			}
			for id := range reach(c, p.deps) {
				if down[id] {
					p.body[id] = true
				}
			}
		}
	}
	return p, nil
}

// iteration is the run number of node in a task at the given fix round:
// loop-body nodes count fix rounds, the others run once.
func (p *plan) iteration(node string, fixRound int) int {
	if p.body[node] {
		return fixRound + 1
	}
	return 1
}
