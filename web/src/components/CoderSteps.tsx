import { useMemo } from 'preact/hooks';
import { AgentEvent } from '../api';

/** One tool call of the coder as its tool_call event reports it. */
export interface ToolStep {
  seq: number;
  /** The coder's run: 1 for the first write, then one per fix round. */
  run: number;
  step: number;
  call: number;
  tool: string;
  arguments: string;
  result: string;
  summary: string;
  ok: boolean;
  resumed: boolean;
}

const str = (v: unknown, max: number): string => (typeof v === 'string' ? v.slice(0, max) : '');
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/**
 * The coder's tool calls in event order, grouped into runs by the coder's
 * node_state "running" events. Event data crosses the network: every field is
 * checked and bounded.
 */
export function toolSteps(events: AgentEvent[]): ToolStep[] {
  const out: ToolStep[] = [];
  let run = 0;
  for (const e of events) {
    const d = e.data && typeof e.data === 'object' ? e.data : {};
    if (e.type === 'node_state' && d.node === 'coder' && d.state === 'running') {
      run = num(d.iteration) || run + 1;
      continue;
    }
    if (e.type !== 'tool_call') continue;
    out.push({
      seq: e.seq,
      run: run || 1,
      step: num(d.step),
      call: num(d.call),
      tool: str(d.tool, 64) || '?',
      arguments: str(d.arguments, 2000),
      result: str(d.result, 4000),
      summary: str(d.summary, 400),
      ok: d.ok === true,
      resumed: d.resumed === true,
    });
  }
  return out;
}

/** The argument a reader recognises a call by: its path, command or pattern. */
function hint(args: string): string {
  try {
    const a = JSON.parse(args);
    if (a && typeof a === 'object') {
      for (const k of ['path', 'command', 'pattern']) if (typeof a[k] === 'string' && a[k]) return a[k].slice(0, 120);
    }
  } catch {
    // truncated arguments are not JSON: show none
  }
  return '';
}

/** Pretty-printed arguments when they are whole JSON, as sent otherwise. */
function pretty(args: string): string {
  try {
    return JSON.stringify(JSON.parse(args), null, 2);
  } catch {
    return args;
  }
}

/** The coder's steps: one collapsed row per tool call, live as events arrive. */
export function CoderSteps({ events }: { events: AgentEvent[] }) {
  const steps = useMemo(() => toolSteps(events), [events, events.length]);
  if (steps.length === 0) return null;
  const runs = [...new Set(steps.map((s) => s.run))];
  return (
    <section class="card coder-steps" data-testid="coder-steps" aria-label="Coder steps">
      <header class="card-head">
        <h2>Coder steps</h2>
        <span class="muted small">
          {steps.length} tool call{steps.length === 1 ? '' : 's'}
          {steps.some((s) => !s.ok) ? ` · ${steps.filter((s) => !s.ok).length} refused or failed` : ''}
        </span>
      </header>
      {runs.map((r) => (
        <div key={r} class="step-run">
          {runs.length > 1 || r > 1 ? <h3 class="step-run-title">{r === 1 ? 'First write' : `Fix round ${r - 1}`}</h3> : null}
          <ol class="steps">
            {steps
              .filter((s) => s.run === r)
              .map((s) => (
                <li key={s.seq} class={`tool-step ${s.ok ? '' : 'tool-step-bad'}`} data-testid="coder-step" data-tool={s.tool} data-ok={String(s.ok)}>
                  <details>
                    <summary>
                      <span class="step-no">{s.step}</span>
                      <code class="pill-code step-tool">{s.tool}</code>
                      <span class="step-hint">{hint(s.arguments)}</span>
                      <span class={`step-summary ${s.ok ? 'muted' : 'bad'}`}>
                        {s.summary}
                        {s.resumed ? ' (resumed)' : ''}
                      </span>
                    </summary>
                    <div class="step-body">
                      <div class="step-label">Arguments</div>
                      <pre data-testid="coder-step-args">{pretty(s.arguments)}</pre>
                      <div class="step-label">Result</div>
                      <pre data-testid="coder-step-result">{s.result}</pre>
                    </div>
                  </details>
                </li>
              ))}
          </ol>
        </div>
      ))}
    </section>
  );
}
