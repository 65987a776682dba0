import { describe, expect, it } from 'vitest';
import { parse } from './router';
import { allows } from './api';

describe('routes of the accounts pages', () => {
  it('parses sign-up with and without an invitation', () => {
    expect(parse('#/signup')).toEqual({ name: 'signup', params: { invite: '' } });
    expect(parse('#/signup?invite=abc%2Bdef')).toEqual({ name: 'signup', params: { invite: 'abc+def' } });
  });
  it('parses the account and admin pages, and nothing else under them', () => {
    expect(parse('#/account/keys').name).toBe('keys');
    expect(parse('#/account/sessions').name).toBe('sessions');
    expect(parse('#/admin/audit').name).toBe('audit');
    expect(parse('#/account/other').name).toBe('notfound');
    expect(parse('#/admin').name).toBe('notfound');
  });
  it('keeps the older routes', () => {
    expect(parse('#/tasks/t1/files/src/a.js')).toEqual({ name: 'task', params: { id: 't1', tab: 'files', file: 'src/a.js' } });
    expect(parse('')).toEqual({ name: 'projects', params: {} });
  });
});

describe('allows: which controls a role shows', () => {
  it('ranks viewer < editor < owner < admin', () => {
    expect(allows({ my_role: 'viewer' }, 'editor')).toBe(false);
    expect(allows({ my_role: 'editor' }, 'editor')).toBe(true);
    expect(allows({ my_role: 'editor' }, 'owner')).toBe(false);
    expect(allows({ my_role: 'owner' }, 'owner')).toBe(true);
    expect(allows({ my_role: 'admin' }, 'owner')).toBe(true);
  });
  it('shows nothing before the project is known, or for a role it does not know', () => {
    expect(allows(null, 'viewer')).toBe(false);
    expect(allows({ my_role: 'stranger' as any }, 'viewer')).toBe(false);
  });
});
