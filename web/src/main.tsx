import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, UNAUTHORIZED, User } from './api';
import { href, navigate, useRoute } from './router';
import { MeContext } from './me';
import { UserMenu } from './components/UserMenu';
import { Keys, Sessions } from './pages/Account';
import { Audit } from './pages/Audit';
import { Projects } from './pages/Projects';
import { Project } from './pages/Project';
import { TaskPage } from './pages/Task';
import { Explorer, ScanPage } from './pages/Explorer';
import { Empty, Spinner } from './components/ui';
import { SignIn, SignUp } from './pages/SignIn';
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

type Auth = { state: 'loading' } | { state: 'out' } | { state: 'in'; user: User | null };

// Who the dashboard is signed in as: loading while GET /api/auth/me is in
// flight, then a user (or the server token's holder), or out. Any 401 later
// (an expired or revoked session, a new server token) shows the sign-in page
// in place: the address stays, so signing in again returns to it. When the
// server cannot say (not a 401), the pages load and show their own errors.
function useAuth(): [Auth, (a: Auth) => void] {
  const [auth, setAuth] = useState<Auth>({ state: 'loading' });
  useEffect(() => {
    const out = () => setAuth({ state: 'out' });
    window.addEventListener(UNAUTHORIZED, out);
    api.me().then(
      (user) => setAuth({ state: 'in', user }),
      (e) => setAuth(e instanceof ApiError && e.status === 401 ? { state: 'out' } : { state: 'in', user: null }),
    );
    return () => window.removeEventListener(UNAUTHORIZED, out);
  }, []);
  return [auth, setAuth];
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
    case 'keys':
      return <Keys />;
    case 'sessions':
      return <Sessions />;
    case 'audit':
      return <Audit />;
    case 'signup':
      return (
        <div class="page">
          <Empty title="You are signed in">
            <a href={href('projects')}>Go to projects</a>
          </Empty>
        </div>
      );
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
  const [auth, setAuth] = useAuth();
  useEffect(() => {
    window.scrollTo(0, 0);
  }, [r.name, r.params.id]);
  const section = r.name === 'explorer' || r.name === 'scan' ? 'explorer' : r.name === 'audit' ? 'audit' : 'projects';
  const signedIn = (user: User) => setAuth({ state: 'in', user });
  const signOut = async () => {
    // Whatever the server answers, this browser is signed out: its cookie
    // is cleared by the answer, or was not valid anymore.
    await api.logout().catch(() => {});
    navigate(href('projects'), true);
    setAuth({ state: 'out' });
  };
  let page;
  if (auth.state === 'out') page = r.name === 'signup' ? <SignUp invite={r.params.invite} onSignedIn={signedIn} /> : <SignIn onSignedIn={signedIn} />;
  else if (auth.state === 'loading')
    page = (
      <div class="page">
        <Spinner />
      </div>
    );
  else page = <MeContext.Provider value={auth.user}>{routePage(r)}</MeContext.Provider>;
  const me = auth.state === 'in' ? auth.user : null;
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
        {auth.state === 'in' ? (
        <nav class="nav" aria-label="Main">
          <a href={href('projects')} class={section === 'projects' ? 'nav-on' : ''} aria-current={section === 'projects' ? 'page' : undefined} data-testid="nav-projects">
            Projects
          </a>
          <a href={href('explorer')} class={section === 'explorer' ? 'nav-on' : ''} aria-current={section === 'explorer' ? 'page' : undefined} data-testid="nav-explorer">
            Explorer
          </a>
          {me?.role === 'admin' ? (
            <a href={href('admin', 'audit')} class={section === 'audit' ? 'nav-on' : ''} aria-current={section === 'audit' ? 'page' : undefined} data-testid="nav-audit">
              Audit
            </a>
          ) : null}
        </nav>
        ) : null}
        {auth.state === 'in' ? <ServerStatus /> : null}
        {me ? <UserMenu user={me} onSignOut={signOut} /> : null}
      </header>
      <main id="main" tabIndex={-1}>
        {page}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
