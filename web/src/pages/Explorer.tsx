import { useEffect, useState } from 'preact/hooks';
import { api, Scan } from '../api';
import { ago, fullDate, money } from '../format';
import { href, navigate } from '../router';
import { Empty, ErrorBox, PageError, Spinner, StatusBadge } from '../components/ui';

const busy = (s: Scan) => s.status === 'pending' || s.status === 'running';

export function Explorer() {
  const [scans, setScans] = useState<Scan[] | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const load = () =>
    api.scans().then((x) => {
      setScans(x.sort((a, b) => b.created_at.localeCompare(a.created_at)));
      setErr(null);
    }, setErr);
  useEffect(() => {
    load();
  }, []);
  const anyBusy = (scans ?? []).some(busy);
  useEffect(() => {
    if (!anyBusy) return;
    const t = setInterval(load, 3000);
    return () => clearInterval(t);
  }, [anyBusy]);

  return (
    <div class="page" data-testid="explorer-page">
      <div class="page-head">
        <div>
          <h1>Explorer</h1>
          <p class="lede">Scan an existing system — its repository and Jira project — for a brief, risks and proposals.</p>
        </div>
      </div>
      <div class="grid-2">
        <ScanForm onCreated={(s) => navigate(href('explorer', s.id))} />
        <section class="card">
          <header class="card-head">
            <h2>Scans</h2>
          </header>
          <ErrorBox error={err} onRetry={load} />
          {!scans && !err ? <Spinner label="Loading scans…" /> : null}
          {scans && scans.length === 0 ? (
            <Empty title="No scans yet" testid="scans-empty">
              Name a system and, if you have them, its repository URL and Jira project key.
            </Empty>
          ) : null}
          <ul class="task-list" data-testid="scan-list">
            {(scans ?? []).map((s) => (
              <li key={s.id}>
                <a href={href('explorer', s.id)} class="task-row scan-row" data-testid="scan-row">
                  <StatusBadge status={s.status} />
                  <span class="task-prompt">
                    <strong>{s.system_name}</strong>
                    <span class="muted small scan-src">{[s.repo_url, s.jira_project].filter(Boolean).join(' · ')}</span>
                  </span>
                  <span class="task-cost">{money(s.cost)}</span>
                  <span class="muted task-when">{ago(s.created_at)}</span>
                </a>
              </li>
            ))}
          </ul>
        </section>
      </div>
    </div>
  );
}

function ScanForm({ onCreated }: { onCreated: (s: Scan) => void }) {
  const [name, setName] = useState('');
  const [repo, setRepo] = useState('');
  const [jira, setJira] = useState('');
  const [sending, setSending] = useState(false);
  const [err, setErr] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!name.trim()) return;
    setSending(true);
    setErr(null);
    try {
      onCreated(await api.scan(name.trim(), repo.trim(), jira.trim()));
    } catch (x) {
      setErr(x);
      setSending(false);
    }
  };
  return (
    <form class="card form" onSubmit={submit} data-testid="scan-form">
      <header class="card-head">
        <h2>New scan</h2>
      </header>
      <label class="field">
        <span>System name</span>
        <input required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} placeholder="SailPoint IdentityIQ" data-testid="scan-system" autoComplete="off" />
      </label>
      <label class="field">
        <span>
          Repository URL <span class="muted">(optional)</span>
        </span>
        <input type="url" value={repo} onInput={(e) => setRepo((e.target as HTMLInputElement).value)} placeholder="https://github.com/org/repo" data-testid="scan-repo" autoComplete="off" />
      </label>
      <label class="field">
        <span>
          Jira project <span class="muted">(optional)</span>
        </span>
        <input value={jira} onInput={(e) => setJira((e.target as HTMLInputElement).value)} placeholder="IIQ" data-testid="scan-jira" autoComplete="off" />
      </label>
      <ErrorBox error={err} />
      <button class="btn btn-primary" type="submit" disabled={sending || !name.trim()} data-testid="start-scan">
        {sending ? 'Starting…' : 'Start scan'}
      </button>
    </form>
  );
}

function factValue(v: unknown): string {
  if (v == null || v === '') return '—';
  if (Array.isArray(v)) return v.every((x) => typeof x !== 'object') ? v.join(', ') || '—' : JSON.stringify(v, null, 1);
  if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.every(([, x]) => x == null || typeof x !== 'object')) return entries.map(([k, x]) => `${k}: ${x}`).join(' · ') || '—';
    return JSON.stringify(v, null, 1);
  }
  if (typeof v === 'number') return v.toLocaleString();
  return String(v);
}

export function ScanPage({ id }: { id: string }) {
  const [scan, setScan] = useState<Scan | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const load = () => api.getScan(id).then((s) => (setScan(s), setErr(null)), setErr);
  useEffect(() => {
    setScan(null);
    load();
  }, [id]);
  const isBusy = scan ? busy(scan) : false;
  useEffect(() => {
    if (!isBusy) return;
    const t = setInterval(load, 2000);
    return () => clearInterval(t);
  }, [isBusy, id]);

  if (err && !scan) return <PageError error={err} what="scan" onRetry={load} />;
  if (!scan) return <div class="page"><Spinner label="Loading scan…" /></div>;

  return (
    <div class="page" data-testid="scan-page" data-status={scan.status}>
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href={href('explorer')}>Explorer</a>
        <span aria-hidden="true">/</span>
        <span aria-current="page">{scan.system_name}</span>
      </nav>
      <section class="card task-head">
        <div class="task-title">
          <StatusBadge status={scan.status} testid="scan-status" />
          <h1>{scan.system_name}</h1>
        </div>
        <div class="metrics">
          {scan.repo_url ? (
            <div class="metric metric-wide">
              <span class="metric-label">Repository</span>
              <span class="metric-value metric-small break">{scan.repo_url}</span>
            </div>
          ) : null}
          {scan.jira_project ? (
            <div class="metric">
              <span class="metric-label">Jira</span>
              <span class="metric-value metric-small">{scan.jira_project}</span>
            </div>
          ) : null}
          <div class="metric">
            <span class="metric-label">Cost</span>
            <span class="metric-value">{money(scan.cost)}</span>
          </div>
          <div class="metric">
            <span class="metric-label">Started</span>
            <span class="metric-value metric-small">{fullDate(scan.created_at)}</span>
          </div>
        </div>
        {scan.error ? (
          <div class="alert alert-error" role="alert">
            <strong>The scan failed</strong>
            <p class="pre-wrap">{scan.error}</p>
          </div>
        ) : null}
      </section>
      {isBusy ? (
        <Spinner
          label={
            scan.status === 'running'
              ? 'The Explorer is reading the system… this page updates by itself.'
              : 'Queued: waiting for the Explorer to pick this scan up. This page updates by itself.'
          }
        />
      ) : null}
      {scan.brief ? (
        <section class="card" data-testid="scan-brief">
          <header class="card-head">
            <h2>Brief</h2>
          </header>
          <p class="prose pre-wrap">{scan.brief}</p>
        </section>
      ) : null}
      <div class="grid-2 grid-even">
        <section class="card" data-testid="scan-risks">
          <header class="card-head">
            <h2>Risks</h2>
          </header>
          {scan.risks?.length ? (
            <ol class="numbered risks">
              {scan.risks.map((r, i) => (
                <li key={i}>{r}</li>
              ))}
            </ol>
          ) : (
            <p class="muted">{isBusy ? 'Not yet.' : 'None reported.'}</p>
          )}
        </section>
        <section class="card" data-testid="scan-proposals">
          <header class="card-head">
            <h2>Proposals</h2>
          </header>
          {scan.proposals?.length ? (
            <ol class="numbered proposals">
              {scan.proposals.map((r, i) => (
                <li key={i}>{r}</li>
              ))}
            </ol>
          ) : (
            <p class="muted">{isBusy ? 'Not yet.' : 'None reported.'}</p>
          )}
        </section>
      </div>
      {scan.facts && Object.keys(scan.facts).length ? (
        <section class="card" data-testid="scan-facts">
          <header class="card-head">
            <h2>Facts measured</h2>
          </header>
          <dl class="deflist facts">
            {Object.entries(scan.facts).map(([k, v]) => (
              <div key={k}>
                <dt>{k.replace(/_/g, ' ')}</dt>
                <dd class="pre-wrap">{factValue(v)}</dd>
              </div>
            ))}
          </dl>
        </section>
      ) : null}
    </div>
  );
}
