import { useEffect, useState } from 'preact/hooks';
import { allows, api, Project } from '../api';
import { ago } from '../format';
import { href, navigate } from '../router';
import { Empty, ErrorBox, RoleBadge, Spinner, StatusBadge } from '../components/ui';

export function Projects() {
  const [items, setItems] = useState<Project[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [show, setShow] = useState<'active' | 'archived' | 'all'>('active');
  const [moreBusy, setMoreBusy] = useState(false);

  const load = () => {
    setErr(null);
    api.listProjects().then(
      (r) => {
        setItems(r.items);
        setNext(r.next);
      },
      setErr,
    );
  };
  useEffect(load, []);

  const more = async () => {
    if (!next) return;
    setMoreBusy(true);
    try {
      const r = await api.listProjects(next);
      setItems((cur) => [...(cur ?? []), ...r.items.filter((p) => !(cur ?? []).some((c) => c.id === p.id))]);
      setNext(r.next);
    } catch (e) {
      setErr(e);
    } finally {
      setMoreBusy(false);
    }
  };

  const archive = async (p: Project) => {
    if (!confirm(`Archive “${p.name}”? Its tasks stay readable.`)) return;
    try {
      await api.archiveProject(p.id);
      setItems((cur) => (cur ?? []).map((x) => (x.id === p.id ? { ...x, status: 'archived' } : x)));
    } catch (e) {
      setErr(e);
    }
  };
  const restore = async (p: Project) => {
    try {
      const u = await api.updateProject(p.id, { status: 'active' });
      setItems((cur) => (cur ?? []).map((x) => (x.id === p.id ? { ...x, ...u } : x)));
    } catch (e) {
      setErr(e);
    }
  };

  const shown = (items ?? []).filter((p) => show === 'all' || p.status === show);
  const counts = { active: (items ?? []).filter((p) => p.status === 'active').length, archived: (items ?? []).filter((p) => p.status === 'archived').length };

  return (
    <div class="page" data-testid="projects-page">
      <div class="page-head">
        <div>
          <h1>Projects</h1>
          <p class="lede">Each project holds the tasks you give the agents.</p>
        </div>
      </div>
      <div class="grid-2">
        <NewProject onCreated={(p) => navigate(href('projects', p.id))} />
        <section class="card">
          <header class="card-head">
            <h2>Projects</h2>
            <div class="seg" role="group" aria-label="Show projects">
              {(['active', 'archived', 'all'] as const).map((s) => (
                <button type="button" key={s} class={show === s ? 'seg-on' : ''} aria-pressed={show === s} onClick={() => setShow(s)} data-testid={`show-${s}`}>
                  {s === 'all' ? 'All' : s === 'active' ? `Active ${items ? counts.active : ''}` : `Archived ${items ? counts.archived : ''}`}
                </button>
              ))}
            </div>
          </header>
          <ErrorBox error={err} onRetry={load} />
          {!items && !err ? <Spinner label="Loading projects…" /> : null}
          {items && shown.length === 0 ? (
            <Empty title={show === 'archived' ? 'No archived projects' : 'No projects yet'} testid="projects-empty">
              {show === 'archived' ? 'Archived projects show up here.' : 'Create your first project to start building.'}
            </Empty>
          ) : null}
          <ul class="project-list" data-testid="project-list">
            {shown.map((p) => (
              <li key={p.id} class={`project-row ${p.status === 'archived' ? 'is-archived' : ''}`} data-testid="project-row" data-project-id={p.id}>
                <a href={href('projects', p.id)} class="project-link">
                  <span class="project-name">{p.name}</span>
                  <span class="project-desc">{p.description || <span class="muted">No description</span>}</span>
                  <span class="project-meta">
                    {p.status === 'archived' ? <StatusBadge status="archived" /> : null}
                    {p.my_role === 'viewer' || p.my_role === 'editor' ? <RoleBadge role={p.my_role} /> : null}
                    <span class="muted">created {ago(p.created_at)}</span>
                  </span>
                </a>
                {!allows(p, 'owner') ? null : p.status === 'active' ? (
                  <button type="button" class="btn btn-ghost btn-small" onClick={() => archive(p)} data-testid="archive-project" aria-label={`Archive ${p.name}`}>
                    Archive
                  </button>
                ) : (
                  <button type="button" class="btn btn-ghost btn-small" onClick={() => restore(p)} aria-label={`Restore ${p.name}`}>
                    Restore
                  </button>
                )}
              </li>
            ))}
          </ul>
          {next ? (
            <button type="button" class="btn btn-block" onClick={more} disabled={moreBusy}>
              {moreBusy ? 'Loading…' : 'Load more'}
            </button>
          ) : null}
        </section>
      </div>
    </div>
  );
}

function NewProject({ onCreated }: { onCreated: (p: Project) => void }) {
  const [name, setName] = useState('');
  const [desc, setDesc] = useState('');
  const [repoURL, setRepoURL] = useState('');
  const [credential, setCredential] = useState('');
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!name.trim()) return;
    setBusy(true);
    setErr(null);
    try {
      onCreated(await api.createProject(name.trim(), desc.trim(), { repo_url: repoURL.trim() || undefined, repo_credential: credential.trim() || undefined }));
    } catch (x) {
      setErr(x);
      setBusy(false);
    }
  };
  return (
    <form class="card form" onSubmit={submit} data-testid="new-project">
      <header class="card-head">
        <h2>New project</h2>
      </header>
      <label class="field">
        <span>Name</span>
        <input required maxLength={200} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} placeholder="Todo app" data-testid="project-name" autoComplete="off" />
      </label>
      <label class="field">
        <span>
          Description <span class="muted">(optional)</span>
        </span>
        <textarea rows={3} value={desc} onInput={(e) => setDesc((e.target as HTMLTextAreaElement).value)} placeholder="What is this project about?" data-testid="project-description" />
      </label>
      <label class="field">
        <span>
          Repository <span class="muted">(optional: tasks can then change it)</span>
        </span>
        <input
          type="text"
          maxLength={2048}
          value={repoURL}
          onInput={(e) => setRepoURL((e.target as HTMLInputElement).value)}
          placeholder="https://github.com/acme/app.git"
          data-testid="project-repo-url"
          autoComplete="off"
          spellcheck={false}
        />
      </label>
      {repoURL.trim() ? (
        <label class="field">
          <span>
            Credential <span class="muted">(optional: the name of the server's environment variable holding the token, never the token)</span>
          </span>
          <input
            type="text"
            maxLength={100}
            value={credential}
            onInput={(e) => setCredential((e.target as HTMLInputElement).value.toUpperCase())}
            placeholder="CATALYST_REPO_TOKEN_ACME"
            pattern="CATALYST_REPO_TOKEN_[A-Z0-9_]{1,64}"
            data-testid="project-repo-credential"
            autoComplete="off"
            spellcheck={false}
          />
        </label>
      ) : null}
      <ErrorBox error={err} />
      <button class="btn btn-primary" type="submit" disabled={busy || !name.trim()} data-testid="create-project">
        {busy ? 'Creating…' : 'Create project'}
      </button>
    </form>
  );
}
