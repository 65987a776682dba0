import { describe, expect, it } from 'vitest';
import { Task } from './api';
import { withNodeState } from './stream';

const task = (graph_state: Task['graph_state'], fix_iteration = 0): Task => ({
  id: 't',
  project_id: 'p',
  prompt: 'sum',
  graph_state,
  status: 'running',
  cost: 0,
  fix_iteration,
  created_at: '',
  updated_at: '',
});

const done = { planner: 'completed', architect: 'completed', coder: 'completed', tester: 'completed', reviewer: 'completed' } as const;

describe('withNodeState', () => {
  it('sets the state of the node', () => {
    const t = withNodeState(task({ planner: 'running' }), 'planner', 'completed', 1);
    expect(t.graph_state).toEqual({ planner: 'completed' });
    expect(t.fix_iteration).toBe(0);
  });

  it('starts a fix round when the coder starts its next run: the checks wait again', () => {
    const t = withNodeState(task(done), 'coder', 'running', 2);
    expect(t.fix_iteration).toBe(1);
    expect(t.graph_state).toEqual({ planner: 'completed', architect: 'completed', coder: 'running', tester: 'pending', reviewer: 'pending' });
  });

  it('leaves the checks alone within a round the task already counts', () => {
    const t = withNodeState(task({ ...done, coder: 'running', tester: 'running' }, 1), 'coder', 'completed', 2);
    expect(t.fix_iteration).toBe(1);
    expect(t.graph_state.tester).toBe('running');
  });

  it('ignores a coder event without a run number', () => {
    const t = withNodeState(task(done), 'coder', 'running', undefined);
    expect(t.fix_iteration).toBe(0);
    expect(t.graph_state.tester).toBe('completed');
  });
});
