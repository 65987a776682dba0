import { useState } from 'preact/hooks';
import { Artifact, ArchitectOutput, Deployment, NodeState, PlannerOutput, ReviewerOutput, Severity, TesterOutput } from '../api';
import { duration, fullDate, money, runLabel } from '../format';
import { href } from '../router';
import { CopyButton, Empty } from './ui';

function IterationPicker<T>({ list, cur, set }: { list: Artifact<T>[]; cur: number; set: (i: number) => void }) {
  if (list.length < 2) return null;
  return (
    <div class="chips" role="group" aria-label="Run">
      {list.map((a, i) => (
        <button type="button" key={i} class={`chip ${i === cur ? 'chip-on' : ''}`} aria-pressed={i === cur} onClick={() => set(i)}>
          {runLabel(a.iteration)}
        </button>
      ))}
    </div>
  );
}

function useLatest<T>(list: Artifact<T>[]) {
  const [pick, setPick] = useState<number | null>(null);
  const cur = pick == null || pick >= list.length ? list.length - 1 : pick;
  return [cur, setPick] as const;
}

function pending(state: NodeState | undefined, who: string, what: string) {
  if (state === 'running') return <Empty title={`${who} is working…`}>{what} appears here when it finishes.</Empty>;
  if (state === 'skipped') return <Empty title={`${who} was skipped`} />;
  if (state === 'failed') return <Empty title={`${who} failed`}>See the log for the reason.</Empty>;
  return <Empty title={`No ${what.toLowerCase()} yet`}>{who} has not run yet.</Empty>;
}

/** Whether a test run passed: it ran, and exited 0 (or, without an exit code, had no failures). */
export function testsPassed(t: TesterOutput): boolean {
  return !t.tool_missing && (t.exit_code === 0 || (t.failed === 0 && t.exit_code == null));
}

export function TestReport({ list, state }: { list: Artifact<TesterOutput>[]; state?: NodeState }) {
  const [cur, set] = useLatest(list);
  if (!list.length) return pending(state, 'Tester', 'Test report');
  const t = list[cur].output ?? {};
  const cmd = Array.isArray(t.command) ? t.command.join(' ') : t.command;
  const ok = testsPassed(t);
  return (
    <div class="report" data-testid="test-report">
      <IterationPicker list={list} cur={cur} set={set} />
      <div class={`verdict ${t.tool_missing ? 'verdict-warn' : ok ? 'verdict-ok' : 'verdict-bad'}`}>
        <strong data-testid="test-verdict">{t.tool_missing ? 'Test tool missing' : ok ? 'Tests passed' : 'Tests failed'}</strong>
        <span>exit code {t.exit_code ?? '—'}</span>
      </div>
      <div class="stats">
        <div class="stat">
          <span class="stat-label">Passed</span>
          <span class="stat-value ok" data-testid="tests-passed">{t.passed ?? 0}</span>
        </div>
        <div class="stat">
          <span class="stat-label">Failed</span>
          <span class={`stat-value ${t.failed ? 'bad' : ''}`} data-testid="tests-failed">{t.failed ?? 0}</span>
        </div>
        <div class="stat">
          <span class="stat-label">Duration</span>
          <span class="stat-value">{duration(t.duration_ms ?? 0)}</span>
        </div>
      </div>
      {cmd ? (
        <div class="kv">
          <span>Command</span>
          <code data-testid="test-command">{cmd}</code>
        </div>
      ) : null}
      {t.tests_added?.length ? (
        <div class="kv">
          <span>Tests written</span>
          <span>{t.tests_added.map((x) => <code key={x} class="pill-code">{x}</code>)}</span>
        </div>
      ) : null}
      {t.sandbox?.isolation?.length ? (
        <div class="kv">
          <span>Sandbox</span>
          <span>{t.sandbox.isolation.join(' · ')}</span>
        </div>
      ) : null}
      {t.sandbox?.warnings?.map((w) => (
        <div class="alert alert-warn" key={w}>
          {w}
        </div>
      ))}
      {t.failures?.length ? (
        <div>
          <h3>Failures</h3>
          <ul class="failures">
            {t.failures.map((f, i) => (
              <li key={i}>
                <strong>{f.name}</strong>
                <pre>{f.message}</pre>
              </li>
            ))}
          </ul>
        </div>
      ) : null}
      {t.output ? (
        <details class="output">
          <summary>Output</summary>
          <pre>{t.output}</pre>
        </details>
      ) : null}
    </div>
  );
}

const SEV_ORDER: Severity[] = ['critical', 'major', 'minor', 'info'];

export function Review({ list, state, taskId }: { list: Artifact<ReviewerOutput>[]; state?: NodeState; taskId: string }) {
  const [cur, set] = useLatest(list);
  if (!list.length) return pending(state, 'Reviewer', 'Review');
  const r = list[cur].output ?? {};
  const findings = [...(r.findings ?? [])].sort((a, b) => SEV_ORDER.indexOf(a.severity) - SEV_ORDER.indexOf(b.severity));
  const counts = SEV_ORDER.map((s) => [s, findings.filter((f) => f.severity === s).length] as const).filter(([, n]) => n);
  return (
    <div class="report" data-testid="review">
      <IterationPicker list={list} cur={cur} set={set} />
      <div class={`verdict ${r.approved ? 'verdict-ok' : 'verdict-bad'}`}>
        <strong data-testid="review-verdict">{r.approved ? 'Approved' : 'Changes requested'}</strong>
        <span>{counts.map(([s, n]) => `${n} ${s}`).join(' · ') || 'no findings'}</span>
      </div>
      {r.summary ? <p class="prose">{r.summary}</p> : null}
      {findings.length ? (
        <ul class="findings">
          {findings.map((f, i) => (
            <li key={i} class={`finding sev-${f.severity}`} data-testid="finding">
              <span class={`sev sev-tag-${f.severity}`}>{f.severity}</span>
              <div>
                {f.file ? (
                  <a class="finding-loc" href={href('tasks', taskId, 'files', f.file)} title="Open the file">
                    <code>
                      {f.file}
                      {f.line ? `:${f.line}` : ''}
                    </code>
                  </a>
                ) : null}
                <p>{f.message}</p>
              </div>
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

export function Plan({ planner, architect, pState, aState }: { planner?: Artifact<PlannerOutput>; architect?: Artifact<ArchitectOutput>; pState?: NodeState; aState?: NodeState }) {
  if (!planner && !architect) return pending(pState, 'Planner', 'Plan');
  const p = planner?.output ?? {};
  const a = architect?.output ?? {};
  return (
    <div class="report plan" data-testid="plan">
      {planner ? (
        <section>
          <h3>Requirements</h3>
          {p.summary ? <p class="prose">{p.summary}</p> : null}
          {p.requirements?.length ? (
            <ul class="bullets">
              {p.requirements.map((r, i) => (
                <li key={i}>{r}</li>
              ))}
            </ul>
          ) : null}
          {p.user_stories?.length ? (
            <div class="stories">
              {p.user_stories.map((s, i) => (
                <article key={i} class="story">
                  <h4>{s.title}</h4>
                  <p>{s.story}</p>
                  {s.acceptance_criteria?.length ? (
                    <ul class="checks">
                      {s.acceptance_criteria.map((c, j) => (
                        <li key={j}>{c}</li>
                      ))}
                    </ul>
                  ) : null}
                </article>
              ))}
            </div>
          ) : null}
        </section>
      ) : null}
      {architect ? (
        <section>
          <h3>Design</h3>
          {a.stack ? (
            <div class="stack">
              {a.stack.language ? <span class="pill">{a.stack.language}</span> : null}
              {a.stack.runtime ? <span class="pill">{a.stack.runtime}</span> : null}
              {a.stack.framework ? <span class="pill">{a.stack.framework}</span> : null}
              {a.stack.test_command?.length ? <code class="pill-code">{a.stack.test_command.join(' ')}</code> : null}
            </div>
          ) : null}
          {a.components?.length ? (
            <dl class="deflist">
              {a.components.map((c) => (
                <div key={c.name}>
                  <dt>{c.name}</dt>
                  <dd>{c.responsibility}</dd>
                </div>
              ))}
            </dl>
          ) : null}
          {a.files?.length ? (
            <>
              <h4>Planned files</h4>
              <dl class="deflist">
                {a.files.map((f) => (
                  <div key={f.path}>
                    <dt>
                      <code>{f.path}</code>
                    </dt>
                    <dd>{f.purpose}</dd>
                  </div>
                ))}
              </dl>
            </>
          ) : null}
          {a.interfaces?.length ? (
            <>
              <h4>Interfaces</h4>
              <dl class="deflist">
                {a.interfaces.map((f) => (
                  <div key={f.name}>
                    <dt>{f.name}</dt>
                    <dd>{f.description}</dd>
                  </div>
                ))}
              </dl>
            </>
          ) : null}
        </section>
      ) : aState === 'running' ? (
        <p class="muted">The Architect is designing…</p>
      ) : null}
    </div>
  );
}

export function DeploymentCard({ dep, state, taskId }: { dep: Deployment | null; state?: NodeState; taskId: string }) {
  if (!dep) {
    return (
      <section class="card deploy deploy-empty" data-testid="deployment-pending">
        <header class="card-head">
          <h2>Deployment</h2>
        </header>
        <p class="muted">
          {state === 'running'
            ? 'The Deployer is committing and publishing the preview…'
            : state === 'failed'
              ? 'The Deployer failed; see the log.'
              : state === 'skipped'
                ? 'Deployment was skipped.'
                : 'A preview link and commit appear here when the Deployer has run.'}
        </p>
      </section>
    );
  }
  const preview = dep.url || `/apps/${encodeURIComponent(taskId)}/`;
  return (
    <section class="card deploy" data-testid="deployment-card">
      <header class="card-head">
        <h2>Deployment</h2>
        {dep.mock ? (
          <span class="badge badge-muted" title="MOCK_DEPLOYMENT=true: publishing outside Catalyst was simulated">
            simulated publish
          </span>
        ) : (
          <span class="badge status-completed">published</span>
        )}
      </header>
      <a class="btn btn-primary btn-block" href={preview} target="_blank" rel="noopener" data-testid="preview-link">
        Open preview ↗
      </a>
      <div class="kv">
        <span>URL</span>
        <a href={preview} target="_blank" rel="noopener" class="break">
          {dep.url || preview}
        </a>
      </div>
      <div class="kv">
        <span>Commit</span>
        <span class="sha-row">
          <code class="sha" data-testid="commit-sha" title={dep.commit_sha}>
            {dep.commit_sha}
          </code>
          <CopyButton text={dep.commit_sha} />
        </span>
      </div>
      {dep.branch ? (
        <div class="kv">
          <span>Branch</span>
          <code>{dep.branch}</code>
        </div>
      ) : null}
      {dep.pull_request_url ? (
        <div class="kv">
          <span>Pull request</span>
          <a href={dep.pull_request_url} target="_blank" rel="noopener noreferrer" class="break">
            {dep.pull_request_url}
          </a>
        </div>
      ) : null}
      <div class="kv">
        <span>Cost</span>
        <span data-testid="deployment-cost">{money(dep.cost)}</span>
      </div>
      <div class="kv">
        <span>Deployed</span>
        <span>{fullDate(dep.created_at)}</span>
      </div>
      {dep.report ? (
        <details class="output" open>
          <summary>Report</summary>
          <pre class="report-text" data-testid="deployment-report">
            {dep.report}
          </pre>
        </details>
      ) : null}
    </section>
  );
}
