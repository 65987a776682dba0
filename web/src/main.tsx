import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, UNAUTHORIZED } from './api';
import { href, useRoute } from './router';
import { Projects } from './pages/Projects';
import { Project } from './pages/Project';
import { TaskPage } from './pages/Task';
import { Explorer, ScanPage } from './pages/Explorer';
import { Empty, Spinner } from './components/ui';
import { SignIn } from './pages/SignIn';
import './styles.css';

function ServerStatus() {
  const [ok, setOk] = useState<boolean | null>(null);
  useEffect(() => {
    const check = () => api.health().then(() => setOk(true), () => setOk(false));
    check();
    const t = setInterval(check, 30000);
    return () => clearInterval(t);
  }, []);
  if (ok === null) return null;
  return (
    <span class={`server ${ok ? 'server-ok' : 'server-down'}`} role="status" title={ok ? 'Server healthy' : 'Server unreachable'} data-testid="server-status">
      <span class="dot" aria-hidden="true" />
      <span class="server-label">{ok ? 'Online' : 'Offline'}</span>
    </span>
  );
}

// Session: null while the first request is in flight, then whether the
// server accepted the dashboard's session cookie. Any 401 later (an expired
// session, a new server token) shows the sign-in page again.
function useSignedIn(): boolean | null {
  const [signedIn, setSignedIn] = useState<boolean | null>(null);
  useEffect(() => {
    const out = () => setSignedIn(false);
    window.addEventListener(UNAUTHORIZED, out);
    api.info().then(
      () => setSignedIn(true),
      (e) => setSignedIn(!(e instanceof ApiError && e.status === 401)),
    );
    return () => window.removeEventListener(UNAUTHORIZED, out);
  }, []);
  return signedIn;
}

function routePage(r: ReturnType<typeof useRoute>) {
  switch (r.name) {
    case 'projects':
      return <Projects />;
    case 'project':
      return <Project id={r.params.id} />;
    case 'task':
      return <TaskPage id={r.params.id} tab={r.params.tab} file={r.params.file} />;
    case 'explorer':
      return <Explorer />;
    case 'scan':
      return <ScanPage id={r.params.id} />;
    default:
      return (
        <div class="page">
          <Empty title="Page not found">
            <a href={href('projects')}>Go to projects</a>
          </Empty>
        </div>
      );
  }
}

function App() {
  const r = useRoute();
  const signedIn = useSignedIn();
  useEffect(() => {
    window.scrollTo(0, 0);
  }, [r.name, r.params.id]);
  const section = r.name === 'explorer' || r.name === 'scan' ? 'explorer' : 'projects';
  let page;
  if (signedIn === false) page = <SignIn />;
  else if (signedIn === null)
    page = (
      <div class="page">
        <Spinner />
      </div>
    );
  else page = routePage(r);
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href={href('projects')} aria-label="Catalyst home">
          <svg viewBox="0 0 32 32" width="26" height="26" aria-hidden="true">
            <rect width="32" height="32" rx="8" class="brand-bg" />
            <path d="M9 17l5-9v7h5l-5 9v-7z" fill="#fff" />
          </svg>
          <span>Catalyst</span>
        </a>
        <nav class="nav" aria-label="Main">
          <a href={href('projects')} class={section === 'projects' ? 'nav-on' : ''} aria-current={section === 'projects' ? 'page' : undefined} data-testid="nav-projects">
            Projects
          </a>
          <a href={href('explorer')} class={section === 'explorer' ? 'nav-on' : ''} aria-current={section === 'explorer' ? 'page' : undefined} data-testid="nav-explorer">
            Explorer
          </a>
        </nav>
        {signedIn ? <ServerStatus /> : null}
      </header>
      <main id="main" tabIndex={-1}>
        {page}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
