import { useEffect, useState } from 'preact/hooks';
import { api, Artifact, ArchitectOutput, CoderOutput, Deployment, NodeName, NODES, PlannerOutput, Project, ReviewerOutput, Task, TesterOutput } from '../api';
import { duration, fullDate, money } from '../format';
import { href } from '../router';
import { useTaskStream } from '../stream';
import { Graph } from '../components/Graph';
import { LogStream } from '../components/LogStream';
import { Files } from '../components/Files';
import { DeploymentCard, Plan, Review, TestReport, testsPassed } from '../components/Reports';
import { ErrorBox, Spinner, StatusBadge } from '../components/ui';

const TABS = [
  ['', 'Activity'],
  ['files', 'Files'],
  ['tests', 'Tests'],
  ['review', 'Review'],
  ['plan', 'Plan'],
] as const;

// When the task's clock started: NaN while it waits to start.
function startOf(task: Task | null): number {
  if (!task) return NaN;
  if (task.started_at) return Date.parse(task.started_at);
  return task.status === 'pending' ? NaN : Date.parse(task.created_at);
}

// The current time while active, updated just after each whole second of the
// elapsed time since start (ms since the epoch; 0: not known yet), so that the
// shown seconds neither lag nor skip.
function useNow(active: boolean, start: number) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!active) return;
    let t = 0;
    const tick = () => {
      const n = Date.now();
      setNow(n);
      const phase = (((n - start) % 1000) + 1000) % 1000;
      t = window.setTimeout(tick, 1000 - phase + 15);
    };
    tick();
    return () => clearTimeout(t);
  }, [active, start]);
  return now;
}

export function TaskPage({ id, tab, file }: { id: string; tab: string; file: string }) {
  const s = useTaskStream(id);
  const { task } = s;
  const [arts, setArts] = useState<Artifact[]>([]);
  const [dep, setDep] = useState<Deployment | null>(null);
  const [project, setProject] = useState<Project | null>(null);
  const [agent, setAgent] = useState('all');
  const [actionErr, setActionErr] = useState<unknown>(null);
  const [busy, setBusy] = useState('');

  // Refetch artifacts and deployment whenever a node finishes (tick).
  useEffect(() => {
    if (!task) return;
    let live = true;
    const t = setTimeout(() => {
      api.artifacts(id).then((a) => live && setArts(a), () => {});
      if (task.graph_state?.deployer === 'completed' || task.status === 'completed' || dep) {
        api.deployment(id).then((d) => live && setDep(d), () => {});
      }
    }, 150);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [id, s.tick, !!task]);

  useEffect(() => {
    if (task?.project_id && project?.id !== task.project_id) api.getProject(task.project_id).then(setProject, () => {});
  }, [task?.project_id]);

  const running = task?.status === 'running' || task?.status === 'pending';
  const clockStart = startOf(task);
  const now = useNow(!!running, isNaN(clockStart) ? 0 : clockStart); // NaN !== NaN would rerun its effect on every render

  if (s.error && !task) return <div class="page"><ErrorBox error={s.error} onRetry={() => location.reload()} /></div>;
  if (!task) return <div class="page"><Spinner label="Loading task…" /></div>;

  const byNode = (n: NodeName) => arts.filter((a) => a.node === n).sort((a, b) => a.iteration - b.iteration);
  const planner = byNode('planner').pop() as Artifact<PlannerOutput> | undefined;
  const architect = byNode('architect').pop() as Artifact<ArchitectOutput> | undefined;
  const coder = byNode('coder').pop() as Artifact<CoderOutput> | undefined;
  const tests = byNode('tester') as Artifact<TesterOutput>[];
  const reviews = byNode('reviewer') as Artifact<ReviewerOutput>[];

  const start = startOf(task);
  const end = task.finished_at ? Date.parse(task.finished_at) : running ? now : Date.parse(task.updated_at);
  const elapsed = isNaN(start) ? 0 : Math.max(0, end - start);
  // While running the clock ticks by whole seconds: no tenth that stays put for
  // a second ("0.1s" at 0.9s); exact once finished.
  const shownElapsed = running ? Math.floor(elapsed / 1000) * 1000 : elapsed;

  const act = async (what: 'cancel' | 'retry') => {
    setBusy(what);
    setActionErr(null);
    try {
      const t = what === 'cancel' ? await api.cancelTask(id) : await api.retryTask(id);
      if (t && t.id) s.resume(t);
      else s.resume(await api.getTask(id));
    } catch (e) {
      setActionErr(e);
    } finally {
      setBusy('');
    }
  };

  // The checks that sent the work back: a run of a round that was followed by a fix round
  // (the run numbers of round n are n+1) that failed its tests or requested changes.
  const sentBack = (list: Artifact[], failed: (o: any) => boolean) => list.some((a) => a.iteration <= task.fix_iteration && a.output && failed(a.output));
  const loops = {
    tester: sentBack(tests, (o: TesterOutput) => !testsPassed(o)),
    reviewer: sentBack(reviews, (o: ReviewerOutput) => o.approved === false),
  };
  const lastTest = tests[tests.length - 1]?.output;
  const lastReview = reviews[reviews.length - 1]?.output;
  const tabCount: Record<string, string> = {
    files: coder?.output?.files?.length ? String(coder.output.files.length) : '',
    tests: lastTest ? `${lastTest.passed ?? 0}/${(lastTest.passed ?? 0) + (lastTest.failed ?? 0)}` : '',
    review: lastReview?.findings?.length ? String(lastReview.findings.length) : '',
  };
  const connLabel: Record<string, string> = { loading: 'Loading', connecting: 'Connecting', live: 'Live', reconnecting: 'Reconnecting…', polling: 'Polling', idle: '' };
  const transportTitle: Record<string, string> = {
    ws: 'Live events over a WebSocket',
    sse: 'Live events over Server-Sent Events: a WebSocket could not be opened (a proxy may block it)',
    poll: 'Neither a WebSocket nor an event stream got through: asking the server every 2 s',
  };

  return (
    <div class="page page-wide" data-testid="task-page" data-task-id={task.id} data-status={task.status}>
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href={href('projects')}>Projects</a>
        <span aria-hidden="true">/</span>
        {project ? <a href={href('projects', project.id)}>{project.name}</a> : <span>Project</span>}
        <span aria-hidden="true">/</span>
        <span aria-current="page">Task</span>
      </nav>

      <section class="card task-head">
        <div class="task-title">
          <StatusBadge status={task.status} testid="task-status" />
          <h1 class="task-prompt-title" data-testid="task-prompt-title">
            {task.prompt}
          </h1>
        </div>
        <div class="metrics">
          <div class="metric">
            <span class="metric-label">Cost</span>
            <span class="metric-value" data-testid="task-cost">
              {money(task.cost)}
            </span>
          </div>
          <div class="metric">
            <span class="metric-label">Elapsed</span>
            <span class="metric-value" data-testid="task-elapsed">
              {duration(shownElapsed)}
            </span>
          </div>
          <div class="metric">
            <span class="metric-label">Fix rounds</span>
            <span class="metric-value" data-testid="task-fix-iteration">
              {task.fix_iteration}
            </span>
          </div>
          {task.provider ? (
            <div class="metric metric-wide">
              <span class="metric-label">Model</span>
              <span class={`metric-value metric-small ${/offline/i.test(task.provider) ? 'warn-text' : ''}`} data-testid="task-provider">
                {task.provider}
              </span>
            </div>
          ) : null}
          <div class="task-actions">
            {connLabel[s.conn] ? (
              <span class={`conn conn-${s.conn}`} data-testid="conn" data-transport={s.transport} role="status" title={transportTitle[s.transport]}>
                <span class="dot" aria-hidden="true" />
                {s.conn === 'live' && s.transport === 'sse' ? 'Live (SSE)' : connLabel[s.conn]}
              </span>
            ) : null}
            {running ? (
              <button class="btn btn-danger" onClick={() => act('cancel')} disabled={!!busy} data-testid="cancel-task">
                {busy === 'cancel' ? 'Cancelling…' : 'Cancel'}
              </button>
            ) : null}
            {task.status === 'failed' || task.status === 'cancelled' ? (
              <button class="btn btn-primary" onClick={() => act('retry')} disabled={!!busy} data-testid="retry-task">
                {busy === 'retry' ? 'Retrying…' : 'Retry'}
              </button>
            ) : null}
          </div>
        </div>
        {task.error && (task.status === 'failed' || task.status === 'cancelled') ? (
          <div class={`alert ${task.status === 'failed' ? 'alert-error' : 'alert-warn'}`} role="alert" data-testid="task-error">
            <strong>{task.status === 'failed' ? 'The task failed' : 'Cancelled'}</strong>
            <p class="pre-wrap">{task.error}</p>
          </div>
        ) : null}
        <ErrorBox error={actionErr} />
      </section>

      <div class="task-grid">
        <div class="task-main">
          <section class="card graph-card">
            <header class="card-head">
              <h2>Agents</h2>
              <span class="muted small">
                {NODES.filter((n) => task.graph_state?.[n] === 'completed').length}/6 done · started {task.started_at ? fullDate(task.started_at) : '—'}
              </span>
            </header>
            <Graph task={task} loops={loops} selected={agent} onSelect={(a) => setAgent(agent === a ? 'all' : a)} />
          </section>

          <section class="card tabs-card">
            <div class="tabs" role="tablist" aria-label="Task details">
              {TABS.map(([k, label]) => (
                <a key={k} role="tab" aria-selected={tab === k} class={`tab ${tab === k ? 'tab-on' : ''}`} href={k ? href('tasks', id, k) : href('tasks', id)} data-testid={`tab-${k || 'activity'}`}>
                  {label}
                  {tabCount[k] ? <span class="tab-count">{tabCount[k]}</span> : null}
                </a>
              ))}
            </div>
            <div class="tab-body" role="tabpanel">
              {tab === '' ? <LogStream events={s.events} typing={s.typing} agent={agent} setAgent={setAgent} live={!!running} /> : null}
              {tab === 'files' ? (
                <>
                  {coder?.output?.notes ? <p class="notes">{coder.output.notes}</p> : null}
                  <Files taskId={id} selected={file} coder={coder?.output} tick={task.graph_state?.coder === 'completed' ? s.tick : 0} />
                </>
              ) : null}
              {tab === 'tests' ? <TestReport list={tests} state={task.graph_state?.tester} /> : null}
              {tab === 'review' ? <Review list={reviews} state={task.graph_state?.reviewer} taskId={id} /> : null}
              {tab === 'plan' ? <Plan planner={planner} architect={architect} pState={task.graph_state?.planner} aState={task.graph_state?.architect} /> : null}
            </div>
          </section>
        </div>

        <aside class="task-side">
          <DeploymentCard dep={dep} state={task.graph_state?.deployer} taskId={id} />
          <section class="card">
            <header class="card-head">
              <h2>Cost by agent</h2>
            </header>
            <ul class="costs">
              {NODES.map((n) => (
                <li key={n}>
                  <span class={`swatch agent-${n}`} aria-hidden="true" />
                  <span class="cost-name">{n}</span>
                  <span class="cost-bar" aria-hidden="true">
                    <span style={{ width: `${task.cost ? Math.min(100, ((task.node_costs?.[n] ?? 0) / task.cost) * 100) : 0}%` }} class={`agent-bg-${n}`} />
                  </span>
                  <span class="cost-val">{money(task.node_costs?.[n] ?? 0)}</span>
                </li>
              ))}
            </ul>
          </section>
          {lastTest || lastReview ? (
            <section class="card quick">
              {lastTest ? (
                <a class="quick-row" href={href('tasks', id, 'tests')} data-testid="quick-tests">
                  <span>Tests</span>
                  <span class={lastTest.failed || lastTest.tool_missing ? 'bad' : 'ok'}>
                    {lastTest.tool_missing ? 'tool missing' : `${lastTest.passed ?? 0} passed · ${lastTest.failed ?? 0} failed`}
                  </span>
                </a>
              ) : null}
              {lastReview ? (
                <a class="quick-row" href={href('tasks', id, 'review')}>
                  <span>Review</span>
                  <span class={lastReview.approved ? 'ok' : 'bad'}>{lastReview.approved ? 'approved' : 'changes requested'}</span>
                </a>
              ) : null}
            </section>
          ) : null}
        </aside>
      </div>
    </div>
  );
}
