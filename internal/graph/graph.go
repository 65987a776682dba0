// Package graph declares the task graphs (a registry by task kind) and the
// pure scheduler that decides, from a graph, a task and its artifacts, what
// happens next. It does no I/O: the drivers in package pipeline perform the
// actions, and the API serves the graphs so that the dashboard draws what
// the server runs.
package graph

import (
	"encoding/json"
	"fmt"
	"slices"

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

func (c Condition) String() string {
	switch c {
	case Pass:
		return "pass"
	case Fail:
		return "fail"
	}
	return "always"
}

// Check judges a node's output: pass, or the findings that send the work
// back. Findings must be stable for the same problem: a fix round whose
// findings equal the previous round's is a stalled loop.
type Check func(output json.RawMessage) (pass bool, findings []string)

// Node is one step of a graph. What runs there is bound by the driver (by
// node id), so the graph stays data.
type Node struct {
	ID string
	// Agent names the agent in events and the UI ("Planner").
	Agent string
	// Description says what the node does, for the UI.
	Description string
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
	Kind  string
	Label string
	Nodes []Node
	Edges []Edge
}

// Plan is a validated graph with the relations the scheduler needs.
type Plan struct {
	Graph *Graph
	// Order is the topological order of the forward edges.
	Order []string
	nodes map[string]*Node
	deps  map[string][]string
	// Target is the node fix edges send work to ("" without a fix loop);
	// Checks are the nodes whose failures do; Body holds the nodes that run
	// again in a fix round (the target, the checks and the nodes between).
	Target string
	Checks []string
	Body   map[string]bool
}

// Node returns the node with id (nil if none).
func (p *Plan) Node(id string) *Node { return p.nodes[id] }

// BodyNodes returns the loop body in topological order.
func (p *Plan) BodyNodes() []string {
	var out []string
	for _, id := range p.Order {
		if p.Body[id] {
			out = append(out, id)
		}
	}
	return out
}

// Compile validates g.
func Compile(g *Graph) (*Plan, error) {
	if g.Kind == "" {
		return nil, fmt.Errorf("graph: no kind")
	}
	p := &Plan{Graph: g, nodes: map[string]*Node{}, deps: map[string][]string{}, Body: map[string]bool{}}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		if n.ID == "" {
			return nil, fmt.Errorf("graph %s: a node has no id", g.Kind)
		}
		if p.nodes[n.ID] != nil {
			return nil, fmt.Errorf("graph %s: duplicate node %q", g.Kind, n.ID)
		}
		if n.Agent == "" {
			n.Agent = n.ID
		}
		p.nodes[n.ID] = n
	}
	succ := map[string][]string{}
	for _, e := range g.Edges {
		if p.nodes[e.From] == nil || p.nodes[e.To] == nil {
			return nil, fmt.Errorf("graph %s: edge %s -> %s names an unknown node", g.Kind, e.From, e.To)
		}
		if e.When != Always && p.nodes[e.From].Check == nil {
			return nil, fmt.Errorf("graph %s: conditional edge from %s, which has no check", g.Kind, e.From)
		}
		if e.When == Fail {
			if p.Target != "" && p.Target != e.To {
				return nil, fmt.Errorf("graph %s: fix edges must all go to one node (%s and %s)", g.Kind, p.Target, e.To)
			}
			p.Target = e.To
			p.Checks = append(p.Checks, e.From)
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
		p.Order = append(p.Order, id)
		for _, s := range succ[id] {
			if indeg[s]--; indeg[s] == 0 {
				queue = append(queue, s)
			}
		}
	}
	if len(p.Order) != len(g.Nodes) {
		return nil, fmt.Errorf("graph %s: the forward edges have a cycle", g.Kind)
	}
	if p.Target != "" {
		down := reach(p.Target, succ)
		for _, c := range p.Checks {
			if !down[c] {
				return nil, fmt.Errorf("graph %s: fix edge from %s to %s, which does not lead to it", g.Kind, c, p.Target)
			}
			for id := range reach(c, p.deps) {
				if down[id] {
					p.Body[id] = true
				}
			}
		}
	}
	return p, nil
}

func reach(from string, next map[string][]string) map[string]bool {
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

// Iteration is the run number of node at a fix round: loop-body nodes
// count fix rounds, the others run once.
func (p *Plan) Iteration(node string, fixRound int) int {
	if p.Body[node] {
		return fixRound + 1
	}
	return 1
}

// Registry holds the graphs by task kind.
type Registry struct {
	plans map[string]*Plan
	kinds []string
}

// NewRegistry compiles graphs; kinds must be unique.
func NewRegistry(graphs ...*Graph) (*Registry, error) {
	r := &Registry{plans: map[string]*Plan{}}
	for _, g := range graphs {
		p, err := Compile(g)
		if err != nil {
			return nil, err
		}
		if r.plans[g.Kind] != nil {
			return nil, fmt.Errorf("graph: kind %s registered twice", g.Kind)
		}
		r.plans[g.Kind] = p
		r.kinds = append(r.kinds, g.Kind)
	}
	return r, nil
}

// Lookup returns the plan of kind ("" means build).
func (r *Registry) Lookup(kind string) (*Plan, bool) {
	if kind == "" {
		kind = domain.KindBuild
	}
	p, ok := r.plans[kind]
	return p, ok
}

// Kinds lists the registered kinds in registration order.
func (r *Registry) Kinds() []string { return slices.Clone(r.kinds) }

// Description is a graph as the API serves it.
type Description struct {
	Kind  string     `json:"kind" doc:"Task kind that runs this graph"`
	Label string     `json:"label"`
	Nodes []NodeDesc `json:"nodes" doc:"Nodes in topological order"`
	Edges []EdgeDesc `json:"edges"`
	// FixLoop is absent for graphs without one.
	FixLoop *FixLoopDesc `json:"fix_loop,omitempty"`
}

// NodeDesc describes a node.
type NodeDesc struct {
	ID          string `json:"id"`
	Label       string `json:"label" doc:"The agent's name, as events name it"`
	Description string `json:"description,omitempty"`
	Check       bool   `json:"check" doc:"Whether the node's verdict can send work back"`
}

// EdgeDesc describes an edge.
type EdgeDesc struct {
	From string `json:"from"`
	To   string `json:"to"`
	When string `json:"when" enum:"always,pass,fail" doc:"always: to waits for from; pass: from must also pass its check; fail: a failing check sends work back to to"`
}

// FixLoopDesc describes the fix loop.
type FixLoopDesc struct {
	Target string   `json:"target" doc:"Node the work goes back to"`
	Checks []string `json:"checks" doc:"Nodes whose failing verdict starts a fix round"`
	Body   []string `json:"body" doc:"Nodes that run again in a fix round"`
}

// Describe returns p as the API serves it.
func (p *Plan) Describe() Description {
	d := Description{Kind: p.Graph.Kind, Label: p.Graph.Label, Nodes: []NodeDesc{}, Edges: []EdgeDesc{}}
	for _, id := range p.Order {
		n := p.nodes[id]
		d.Nodes = append(d.Nodes, NodeDesc{ID: n.ID, Label: n.Agent, Description: n.Description, Check: n.Check != nil})
	}
	for _, e := range p.Graph.Edges {
		d.Edges = append(d.Edges, EdgeDesc{From: e.From, To: e.To, When: e.When.String()})
	}
	if p.Target != "" {
		d.FixLoop = &FixLoopDesc{Target: p.Target, Checks: slices.Clone(p.Checks), Body: p.BodyNodes()}
	}
	return d
}

// Describe returns every graph, in registration order.
func (r *Registry) Describe() []Description {
	out := make([]Description, 0, len(r.kinds))
	for _, k := range r.kinds {
		out = append(out, r.plans[k].Describe())
	}
	return out
}
