import { describe, expect, it } from 'vitest';
import { toolSteps } from './components/CoderSteps';
import { AgentEvent } from './api';

const ev = (seq: number, type: string, data: any): AgentEvent => ({ id: String(seq), task_id: 't', seq, type: type as any, agent_name: 'Coder', message: '', data, timestamp: '' });

describe('toolSteps', () => {
  it('groups tool calls by the coder run and checks every field', () => {
    const steps = toolSteps([
      ev(1, 'node_state', { node: 'coder', state: 'running', iteration: 1 }),
      ev(2, 'tool_call', { step: 1, call: 1, tool: 'write_file', arguments: '{"path":"a.js"}', result: 'ok', summary: 'created a.js', ok: true }),
      ev(3, 'node_state', { node: 'coder', state: 'running', iteration: 2 }),
      ev(4, 'tool_call', { step: 1, call: 1, tool: 'edit_file', arguments: 42, result: { x: 1 }, summary: 'x'.repeat(1000), ok: 'yes' }),
      ev(5, 'log', { tool: 'run' }),
    ]);
    expect(steps.map((s) => [s.run, s.tool, s.ok])).toEqual([
      [1, 'write_file', true],
      [2, 'edit_file', false],
    ]);
    expect(steps[1].arguments).toBe('');
    expect(steps[1].result).toBe('');
    expect(steps[1].summary.length).toBe(400);
  });
});
