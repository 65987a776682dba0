import { useEffect, useState } from 'preact/hooks';
import { api, Project, Scan, ScanFact, ScanLocation, ScanRisk } from '../api';
import { useTaskStream } from '../stream';
import { ago, fullDate, money } from '../format';
import { href, navigate } from '../router';
import { Empty, ErrorBox, PageError, Spinner, StatusBadge } from '../components/ui';

const busy = (s: Scan) => s.status === 'pending' || s.status === 'running';

/** A link a scanned system supplied, or null: only absolute http(s) URLs are ever rendered as links. */
export function safeHref(u: string | undefined): string | null {
  if (!u) return null;
  try {
    const url = new URL(u);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

function locText(w: ScanLocation | undefined): string {
  if (!w) return '';
  if (w.path) return w.line ? `${w.path}:${w.line}` : w.path;
  return w.ref ?? '';
}

const factList = (s: Scan): ScanFact[] => (Array.isArray(s.facts) ? s.facts : []);

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
          <p class="lede">Scan an existing system — its repository, GitHub, Jira and ServiceNow — for a brief, risks that cite their evidence, and proposals.</p>
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
                    <span class="muted small scan-src">{[s.repo_url, s.github_repo, s.jira_project, s.servicenow_ci].filter(Boolean).join(' · ')}</span>
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
  const [f, setF] = useState({ system_name: '', repo_url: '', github_repo: '', jira_project: '', servicenow_ci: '' });
  const [sending, setSending] = useState(false);
  const [err, setErr] = useState<unknown>(null);
  const set = (k: keyof typeof f) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!f.system_name.trim()) return;
    setSending(true);
    setErr(null);
    const req = Object.fromEntries(Object.entries(f).map(([k, v]) => [k, v.trim()]).filter(([, v]) => v)) as unknown as Parameters<typeof api.scan>[0];
    try {
      onCreated(await api.scan(req));
    } catch (x) {
      setErr(x);
      setSending(false);
    }
  };
  const field = (k: keyof typeof f, label: string, placeholder: string, testid: string) => (
    <label class="field">
      <span>
        {label} <span class="muted">(optional)</span>
      </span>
      <input value={f[k]} onInput={set(k)} placeholder={placeholder} data-testid={testid} autoComplete="off" />
    </label>
  );
  return (
    <form class="card form" onSubmit={submit} data-testid="scan-form">
      <header class="card-head">
        <h2>New scan</h2>
      </header>
      <label class="field">
        <span>System name</span>
        <input required value={f.system_name} onInput={set('system_name')} placeholder="SailPoint IdentityIQ" data-testid="scan-system" autoComplete="off" />
      </label>
      {field('repo_url', 'Repository URL', 'https://github.com/org/repo', 'scan-repo')}
      {field('github_repo', 'GitHub repository', 'owner/name (taken from a github.com URL when empty)', 'scan-github')}
      {field('jira_project', 'Jira project', 'IIQ', 'scan-jira')}
      {field('servicenow_ci', 'ServiceNow CI', 'IdentityIQ Production', 'scan-servicenow')}
      <ErrorBox error={err} />
      <button class="btn btn-primary" type="submit" disabled={sending || !f.system_name.trim()} data-testid="start-scan">
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

/** Follows the scan's task on /ws/{task_id} and reloads the scan as its events arrive. */
function LiveEvents({ taskId, onEvent }: { taskId: string; onEvent: () => void }) {
  const s = useTaskStream(taskId);
  const n = s.events.length;
  useEffect(() => {
    if (n) onEvent();
  }, [n, s.task?.status]);
  const shown = s.events.filter((e) => e.type === 'log').slice(-12);
  return (
    <section class="card" data-testid="scan-events" data-conn={s.conn}>
      <header class="card-head">
        <h2>Progress</h2>
        <a class="muted small" href={href('task', taskId)}>
          Open the task
        </a>
      </header>
      <ol class="scan-events">
        {shown.map((e) => (
          <li key={e.seq} class={e.level === 'warn' || e.level === 'error' ? 'warn' : ''} data-testid="scan-event">
            <strong>{e.agent_name}</strong> {e.message}
          </li>
        ))}
      </ol>
    </section>
  );
}

function Evidence({ risk }: { risk: ScanRisk }) {
  return (
    <ul class="evidence">
      {risk.evidence.map((e) => {
        const link = safeHref(e.where?.url);
        const loc = locText(e.where);
        return (
          <li key={e.fact_id} data-testid="risk-evidence">
            <code>{e.fact_id}</code>{' '}
            {link ? (
              <a href={link} target="_blank" rel="noopener noreferrer" data-testid="evidence-link">
                {loc || link}
              </a>
            ) : loc ? (
              <span class="finding-loc">{loc}</span>
            ) : null}
            {e.summary ? <span class="muted"> — {e.summary}</span> : null}
          </li>
        );
      })}
    </ul>
  );
}

const SEV_CLASS: Record<string, string> = { critical: 'critical', high: 'major', medium: 'minor', low: 'info' };

function ProposalTask({ text }: { text: string }) {
  const [open, setOpen] = useState(false);
  const [projects, setProjects] = useState<Project[] | null>(null);
  const [pid, setPid] = useState('');
  const [err, setErr] = useState<unknown>(null);
  const [sending, setSending] = useState(false);
  const start = () => {
    setOpen(true);
    api.listProjects().then((r) => {
      const active = r.items.filter((p) => p.status === 'active');
      setProjects(active);
      if (active.length) setPid(active[0].id);
    }, setErr);
  };
  const create = async () => {
    setSending(true);
    setErr(null);
    try {
      const t = await api.createTask(pid, text);
      navigate(href('task', t.id));
    } catch (x) {
      setErr(x);
      setSending(false);
    }
  };
  if (!open)
    return (
      <button class="btn btn-small" type="button" onClick={start} data-testid="proposal-to-task">
        Make it a task
      </button>
    );
  return (
    <div class="proposal-task">
      {projects && !projects.length ? <span class="muted small">No active project: create one first.</span> : null}
      {projects && projects.length ? (
        <>
          <select value={pid} onChange={(e) => setPid((e.target as HTMLSelectElement).value)} data-testid="proposal-project" aria-label="Project">
            {projects.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name}
              </option>
            ))}
          </select>
          <button class="btn btn-small btn-primary" type="button" disabled={sending || !pid} onClick={create} data-testid="proposal-create">
            {sending ? 'Creating…' : 'Create task'}
          </button>
        </>
      ) : null}
      <ErrorBox error={err} />
    </div>
  );
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
  // A backstop for the live stream (and for scans without a task).
  useEffect(() => {
    if (!isBusy) return;
    const t = setInterval(load, 4000);
    return () => clearInterval(t);
  }, [isBusy, id]);

  if (err && !scan) return <PageError error={err} what="scan" onRetry={load} />;
  if (!scan) return <div class="page"><Spinner label="Loading scan…" /></div>;

  const details = scan.risk_details ?? [];
  const sources = scan.sources ?? [];
  const unreachable = sources.filter((s) => s.status === 'failed');
  const facts = factList(scan);
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
          {[['GitHub', scan.github_repo], ['Jira', scan.jira_project], ['ServiceNow', scan.servicenow_ci]].map(([k, v]) =>
            v ? (
              <div class="metric" key={k}>
                <span class="metric-label">{k}</span>
                <span class="metric-value metric-small">{v}</span>
              </div>
            ) : null,
          )}
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
            <strong>{scan.status === 'cancelled' ? 'The scan was cancelled' : 'The scan failed'}</strong>
            <p class="pre-wrap">{scan.error}</p>
          </div>
        ) : null}
      </section>
      {isBusy ? (
        <Spinner
          label={
            scan.status === 'running'
              ? 'The Explorer is reading the system… this page follows it live.'
              : 'Queued: waiting for the Explorer to pick this scan up. This page updates by itself.'
          }
        />
      ) : null}
      {scan.task_id ? <LiveEvents taskId={scan.task_id} onEvent={load} /> : null}
      {sources.length ? (
        <section class="card" data-testid="scan-sources">
          <header class="card-head">
            <h2>Sources</h2>
            {unreachable.length ? <span class="sev sev-tag-major">{unreachable.length} unreachable</span> : null}
          </header>
          <ul class="sources">
            {sources.map((s) => (
              <li key={s.source} data-testid="scan-source" data-source={s.source} data-status={s.status}>
                <StatusBadge status={s.status === 'ok' ? 'completed' : s.status === 'skipped' ? 'skipped' : s.status} />
                <strong>{s.source}</strong>
                {s.status === 'ok' ? <span class="muted small"> {s.facts} facts in {s.duration_ms} ms</span> : null}
                {s.error ? <span class="muted small pre-wrap"> — {s.error}</span> : null}
              </li>
            ))}
          </ul>
        </section>
      ) : null}
      {scan.brief ? (
        <section class="card" data-testid="scan-brief">
          <header class="card-head">
            <h2>Brief</h2>
          </header>
          <p class="prose pre-wrap">{scan.brief}</p>
        </section>
      ) : null}
      <section class="card" data-testid="scan-risks">
        <header class="card-head">
          <h2>Risks</h2>
        </header>
        {details.length ? (
          <ul class="findings">
            {details.map((r, i) => (
              <li key={i} class={`finding sev-${SEV_CLASS[r.severity] ?? 'info'}`} data-testid="risk" data-severity={r.severity} data-by={r.by}>
                <span class={`sev sev-tag-${SEV_CLASS[r.severity] ?? 'info'}`}>{r.severity}</span>
                <div>
                  <p>
                    <strong>{r.title}</strong> <span class="muted small">{r.by === 'rule' ? `rule ${r.rule}` : 'model'}</span>
                  </p>
                  <Evidence risk={r} />
                </div>
              </li>
            ))}
          </ul>
        ) : scan.risks?.length ? (
          <ol class="numbered risks">
            {scan.risks.map((r, i) => (
              <li key={i} data-testid="risk">
                {r}
              </li>
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
            {scan.proposals.map((p, i) => (
              <li key={i} data-testid="proposal">
                <span>{p}</span> <ProposalTask text={p} />
              </li>
            ))}
          </ol>
        ) : (
          <p class="muted">{isBusy ? 'Not yet.' : 'None reported.'}</p>
        )}
      </section>
      {facts.length ? (
        <details class="card" data-testid="scan-facts">
          <summary>
            <strong>Facts measured ({facts.length})</strong>
          </summary>
          <dl class="deflist facts">
            {facts.map((f) => (
              <div key={f.id}>
                <dt>
                  <code>{f.id}</code>
                </dt>
                <dd class="pre-wrap">
                  {f.summary}
                  {locText(f.where) ? <span class="finding-loc"> ({locText(f.where)})</span> : null}
                  {f.value != null ? <span class="muted small"> · {factValue(f.value)}</span> : null}
                </dd>
              </div>
            ))}
          </dl>
        </details>
      ) : null}
    </div>
  );
}
