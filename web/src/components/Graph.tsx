// The task graph as the server describes it (GET /api/graphs/{kind}): nodes,
// forward edges and the fix loop, laid out by graph.ts. The loop's edges go
// back from the checks to its target; the ones whose check sent work back
// (fix_round events) are lit.
import { useEffect, useState } from 'preact/hooks';
import { FixRound, GraphDesc, NodeState, Task } from '../api';
import { money } from '../format';
import { graphView, H, W } from '../graph';

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

const GLYPH: Record<NodeState, string> = {
  pending: '○',
  running: '◐',
  completed: '✓',
  failed: '✕',
  skipped: '–',
};

export function Graph({
  graph,
  task,
  rounds = [],
  selected,
  onSelect,
}: {
  graph: GraphDesc;
  task: Task;
  /** The fix rounds the task's fix_round events reported. */
  rounds?: FixRound[];
  selected?: string;
  onSelect?: (agent: string) => void;
}) {
  const tall = useNarrow();
  const v = graphView(graph, task, rounds, tall);
  const { vb } = v.layout;
  const loop = v.loop;
  const fix = !!loop?.active;

  return (
    <div class="graph" data-testid="graph" data-kind={graph.kind} data-fix-iteration={task.fix_iteration}>
      <svg
        viewBox={`0 0 ${vb[0]} ${vb[1]}`}
        role="group"
        aria-label={`${graph.label || 'Agent graph'}: ${v.done} of ${v.nodes.length} agents completed${fix ? `, ${loop!.label}` : ''}`}
        style={{ maxWidth: `${vb[0]}px` }}
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
        {v.edges.map((e) => (
          <path key={`${e.from}-${e.to}`} d={e.d} class={e.cls} marker-end="url(#arrow)" data-testid={`edge-${e.from}-${e.to}`} data-when={e.when} />
        ))}
        {loop ? (
          <g class={fix ? 'fixloop fixloop-on' : 'fixloop'} data-testid="fix-loop" data-active={fix ? 'true' : 'false'} data-target={loop.target} data-body={loop.body.join(' ')}>
            {loop.edges.map((e) => (
              <path
                key={e.check}
                d={e.d}
                class={e.lit ? 'edge-fix edge-fix-on' : 'edge-fix'}
                marker-end={e.lit ? 'url(#arrow-fix)' : 'url(#arrow-fix-off)'}
                data-testid={`fix-edge-${e.check}`}
                data-active={e.lit ? 'true' : 'false'}
              />
            ))}
            {fix ? (
              <text x={loop.labelAt.x} y={loop.labelAt.y} class="fix-label" text-anchor={loop.labelAt.anchor}>
                {loop.label}
              </text>
            ) : null}
          </g>
        ) : null}
        {v.nodes.map((n) => {
          const s = n.state;
          const isSel = selected === n.label;
          const sub = s === 'running' ? 'working…' : s;
          return (
            <g
              key={n.id}
              class={`node node-${s} ${isSel ? 'node-selected' : ''} ${n.inLoop ? 'node-loop' : ''}`}
              transform={`translate(${n.box.x},${n.box.y})`}
              data-testid={`graph-node-${n.id}`}
              data-state={s}
              data-loop-body={n.inLoop ? 'true' : 'false'}
              role="button"
              tabIndex={0}
              aria-pressed={isSel}
              aria-label={`${n.label}: ${s}${n.cost ? `, ${money(n.cost)}` : ''}${n.inLoop ? ', runs again in a fix round' : ''}. Show its log lines.`}
              onClick={() => onSelect?.(n.label)}
              onKeyDown={(e) => {
                if (e.key === 'Enter' || e.key === ' ') {
                  e.preventDefault();
                  onSelect?.(n.label);
                }
              }}
            >
              <title>{n.description ? `${n.label}: ${n.description}` : n.label}</title>
              <rect width={W} height={H} rx="12" class="node-box" />
              <rect width="6" height={H - 20} x="0" y="10" rx="3" class={`node-accent agent-fill-c${n.colour}`} />
              <text x="18" y="24" class="node-title">
                {clip(n.label, 13)}
              </text>
              <text x="18" y="45" class="node-sub">
                {sub}
                {n.cost ? ` · ${money(n.cost)}` : ''}
              </text>
              {n.inLoop ? (
                <text x={W - 8} y={H - 4} class="node-loop-mark" text-anchor="end" aria-hidden="true">
                  ↻
                </text>
              ) : null}
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

// SVG text does not wrap: a long label or description is cut (the node's title tooltip has it all).
function clip(s: string, n: number): string {
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

/** The latest fix round as the fix_round event reported it: round n of max, the failing checks, the reset nodes. */
export function FixRoundNote({ graph, rounds, fixIteration }: { graph: GraphDesc; rounds: FixRound[]; fixIteration: number }) {
  const last = rounds[rounds.length - 1];
  if (!last) return null;
  const name = (id: string) => graph.nodes.find((n) => n.id === id)?.label || id;
  const list = (ids: string[]) => ids.map(name).join(', ') || '—';
  return (
    <div
      class="fix-note"
      role="status"
      data-testid="fix-round"
      data-round={last.round}
      data-max={last.max || ''}
      data-failing={last.failing.join(' ')}
      data-reset={last.reset.join(' ')}
    >
      <strong>
        Fix round {last.round}
        {last.max ? ` of ${last.max}` : ''}
      </strong>
      <span>
        {' '}
        · {list(last.failing)} sent the work back to {name(last.target) || '—'} · reset: {list(last.reset)}
      </span>
      {last.round < fixIteration ? <span class="muted"> · round {fixIteration} granted on retry</span> : null}
      {last.findings.length ? (
        <ul class="fix-findings">
          {last.findings.slice(0, 5).map((f, i) => (
            <li key={i}>{f.length > 300 ? f.slice(0, 299) + '…' : f}</li>
          ))}
          {last.findings.length > 5 ? <li class="muted">and {last.findings.length - 5} more</li> : null}
        </ul>
      ) : null}
    </div>
  );
}
