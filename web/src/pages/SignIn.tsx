import { useEffect, useState } from 'preact/hooks';
import { api, AuthConfig, User } from '../api';
import { href, navigate } from '../router';
import { ErrorBox } from '../components/ui';

// Shown when the server answers 401: the dashboard has no session. Users sign
// in with e-mail and password (the form posts JSON: a password never goes into
// a URL); the session is an HttpOnly cookie the page cannot read. The sign-in
// link `catalyst serve` prints (the server token) stays the bootstrap
// administrator's way in.

function useAuthConfig(): [AuthConfig | null, unknown] {
  const [cfg, setCfg] = useState<AuthConfig | null>(null);
  const [err, setErr] = useState<unknown>(null);
  useEffect(() => {
    api.authConfig().then(setCfg, setErr);
  }, []);
  return [cfg, err];
}

const value = (e: Event) => (e.target as HTMLInputElement).value;

export function SignIn({ onSignedIn }: { onSignedIn: (u: User) => void }) {
  const [cfg] = useAuthConfig();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy) return;
    setBusy(true);
    setErr(null);
    try {
      const r = await api.login(email.trim(), password);
      setPassword('');
      onSignedIn(r.user);
    } catch (x) {
      setErr(x);
      setBusy(false);
    }
  };
  const canSignUp = cfg && (!cfg.has_users || cfg.signup !== 'closed');
  return (
    <div class="page signin" data-testid="sign-in">
      <section class="card">
        <h1>Sign in to Catalyst</h1>
        {cfg && !cfg.has_users ? (
          <div class="alert alert-warn" data-testid="no-users">
            <div>
              <strong>No account exists yet.</strong>{' '}
              <a href={href('signup')} data-testid="first-signup">
                Create the first one
              </a>
              : it becomes the administrator.
            </div>
          </div>
        ) : null}
        <form class="form signin-form" method="post" onSubmit={submit} data-testid="login-form">
          <label class="field">
            E-mail address
            <input type="email" name="email" required maxLength={254} autoComplete="username" value={email} onInput={(e) => setEmail(value(e))} data-testid="login-email" />
          </label>
          <label class="field">
            Password
            <input type="password" name="password" required maxLength={1024} autoComplete="current-password" value={password} onInput={(e) => setPassword(value(e))} data-testid="login-password" />
          </label>
          <ErrorBox error={err} />
          <button class="btn btn-primary" type="submit" disabled={busy} data-testid="login-submit">
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </form>
        {canSignUp ? (
          <p class="signin-alt">
            No account?{' '}
            <a href={href('signup')} data-testid="signup-link">
              {cfg.signup === 'invite' && cfg.has_users ? 'Sign up with an invitation' : 'Sign up'}
            </a>
          </p>
        ) : cfg ? (
          <p class="signin-alt muted">Sign-up is closed: an administrator creates accounts.</p>
        ) : null}
        {/* Open while no account exists: then the token is one of the two ways in. */}
        <details class="signin-token" open={!!cfg && !cfg.has_users}>
          <summary>
            Administrator: open the sign-in link printed by <code>catalyst serve</code>, or paste the server token
          </summary>
          <p>The link, printed when the server started, looks like this:</p>
          <pre class="signin-example">  sign in: {location.origin}/?token=…</pre>
          <p class="muted">
            The token is <code>CATALYST_API_TOKEN</code> when it is set, otherwise the file <code>api_token</code> in the data directory
            (<code>./data</code> by default). A new token signs every browser out.
          </p>
          {/* The server's bootstrap path: it turns the token into a cookie and redirects it out of the address bar. */}
          <form class="form signin-form" method="get" action="/login" data-testid="sign-in-form">
            <label class="field">
              Or paste the token
              <input type="password" name="token" required minLength={16} autoComplete="off" spellcheck={false} data-testid="sign-in-token" />
            </label>
            <button class="btn" type="submit" data-testid="sign-in-submit">
              Sign in with the token
            </button>
          </form>
        </details>
      </section>
    </div>
  );
}

export function SignUp({ invite: inviteParam, onSignedIn }: { invite: string; onSignedIn: (u: User) => void }) {
  const [cfg, cfgErr] = useAuthConfig();
  const [name, setName] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [invite, setInvite] = useState(inviteParam);
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<unknown>(null);
  const first = cfg ? !cfg.has_users : false;
  const mode = cfg ? (first ? 'open' : cfg.signup) : null;

  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy) return;
    setBusy(true);
    setErr(null);
    try {
      await api.register({ email: email.trim(), password, name: name.trim() || undefined, invite: mode === 'invite' ? invite.trim() : undefined });
      // Registering makes no session: sign in with what was just typed.
      const r = await api.login(email.trim(), password);
      setPassword('');
      navigate(href('projects'), true);
      onSignedIn(r.user);
    } catch (x) {
      setErr(x);
      setBusy(false);
    }
  };

  return (
    <div class="page signin" data-testid="sign-up">
      <section class="card">
        <h1>{first ? 'Create the administrator account' : 'Sign up for Catalyst'}</h1>
        <ErrorBox error={cfgErr} />
        {first ? <p class="lede">No account exists yet: the first one administers this Catalyst (users, the audit log, every project).</p> : null}
        {mode === 'closed' ? (
          <div class="alert alert-warn" data-testid="signup-closed">
            <div>
              <strong>Sign-up is closed.</strong>
              <p>An administrator can create your account.</p>
            </div>
          </div>
        ) : mode ? (
          <form class="form signin-form" method="post" onSubmit={submit} data-testid="signup-form">
            {mode === 'invite' ? (
              <label class="field">
                Invitation code
                <input required maxLength={200} autoComplete="off" spellcheck={false} value={invite} onInput={(e) => setInvite(value(e))} data-testid="signup-invite" />
                <span class="muted small">Sign-up is by invitation: paste the code an administrator gave you, or open their link.</span>
              </label>
            ) : null}
            <label class="field">
              Name <span class="muted">(optional)</span>
              <input maxLength={200} autoComplete="name" value={name} onInput={(e) => setName(value(e))} data-testid="signup-name" />
            </label>
            <label class="field">
              E-mail address
              <input type="email" required maxLength={254} autoComplete="username" value={email} onInput={(e) => setEmail(value(e))} data-testid="signup-email" />
            </label>
            <label class="field">
              Password
              <input type="password" required minLength={10} maxLength={1024} autoComplete="new-password" value={password} onInput={(e) => setPassword(value(e))} data-testid="signup-password" />
              <span class="muted small">10 characters at least.</span>
            </label>
            <ErrorBox error={err} />
            <button class="btn btn-primary" type="submit" disabled={busy} data-testid="signup-submit">
              {busy ? 'Creating the account…' : 'Create account'}
            </button>
          </form>
        ) : null}
        <p class="signin-alt">
          Already have an account? <a href={href('projects')} data-testid="signin-link">Sign in</a>
        </p>
      </section>
    </div>
  );
}
