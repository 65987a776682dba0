import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, AuditEntry, AuditFilter } from '../api';
import { fullDate } from '../format';
import { useMe } from '../me';
import { Card, Empty, ErrorBox, Spinner } from '../components/ui';

// The administrators' read-only view of the audit log: GET /api/audit with
// its filters, newest first, a page at a time (the server's cursors).

const ACTIONS = [
  'auth.login',
  'auth.login_failed',
  'auth.logout',
  'auth.register',
  'user.create',
  'invite.create',
  'apikey.create',
  'apikey.revoke',
  'session.revoke',
  'http.post',
  'http.patch',
  'http.put',
  'http.delete',
];
const RESOURCES = ['sessions', 'users', 'api_keys', 'invites', 'projects', 'tasks', 'explorer'];
const SIZES = [20, 50, 200];

interface Form {
  actor: string;
  action: string;
  resource_type: string;
  resource_id: string;
  result: string;
  since: string; // datetime-local, the browser's time zone
  until: string;
}
const emptyForm: Form = { actor: '', action: '', resource_type: '', resource_id: '', result: '', since: '', until: '' };

const iso = (local: string) => (local ? new Date(local).toISOString() : '');

// The API filters by actor id; an e-mail address is looked up among the
// users (admins may list them) so that people can type what they know.
async function actorId(actor: string): Promise<string> {
  const a = actor.trim();
  if (!a.includes('@')) return a;
  const want = a.toLowerCase();
  let url: string | null = '/api/users?limit=200';
  for (let i = 0; url && i < 20; i++) {
    const r = await api.users(url);
    const u = r.items.find((x) => x.email.toLowerCase() === want);
    if (u) return u.id;
    url = r.next;
  }
  throw new ApiError(404, 'No such user', `No user has the e-mail address ${a}.`);
}

export function Audit() {
  const me = useMe();
  const [form, setForm] = useState<Form>(emptyForm);
  const [filter, setFilter] = useState<AuditFilter>({});
  // The URLs of the pages shown so far: [''] is the first page.
  const [pages, setPages] = useState<string[]>(['']);
  const [items, setItems] = useState<AuditEntry[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [size, setSize] = useState(50);
  const at = pages[pages.length - 1];

  useEffect(() => {
    if (me && me.role !== 'admin') return;
    let live = true;
    setBusy(true);
    setErr(null);
    api.audit(filter, at || undefined, size).then(
      (r) => {
        if (!live) return;
        setItems(r.items);
        setNext(r.next);
        setBusy(false);
      },
      (e) => {
        if (!live) return;
        setErr(e);
        setBusy(false);
      },
    );
    return () => {
      live = false;
    };
  }, [filter, at, size]);

  if (me && me.role !== 'admin') {
    return (
      <div class="page">
        <Empty title="Only administrators read the audit log" testid="audit-forbidden" />
      </div>
    );
  }

  const set = (k: keyof Form) => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value });
  const apply = async (f: Form, e?: Event) => {
    e?.preventDefault();
    setErr(null);
    try {
      const next: AuditFilter = {
        actor: await actorId(f.actor),
        action: f.action.trim(),
        resource_type: f.resource_type.trim(),
        resource_id: f.resource_id.trim(),
        result: f.result,
        since: iso(f.since),
        until: iso(f.until),
      };
      setForm(f);
      setFilter(next);
      setPages(['']);
    } catch (x) {
      setErr(x);
    }
  };
  const byActor = (a: AuditEntry) => apply({ ...form, actor: a.actor_email || a.actor_id });

  return (
    <div class="page page-wide" data-testid="audit-page">
      <div class="page-head">
        <div>
          <h1>Audit log</h1>
          <p class="lede">Sign-ins, keys, sessions, every change and every administrator's look at another's data: who, what, from where, and how it ended. Read-only.</p>
        </div>
      </div>
      <form class="card form audit-filters" onSubmit={(e) => apply(form, e)} data-testid="audit-filters">
        <div class="filter-grid">
          <label class="field">
            Actor
            <input value={form.actor} onInput={set('actor')} placeholder="e-mail address or id" autoComplete="off" data-testid="audit-actor" />
          </label>
          <label class="field">
            Action
            <input value={form.action} onInput={set('action')} list="audit-actions" placeholder="auth.login" autoComplete="off" data-testid="audit-action" />
            <datalist id="audit-actions">
              {ACTIONS.map((a) => (
                <option key={a} value={a} />
              ))}
            </datalist>
          </label>
          <label class="field">
            Resource
            <input value={form.resource_type} onInput={set('resource_type')} list="audit-resources" placeholder="projects" autoComplete="off" data-testid="audit-resource" />
            <datalist id="audit-resources">
              {RESOURCES.map((a) => (
                <option key={a} value={a} />
              ))}
            </datalist>
          </label>
          <label class="field">
            Resource id
            <input value={form.resource_id} onInput={set('resource_id')} autoComplete="off" data-testid="audit-resource-id" />
          </label>
          <label class="field">
            Result
            <select value={form.result} onChange={set('result')} data-testid="audit-result">
              <option value="">any</option>
              <option value="ok">ok</option>
              <option value="denied">denied</option>
              <option value="error">error</option>
            </select>
          </label>
          <label class="field">
            From
            <input type="datetime-local" value={form.since} onInput={set('since')} data-testid="audit-since" />
          </label>
          <label class="field">
            Until
            <input type="datetime-local" value={form.until} onInput={set('until')} data-testid="audit-until" />
          </label>
        </div>
        <div class="card-actions">
          <button class="btn btn-primary" type="submit" data-testid="audit-apply">
            Filter
          </button>
          <button type="button" class="btn btn-ghost" onClick={() => apply(emptyForm)} data-testid="audit-clear">
            Clear
          </button>
        </div>
      </form>
      <Card
        title={`Entries${pages.length > 1 ? ` · page ${pages.length}` : ''}`}
        actions={
          <>
            <label class="inline-field">
              Per page
              <select
                value={String(size)}
                onChange={(e) => {
                  setSize(Number((e.target as HTMLSelectElement).value));
                  setPages(['']);
                }}
                data-testid="audit-size"
              >
                {SIZES.map((n) => (
                  <option key={n} value={String(n)}>
                    {n}
                  </option>
                ))}
              </select>
            </label>
            <button type="button" class="btn btn-small" disabled={pages.length <= 1 || busy} onClick={() => setPages(pages.slice(0, -1))} data-testid="audit-newer">
              ← Newer
            </button>
            <button type="button" class="btn btn-small" disabled={!next || busy} onClick={() => next && setPages([...pages, next])} data-testid="audit-older">
              Older →
            </button>
          </>
        }
      >
        <ErrorBox error={err} />
        {busy && !items ? <Spinner label="Loading the audit log…" /> : null}
        {items && items.length === 0 ? <Empty title="No entries" testid="audit-empty">Nothing matches these filters.</Empty> : null}
        {items && items.length ? (
          <div class="table-wrap">
            <table class="data audit" data-testid="audit-list" aria-busy={busy}>
              <thead>
                <tr>
                  <th>When</th>
                  <th>Actor</th>
                  <th>Action</th>
                  <th>Resource</th>
                  <th>Result</th>
                  <th>From</th>
                  <th>Detail</th>
                </tr>
              </thead>
              <tbody>
                {items.map((a) => (
                  <tr key={a.id} data-testid="audit-row" data-entry-id={a.id} data-action={a.action} data-result={a.result}>
                    <td class="nowrap">{fullDate(a.time)}</td>
                    <td>
                      <button type="button" class="linkish" title={`${a.actor_kind} ${a.actor_id}: show only this actor`} onClick={() => byActor(a)} data-testid="audit-row-actor">
                        {a.actor_email || (a.actor_kind === 'anonymous' ? 'anonymous' : a.actor_id)}
                      </button>
                    </td>
                    <td>
                      <code>{a.action}</code>
                    </td>
                    <td class="clip" title={[a.resource_type, a.resource_id].filter(Boolean).join(' ')}>
                      {a.resource_type}
                      {a.resource_id ? <span class="muted"> {a.resource_id}</span> : null}
                    </td>
                    <td>
                      <span class={`badge result-${a.result}`}>{a.result}</span>
                      {a.status ? <span class="muted small"> {a.status}</span> : null}
                    </td>
                    <td class="clip" title={a.user_agent}>
                      {a.remote_addr}
                    </td>
                    <td class="clip" title={a.detail}>
                      {a.detail}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </Card>
    </div>
  );
}
