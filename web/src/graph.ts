// The task graphs as the server runs them: fetched from GET /api/graphs/{kind}
// (cached per kind) and laid out here, so the dashboard draws whatever graph a
// task's kind names, with no node list of its own. Pure functions but for the
// fetch cache and the hook; components/Graph.tsx maps the view to SVG.
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, FixRound, GraphDesc, NodeState, Task } from './api';

/** The kind of tasks stored before kinds existed. */
export const DEFAULT_KIND = 'build';
export const kindOf = (t: { kind?: string } | null | undefined) => t?.kind || DEFAULT_KIND;

// One request per kind for the page's life; a failed one is forgotten so the next use asks again.
const cache = new Map<string, Promise<GraphDesc>>();

export function loadGraph(kind: string): Promise<GraphDesc> {
  let p = cache.get(kind);
  if (!p) {
    p = api.graph(kind).then(checkGraph);
    cache.set(kind, p);
    p.catch(() => cache.delete(kind));
  }
  return p;
}

/** Every graph in one request, each also cached under its kind (the task list shows tasks of any kind). */
export async function loadGraphs(): Promise<Map<string, GraphDesc>> {
  const out = new Map<string, GraphDesc>();
  for (const g of await api.graphs()) {
    const ok = checkGraph(g);
    out.set(ok.kind, ok);
    if (!cache.has(ok.kind)) cache.set(ok.kind, Promise.resolve(ok));
  }
  return out;
}

/** Forgets the cached graphs (tests). */
export function clearGraphCache() {
  cache.clear();
}

/** Rejects a description the page could not draw, with a clear error rather than a blank card. */
export function checkGraph(g: GraphDesc): GraphDesc {
  const bad = (why: string) => new ApiError(0, 'The server sent a graph the dashboard cannot draw', why);
  if (!g || typeof g !== 'object' || typeof g.kind !== 'string' || !Array.isArray(g.nodes) || !Array.isArray(g.edges)) throw bad('no kind, nodes or edges');
  const ids = new Set<string>();
  for (const n of g.nodes) {
    if (!n || typeof n.id !== 'string' || !n.id) throw bad('a node has no id');
    if (ids.has(n.id)) throw bad(`node ${n.id} appears twice`);
    ids.add(n.id);
  }
  for (const e of g.edges) {
    if (!e || !ids.has(e.from) || !ids.has(e.to)) throw bad(`an edge names an unknown node (${e?.from} → ${e?.to})`);
  }
  return g;
}

/** The graph of kind, fetched once per kind; kind '' asks for nothing (the task is not loaded yet). */
export function useGraph(kind: string): { graph: GraphDesc | null; error: unknown } {
  const [s, set] = useState<{ kind: string; graph: GraphDesc | null; error: unknown }>({ kind, graph: null, error: null });
  useEffect(() => {
    if (!kind) return;
    let live = true;
    loadGraph(kind).then(
      (graph) => live && set({ kind, graph, error: null }),
      (error) => live && set({ kind, graph: null, error }),
    );
    return () => {
      live = false;
    };
  }, [kind]);
  return s.kind === kind ? s : { graph: null, error: null };
}

/** The label of node id ("Coder"), the id itself if the graph has no such node. */
export function labelOf(g: GraphDesc, id: string): string {
  return g.nodes.find((n) => n.id === id)?.label || id;
}

// ---- layout -------------------------------------------------------------

export const W = 150;
export const H = 60;
/** Wide: columns are layers (left to right), rows the nodes of a layer. */
const WIDE = { col: 186, row: 160, padX: 4, padY: 40 };
/** Tall (phones): rows are layers (top to bottom). */
const TALL = { row: 110, col: 178, padY: 8, padBottom: 12, minWidth: 360 };

export type Box = { x: number; y: number };
/** Where a fix edge runs: wide a above / b below; tall a left / b right. */
export type Side = 'a' | 'b';

export interface Layout {
  vb: [number, number];
  pos: Record<string, Box>;
  /** The forward edges (always, pass), to draw as arrows. */
  forward: { from: string; to: string; when: string }[];
  /** The fix edges, from each check back to the loop's target. */
  loops: { check: string; target: string; side: Side }[];
  /** Each node's layer: the longest forward path that reaches it. */
  layer: Record<string, number>;
}

/**
 * Lays a graph out in layers: a node sits one layer after the last of the
 * nodes it waits for, nodes of a layer in the order the server gives them.
 * wide: layers are columns; tall: layers are rows.
 */
export function layout(g: GraphDesc, tall: boolean): Layout {
  const ids = g.nodes.map((n) => n.id);
  const known = new Set(ids);
  const forward = g.edges.filter((e) => e.when !== 'fail' && known.has(e.from) && known.has(e.to) && e.from !== e.to);
  // Keyed by node id: no prototype, so no id ("__proto__", "constructor") means anything else.
  const layer: Record<string, number> = Object.create(null);
  for (const id of ids) layer[id] = 0;
  // Topological order makes one pass enough; a few more settle a server that sent another
  // order, and the bound keeps a cycle (which the server refuses to compile) from hanging the page.
  for (let pass = 0; pass < ids.length; pass++) {
    let moved = false;
    for (const e of forward) {
      if (layer[e.to] < layer[e.from] + 1) {
        layer[e.to] = layer[e.from] + 1;
        moved = true;
      }
    }
    if (!moved) break;
  }
  const layers: string[][] = [];
  for (const id of ids) (layers[layer[id]] ??= []).push(id);
  for (let i = 0; i < layers.length; i++) layers[i] ??= [];
  const span = Math.max(1, ...layers.map((l) => l.length));
  const depth = Math.max(1, layers.length);

  const pos: Record<string, Box> = Object.create(null);
  let vb: [number, number];
  if (tall) {
    const width = Math.max(TALL.minWidth, 32 + (span - 1) * TALL.col + W);
    layers.forEach((l, i) => {
      const left = (width - ((l.length - 1) * TALL.col + W)) / 2;
      l.forEach((id, j) => (pos[id] = { x: left + j * TALL.col, y: TALL.padY + i * TALL.row }));
    });
    vb = [width, TALL.padY + (depth - 1) * TALL.row + H + TALL.padBottom];
  } else {
    layers.forEach((l, i) => {
      l.forEach((id, j) => (pos[id] = { x: WIDE.padX + i * WIDE.col, y: WIDE.padY + ((span - l.length) / 2 + j) * WIDE.row }));
    });
    vb = [2 * WIDE.padX + (depth - 1) * WIDE.col + W, 2 * WIDE.padY + (span - 1) * WIDE.row + H];
  }

  const loops: Layout['loops'] = [];
  const fl = g.fix_loop;
  if (fl && pos[fl.target]) {
    for (const check of fl.checks ?? []) {
      const c = pos[check];
      if (!c || check === fl.target) continue;
      const t = pos[fl.target];
      // The edge leaves on the side of the target the check sits on: above/left when level.
      const side: Side = tall ? (c.x > t.x ? 'b' : 'a') : c.y > t.y ? 'b' : 'a';
      loops.push({ check, target: fl.target, side });
    }
  }
  return { vb, pos, forward, loops, layer };
}

export function forwardPath(a: Box, b: Box, tall: boolean): string {
  if (tall) {
    const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y;
    const my = (y1 + y2) / 2;
    return `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2 - 6}`;
  }
  const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
  const mx = (x1 + x2) / 2;
  return `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 6},${y2}`;
}

export function loopPath(from: Box, to: Box, tall: boolean, side: Side): string {
  if (tall) {
    if (side === 'a') {
      const x1 = from.x, y1 = from.y + H / 2, x2 = to.x, y2 = to.y + H / 2;
      return `M${x1},${y1} C${x1 - 24},${y1} ${x2 - 60},${y2} ${x2 - 6},${y2}`;
    }
    const x1 = from.x + W, y1 = from.y + H / 2, x2 = to.x + W, y2 = to.y + H / 2;
    return `M${x1},${y1} C${x1 + 24},${y1} ${x2 + 60},${y2} ${x2 + 6},${y2}`;
  }
  if (side === 'a') {
    const x1 = from.x + W / 2, y1 = from.y, x2 = to.x + W / 2, y2 = to.y;
    const top = Math.min(y1, y2) - 40;
    return `M${x1},${y1} C${x1},${top} ${x2},${top} ${x2},${y2 - 6}`;
  }
  const x1 = from.x + W / 2, y1 = from.y + H, x2 = to.x + W / 2, y2 = to.y + H;
  const bottom = Math.max(y1, y2) + 40;
  return `M${x1},${y1} C${x1},${bottom} ${x2},${bottom} ${x2},${y2 + 6}`;
}

// ---- what the task page shows -------------------------------------------

export interface NodeView {
  id: string;
  label: string;
  description: string;
  state: NodeState;
  box: Box;
  cost: number;
  /** Runs again in a fix round. */
  inLoop: boolean;
  /** Its verdict can send the work back. */
  check: boolean;
  /** Colour slot (agent-c1…): by position in the graph, so any graph's agents tell apart. */
  colour: number;
}

export interface GraphView {
  layout: Layout;
  nodes: NodeView[];
  edges: { from: string; to: string; when: string; d: string; cls: string }[];
  loop: null | {
    target: string;
    body: string[];
    /** A fix round ran (the task counts one). */
    active: boolean;
    edges: { check: string; d: string; side: Side; lit: boolean }[];
    /** "fix round 2 of 3", while active. */
    label: string;
    labelAt: { x: number; y: number; anchor: 'start' | 'end' };
  };
  done: number;
}

export const COLOURS = 8;

/** The colour slot of each agent, by label and by node id: its position in the graph. */
export function colours(g: GraphDesc | null): Map<string, number> {
  const m = new Map<string, number>();
  g?.nodes.forEach((n, i) => {
    const c = (i % COLOURS) + 1;
    m.set(n.id, c);
    if (n.label) m.set(n.label, c);
  });
  return m;
}

const STATES: NodeState[] = ['pending', 'running', 'completed', 'failed', 'skipped'];
// Own properties only: a node id such as "constructor" must not read Object's.
const own = <T,>(o: Record<string, T> | undefined, id: string): T | undefined => (o && Object.hasOwn(o, id) ? o[id] : undefined);
export const stateOf = (t: Task, id: string): NodeState => {
  const s = own(t.graph_state, id);
  return s && STATES.includes(s) ? s : 'pending';
};
export const costOf = (t: Task, id: string): number => {
  const c = own(t.node_costs, id);
  return typeof c === 'number' && Number.isFinite(c) ? c : 0;
};

/**
 * Everything the graph card draws, from the graph, the task and the fix
 * rounds the task's fix_round events reported (oldest first). A check's
 * loop edge is lit once it sent the work back in any round; a task that
 * counts rounds no event described (stored before the events existed)
 * lights every loop edge, as it cannot say which check did.
 */
export function graphView(g: GraphDesc, task: Task, rounds: FixRound[], tall: boolean): GraphView {
  const L = layout(g, tall);
  const body = new Set(g.fix_loop?.body ?? []);
  const col = colours(g);
  const nodes: NodeView[] = g.nodes.map((n) => ({
    id: n.id,
    label: n.label || n.id,
    description: n.description ?? '',
    state: stateOf(task, n.id),
    box: L.pos[n.id],
    cost: costOf(task, n.id),
    inLoop: body.has(n.id),
    check: !!n.check,
    colour: col.get(n.id) ?? 1,
  }));
  const edges = L.forward.map((e) => {
    const sa = stateOf(task, e.from), sb = stateOf(task, e.to);
    let cls = 'edge';
    if (sb === 'running') cls = 'edge edge-active';
    else if (sa === 'completed' && (sb === 'completed' || sb === 'failed')) cls = 'edge edge-done';
    else if (sa === 'completed') cls = 'edge edge-ready';
    return { ...e, d: forwardPath(L.pos[e.from], L.pos[e.to], tall), cls };
  });

  let loop: GraphView['loop'] = null;
  const fl = g.fix_loop;
  if (fl && L.pos[fl.target]) {
    const round = task.fix_iteration ?? 0;
    const active = round > 0;
    const failing = new Set(rounds.flatMap((r) => r.failing));
    const known = rounds.length > 0;
    const loopEdges = L.loops.map((l) => ({
      check: l.check,
      side: l.side,
      d: loopPath(L.pos[l.check], L.pos[l.target], tall, l.side),
      lit: active && (!known || failing.has(l.check)),
    }));
    const last = rounds[rounds.length - 1];
    const max = last && last.max > 0 ? last.max : 0;
    const t = L.pos[fl.target];
    // Wide, the label sits by a lit edge: above unless only edges below are lit.
    const above = !loopEdges.some((e) => e.lit) || loopEdges.some((e) => e.lit && e.side === 'a');
    loop = {
      target: fl.target,
      body: [...body],
      active,
      edges: loopEdges,
      label: active ? `fix round ${round}${max ? ` of ${max}` : ''}` : '',
      labelAt: tall
        ? { x: t.x + W + 10, y: t.y + H + 24, anchor: 'start' }
        : { x: t.x + W / 2 - 12, y: above ? t.y - 30 : t.y + H + 40, anchor: 'end' },
    };
  }
  return { layout: L, nodes, edges, loop, done: nodes.filter((n) => n.state === 'completed').length };
}
