// Live task state: the stored history from REST, then /ws/{task_id}?after=SEQ
// for live events, reconnecting with the last seq seen on an unexpected close
// (no gap, no duplicate: events with seq <= last are dropped).
//
// Proxies that refuse WebSocket upgrades often pass plain HTTP streaming, so
// when the WebSocket fails before opening REFUSED_MAX (2) times in a row (or
// fails FAILS_MAX times in a row at all), the stream switches to Server-Sent
// Events on /api/tasks/{id}/events?after=SEQ, the same events over a long GET.
// Only when that fails as well does it poll REST.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, AgentEvent, ApiError, FixRound, NodeName, NodeState, Task } from './api';
import { TypingReader } from './partialjson';

export type Conn = 'loading' | 'connecting' | 'live' | 'reconnecting' | 'polling' | 'idle';
/** How live events arrive: WebSocket, Server-Sent Events or REST polling. */
export type Transport = 'ws' | 'sse' | 'poll';

/** What an agent is "typing" right now. */
export interface Typing {
  /** The tail of the text the model sent (token deltas), as it came. */
  raw: string;
  /** The same read for people: decoded values of the partial JSON (see partialjson.ts). */
  text: string;
}

export interface StreamState {
  task: Task | null;
  events: AgentEvent[];
  /** What each agent is "typing" right now, by agent name. */
  typing: Record<string, Typing>;
  conn: Conn;
  transport: Transport;
  error: ApiError | null;
  /** Bumps whenever a node finishes or the task changes state: time to refetch artifacts. */
  tick: number;
  /** The fix rounds the task's fix_round events reported, oldest first (one per round). */
  fixRounds: FixRound[];
}

const initialState = (): StreamState => ({ task: null, events: [], typing: {}, conn: 'loading', transport: 'ws', error: null, tick: 0, fixRounds: [] });

const NODE_STATES: NodeState[] = ['pending', 'running', 'completed', 'failed', 'skipped'];
const isNodeState = (s: unknown): s is NodeState => NODE_STATES.includes(s as NodeState);

/** The task after a node_state event: that node's state, nothing guessed about the others. */
export function withNodeState(t: Task, node: NodeName, state: NodeState): Task {
  return { ...t, graph_state: { ...t.graph_state, [node]: state } };
}

const strings = (v: unknown, max: number): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x !== '').slice(0, max) : [];

/**
 * Reads a fix_round event's data ({round, max, target, failing, reset,
 * findings}); null when it names no round. Event data crosses the network, so
 * every field is checked and the lists are bounded.
 */
export function parseFixRound(d: unknown): FixRound | null {
  if (!d || typeof d !== 'object') return null;
  const o = d as Record<string, unknown>;
  const round = o.round;
  if (typeof round !== 'number' || !Number.isInteger(round) || round < 1) return null;
  const max = typeof o.max === 'number' && Number.isInteger(o.max) && o.max > 0 ? o.max : 0;
  return {
    round,
    max,
    target: typeof o.target === 'string' ? o.target : '',
    failing: strings(o.failing, 64),
    reset: strings(o.reset, 256),
    findings: strings(o.findings, 50),
  };
}

/**
 * The task after a fix round started: its count and the reset nodes back to
 * pending, as the server set them, so a check that passed in the round before
 * no longer shows completed while it waits for the fix.
 */
export function withFixRound(t: Task, fr: FixRound): Task {
  const gs = { ...t.graph_state };
  for (const n of fr.reset) gs[n] = 'pending';
  return { ...t, graph_state: gs, fix_iteration: Math.max(t.fix_iteration ?? 0, fr.round) };
}

/** The list of rounds with fr in its place: a round reported again (a resumed run) replaces the earlier report. */
export function addFixRound(list: FixRound[], fr: FixRound): FixRound[] {
  return [...list.filter((r) => r.round !== fr.round), fr].sort((a, b) => a.round - b.round);
}

const terminal = (s?: string) => s === 'completed' || s === 'failed' || s === 'cancelled';
const TYPING_MAX = 1200;
/** Attempts in a row that never open before a transport is given up (a proxy refusing it). */
const REFUSED_MAX = 2;
/** Failed attempts in a row, opened or not, before a transport is given up. */
const FAILS_MAX = 4;
/** An event stream that has not opened by then counts as failed (a proxy buffering it). */
const SSE_OPEN_TIMEOUT = 10_000;

class TaskStream {
  private id: string;
  private lastSeq = 0;
  private ws: WebSocket | null = null;
  private es: EventSource | null = null;
  private esTimer = 0;
  private retryTimer = 0;
  private pollTimer = 0;
  /** Failed attempts in a row on the current transport. */
  private failures = 0;
  /** Of those, attempts that failed before the connection opened. */
  private refused = 0;
  private disposed = false;
  private flushQueued = false;
  /** Readers of the typing agents' deltas: each delta is read once, as it arrives. */
  private readers = new Map<string, TypingReader>();
  /** Agents whose node started while connected: their deltas are seen from an answer's start. */
  private startSeen = new Set<string>();
  s: StreamState = initialState();
  onChange: (s: StreamState) => void = () => {};

  constructor(id: string) {
    this.id = id;
  }

  private emit() {
    // Coalesce bursts (token deltas can arrive hundreds per second) into one render per frame.
    if (this.flushQueued || this.disposed) return;
    this.flushQueued = true;
    requestAnimationFrame(() => {
      this.flushQueued = false;
      // events is appended in place; hand out a fresh array so renders see a change
      if (!this.disposed) this.onChange({ ...this.s, events: this.s.events.slice() });
    });
  }

  async start() {
    try {
      const [task, logs] = await Promise.all([api.getTask(this.id), api.logs(this.id)]);
      if (this.disposed) return;
      this.s.task = task;
      this.s.events = [];
      this.s.fixRounds = [];
      for (const ev of logs.sort((a, b) => a.seq - b.seq)) this.apply(ev, false);
      this.s.task = task; // the stored task is authoritative over replayed history
      this.s.error = null;
      this.s.tick++;
      if (terminal(task.status)) this.s.conn = 'idle';
      else this.open();
      this.emit();
    } catch (e) {
      this.s.error = e instanceof ApiError ? e : new ApiError(0, 'Error', String(e));
      this.s.conn = 'idle';
      this.emit();
    }
  }

  /** After cancel/retry: take the server's task and resume streaming if it runs again. */
  resume(task: Task) {
    this.s.task = task;
    this.s.tick++;
    if (!terminal(task.status) && !this.ws && !this.es && !this.pollTimer) {
      this.failures = 0;
      this.refused = 0;
      this.open();
    }
    this.emit();
  }

  /** Connects with the transport in use (the WebSocket until it was given up). */
  private open() {
    if (this.s.transport === 'sse') this.connectSSE();
    else if (this.s.transport === 'poll') this.startPolling();
    else this.connect();
  }

  private connect() {
    if (this.disposed) return;
    clearTimeout(this.retryTimer);
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${proto}//${location.host}/ws/${encodeURIComponent(this.id)}?after=${this.lastSeq}`;
    this.s.conn = this.failures > 0 ? 'reconnecting' : 'connecting';
    let opened = false;
    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch {
      this.refused++;
      this.fail();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      opened = true;
      this.joined();
      this.failures = 0;
      this.refused = 0;
      this.s.conn = 'live';
      this.emit();
    };
    ws.onmessage = (m) => this.receive(m.data);
    ws.onclose = (c) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.disposed) return;
      if (!opened) this.refused++;
      if (terminal(this.s.task?.status)) {
        this.ended();
        return;
      }
      if (c.code === 1000 || c.code === 1001) {
        // Closed normally but we have not seen the end: check with the server.
        this.refreshTask().then(() => {
          if (!terminal(this.s.task?.status)) this.scheduleReconnect();
        });
        return;
      }
      this.fail();
    };
    this.emit();
  }

  /** Follows the task over Server-Sent Events, the stream for when WebSockets do not get through. */
  private connectSSE() {
    if (this.disposed) return;
    clearTimeout(this.retryTimer);
    this.s.conn = this.failures > 0 ? 'reconnecting' : 'connecting';
    let es: EventSource;
    try {
      es = new EventSource(`/api/tasks/${encodeURIComponent(this.id)}/events?after=${this.lastSeq}`);
    } catch {
      this.refused++;
      this.fail();
      return;
    }
    this.es = es;
    let opened = false;
    // Any error ends this EventSource; we reconnect ourselves with ?after=lastSeq
    // (what Last-Event-ID would carry), under the same backoff and limits as the WebSocket.
    const broken = () => {
      if (this.es !== es) return;
      this.dropSSE();
      if (this.disposed) return;
      if (!opened) this.refused++;
      if (terminal(this.s.task?.status)) {
        this.ended();
        return;
      }
      // A task that is over with nothing new answers 204, which also lands here.
      this.refreshTask().then(() => {
        if (this.disposed || this.es || this.ws || this.pollTimer) return;
        if (terminal(this.s.task?.status)) this.ended();
        else this.fail();
      });
    };
    this.esTimer = window.setTimeout(() => opened || broken(), SSE_OPEN_TIMEOUT);
    es.onopen = () => {
      if (this.es !== es) return;
      opened = true;
      clearTimeout(this.esTimer);
      this.joined();
      this.failures = 0;
      this.refused = 0;
      this.s.conn = 'live';
      this.emit();
    };
    es.onmessage = (m) => this.receive(m.data);
    // The server sends `event: end` once the task is over and every event of it was sent.
    es.addEventListener('end', () => {
      if (this.es !== es) return;
      this.dropSSE();
      this.ended();
    });
    es.onerror = broken;
    this.emit();
  }

  /** A connection opened: deltas sent while there was none are lost, so typing is read anew, maybe mid-answer. */
  private joined() {
    this.readers.clear();
    this.startSeen.clear();
  }

  private dropSSE() {
    clearTimeout(this.esTimer);
    if (!this.es) return;
    const es = this.es;
    this.es = null;
    es.onopen = es.onmessage = es.onerror = null;
    es.close();
  }

  /** One event from a WebSocket frame or an SSE message. */
  private receive(data: unknown) {
    try {
      const ev = JSON.parse(typeof data === 'string' ? data : '') as AgentEvent;
      this.apply(ev, true);
      this.emit();
    } catch {
      /* ignore malformed frames */
    }
  }

  /** The stream ended with the task: nobody types any more; take the final task from the server. */
  private ended() {
    this.s.conn = 'idle';
    this.s.typing = {};
    this.refreshTask();
    this.emit();
  }

  private fail() {
    this.failures++;
    if (this.refused >= REFUSED_MAX || this.failures >= FAILS_MAX) {
      this.fallBack();
      return;
    }
    this.scheduleReconnect();
  }

  /** Gives the current transport up: WebSocket, then Server-Sent Events, then polling. */
  private fallBack() {
    this.failures = 0;
    this.refused = 0;
    if (this.s.transport === 'ws' && typeof EventSource !== 'undefined') {
      this.s.transport = 'sse';
      this.connectSSE();
      return;
    }
    this.startPolling();
  }

  private scheduleReconnect() {
    if (this.disposed) return;
    this.s.conn = 'reconnecting';
    this.emit();
    const delay = Math.min(8000, 500 * 2 ** Math.min(this.failures, 4));
    this.retryTimer = window.setTimeout(() => this.open(), delay);
  }

  private startPolling() {
    if (this.pollTimer || this.disposed) return;
    this.s.transport = 'poll';
    this.s.conn = 'polling';
    this.emit();
    const poll = async () => {
      try {
        const [task, logs] = await Promise.all([api.getTask(this.id), api.logs(this.id, this.lastSeq)]);
        for (const ev of logs.sort((a, b) => a.seq - b.seq)) this.apply(ev, true);
        this.s.task = task;
        if (terminal(task.status)) {
          clearInterval(this.pollTimer);
          this.pollTimer = 0;
          this.s.conn = 'idle';
          this.s.tick++;
        }
        this.emit();
      } catch {
        /* keep polling */
      }
    };
    this.pollTimer = window.setInterval(poll, 2000);
    poll();
  }

  private async refreshTask() {
    try {
      const t = await api.getTask(this.id);
      if (this.disposed) return;
      this.s.task = t;
      this.s.tick++;
      this.emit();
    } catch {
      /* keep what we have */
    }
  }

  private apply(ev: AgentEvent, live: boolean) {
    if (!ev || typeof ev !== 'object') return;
    if (ev.type === 'token_delta') {
      if (!live) return;
      const who = ev.agent_name || 'System';
      const prev = this.s.typing[who];
      let reader = this.readers.get(who);
      // A line that was cleared (its node finished, the task ended) starts a new answer;
      // unless its node started while we watched, the first delta may be mid-answer.
      if (!prev || !reader) this.readers.set(who, (reader = new TypingReader({ midway: !this.startSeen.has(who) })));
      const delta = ev.message ?? '';
      reader.push(delta);
      const raw = ((prev?.raw ?? '') + delta).slice(-TYPING_MAX);
      this.s.typing = { ...this.s.typing, [who]: { raw, text: reader.text() } };
      return;
    }
    if (typeof ev.seq === 'number' && ev.seq > 0) {
      if (ev.seq <= this.lastSeq) return; // duplicate across a reconnect seam
      this.lastSeq = ev.seq;
    }
    this.s.events.push(ev);
    const t = this.s.task;
    const d = ev.data ?? {};
    if (!t) return;
    switch (ev.type) {
      case 'node_state': {
        const node = typeof d.node === 'string' ? d.node : '';
        const state = d.state;
        if (!node || node.length > 128 || !isNodeState(state)) break;
        this.s.task = withNodeState(t, node, state);
        // Typing is keyed by the agent that events name.
        const agent = ev.agent_name || node.charAt(0).toUpperCase() + node.slice(1);
        if (state !== 'running') {
          if (this.s.typing[agent] !== undefined) {
            const { [agent]: _gone, ...rest } = this.s.typing;
            this.s.typing = rest;
          }
          this.s.tick++;
        } else {
          // Started while we watch: its answers are seen from their first delta
          // (but for one replayed on connecting, whose first deltas went by unseen).
          if (live) this.startSeen.add(agent);
          if (t.status === 'pending') {
            this.s.task.status = 'running';
            this.s.task.started_at ??= ev.timestamp;
          }
        }
        break;
      }
      case 'task_state': {
        const status = d.status as Task['status'];
        if (!status) break;
        this.s.task = { ...t, status, error: d.error || (status === 'failed' || status === 'cancelled' ? t.error : undefined) };
        if (status === 'running') this.s.task.started_at ??= ev.timestamp;
        if (terminal(status)) {
          this.s.task.finished_at ??= ev.timestamp;
          this.s.typing = {};
        }
        this.s.tick++;
        break;
      }
      case 'fix_round': {
        const fr = parseFixRound(d);
        if (!fr) break;
        this.s.task = withFixRound(t, fr);
        this.s.fixRounds = addFixRound(this.s.fixRounds, fr);
        this.s.tick++;
        break;
      }
      case 'cost': {
        const node = String(d.node ?? '') as NodeName;
        const nc = { ...(t.node_costs ?? {}) };
        if (node && typeof d.node_cost === 'number') nc[node] = d.node_cost;
        this.s.task = { ...t, cost: typeof d.cost === 'number' ? d.cost : t.cost, node_costs: nc };
        break;
      }
    }
  }

  dispose() {
    this.disposed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pollTimer);
    this.dropSSE();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, 'page closed');
    }
  }
}

export function useTaskStream(id: string) {
  const [state, setState] = useState<StreamState>(initialState());
  const ref = useRef<TaskStream | null>(null);
  useEffect(() => {
    const s = new TaskStream(id);
    ref.current = s;
    s.onChange = setState;
    setState({ ...s.s });
    s.start();
    return () => s.dispose();
  }, [id]);
  return { ...state, resume: (t: Task) => ref.current?.resume(t) };
}
