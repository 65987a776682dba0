import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, archiveURL, CoderOutput, FileEntry, fileURL } from '../api';
import { bytes } from '../format';
import { href, navigate } from '../router';
import { Empty, ErrorBox, Spinner } from './ui';

export function Files({ taskId, selected, coder, tick }: { taskId: string; selected: string; coder?: CoderOutput; tick: number }) {
  const [files, setFiles] = useState<FileEntry[] | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [filter, setFilter] = useState('');

  const load = () =>
    api.files(taskId).then(
      (f) => {
        setFiles(f.sort((a, b) => a.path.localeCompare(b.path)));
        setErr(null);
      },
      (e) => setErr(e),
    );
  useEffect(() => {
    load();
  }, [taskId, tick]);

  useEffect(() => {
    // Open the first file when nothing is selected yet, preferring an entry point.
    if (!selected && files && files.length && window.matchMedia('(min-width: 900px)').matches) {
      const pick = files.find((f) => /(^|\/)index\.html$/.test(f.path)) ?? files.find((f) => /readme/i.test(f.path)) ?? files[0];
      navigate(href('tasks', taskId, 'files', pick.path), true);
    }
  }, [files, selected]);

  const changed = useMemo(() => new Map((coder?.files ?? []).map((f) => [f.path, f.action])), [coder]);
  const shown = (files ?? []).filter((f) => !filter || f.path.toLowerCase().includes(filter.toLowerCase()));

  if (err && !files) return <ErrorBox error={err} onRetry={load} />;
  if (!files) return <Spinner label="Loading files…" />;
  if (files.length === 0) return <Empty title="No files yet" testid="files-empty">The Coder writes the app's files here once it has run.</Empty>;

  return (
    <div class={`files ${selected ? 'files-has-selection' : ''}`} data-testid="files">
      <nav class="file-list" aria-label="Generated files">
        <div class="file-list-head">
          <input type="search" placeholder={`Filter ${files.length} files…`} aria-label="Filter files" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
          <a class="btn btn-small" href={archiveURL(taskId)} download data-testid="download-zip">
            ZIP
          </a>
        </div>
        <ul>
          {shown.map((f) => {
            const parts = f.path.split('/');
            const name = parts.pop();
            const dir = parts.join('/');
            const action = changed.get(f.path);
            return (
              <li key={f.path}>
                <a
                  href={href('tasks', taskId, 'files', f.path)}
                  class={`file-item ${selected === f.path ? 'file-on' : ''}`}
                  aria-current={selected === f.path ? 'page' : undefined}
                  data-testid="file-item"
                  data-path={f.path}
                >
                  <span class="file-name">
                    {dir ? <span class="file-dir">{dir}/</span> : null}
                    {name}
                  </span>
                  <span class="file-meta">
                    {action ? <span class={`tag tag-${action}`}>{action}</span> : null}
                    {bytes(f.size)}
                  </span>
                </a>
              </li>
            );
          })}
        </ul>
        {coder?.refused?.length ? (
          <div class="refused">
            <strong>Refused paths</strong>
            <ul>
              {coder.refused.map((r) => (
                <li key={r.path}>
                  <code>{r.path}</code> — {r.reason}
                </li>
              ))}
            </ul>
          </div>
        ) : null}
      </nav>
      <div class="file-view">{selected ? <FileView taskId={taskId} path={selected} tick={tick} /> : <Empty title="Pick a file">Select a file on the left to read it.</Empty>}</div>
    </div>
  );
}

function FileView({ taskId, path, tick }: { taskId: string; path: string; tick: number }) {
  const [content, setContent] = useState<string | null>(null);
  const [err, setErr] = useState<unknown>(null);
  useEffect(() => {
    let live = true;
    setContent(null);
    setErr(null);
    api.fileContent(taskId, path).then(
      (c) => live && setContent(c),
      (e) => live && setErr(e),
    );
    return () => {
      live = false;
    };
  }, [taskId, path, tick]);

  // The highlighter (highlight.js core + a dozen grammars) is its own chunk,
  // loaded the first time a file is opened.
  const [hlMod, setHlMod] = useState<typeof import('../highlight') | null>(null);
  useEffect(() => {
    import('../highlight').then(setHlMod, (e) => setErr(e));
  }, []);
  const hl = useMemo(() => (content == null || !hlMod ? null : hlMod.highlightLines(path, content)), [content, path, hlMod]);

  return (
    <div class="code-panel" data-testid="file-view" data-path={path}>
      <div class="code-head">
        <a class="btn btn-ghost btn-small back-to-files" href={href('tasks', taskId, 'files')}>
          ← Files
        </a>
        <code class="code-path">{path}</code>
        <span class="muted">{hl?.lang ?? 'text'}</span>
        <a class="btn btn-ghost btn-small" href={fileURL(taskId, path)} target="_blank" rel="noopener">
          Raw
        </a>
      </div>
      {err ? <ErrorBox error={err} /> : null}
      {!hl && !err ? <Spinner label="Loading file…" /> : null}
      {hl ? (
        <div class="code-scroll" tabIndex={0} aria-label={`Contents of ${path}`}>
          <table class="code hljs" data-testid="file-content">
            <tbody>
              {hl.lines.map((l, i) => (
                <tr key={i}>
                  <td class="ln" data-n={i + 1} aria-hidden="true" />
                  <td class="lc" dangerouslySetInnerHTML={{ __html: l || ' ' }} />
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </div>
  );
}
