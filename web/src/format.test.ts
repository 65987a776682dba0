import { describe, expect, it } from 'vitest';
import { runLabel } from './format';

describe('runLabel', () => {
  it('names the first run and the fix rounds after it', () => {
    expect([1, 2, 3].map(runLabel)).toEqual(['First run', 'Fix round 1', 'Fix round 2']);
  });
  it('reads an unnumbered run as the first', () => {
    expect(runLabel(0)).toBe('First run');
  });
});
