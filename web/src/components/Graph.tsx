// The task graph: planner → architect → coder → (tester ∥ reviewer) → deployer,
// with the fix loop (tester/reviewer → coder) highlighted once a fix round ran.
import { useEffect, useState } from 'preact/hooks';
import { NodeName, NodeState, NODES, Task } from '../api';
import { money } from '../format';

type Box = { x: number; y: number };
const W = 150;
const H = 60;

const WIDE: { vb: [number, number]; pos: Record<NodeName, Box> } = {
  vb: [900, 300],
  pos: {
    planner: { x: 4, y: 120 },
    architect: { x: 184, y: 120 },
    coder: { x: 364, y: 120 },
    tester: { x: 560, y: 40 },
    reviewer: { x: 560, y: 200 },
    deployer: { x: 746, y: 120 },
  },
};
const TALL: { vb: [number, number]; pos: Record<NodeName, Box> } = {
  vb: [360, 520],
  pos: {
    planner: { x: 105, y: 8 },
    architect: { x: 105, y: 100 },
    coder: { x: 105, y: 192 },
    tester: { x: 16, y: 316 },
    reviewer: { x: 194, y: 316 },
    deployer: { x: 105, y: 440 },
  },
};

const EDGES: [NodeName, NodeName][] = [
  ['planner', 'architect'],
  ['architect', 'coder'],
  ['coder', 'tester'],
  ['coder', 'reviewer'],
  ['tester', 'deployer'],
  ['reviewer', 'deployer'],
];

const LABEL: Record<NodeName, string> = {
  planner: 'Planner',
  architect: 'Architect',
  coder: 'Coder',
  tester: 'Tester',
  reviewer: 'Reviewer',
  deployer: 'Deployer',
};
const ROLE: Record<NodeName, string> = {
  planner: 'requirements',
  architect: 'design',
  coder: 'code',
  tester: 'tests',
  reviewer: 'review',
  deployer: 'deploy',
};

function useNarrow(px = 640) {
  const q = `(max-width: ${px}px)`;
  const [narrow, set] = useState(() => window.matchMedia(q).matches);
  useEffect(() => {
    const m = window.matchMedia(q);
    const on = () => set(m.matches);
    m.addEventListener('change', on);
    return () => m.removeEventListener('change', on);
  }, [q]);
  return narrow;
}

function forward(a: Box, b: Box, tall: boolean): string {
  if (tall) {
    const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y;
    const my = (y1 + y2) / 2;
    return `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2 - 6}`;
  }
  const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
  const mx = (x1 + x2) / 2;
  return `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 6},${y2}`;
}

function loop(from: Box, coder: Box, tall: boolean, side: 'a' | 'b'): string {
  if (tall) {
    // side a: tester on the left; b: reviewer on the right
    if (side === 'a') {
      const x1 = from.x, y1 = from.y + H / 2, x2 = coder.x, y2 = coder.y + H / 2;
      return `M${x1},${y1} C${x1 - 24},${y1} ${x2 - 60},${y2} ${x2 - 6},${y2}`;
    }
    const x1 = from.x + W, y1 = from.y + H / 2, x2 = coder.x + W, y2 = coder.y + H / 2;
    return `M${x1},${y1} C${x1 + 24},${y1} ${x2 + 60},${y2} ${x2 + 6},${y2}`;
  }
  if (side === 'a') {
    const x1 = from.x + W / 2, y1 = from.y, x2 = coder.x + W / 2, y2 = coder.y;
    return `M${x1},${y1} C${x1},${y1 - 40} ${x2},${y1 - 40} ${x2},${y2 - 6}`;
  }
  const x1 = from.x + W / 2, y1 = from.y + H, x2 = coder.x + W / 2, y2 = coder.y + H;
  return `M${x1},${y1} C${x1},${y1 + 40} ${x2},${y1 + 40} ${x2},${y2 + 6}`;
}

const GLYPH: Record<NodeState, string> = {
  pending: '○',
  running: '◐',
  completed: '✓',
  failed: '✕',
  skipped: '–',
};

type Check = 'tester' | 'reviewer';

export function Graph({
  task,
  loops = {},
  selected,
  onSelect,
}: {
  task: Task;
  /** The checks known to have sent the work back to the coder; while none is known, a fix round lights both loop edges. */
  loops?: Partial<Record<Check, boolean>>;
  selected?: string;
  onSelect?: (agent: string) => void;
}) {
  const tall = useNarrow();
  const L = tall ? TALL : WIDE;
  const st = (n: NodeName): NodeState => (task.graph_state?.[n] ?? 'pending') as NodeState;
  const fix = task.fix_iteration > 0;
  const known = !!(loops.tester || loops.reviewer);
  const lit = (c: Check) => fix && (!known || !!loops[c]);
  // Wide, the label sits by a lit edge: the tester's (above) unless only the reviewer's (below) is lit.
  const labelBy: Check = lit('tester') ? 'tester' : 'reviewer';
  const fixEdge = (c: Check, side: 'a' | 'b') => (
    <path
      d={loop(L.pos[c], L.pos.coder, tall, side)}
      class={lit(c) ? 'edge-fix edge-fix-on' : 'edge-fix'}
      marker-end={lit(c) ? 'url(#arrow-fix)' : 'url(#arrow-fix-off)'}
      data-testid={`fix-edge-${c}`}
      data-active={lit(c) ? 'true' : 'false'}
    />
  );
  const edgeClass = (a: NodeName, b: NodeName) => {
    const sa = st(a), sb = st(b);
    if (sb === 'running') return 'edge edge-active';
    if (sa === 'completed' && (sb === 'completed' || sb === 'failed')) return 'edge edge-done';
    if (sa === 'completed') return 'edge edge-ready';
    return 'edge';
  };
  const done = NODES.filter((n) => st(n) === 'completed').length;

  return (
    <div class="graph" data-testid="graph" data-fix-iteration={task.fix_iteration}>
      <svg
        viewBox={`0 0 ${L.vb[0]} ${L.vb[1]}`}
        role="group"
        aria-label={`Agent graph: ${done} of 6 agents completed${fix ? `, ${task.fix_iteration} fix round(s)` : ''}`}
        style={{ maxWidth: `${L.vb[0]}px` }}
      >
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="8" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" class="arrowhead" />
          </marker>
          <marker id="arrow-fix" viewBox="0 0 10 10" refX="8" refY="5" markerUnits="userSpaceOnUse" markerWidth="11" markerHeight="11" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" class="arrowhead-fix" />
          </marker>
          <marker id="arrow-fix-off" viewBox="0 0 10 10" refX="8" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" class="arrowhead-fix-off" />
          </marker>
        </defs>
        {EDGES.map(([a, b]) => (
          <path key={`${a}-${b}`} d={forward(L.pos[a], L.pos[b], tall)} class={edgeClass(a, b)} marker-end="url(#arrow)" />
        ))}
        <g class={fix ? 'fixloop fixloop-on' : 'fixloop'} data-testid="fix-loop" data-active={fix ? 'true' : 'false'}>
          {fixEdge('tester', 'a')}
          {fixEdge('reviewer', 'b')}
          {fix ? (
            <text
              x={tall ? L.pos.coder.x + W + 10 : L.pos.coder.x + W / 2 - 12}
              y={tall ? L.pos.coder.y + H + 24 : labelBy === 'tester' ? L.pos.coder.y - 30 : L.pos.coder.y + H + 40}
              class="fix-label"
              text-anchor={tall ? 'start' : 'end'}
            >
              fix round {task.fix_iteration}
            </text>
          ) : null}
        </g>
        {NODES.map((n) => {
          const p = L.pos[n];
          const s = st(n);
          const cost = task.node_costs?.[n];
          const isSel = selected === LABEL[n];
          return (
            <g
              key={n}
              class={`node node-${s} ${isSel ? 'node-selected' : ''}`}
              transform={`translate(${p.x},${p.y})`}
              data-testid={`graph-node-${n}`}
              data-state={s}
              role="button"
              tabIndex={0}
              aria-pressed={isSel}
              aria-label={`${LABEL[n]}: ${s}${cost ? `, ${money(cost)}` : ''}. Show its log lines.`}
              onClick={() => onSelect?.(LABEL[n])}
              onKeyDown={(e) => {
                if (e.key === 'Enter' || e.key === ' ') {
                  e.preventDefault();
                  onSelect?.(LABEL[n]);
                }
              }}
            >
              <rect width={W} height={H} rx="12" class="node-box" />
              <rect width="6" height={H - 20} x="0" y="10" rx="3" class={`node-accent agent-fill-${n}`} />
              <text x="18" y="24" class="node-title">
                {LABEL[n]}
              </text>
              <text x="18" y="45" class="node-sub">
                {s === 'running' ? 'working…' : s === 'pending' ? ROLE[n] : s}
                {cost ? ` · ${money(cost)}` : ''}
              </text>
              <g transform={`translate(${W - 18},19)`} class="node-glyph">
                <g class="glyph-inner">
                  <circle r="9" />
                  <text y="4" text-anchor="middle">
                    {GLYPH[s]}
                  </text>
                </g>
              </g>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
