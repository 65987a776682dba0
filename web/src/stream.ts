// Live task state: the stored history from REST, then /ws/{task_id}?after=SEQ
// for live events, reconnecting with the last seq seen on an unexpected close
// (no gap, no duplicate: events with seq <= last are dropped). Falls back to
// polling REST when WebSockets cannot be opened at all.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, AgentEvent, ApiError, NodeName, NodeState, NODES, Task } from './api';

export type Conn = 'loading' | 'connecting' | 'live' | 'reconnecting' | 'polling' | 'idle';

export interface StreamState {
  task: Task | null;
  events: AgentEvent[];
  /** Text an agent is "typing" right now (token deltas), by agent name. */
  typing: Record<string, string>;
  conn: Conn;
  error: ApiError | null;
  /** Bumps whenever a node finishes or the task changes state: time to refetch artifacts. */
  tick: number;
}

const terminal = (s?: string) => s === 'completed' || s === 'failed' || s === 'cancelled';
const TYPING_MAX = 1200;

class TaskStream {
  private id: string;
  private lastSeq = 0;
  private ws: WebSocket | null = null;
  private retryTimer = 0;
  private pollTimer = 0;
  private failures = 0;
  private disposed = false;
  private flushQueued = false;
  s: StreamState = { task: null, events: [], typing: {}, conn: 'loading', error: null, tick: 0 };
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
      for (const ev of logs.sort((a, b) => a.seq - b.seq)) this.apply(ev, false);
      this.s.task = task; // the stored task is authoritative over replayed history
      this.s.error = null;
      this.s.tick++;
      if (terminal(task.status)) this.s.conn = 'idle';
      else this.connect();
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
    if (!terminal(task.status) && !this.ws && !this.pollTimer) {
      this.failures = 0;
      this.connect();
    }
    this.emit();
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
      this.fail();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      opened = true;
      this.failures = 0;
      this.s.conn = 'live';
      this.emit();
    };
    ws.onmessage = (m) => {
      try {
        const ev = JSON.parse(typeof m.data === 'string' ? m.data : '') as AgentEvent;
        this.apply(ev, true);
        this.emit();
      } catch {
        /* ignore malformed frames */
      }
    };
    ws.onclose = (c) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.disposed) return;
      if (!opened) this.failures++;
      if (terminal(this.s.task?.status)) {
        this.s.conn = 'idle';
        this.s.typing = {};
        this.refreshTask();
        this.emit();
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

  private fail() {
    this.failures++;
    if (this.failures >= 4) {
      this.startPolling();
      return;
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect() {
    if (this.disposed) return;
    this.s.conn = 'reconnecting';
    this.emit();
    const delay = Math.min(8000, 500 * 2 ** Math.min(this.failures, 4));
    this.retryTimer = window.setTimeout(() => this.connect(), delay);
  }

  private startPolling() {
    if (this.pollTimer || this.disposed) return;
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
      const text = ((this.s.typing[who] ?? '') + (ev.message ?? '')).slice(-TYPING_MAX);
      this.s.typing = { ...this.s.typing, [who]: text };
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
        const node = String(d.node ?? '').toLowerCase() as NodeName;
        const state = d.state as NodeState;
        if (!NODES.includes(node) || !state) break;
        const gs = { ...t.graph_state, [node]: state };
        let fix = t.fix_iteration;
        // iteration is the node's run number: the coder's first run is 1, fix round n is run n+1.
        if (node === 'coder' && typeof d.iteration === 'number') fix = Math.max(fix, d.iteration - 1);
        this.s.task = { ...t, graph_state: gs, fix_iteration: fix };
        if (state !== 'running') {
          const agent = node.charAt(0).toUpperCase() + node.slice(1);
          if (this.s.typing[agent] !== undefined) {
            const { [agent]: _gone, ...rest } = this.s.typing;
            this.s.typing = rest;
          }
          this.s.tick++;
        } else if (t.status === 'pending') {
          this.s.task.status = 'running';
          this.s.task.started_at ??= ev.timestamp;
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
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, 'page closed');
    }
  }
}

export function useTaskStream(id: string) {
  const [state, setState] = useState<StreamState>({ task: null, events: [], typing: {}, conn: 'loading', error: null, tick: 0 });
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
