// The views of a task of kind change: the diff of the change (syntax
// highlighted per file), the repository's tests before and after it, and
// where the change went (branch, pull request, patch).
import { useEffect, useState } from 'preact/hooks';
import { api, Artifact, CloneOutput, Deployment, NodeState, patchURL, ReviewerOutput, TesterOutput } from '../api';
import { Empty, Spinner } from './ui';

export interface DiffLine {
  kind: 'add' | 'del' | 'ctx' | 'meta';
  text: string;
  oldNo?: number;
  newNo?: number;
}
export interface DiffFile {
  path: string;
  lines: DiffLine[];
  added: number;
  removed: number;
}

/** Parses unified diff text (git diff or format-patch) into files and numbered lines. */
export function parseDiff(text: string): DiffFile[] {
  const files: DiffFile[] = [];
  let cur: DiffFile | null = null;
  let oldNo = 0;
  let newNo = 0;
  let inHunk = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('diff --git ')) {
      const m = line.match(/^diff --git a\/(.*) b\/(.*)$/);
      cur = { path: m ? m[2] : line.slice(11), lines: [], added: 0, removed: 0 };
      files.push(cur);
      inHunk = false;
      continue;
    }
    if (!cur) continue;
    const h = line.match(/^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)$/);
    if (h) {
      oldNo = Number(h[1]);
      newNo = Number(h[2]);
      inHunk = true;
      cur.lines.push({ kind: 'meta', text: line });
      continue;
    }
    if (!inHunk) {
      if (line.startsWith('+++ b/')) cur.path = line.slice(6);
      continue;
    }
    if (line === '-- ' || line.startsWith('diff ')) {
      inHunk = false; // format-patch's signature separator
      continue;
    }
    if (line.startsWith('+')) {
      cur.lines.push({ kind: 'add', text: line.slice(1), newNo: newNo++ });
      cur.added++;
    } else if (line.startsWith('-')) {
      cur.lines.push({ kind: 'del', text: line.slice(1), oldNo: oldNo++ });
      cur.removed++;
    } else if (line.startsWith(' ')) {
      cur.lines.push({ kind: 'ctx', text: line.slice(1), oldNo: oldNo++, newNo: newNo++ });
    } else if (line.startsWith('\\')) {
      cur.lines.push({ kind: 'meta', text: line });
    }
  }
  return files;
}

// Highlights a file's diff lines as code: each side is highlighted as one
// text so that multi-line constructs keep their colours.
type Highlighter = typeof import('../highlight');

function escapeHTML(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function highlighted(f: DiffFile, hl: Highlighter | null): string[] {
  const code = f.lines.filter((l) => l.kind !== 'meta');
  // Plain (escaped) until the highlighter's chunk has loaded.
  const lines = hl ? hl.highlightLines(f.path, code.map((l) => l.text).join('\n')).lines : code.map((l) => escapeHTML(l.text));
  let i = 0;
  return f.lines.map((l) => (l.kind === 'meta' ? '' : (lines[i++] ?? '')));
}

const SIGN = { add: '+', del: '-', ctx: ' ', meta: '' } as const;

export function DiffView({ text }: { text: string }) {
  const files = parseDiff(text);
  // The highlighter is its own chunk, as for the Files view.
  const [hl, setHl] = useState<Highlighter | null>(null);
  useEffect(() => {
    import('../highlight').then(setHl, () => {});
  }, []);
  if (!files.length) return <Empty title="No changes">The diff is empty.</Empty>;
  return (
    <div class="diff" data-testid="change-diff">
      {files.map((f) => {
        const html = highlighted(f, hl);
        return (
          <section class="diff-file" key={f.path} data-testid="diff-file" data-path={f.path} data-highlighted={hl ? 'true' : 'false'}>
            <header class="diff-head">
              <code>{f.path}</code>
              <span class="muted small">
                <span class="ok">+{f.added}</span> <span class="bad">−{f.removed}</span>
              </span>
            </header>
            <table class="diff-table">
              <tbody>
                {f.lines.map((l, i) =>
                  l.kind === 'meta' ? (
                    <tr key={i} class="diff-meta">
                      <td colSpan={4}>
                        <code>{l.text}</code>
                      </td>
                    </tr>
                  ) : (
                    <tr key={i} class={`diff-${l.kind}`} data-kind={l.kind}>
                      <td class="diff-no">{l.oldNo ?? ''}</td>
                      <td class="diff-no">{l.newNo ?? ''}</td>
                      <td class="diff-sign">{SIGN[l.kind]}</td>
                      {/* highlight.js escapes the code it returns */}
                      <td class="diff-code hljs">
                        <code dangerouslySetInnerHTML={{ __html: html[i] }} />
                      </td>
                    </tr>
                  ),
                )}
              </tbody>
            </table>
          </section>
        );
      })}
    </div>
  );
}

const STATUS_CLASS = { passed: 'ok', failed: 'bad', absent: 'muted' } as const;

export function BaselineView({ test }: { test?: TesterOutput }) {
  const b = test?.baseline;
  if (!test || !b) return <p class="muted">The tests run again after the change; their comparison with the baseline appears here.</p>;
  return (
    <div class="baseline" data-testid="baseline">
      <p>
        Before the change: <strong>{b.before.passed}</strong> passed, <strong>{b.before.failed}</strong> failed. After:{' '}
        <strong>{test.passed ?? 0}</strong> passed, <strong>{test.failed ?? 0}</strong> failed.
      </p>
      <ul class="baseline-sum">
        <li class="ok" data-testid="baseline-fixed">Fixed: {b.fixed.length}</li>
        <li class="muted" data-testid="baseline-pre-existing" title="Failing before the change too: reported, not sent back to the coder">
          Pre-existing failures: {b.pre_existing.length}
        </li>
        <li class={b.new_failures.length ? 'bad' : 'muted'} data-testid="baseline-new">
          Broken by the change: {b.new_failures.length}
        </li>
      </ul>
      <table class="table baseline-table">
        <thead>
          <tr>
            <th>Test</th>
            <th>Before</th>
            <th>After</th>
          </tr>
        </thead>
        <tbody>
          {b.tests.map((t) => (
            <tr key={t.name} data-testid="baseline-row" data-name={t.name} data-before={t.before} data-after={t.after}>
              <td>
                <code>{t.name}</code>
              </td>
              <td class={STATUS_CLASS[t.before]}>{t.before}</td>
              <td class={STATUS_CLASS[t.after]}>{t.after}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {b.before.command ? <p class="muted small">Command: <code>{b.before.command}</code></p> : null}
    </div>
  );
}

export function ChangeView(props: {
  taskId: string;
  clone?: Artifact<CloneOutput>;
  tests: Artifact<TesterOutput>[];
  reviews: Artifact<ReviewerOutput>[];
  dep: Deployment | null;
  deployState?: NodeState;
  tick: number;
}) {
  const { taskId, clone, tests, reviews, dep } = props;
  const [patch, setPatch] = useState<string | null>(null);
  useEffect(() => {
    if (!dep?.commit_sha) return;
    let live = true;
    api.patch(taskId).then((p) => live && setPatch(p), () => {});
    return () => {
      live = false;
    };
  }, [taskId, dep?.commit_sha]);
  const reviewed = reviews[reviews.length - 1]?.output?.diff;
  const diff = patch ?? reviewed ?? null;
  const c = clone?.output;
  return (
    <div class="change" data-testid="change-view">
      <div class="kv-grid">
        {c ? (
          <div class="kv">
            <span>Repository</span>
            <span class="break">
              <code>{c.repo_url}</code> · {c.base_branch} at <code>{c.base_sha.slice(0, 12)}</code>
            </span>
          </div>
        ) : null}
        {dep?.branch || c?.branch ? (
          <div class="kv">
            <span>Branch</span>
            <code data-testid="change-branch">{dep?.branch || c?.branch}</code>
          </div>
        ) : null}
        {dep?.pull_request_url ? (
          <div class="kv">
            <span>Pull request</span>
            <a href={dep.pull_request_url} target="_blank" rel="noopener noreferrer" class="break" data-testid="change-pr">
              {dep.pull_request_url}
            </a>
          </div>
        ) : null}
        {dep?.commit_sha ? (
          <div class="kv">
            <span>Patch</span>
            <a href={patchURL(taskId)} download data-testid="change-patch">
              Download the patch (git am)
            </a>
          </div>
        ) : null}
      </div>
      <h3>Tests: baseline and after</h3>
      <BaselineView test={tests[tests.length - 1]?.output} />
      <h3>Diff {patch ? <span class="muted small">(the commit)</span> : reviewed ? <span class="muted small">(as reviewed, with context)</span> : null}</h3>
      {diff === null ? <Spinner label="The diff appears once the coder has changed the code and the reviewer has read it…" /> : <DiffView text={diff} />}
    </div>
  );
}
