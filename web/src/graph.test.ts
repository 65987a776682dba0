import { describe, expect, it } from 'vitest';
import { FixRound, GraphDesc, Task } from './api';
import { checkGraph, colours, graphView, H, layout, W } from './graph';

// The build graph exactly as GET /api/graphs/build serves it (internal/graph Builtin().Describe()).
const BUILD: GraphDesc = {
  kind: 'build',
  label: 'Build an application',
  nodes: [
    { id: 'planner', label: 'Planner', description: 'breaks the request into requirements and steps', check: false },
    { id: 'architect', label: 'Architect', description: 'designs files, components and the test strategy', check: false },
    { id: 'coder', label: 'Coder', description: 'writes the code and its tests', check: false },
    { id: 'tester', label: 'Tester', description: 'runs the tests in the sandbox', check: true },
    { id: 'reviewer', label: 'Reviewer', description: 'reviews the code', check: true },
    { id: 'deployer', label: 'Deployer', description: 'commits, serves a preview, publishes', check: false },
  ],
  edges: [
    { from: 'planner', to: 'architect', when: 'always' },
    { from: 'architect', to: 'coder', when: 'always' },
    { from: 'coder', to: 'tester', when: 'always' },
    { from: 'coder', to: 'reviewer', when: 'always' },
    { from: 'tester', to: 'deployer', when: 'pass' },
    { from: 'reviewer', to: 'deployer', when: 'pass' },
    { from: 'tester', to: 'coder', when: 'fail' },
    { from: 'reviewer', to: 'coder', when: 'fail' },
  ],
  fix_loop: { target: 'coder', checks: ['tester', 'reviewer'], body: ['coder', 'tester', 'reviewer'] },
};

// A graph of another shape: three parallel searches, a loop of two nodes
// whose check sits level with its target, nine nodes (more than the colours).
const RESEARCH: GraphDesc = {
  kind: 'research',
  label: 'Research a question',
  nodes: [
    { id: 'scout', label: 'Scout', check: false },
    { id: 'web', label: 'Web', check: false },
    { id: 'docs', label: 'Docs', check: false },
    { id: 'code', label: 'Code', check: false },
    { id: 'notes', label: 'Notes', check: false },
    { id: 'writer', label: 'Writer', check: false },
    { id: 'critic', label: 'Critic', check: true },
    { id: 'editor', label: 'Editor', check: false },
    { id: 'publish', label: 'Publisher', check: false },
  ],
  edges: [
    { from: 'scout', to: 'web', when: 'always' },
    { from: 'scout', to: 'docs', when: 'always' },
    { from: 'scout', to: 'code', when: 'always' },
    { from: 'web', to: 'notes', when: 'always' },
    { from: 'docs', to: 'notes', when: 'always' },
    { from: 'code', to: 'notes', when: 'always' },
    { from: 'notes', to: 'writer', when: 'always' },
    { from: 'writer', to: 'critic', when: 'always' },
    { from: 'critic', to: 'editor', when: 'pass' },
    { from: 'editor', to: 'publish', when: 'always' },
    { from: 'critic', to: 'writer', when: 'fail' },
  ],
  fix_loop: { target: 'writer', checks: ['critic'], body: ['writer', 'critic'] },
};

const task = (graph_state: Task['graph_state'], fix_iteration = 0, extra: Partial<Task> = {}): Task => ({
  id: 't',
  project_id: 'p',
  prompt: 'x',
  graph_state,
  status: 'running',
  cost: 0,
  fix_iteration,
  created_at: '',
  updated_at: '',
  ...extra,
});

const round = (n: number, failing: string[], reset: string[], max = 3): FixRound => ({ round: n, max, target: 'coder', failing, reset, findings: [] });

// Properties every drawing must have, whatever the graph.
function sane(g: GraphDesc, tall: boolean) {
  const L = layout(g, tall);
  const ids = g.nodes.map((n) => n.id);
  expect(Object.keys(L.pos).sort()).toEqual([...ids].sort());
  for (const id of ids) {
    const p = L.pos[id];
    expect(p.x, `${id} left`).toBeGreaterThanOrEqual(0);
    expect(p.y, `${id} top`).toBeGreaterThanOrEqual(0);
    expect(p.x + W, `${id} right`).toBeLessThanOrEqual(L.vb[0]);
    expect(p.y + H, `${id} bottom`).toBeLessThanOrEqual(L.vb[1]);
  }
  for (let i = 0; i < ids.length; i++)
    for (let j = i + 1; j < ids.length; j++) {
      const a = L.pos[ids[i]], b = L.pos[ids[j]];
      const apart = a.x + W <= b.x || b.x + W <= a.x || a.y + H <= b.y || b.y + H <= a.y;
      expect(apart, `${ids[i]} and ${ids[j]} overlap`).toBe(true);
    }
  // Every forward edge runs with the flow: right when wide, down when tall.
  for (const e of L.forward) {
    const a = L.pos[e.from], b = L.pos[e.to];
    if (tall) expect(b.y, `${e.from}→${e.to}`).toBeGreaterThanOrEqual(a.y + H);
    else expect(b.x, `${e.from}→${e.to}`).toBeGreaterThanOrEqual(a.x + W);
  }
  expect(L.forward.some((e) => e.when === 'fail')).toBe(false);
  return L;
}

describe('layout', () => {
  it('lays the build graph out in its five layers, the checks side by side', () => {
    for (const tall of [false, true]) {
      const L = sane(BUILD, tall);
      expect(L.layer).toEqual({ planner: 0, architect: 1, coder: 2, tester: 3, reviewer: 3, deployer: 4 });
      expect(L.forward).toHaveLength(6);
      // The loop leaves each check on its own side of the coder and goes back to it.
      expect(L.loops).toEqual([
        { check: 'tester', target: 'coder', side: 'a' },
        { check: 'reviewer', target: 'coder', side: 'b' },
      ]);
    }
    // Wide, the single nodes sit level with the middle of the pair.
    const wide = layout(BUILD, false);
    expect(wide.pos.coder.y).toBe((wide.pos.tester.y + wide.pos.reviewer.y) / 2);
    expect(wide.pos.tester.x).toBe(wide.pos.reviewer.x);
    expect(wide.vb[0]).toBeGreaterThan(wide.vb[1]);
    const tall = layout(BUILD, true);
    expect(tall.vb[1]).toBeGreaterThan(tall.vb[0]);
  });

  it('lays out a graph of another shape: a layer of three, a loop level with its target', () => {
    for (const tall of [false, true]) {
      const L = sane(RESEARCH, tall);
      expect(L.layer).toMatchObject({ scout: 0, web: 1, docs: 1, code: 1, notes: 2, writer: 3, critic: 4, editor: 5, publish: 6 });
      expect(L.loops).toEqual([{ check: 'critic', target: 'writer', side: 'a' }]);
    }
    const wide = layout(RESEARCH, false);
    // Seven layers wide, three rows tall (not the build graph's five by two).
    expect(new Set(Object.values(wide.pos).map((p) => p.x)).size).toBe(7);
    expect(new Set(Object.values(wide.pos).map((p) => p.y)).size).toBe(3); // three rows, the single nodes on the middle one
    expect(wide.vb[0]).toBeGreaterThan(layout(BUILD, false).vb[0]);
  });

  it('layers by the longest path even when the nodes come in another order', () => {
    const shuffled: GraphDesc = { ...RESEARCH, nodes: [...RESEARCH.nodes].reverse() };
    expect(sane(shuffled, false).layer).toEqual(layout(RESEARCH, false).layer);
  });

  it('survives a cycle the server would have refused, and ids that are Object properties', () => {
    const g: GraphDesc = {
      kind: 'odd',
      label: '',
      nodes: [
        { id: '__proto__', label: 'P', check: false },
        { id: 'constructor', label: 'C', check: false },
      ],
      edges: [
        { from: '__proto__', to: 'constructor', when: 'always' },
        { from: 'constructor', to: '__proto__', when: 'always' },
      ],
    };
    const L = layout(g, false);
    expect(Object.keys(L.pos).sort()).toEqual(['__proto__', 'constructor']);
    const v = graphView(g, task({}), [], false);
    expect(v.nodes.map((n) => [n.id, n.state, n.cost])).toEqual([
      ['__proto__', 'pending', 0],
      ['constructor', 'pending', 0],
    ]);
  });
});

describe('graphView', () => {
  it('draws the nodes, labels, states and costs the graph and the task give', () => {
    const t = task({ planner: 'completed', architect: 'running' }, 0, { node_costs: { planner: 0.25 } });
    const v = graphView(BUILD, t, [], false);
    expect(v.nodes.map((n) => [n.id, n.label, n.state])).toEqual([
      ['planner', 'Planner', 'completed'],
      ['architect', 'Architect', 'running'],
      ['coder', 'Coder', 'pending'],
      ['tester', 'Tester', 'pending'],
      ['reviewer', 'Reviewer', 'pending'],
      ['deployer', 'Deployer', 'pending'],
    ]);
    expect(v.nodes[0].cost).toBe(0.25);
    expect(v.done).toBe(1);
    expect(v.nodes.filter((n) => n.inLoop).map((n) => n.id)).toEqual(['coder', 'tester', 'reviewer']);
    expect(v.edges.find((e) => e.from === 'planner')!.cls).toBe('edge edge-active');
    expect(v.edges.find((e) => e.from === 'architect')!.cls).toBe('edge');
    expect(v.loop).toMatchObject({ target: 'coder', active: false, label: '' });
    expect(v.loop!.edges.every((e) => !e.lit)).toBe(true);
  });

  it('lights the loop edge of the check the fix_round event named, with round n of max', () => {
    const t = task({ planner: 'completed', architect: 'completed', coder: 'running', tester: 'pending', reviewer: 'pending' }, 1);
    const v = graphView(BUILD, t, [round(1, ['tester'], ['coder', 'reviewer', 'tester'])], false);
    expect(v.loop!.active).toBe(true);
    expect(v.loop!.label).toBe('fix round 1 of 3');
    expect(Object.fromEntries(v.loop!.edges.map((e) => [e.check, e.lit]))).toEqual({ tester: true, reviewer: false });
    // Wide, the label sits by the tester's edge, above the coder.
    expect(v.loop!.labelAt.y).toBeLessThan(v.layout.pos.coder.y);

    // Round 2 sent back by the reviewer only: both edges have sent work back by now.
    const v2 = graphView(BUILD, { ...t, fix_iteration: 2 }, [round(1, ['tester'], []), round(2, ['reviewer'], [])], false);
    expect(v2.loop!.label).toBe('fix round 2 of 3');
    expect(v2.loop!.edges.map((e) => e.lit)).toEqual([true, true]);

    // Only the reviewer: the label moves below, by its edge.
    const v3 = graphView(BUILD, t, [round(1, ['reviewer'], [])], false);
    expect(v3.loop!.labelAt.y).toBeGreaterThan(v3.layout.pos.coder.y + H);
  });

  it('lights every loop edge of a task that counts rounds no event described', () => {
    const v = graphView(BUILD, task({}, 1), [], false);
    expect(v.loop!.label).toBe('fix round 1');
    expect(v.loop!.edges.map((e) => e.lit)).toEqual([true, true]);
  });

  it('draws another graph from its description alone', () => {
    const t = task({ scout: 'completed', web: 'completed', docs: 'completed', code: 'completed', notes: 'completed', writer: 'running', critic: 'pending' }, 1);
    const v = graphView(RESEARCH, t, [{ round: 1, max: 2, target: 'writer', failing: ['critic'], reset: ['writer', 'critic'], findings: ['too short'] }], true);
    expect(v.nodes.map((n) => n.label)).toEqual(['Scout', 'Web', 'Docs', 'Code', 'Notes', 'Writer', 'Critic', 'Editor', 'Publisher']);
    expect(v.done).toBe(5);
    expect(v.edges).toHaveLength(10);
    expect(v.loop).toMatchObject({ target: 'writer', active: true, label: 'fix round 1 of 2' });
    expect(v.loop!.edges).toHaveLength(1);
    expect(v.loop!.edges[0]).toMatchObject({ check: 'critic', lit: true });
    expect(v.nodes.filter((n) => n.inLoop).map((n) => n.id)).toEqual(['writer', 'critic']);
    // Nine agents, eight colours: the ninth reuses the first, the first eight differ.
    expect(v.nodes.map((n) => n.colour)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 1]);
    expect(colours(RESEARCH).get('Publisher')).toBe(1);
  });

  it('has no loop for a graph without one', () => {
    const g: GraphDesc = { kind: 'line', label: 'Line', nodes: [{ id: 'a', label: 'A', check: false }, { id: 'b', label: 'B', check: false }], edges: [{ from: 'a', to: 'b', when: 'always' }] };
    const v = graphView(g, task({ a: 'completed' }, 0), [], false);
    expect(v.loop).toBeNull();
    expect(v.layout.loops).toEqual([]);
    sane(g, false);
    sane(g, true);
  });
});

describe('checkGraph', () => {
  it('accepts what the server serves', () => {
    expect(checkGraph(BUILD)).toBe(BUILD);
  });
  it('refuses a graph it cannot draw, saying why', () => {
    expect(() => checkGraph({ ...BUILD, edges: [...BUILD.edges, { from: 'coder', to: 'ghost', when: 'always' }] })).toThrow(/unknown node/);
    expect(() => checkGraph({ ...BUILD, nodes: [...BUILD.nodes, BUILD.nodes[0]] })).toThrow(/twice/);
    expect(() => checkGraph({ kind: 'x' } as GraphDesc)).toThrow(/no kind, nodes or edges/);
  });
});
