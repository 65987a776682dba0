import { useEffect, useRef, useState } from 'preact/hooks';
import { api, APIKey, isTokenHolder, KeyCreated, Session } from '../api';
import { ago, fullDate } from '../format';
import { useMe } from '../me';
import { Card, Empty, ErrorBox, Spinner } from '../components/ui';

const EXPIRY = [
  ['', 'Never'],
  ['7', '7 days'],
  ['30', '30 days'],
  ['90', '90 days'],
  ['365', '1 year'],
] as const;

function NoAccount({ what }: { what: string }) {
  return (
    <div class="page">
      <Empty title={`${what} belong to user accounts`} testid="no-account">
        You are signed in with the server token, which is no account. Sign in as a user to manage {what.toLowerCase()}.
      </Empty>
    </div>
  );
}

export function Keys() {
  const me = useMe();
  const [keys, setKeys] = useState<APIKey[] | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [created, setCreated] = useState<KeyCreated | null>(null);
  const load = () => {
    setErr(null);
    api.keys().then((k) => setKeys(k.sort((a, b) => b.created_at.localeCompare(a.created_at))), setErr);
  };
  useEffect(() => {
    if (!isTokenHolder(me)) load();
  }, []);
  if (isTokenHolder(me)) return <NoAccount what="API keys" />;

  const revoke = async (k: APIKey) => {
    if (!confirm(`Revoke the API key “${k.name}” (${k.prefix}…)? Scripts using it stop working at once.`)) return;
    setErr(null);
    try {
      await api.revokeKey(k.id);
      setKeys((cur) => (cur ?? []).filter((x) => x.id !== k.id));
      if (created?.id === k.id) setCreated(null);
    } catch (e) {
      setErr(e);
    }
  };

  return (
    <div class="page" data-testid="keys-page">
      <div class="page-head">
        <div>
          <h1>API keys</h1>
          <p class="lede">
            Keys let scripts act as you: send one as <code>Authorization: Bearer &lt;key&gt;</code>. Catalyst keeps only a hash of each key, so it is shown once, when you create it.
          </p>
        </div>
      </div>
      {created ? <NewKey k={created} onDone={() => setCreated(null)} /> : <CreateKey onCreated={(k) => (setCreated(k), load())} />}
      <Card title="Your keys">
        <ErrorBox error={err} onRetry={load} />
        {!keys && !err ? <Spinner label="Loading keys…" /> : null}
        {keys && keys.length === 0 ? <Empty title="No API keys" testid="keys-empty" /> : null}
        {keys && keys.length ? (
          <div class="table-wrap">
            <table class="data" data-testid="key-list">
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Key</th>
                  <th>Created</th>
                  <th>Last used</th>
                  <th>Expires</th>
                  <th>
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {keys.map((k) => {
                  const expired = !!k.expires_at && Date.parse(k.expires_at) <= Date.now();
                  return (
                    <tr key={k.id} data-testid="key-row" data-key-id={k.id}>
                      <td class="strong">{k.name}</td>
                      <td>
                        <code data-testid="key-prefix">{k.prefix}…</code>
                      </td>
                      <td title={fullDate(k.created_at)}>{ago(k.created_at)}</td>
                      <td title={k.last_used_at ? fullDate(k.last_used_at) : undefined}>{k.last_used_at ? ago(k.last_used_at) : <span class="muted">never</span>}</td>
                      <td title={k.expires_at ? fullDate(k.expires_at) : undefined}>
                        {k.expires_at ? (expired ? <span class="badge status-failed">expired</span> : new Date(k.expires_at).toLocaleDateString()) : <span class="muted">never</span>}
                      </td>
                      <td class="right">
                        <button type="button" class="btn btn-danger btn-small" onClick={() => revoke(k)} data-testid="revoke-key" aria-label={`Revoke ${k.name}`}>
                          Revoke
                        </button>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        ) : null}
      </Card>
    </div>
  );
}

function CreateKey({ onCreated }: { onCreated: (k: KeyCreated) => void }) {
  const [name, setName] = useState('');
  const [days, setDays] = useState('');
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!name.trim() || busy) return;
    setBusy(true);
    setErr(null);
    try {
      const exp = days ? new Date(Date.now() + Number(days) * 86400_000).toISOString() : undefined;
      onCreated(await api.createKey(name.trim(), exp));
    } catch (x) {
      setErr(x);
      setBusy(false);
    }
  };
  return (
    <form class="card form" onSubmit={submit} data-testid="create-key-form">
      <header class="card-head">
        <h2>New API key</h2>
      </header>
      <div class="form-row">
        <label class="field grow">
          Name
          <input required maxLength={100} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} placeholder="CI pipeline" autoComplete="off" data-testid="key-name" />
        </label>
        <label class="field">
          Expires
          <select value={days} onChange={(e) => setDays((e.target as HTMLSelectElement).value)} data-testid="key-expiry">
            {EXPIRY.map(([v, l]) => (
              <option key={v} value={v}>
                {l}
              </option>
            ))}
          </select>
        </label>
      </div>
      <ErrorBox error={err} />
      <button class="btn btn-primary align-start" type="submit" disabled={busy || !name.trim()} data-testid="create-key">
        {busy ? 'Creating…' : 'Create key'}
      </button>
    </form>
  );
}

// The new key, once: the page forgets it when dismissed and the server
// never had it in clear beyond this answer.
function NewKey({ k, onDone }: { k: KeyCreated; onDone: () => void }) {
  const field = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState<'' | 'yes' | 'no'>('');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(k.key);
      setCopied('yes');
    } catch {
      // No clipboard (an insecure origin, a refused permission): select
      // the key so that the keyboard can copy it.
      field.current?.select();
      setCopied('no');
    }
  };
  return (
    <section class="card key-once" data-testid="new-key">
      <header class="card-head">
        <h2>Your new key “{k.name}”</h2>
      </header>
      <div class="alert alert-warn" role="alert">
        <div>
          <strong>Copy it now: it is shown only this once.</strong>
          <p>Catalyst keeps only a hash. If you lose the key, revoke it and create another. Anyone with the key can act as you.</p>
        </div>
      </div>
      <div class="key-copy">
        <input ref={field} readOnly value={k.key} spellcheck={false} aria-label="The new API key" onFocus={(e) => (e.target as HTMLInputElement).select()} data-testid="new-key-value" />
        <button type="button" class="btn" onClick={copy} data-testid="copy-key">
          {copied === 'yes' ? 'Copied' : 'Copy'}
        </button>
      </div>
      {copied === 'no' ? <p class="muted small">The clipboard is not available here: the key is selected, press Ctrl+C (⌘C).</p> : null}
      <button type="button" class="btn btn-primary align-start" onClick={onDone} data-testid="key-done">
        I have copied it
      </button>
    </section>
  );
}

export function Sessions() {
  const me = useMe();
  const [list, setList] = useState<Session[] | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const load = () => {
    setErr(null);
    api.sessions().then((x) => setList(x.sort((a, b) => b.last_seen_at.localeCompare(a.last_seen_at))), setErr);
  };
  useEffect(() => {
    if (!isTokenHolder(me)) load();
  }, []);
  if (isTokenHolder(me)) return <NoAccount what="Sessions" />;
  const revoke = async (s: Session) => {
    const what = s.current ? 'This signs this browser out.' : 'That browser or script is signed out at once.';
    if (!confirm(`End this session? ${what}`)) return;
    try {
      await api.revokeSession(s.id);
      if (s.current) {
        // The cookie is dead now: the next request answers 401 and shows the sign-in page.
        await api.me().catch(() => {});
        return;
      }
      setList((cur) => (cur ?? []).filter((x) => x.id !== s.id));
    } catch (e) {
      setErr(e);
    }
  };
  return (
    <div class="page" data-testid="sessions-page">
      <div class="page-head">
        <div>
          <h1>Sessions</h1>
          <p class="lede">Where you are signed in. A session ends after a while without use; end one here to sign that browser out now.</p>
        </div>
      </div>
      <Card title="Live sessions">
        <ErrorBox error={err} onRetry={load} />
        {!list && !err ? <Spinner label="Loading sessions…" /> : null}
        {list && list.length === 0 ? <Empty title="No live sessions" /> : null}
        {list && list.length ? (
          <div class="table-wrap">
            <table class="data" data-testid="session-list">
              <thead>
                <tr>
                  <th>Client</th>
                  <th>From</th>
                  <th>Signed in</th>
                  <th>Last used</th>
                  <th>
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.map((s) => (
                  <tr key={s.id} data-testid="session-row" data-current={s.current ? 'true' : 'false'}>
                    <td class="clip" title={s.user_agent}>
                      {s.current ? <span class="badge status-completed">this browser</span> : null} {s.user_agent || <span class="muted">unknown</span>}
                    </td>
                    <td>{s.remote_addr || <span class="muted">—</span>}</td>
                    <td title={fullDate(s.created_at)}>{ago(s.created_at)}</td>
                    <td title={fullDate(s.last_seen_at)}>{ago(s.last_seen_at)}</td>
                    <td class="right">
                      <button type="button" class="btn btn-danger btn-small" onClick={() => revoke(s)} data-testid="revoke-session">
                        {s.current ? 'Sign out' : 'End'}
                      </button>
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
