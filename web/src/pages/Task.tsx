import { useEffect, useState } from 'preact/hooks';
import { allows, api, Artifact, ArchitectOutput, CloneOutput, CoderOutput, Deployment, GraphDesc, NodeName, PlannerOutput, Project, ReviewerOutput, Task, TesterOutput } from '../api';
import { duration, fullDate, money } from '../format';
import { href } from '../router';
import { useTaskStream } from '../stream';
import { FixRoundNote, Graph } from '../components/Graph';
import { colours, costOf, kindOf, useGraph } from '../graph';
import { LogStream } from '../components/LogStream';
import { Files } from '../components/Files';
import { CoderSteps } from '../components/CoderSteps';
import { DeploymentCard, Plan, Review, TestReport } from '../components/Reports';
import { ChangeView } from '../components/Change';
import { ErrorBox, PageError, Spinner, StatusBadge } from '../components/ui';

// The graph gives the nodes; these views know the output of particular agents
// (by node id) and show when the task's graph has one of those nodes.
const VIEW_NODES = {
  plan: ['planner', 'architect'],
  tests: ['tester'],
  review: ['reviewer'],
  files: ['coder'],
  deployment: ['deployer'],
  change: ['clone'],
} as const;
type View = keyof typeof VIEW_NODES;
const has = (g: GraphDesc | null, v: View) => !!g && g.nodes.some((n) => (VIEW_NODES[v] as readonly string[]).includes(n.id));

const TABS = [
  ['', 'Activity'],
  ['change', 'Change'],
  ['files', 'Files'],
  ['tests', 'Tests'],
  ['review', 'Review'],
  ['plan', 'Plan'],
] as const;

/** "Served by": the provider and model, or the offline demonstration provider, said plainly. */
export function servedBy(t: Pick<Task, 'provider' | 'model' | 'offline'>): string {
  if (t.offline) return 'offline demonstration provider (no LLM configured)';
  if (!t.provider) return '';
  return t.model ? `${t.provider}/${t.model}` : t.provider;
}

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
  const { graph, error: graphErr } = useGraph(task ? kindOf(task) : '');
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
      if (VIEW_NODES.deployment.some((n) => task.graph_state?.[n] === 'completed') || task.status === 'completed' || dep) {
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

  if (s.error && !task) return <PageError error={s.error} what="task" onRetry={() => location.reload()} />;
  if (!task) return <div class="page"><Spinner label="Loading task…" /></div>;

  const byNode = (n: NodeName) => arts.filter((a) => a.node === n).sort((a, b) => a.iteration - b.iteration);
  const [plannerId, architectId] = VIEW_NODES.plan;
  const planner = byNode(plannerId).pop() as Artifact<PlannerOutput> | undefined;
  const architect = byNode(architectId).pop() as Artifact<ArchitectOutput> | undefined;
  const coder = byNode(VIEW_NODES.files[0]).pop() as Artifact<CoderOutput> | undefined;
  const tests = byNode(VIEW_NODES.tests[0]) as Artifact<TesterOutput>[];
  const reviews = byNode(VIEW_NODES.review[0]) as Artifact<ReviewerOutput>[];
  const cols = colours(graph);
  const agents = graph ? graph.nodes.map((n) => n.label || n.id) : [];
  const tabs = TABS.filter(([k]) => k === '' || k === 'files' || has(graph, k));
  const served = servedBy(task);

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
          {served ? (
            <div class="metric metric-wide">
              <span class="metric-label">Served by</span>
              <span
                class={`metric-value metric-small ${task.offline ? 'warn-text' : ''}`}
                data-testid="task-provider"
                data-offline={task.offline ? 'true' : 'false'}
                data-provider={task.provider ?? ''}
                data-model={task.model ?? ''}
                title={task.offline ? 'No LLM is configured: a built-in provider answered with canned output, to demonstrate the pipeline' : undefined}
              >
                {served}
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
            {/* Until the project says the role, no controls: a viewer never sees them flash. */}
            {running && allows(project, 'editor') ? (
              <button class="btn btn-danger" onClick={() => act('cancel')} disabled={!!busy} data-testid="cancel-task">
                {busy === 'cancel' ? 'Cancelling…' : 'Cancel'}
              </button>
            ) : null}
            {(task.status === 'failed' || task.status === 'cancelled') && allows(project, 'editor') ? (
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
                {graph ? `${graph.nodes.filter((n) => task.graph_state?.[n.id] === 'completed').length}/${graph.nodes.length} done · ` : ''}started {task.started_at ? fullDate(task.started_at) : '—'}
              </span>
            </header>
            {graph ? (
              <>
                <Graph graph={graph} task={task} rounds={s.fixRounds} selected={agent} onSelect={(a) => setAgent(agent === a ? 'all' : a)} />
                <FixRoundNote graph={graph} rounds={s.fixRounds} fixIteration={task.fix_iteration} />
              </>
            ) : graphErr ? (
              <ErrorBox error={graphErr} onRetry={() => location.reload()} />
            ) : (
              <Spinner label="Loading the graph…" />
            )}
          </section>

          <section class="card tabs-card">
            <div class="tabs" role="tablist" aria-label="Task details">
              {tabs.map(([k, label]) => (
                <a key={k} role="tab" aria-selected={tab === k} class={`tab ${tab === k ? 'tab-on' : ''}`} href={k ? href('tasks', id, k) : href('tasks', id)} data-testid={`tab-${k || 'activity'}`}>
                  {label}
                  {tabCount[k] ? <span class="tab-count">{tabCount[k]}</span> : null}
                </a>
              ))}
            </div>
            <div class="tab-body" role="tabpanel">
              {tab === '' ? <LogStream agents={agents} colours={cols} events={s.events} typing={s.typing} agent={agent} setAgent={setAgent} live={!!running} /> : null}
              {tab === 'files' ? (
                <>
                  {coder?.output?.notes ? <p class="notes">{coder.output.notes}</p> : null}
                  <Files taskId={id} selected={file} coder={coder?.output} tick={task.graph_state?.[VIEW_NODES.files[0]] === 'completed' ? s.tick : 0} />
                </>
              ) : null}
              {tab === 'change' ? (
                <ChangeView
                  taskId={id}
                  clone={byNode(VIEW_NODES.change[0]).pop() as Artifact<CloneOutput> | undefined}
                  tests={tests}
                  reviews={reviews}
                  dep={dep}
                  deployState={task.graph_state?.[VIEW_NODES.deployment[0]]}
                  tick={s.tick}
                />
              ) : null}
              {tab === 'tests' ? <TestReport list={tests} state={task.graph_state?.[VIEW_NODES.tests[0]]} /> : null}
              {tab === 'review' ? <Review list={reviews} state={task.graph_state?.[VIEW_NODES.review[0]]} taskId={id} /> : null}
              {tab === 'plan' ? <Plan planner={planner} architect={architect} pState={task.graph_state?.[plannerId]} aState={task.graph_state?.[architectId]} /> : null}
            </div>
          </section>
          <CoderSteps events={s.events} />
        </div>

        <aside class="task-side">
          {(has(graph, 'deployment') || dep) && !has(graph, 'change') ? <DeploymentCard dep={dep} state={task.graph_state?.[VIEW_NODES.deployment[0]]} taskId={id} /> : null}
          <section class="card">
            <header class="card-head">
              <h2>Cost by agent</h2>
            </header>
            <ul class="costs">
              {(graph?.nodes ?? []).map(({ id: n }) => (
                <li key={n} data-testid={`cost-${n}`}>
                  <span class={`swatch agent-c${cols.get(n) ?? 1}`} aria-hidden="true" />
                  <span class="cost-name">{n}</span>
                  <span class="cost-bar" aria-hidden="true">
                    <span style={{ width: `${task.cost ? Math.min(100, (costOf(task, n) / task.cost) * 100) : 0}%` }} class={`agent-bg-c${cols.get(n) ?? 1}`} />
                  </span>
                  <span class="cost-val">{money(costOf(task, n))}</span>
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
