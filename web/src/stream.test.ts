import { describe, expect, it } from 'vitest';
import { Task } from './api';
import { addFixRound, parseFixRound, withFixRound, withNodeState } from './stream';

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

// A fix_round event's data as domain.StartFixRound emits it.
const event = { round: 1, max: 3, target: 'coder', failing: ['tester'], reset: ['coder', 'reviewer', 'tester'], findings: ['sum(2, 3) should be 5'] };

describe('withNodeState', () => {
  it('sets the state of the node', () => {
    const t = withNodeState(task({ planner: 'running' }), 'planner', 'completed');
    expect(t.graph_state).toEqual({ planner: 'completed' });
    expect(t.fix_iteration).toBe(0);
  });

  it('guesses no fix round from the coder running again: only fix_round says so', () => {
    const t = withNodeState(task(done), 'coder', 'running');
    expect(t.fix_iteration).toBe(0);
    expect(t.graph_state).toEqual({ ...done, coder: 'running' });
  });

  it('sets nodes of any graph', () => {
    expect(withNodeState(task({}), 'critic', 'failed').graph_state).toEqual({ critic: 'failed' });
  });
});

describe('fix_round', () => {
  it('reads the event', () => {
    expect(parseFixRound(event)).toEqual(event);
  });

  it('resets the nodes the event names to pending and counts the round', () => {
    const t = withFixRound(task({ ...done, deployer: 'pending' }), parseFixRound(event)!);
    expect(t.fix_iteration).toBe(1);
    expect(t.graph_state).toEqual({ planner: 'completed', architect: 'completed', coder: 'pending', tester: 'pending', reviewer: 'pending', deployer: 'pending' });
  });

  it('resets only the nodes named, whatever the graph', () => {
    const t = withFixRound(task({ writer: 'completed', critic: 'completed', scout: 'completed' }), parseFixRound({ round: 1, max: 2, target: 'writer', failing: ['critic'], reset: ['writer', 'critic'], findings: [] })!);
    expect(t.graph_state).toEqual({ writer: 'pending', critic: 'pending', scout: 'completed' });
  });

  it('never lowers the count (an event replayed after the stored task)', () => {
    expect(withFixRound(task(done, 2), parseFixRound(event)!).fix_iteration).toBe(2);
  });

  it('keeps one report per round, in order', () => {
    const r1 = parseFixRound(event)!;
    const r2 = parseFixRound({ ...event, round: 2, failing: ['reviewer'] })!;
    const r1again = parseFixRound({ ...event, findings: ['again'] })!;
    expect(addFixRound(addFixRound(addFixRound([], r2), r1), r1again).map((r) => [r.round, r.findings[0]])).toEqual([
      [1, 'again'],
      [2, 'sum(2, 3) should be 5'],
    ]);
  });

  it('rejects data that names no round and drops what is not a list of strings', () => {
    expect(parseFixRound(null)).toBeNull();
    expect(parseFixRound('round 1')).toBeNull();
    expect(parseFixRound({ round: 0 })).toBeNull();
    expect(parseFixRound({ round: 1.5 })).toBeNull();
    expect(parseFixRound({ round: '1' })).toBeNull();
    const r = parseFixRound({ round: 1, max: 'many', target: 7, failing: 'tester', reset: ['coder', 3, null, ''], findings: [{ x: 1 }, 'ok'] })!;
    expect(r).toEqual({ round: 1, max: 0, target: '', failing: [], reset: ['coder'], findings: ['ok'] });
  });

  it('bounds the lists a hostile event could make huge', () => {
    const r = parseFixRound({ round: 1, failing: Array(1000).fill('x'), reset: Array(1000).fill('y'), findings: Array(1000).fill('z') })!;
    expect(r.failing.length).toBeLessThanOrEqual(64);
    expect(r.reset.length).toBeLessThanOrEqual(256);
    expect(r.findings.length).toBeLessThanOrEqual(50);
  });
});
