import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { AgentEvent } from '../api';
import { clock } from '../format';
import { Typing } from '../stream';
import { agentClass } from './ui';

const MAX_LINES = 3000;

function levelOf(ev: AgentEvent): string {
  const l = (ev.level || 'info').toLowerCase();
  if (l.startsWith('warn')) return 'warn';
  if (l.startsWith('err') || l === 'fatal') return 'error';
  if (l === 'debug') return 'debug';
  return 'info';
}

function describe(ev: AgentEvent): string {
  if (ev.message) return ev.message;
  const d = ev.data ?? {};
  if (ev.type === 'node_state') return `${d.node} → ${d.state}${d.iteration ? ` (iteration ${d.iteration})` : ''}`;
  if (ev.type === 'task_state') return `task ${d.status}${d.error ? `: ${d.error}` : ''}`;
  if (ev.type === 'cost') return `cost now $${Number(d.cost ?? 0).toFixed(4)}`;
  return '';
}

export function LogStream({
  events,
  typing,
  agent,
  setAgent,
  live,
  agents,
  colours,
}: {
  /** The agents of the task's graph, in its order (System is added). */
  agents: string[];
  colours: Map<string, number>;
  events: AgentEvent[];
  typing: Record<string, Typing>;
  agent: string;
  setAgent: (a: string) => void;
  live: boolean;
}) {
  const [level, setLevel] = useState('all');
  const [q, setQ] = useState('');
  const [showState, setShowState] = useState(true);
  // The typing line reads the model's partial JSON for people; raw shows exactly what it sent.
  const [rawTyping, setRawTyping] = useState(false);
  const box = useRef<HTMLDivElement>(null);
  const stick = useRef(true);

  const present = useMemo(() => {
    const s = new Set<string>();
    for (const e of events) s.add(e.agent_name || 'System');
    return s;
  }, [events]);

  const shown = useMemo(() => {
    const needle = q.trim().toLowerCase();
    const out = events.filter((e) => {
      if (agent !== 'all' && (e.agent_name || 'System') !== agent) return false;
      // cost updates drive the cost figures, not the log
      if (e.type === 'cost') return false;
      if (!showState && e.type === 'node_state') return false;
      const lv = levelOf(e);
      if (level === 'warn' && lv !== 'warn' && lv !== 'error') return false;
      if (level === 'error' && lv !== 'error') return false;
      if (needle && !describe(e).toLowerCase().includes(needle)) return false;
      return true;
    });
    return out.length > MAX_LINES ? out.slice(-MAX_LINES) : out;
  }, [events, agent, level, q, showState]);

  const typingShown = Object.entries(typing)
    .filter(([a, t]) => t?.raw && (agent === 'all' || agent === a))
    .map(([a, t]) => [a, rawTyping ? t.raw : t.text, t.raw] as const);

  useLayoutEffect(() => {
    const el = box.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [shown.length, typingShown.map(([, t]) => t.length).join(','), rawTyping]);

  useEffect(() => {
    stick.current = true;
  }, [agent, level, q]);

  return (
    <div class="logs" data-testid="logs">
      <div class="log-filters" role="toolbar" aria-label="Log filters">
        <div class="chips" role="group" aria-label="Filter by agent">
          <button type="button" class={`chip ${agent === 'all' ? 'chip-on' : ''}`} aria-pressed={agent === 'all'} onClick={() => setAgent('all')} data-testid="log-filter-all">
            All
          </button>
          {[...agents, ...[...present].filter((p) => p !== 'System' && !agents.includes(p)), 'System'].map((a) => (
            <button
              type="button"
              key={a}
              class={`chip ${agentClass(a, colours)} ${agent === a ? 'chip-on' : ''} ${present.has(a) ? '' : 'chip-absent'}`}
              aria-pressed={agent === a}
              onClick={() => setAgent(agent === a ? 'all' : a)}
              data-testid={`log-filter-${a.toLowerCase()}`}
            >
              <span class="swatch" aria-hidden="true" />
              {a}
            </button>
          ))}
        </div>
        <div class="log-filters-right">
          <label class="inline-field">
            <span>Level</span>
            <select value={level} onChange={(e) => setLevel((e.target as HTMLSelectElement).value)} data-testid="log-level">
              <option value="all">All</option>
              <option value="warn">Warnings+</option>
              <option value="error">Errors</option>
            </select>
          </label>
          <label class="inline-field">
            <span class="sr-only">Search logs</span>
            <input type="search" placeholder="Search…" value={q} onInput={(e) => setQ((e.target as HTMLInputElement).value)} />
          </label>
          <label class="check">
            <input type="checkbox" checked={showState} onChange={(e) => setShowState((e.target as HTMLInputElement).checked)} />
            <span>State changes</span>
          </label>
        </div>
      </div>
      <div
        class="log-lines"
        ref={box}
        role="log"
        aria-live="polite"
        aria-relevant="additions"
        tabIndex={0}
        onScroll={(e) => {
          const el = e.currentTarget as HTMLDivElement;
          stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
        }}
      >
        {shown.length === 0 && typingShown.length === 0 ? (
          <div class="log-empty">{events.length === 0 ? (live ? 'Waiting for the first agent…' : 'No log lines.') : 'No lines match these filters.'}</div>
        ) : null}
        {shown.map((e) => {
          const lv = levelOf(e);
          const kind = e.type !== 'log' ? `log-kind-${e.type}` : '';
          return (
            <div key={e.seq || e.id} class={`log-line lv-${lv} ${kind}`} data-testid="log-line" data-agent={e.agent_name} data-level={lv}>
              <time class="log-time" dateTime={e.timestamp}>
                {clock(e.timestamp)}
              </time>
              <span class={`log-agent ${agentClass(e.agent_name, colours)}`}>{e.agent_name || 'System'}</span>
              <span class="log-msg">
                {lv !== 'info' && lv !== 'debug' ? <span class={`lv-tag lv-tag-${lv}`}>{lv}</span> : null}
                {describe(e)}
              </span>
            </div>
          );
        })}
        {typingShown.map(([a, t, raw]) => (
          <div key={`typing-${a}`} class="log-line typing" data-testid={`typing-${a.toLowerCase()}`} aria-live="off">
            <span class="log-time">
              <span class="typing-dots" aria-label="typing">
                <i />
                <i />
                <i />
              </span>
            </span>
            <span class={`log-agent ${agentClass(a, colours)}`}>{a}</span>
            <span class="log-msg typing-line-body">
              <span class="typing-text" title={rawTyping ? undefined : raw} data-raw={rawTyping ? 'true' : 'false'}>
                {t}
                <span class="caret" aria-hidden="true" />
              </span>
              <button
                type="button"
                class="typing-toggle"
                aria-pressed={rawTyping}
                title={rawTyping ? 'Show the text read from the model’s JSON' : 'Show exactly what the model sent'}
                onClick={() => setRawTyping(!rawTyping)}
                data-testid="typing-raw-toggle"
              >
                {rawTyping ? 'readable' : 'raw'}
              </button>
            </span>
          </div>
        ))}
      </div>
    </div>
  );
}
