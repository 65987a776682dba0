import { useEffect, useState } from 'preact/hooks';
import { allows, api, GraphDesc, Project as P, Task } from '../api';
import { kindOf, loadGraphs } from '../graph';
import { ago, money } from '../format';
import { href, navigate } from '../router';
import { Empty, ErrorBox, PageError, RoleBadge, Spinner, StatusBadge } from '../components/ui';
import { Members } from '../components/Members';

const EXAMPLES = ['Build a todo app', 'Build a URL shortener with a JSON API', 'Build a markdown notes app with search'];

export function Project({ id }: { id: string }) {
  const [project, setProject] = useState<P | null>(null);
  const [tasks, setTasks] = useState<Task[] | null>(null);
  const [err, setErr] = useState<unknown>(null);
  // The graphs of every kind, for each row's mini graph; without them the rows show none.
  const [graphs, setGraphs] = useState<Map<string, GraphDesc>>(new Map());
  useEffect(() => {
    loadGraphs().then(setGraphs, () => {});
  }, []);

  const load = () => {
    setErr(null);
    Promise.all([api.getProject(id), api.listTasks(id)]).then(([p, t]) => {
      setProject(p);
      setTasks(t.sort((a, b) => b.created_at.localeCompare(a.created_at)));
    }, setErr);
  };
  useEffect(load, [id]);

  // Keep the list fresh while something runs.
  const running = (tasks ?? []).some((t) => t.status === 'running' || t.status === 'pending');
  useEffect(() => {
    if (!running) return;
    const t = setInterval(() => api.listTasks(id).then((x) => setTasks(x.sort((a, b) => b.created_at.localeCompare(a.created_at))), () => {}), 4000);
    return () => clearInterval(t);
  }, [running, id]);

  if (err && !project) return <PageError error={err} what="project" onRetry={load} />;
  if (!project) return <div class="page"><Spinner /></div>;

  const archive = async () => {
    if (!confirm(`Archive “${project.name}”?`)) return;
    try {
      setProject(await api.archiveProject(project.id).then(() => api.getProject(project.id)));
    } catch (e) {
      setErr(e);
    }
  };

  return (
    <div class="page" data-testid="project-page">
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href={href('projects')}>Projects</a>
        <span aria-hidden="true">/</span>
        <span aria-current="page">{project.name}</span>
      </nav>
      <div class="page-head">
        <div>
          <h1 data-testid="project-title">
            {project.name} {project.status === 'archived' ? <StatusBadge status="archived" /> : null}
          </h1>
          {project.description ? <p class="lede">{project.description}</p> : null}
          {project.repo_url ? (
            <p class="muted small" data-testid="project-repo">
              Repository: <code>{project.repo_url}</code>
            </p>
          ) : null}
        </div>
        <div class="card-actions">
          {project.my_role ? <RoleBadge role={project.my_role} testid="my-role" /> : null}
          {project.status === 'active' && allows(project, 'owner') ? (
            <button class="btn btn-ghost" onClick={archive} data-testid="archive-project">
              Archive
            </button>
          ) : null}
        </div>
      </div>
      <ErrorBox error={err} />
      {project.status !== 'active' ? (
        <div class="alert alert-warn">This project is archived; {allows(project, 'owner') ? 'restore it from the projects list to run new tasks.' : 'its owner can restore it.'}</div>
      ) : allows(project, 'editor') ? (
        <NewTask projectId={project.id} repo={project.repo_url ?? ''} />
      ) : (
        <div class="alert alert-info" data-testid="read-only">
          You can follow this project's tasks; its owner can make you an editor to run new ones.
        </div>
      )}
      <section class="card">
        <header class="card-head">
          <h2>Tasks</h2>
        </header>
        {!tasks ? <Spinner /> : null}
        {tasks && tasks.length === 0 ? <Empty title="No tasks yet" testid="tasks-empty">Describe what to build above and the agents take it from there.</Empty> : null}
        <ul class="task-list" data-testid="task-list">
          {(tasks ?? []).map((t) => (
            <li key={t.id}>
              <a href={href('tasks', t.id)} class="task-row" data-testid="task-row">
                <StatusBadge status={t.status} />
                <span class="task-prompt">{t.prompt}</span>
                <span class="mini-graph" aria-label="agents" data-kind={kindOf(t)}>
                  {(graphs.get(kindOf(t))?.nodes ?? []).map(({ id: n, label }) => (
                    <span key={n} class={`mini mini-${t.graph_state?.[n] ?? 'pending'}`} title={`${label || n}: ${t.graph_state?.[n] ?? 'pending'}`} />
                  ))}
                </span>
                <span class="task-cost">{money(t.cost)}</span>
                <span class="muted task-when">{ago(t.created_at)}</span>
              </a>
            </li>
          ))}
        </ul>
      </section>
      <Members project={project} />
    </div>
  );
}

function NewTask({ projectId, repo }: { projectId: string; repo: string }) {
  const [prompt, setPrompt] = useState('');
  // With a repository, tasks change it unless the user asks for something new.
  const [kind, setKind] = useState<'change' | 'build'>(repo ? 'change' : 'build');
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<unknown>(null);
  const submit = async (e?: Event) => {
    e?.preventDefault();
    if (!prompt.trim() || busy) return;
    setBusy(true);
    setErr(null);
    try {
      const t = await api.createTask(projectId, prompt.trim(), repo ? kind : undefined);
      navigate(href('tasks', t.id));
    } catch (x) {
      setErr(x);
      setBusy(false);
    }
  };
  return (
    <form class="card form prompt-card" onSubmit={submit} data-testid="new-task">
      <label class="field">
        <span class="prompt-label">{repo && kind === 'change' ? 'What should the agents change in the repository?' : 'What should the agents build?'}</span>
        <textarea
          rows={3}
          value={prompt}
          onInput={(e) => setPrompt((e.target as HTMLTextAreaElement).value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && (e.metaKey || e.ctrlKey)) submit();
          }}
          placeholder="Build a todo app"
          data-testid="task-prompt"
        />
      </label>
      {repo ? (
        <div class="kind-choice" role="radiogroup" aria-label="Kind of task">
          <label>
            <input type="radio" name="kind" checked={kind === 'change'} onChange={() => setKind('change')} data-testid="task-kind-change" /> Change the repository (a branch and a pull request or patch)
          </label>
          <label>
            <input type="radio" name="kind" checked={kind === 'build'} onChange={() => setKind('build')} data-testid="task-kind-build" /> Build something new
          </label>
        </div>
      ) : null}
      <div class="prompt-foot">
        <div class="chips" aria-label="Examples">
          {EXAMPLES.map((x) => (
            <button type="button" key={x} class="chip" onClick={() => setPrompt(x)}>
              {x}
            </button>
          ))}
        </div>
        <button class="btn btn-primary" type="submit" disabled={busy || !prompt.trim()} data-testid="submit-task">
          {busy ? 'Starting…' : 'Run agents'}
          <kbd class="kbd-hint">Ctrl ↵</kbd>
        </button>
      </div>
      <ErrorBox error={err} />
    </form>
  );
}
