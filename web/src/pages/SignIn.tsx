// Shown when the server answers 401: the dashboard has no session. The
// session comes from the sign-in link `catalyst serve` prints (it sets an
// HttpOnly cookie and redirects here); the form does the same with a pasted
// token, through the same /login?token= path.
export function SignIn() {
  return (
    <div class="page signin" data-testid="sign-in">
      <section class="card">
        <h1>Sign in to Catalyst</h1>
        <p>
          This server needs its API token. Open the <strong>sign-in link printed by <code>catalyst serve</code></strong> when it started:
        </p>
        <pre class="signin-example">  sign in: {location.origin}/?token=…</pre>
        <p class="muted">
          The token is <code>CATALYST_API_TOKEN</code> when it is set, otherwise the file <code>api_token</code> in the data directory
          (<code>./data</code> by default). A new token signs every browser out.
        </p>
        <form class="form signin-form" method="get" action="/login" data-testid="sign-in-form">
          <label class="field">
            Or paste the token
            <input type="password" name="token" required minLength={16} autoComplete="off" spellcheck={false} data-testid="sign-in-token" />
          </label>
          <button class="btn btn-primary" type="submit" data-testid="sign-in-submit">
            Sign in
          </button>
        </form>
      </section>
    </div>
  );
}
