// The dashboard with accounts: sign-up (the first user is admin), a task run
// to completion, signing out and in again (back to the page asked for); a
// second user who cannot see the first one's work, then sees it read-only as
// a viewer and gets the editor's controls as an editor; API keys shown once,
// copied, used and revoked; the admin's audit view. Two browser contexts are
// two people. Run alone with:
//   go build -o /tmp/cat ./cmd/catalyst && CATALYST_BIN=/tmp/cat node --test accounts.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { TASK_TIMEOUT, api, base, browser, setupWith, shot, signedInContext, teardown, watch } from './lib.mjs';

// These tests sign up and sign in many users from one loopback address in
// a minute, which the default sign-in limit (5 a minute) is there to stop.
before(setupWith({ CATALYST_LOGIN_RATE_LIMIT: '100' }));
after(teardown);

const run = Date.now().toString(36);
const A = { name: 'Ada Admin', email: `ada-${run}@example.com`, password: `ada-secret-${run}-pw` };
const B = { name: 'Bob Viewer', email: `bob-${run}@example.com`, password: `bob-secret-${run}-pw` };
const state = {}; // ids shared by the steps, in order

// Every URL a page asked for: no password may ever be in one.
const urls = [];
async function person(label) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(20_000);
  watch(page, label);
  page.on('request', (r) => urls.push(r.url()));
  // Confirmations (revoke, remove) are accepted: the test means them.
  page.on('dialog', (d) => d.accept());
  return { ctx, page };
}

async function signUp(page, who, { first }) {
  await page.goto(base + '/');
  await page.getByTestId('sign-in').waitFor();
  if (first) {
    await page.getByTestId('no-users').waitFor();
    await page.getByTestId('first-signup').click();
  } else {
    await page.getByTestId('signup-link').click();
  }
  await page.getByTestId('sign-up').waitFor();
  await page.getByTestId('signup-name').fill(who.name);
  await page.getByTestId('signup-email').fill(who.email);
  await page.getByTestId('signup-password').fill(who.password);
  await page.getByTestId('signup-submit').click();
  await page.getByTestId('projects-page').waitFor();
  assert.equal(await page.getByTestId('user-menu-name').textContent(), who.name);
}

async function signIn(page, who) {
  await page.getByTestId('sign-in').waitFor();
  await page.getByTestId('login-email').fill(who.email);
  await page.getByTestId('login-password').fill(who.password);
  await page.getByTestId('login-submit').click();
}

async function signOut(page) {
  await page.getByTestId('user-menu').click();
  await page.getByTestId('sign-out').click();
  await page.getByTestId('sign-in').waitFor();
}

const bearer = (tok, p) => fetch(base + p, { headers: { Authorization: `Bearer ${tok}` } });

let a, b;

test('the first user signs up as admin, runs a task and signs out', { timeout: TASK_TIMEOUT + 60_000 }, async () => {
  a = await person('ada');
  const { page, ctx } = a;
  await signUp(page, A, { first: true });
  await page.getByTestId('user-menu').click();
  assert.equal(await page.getByTestId('user-role').getAttribute('data-role'), 'admin');
  assert.equal(await page.getByTestId('user-menu-email').textContent(), A.email);
  await page.keyboard.press('Escape');
  const cookie = (await ctx.cookies(base)).find((c) => c.name.startsWith('catalyst_session_'));
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', `session cookie ${JSON.stringify(cookie)}`);

  await page.getByTestId('project-name').fill(`Ada's todo ${run}`);
  await page.getByTestId('create-project').click();
  await page.getByTestId('project-page').waitFor();
  state.project = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);
  assert.equal(await page.getByTestId('my-role').getAttribute('data-role'), 'owner');
  await page.getByTestId('task-prompt').fill('Build a todo app');
  await page.getByTestId('submit-task').click();
  await page.getByTestId('task-page').waitFor();
  state.task = await page.getByTestId('task-page').getAttribute('data-task-id');
  await page.locator('[data-testid="task-page"][data-status="completed"]').waitFor({ timeout: TASK_TIMEOUT });
  await shot(page, 'accounts-01-task-done');

  await signOut(page);
  assert.equal((await ctx.cookies(base)).filter((c) => c.name.startsWith('catalyst_session_')).length, 0, 'signing out clears the cookie');
  // The session is over on the server too: the address of the task now shows the sign-in page.
  await page.goto(`${base}/#/tasks/${state.task}`);
  await page.getByTestId('sign-in').waitFor();
  assert.equal(await page.getByTestId('task-page').count(), 0);

  // A wrong password is said plainly, and is not the way in.
  await page.getByTestId('login-email').fill(A.email);
  await page.getByTestId('login-password').fill('not the password at all');
  await page.getByTestId('login-submit').click();
  assert.match(await page.getByTestId('error').textContent(), /wrong e-mail address or password/);
  // Signing in returns to the page asked for.
  await signIn(page, A);
  await page.locator(`[data-testid="task-page"][data-task-id="${state.task}"]`).waitFor();
  assert.equal(new URL(page.url()).hash, `#/tasks/${state.task}`);
});

test("a second user sees nothing of the first one's", async () => {
  b = await person('bob');
  const { page } = b;
  await signUp(page, B, { first: false });
  await page.getByTestId('user-menu').click();
  assert.equal(await page.getByTestId('user-role').getAttribute('data-role'), 'user');
  assert.equal(await page.getByTestId('menu-audit').count(), 0, 'no audit log in a non-admin menu');
  await page.keyboard.press('Escape');
  assert.equal(await page.getByTestId('nav-audit').count(), 0);
  await page.getByTestId('projects-empty').waitFor();
  assert.equal(await page.getByTestId('project-row').count(), 0);

  for (const [hash, what] of [[`#/tasks/${state.task}`, 'task'], [`#/projects/${state.project}`, 'project'], [`#/tasks/${state.task}/files`, 'task']]) {
    await page.goto(`${base}/${hash}`);
    await page.getByTestId('not-found').filter({ hasText: new RegExp(`${what} not found`, 'i') }).waitFor();
    const body = await page.locator('main').textContent();
    assert.ok(!body.includes('Build a todo app') && !body.includes("Ada's todo"), `${hash} leaks: ${body}`);
  }
  await shot(page, 'accounts-02-not-found');
  await page.goto(`${base}/#/admin/audit`);
  await page.getByTestId('audit-forbidden').waitFor();
});

test('shared as viewer: the project and task without editor controls; as editor: the controls', async () => {
  // A second task, cancelled: a viewer must not be offered its retry.
  const r = await api(base, '/api/tasks', { method: 'POST', body: JSON.stringify({ project_id: state.project, prompt: 'Build a URL shortener' }) });
  assert.equal(r.status, 200, await r.clone().text());
  state.cancelled = (await r.json()).id;
  await api(base, `/api/tasks/${state.cancelled}/cancel`, { method: 'POST' });
  for (const end = Date.now() + 30_000; ; await new Promise((res) => setTimeout(res, 200))) {
    const t = await (await api(base, `/api/tasks/${state.cancelled}`)).json();
    if (t.status === 'cancelled') break;
    assert.ok(t.status !== 'completed' && t.status !== 'failed' && Date.now() < end, `second task ${t.status}, not cancelled`);
  }

  const pa = a.page;
  await pa.goto(`${base}/#/projects/${state.project}`);
  await pa.getByTestId('members').waitFor();
  await pa.getByTestId('members-empty').waitFor();
  await pa.getByTestId('member-email').fill('nobody-' + run + '@example.com');
  await pa.getByTestId('add-member-submit').click();
  assert.match(await pa.getByTestId('members').getByTestId('error').textContent(), /not found|no such/i, 'an unknown address is refused');
  await pa.getByTestId('member-email').fill(B.email);
  await pa.getByTestId('member-new-role').selectOption('viewer');
  await pa.getByTestId('add-member-submit').click();
  await pa.locator(`[data-testid="member-row"][data-email="${B.email}"][data-role="viewer"]`).waitFor();

  const pb = b.page;
  await pb.goto(`${base}/#/projects`);
  const row = pb.locator(`[data-testid="project-row"][data-project-id="${state.project}"]`);
  await row.waitFor();
  assert.equal(await row.getByTestId('archive-project').count(), 0, 'a viewer is not offered to archive');
  await row.locator('a').click();
  await pb.getByTestId('project-page').waitFor();
  await pb.getByTestId('read-only').waitFor();
  await pb.locator(`[data-testid="member-row"][data-email="${B.email}"]`).waitFor();
  for (const id of ['new-task', 'task-prompt', 'archive-project', 'add-member', 'member-role']) {
    assert.equal(await pb.getByTestId(id).count(), 0, `a viewer sees ${id}`);
  }
  assert.equal(await pb.getByTestId('my-role').getAttribute('data-role'), 'viewer');
  assert.equal(await pb.getByTestId('task-row').count(), 2);
  await shot(pb, 'accounts-03-viewer-project');

  await pb.goto(`${base}/#/tasks/${state.task}`);
  await pb.locator('[data-testid="task-page"][data-status="completed"]').waitFor();
  await pb.goto(`${base}/#/tasks/${state.cancelled}`);
  await pb.locator('[data-testid="task-page"][data-status="cancelled"]').waitFor();
  await pb.getByRole('link', { name: `Ada's todo ${run}` }).waitFor(); // the project has loaded: the role is known
  assert.equal(await pb.getByTestId('retry-task').count(), 0, 'a viewer is not offered a retry');

  // Made an editor, the same page offers the retry.
  await pa.locator(`[data-testid="member-row"][data-email="${B.email}"]`).getByTestId('member-role').selectOption('editor');
  await pa.locator(`[data-testid="member-row"][data-email="${B.email}"][data-role="editor"]`).waitFor();
  await pb.reload();
  await pb.getByTestId('retry-task').waitFor();
  await pb.goto(`${base}/#/projects/${state.project}`);
  await pb.getByTestId('new-task').waitFor();
  assert.equal(await pb.getByTestId('archive-project').count(), 0, 'an editor does not archive: the owner does');
  assert.equal(await pb.getByTestId('add-member').count(), 0, 'an editor does not share the project');
});

test('API keys: created, shown once, copied, used, revoked', async () => {
  const { page, ctx } = a;
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  await page.getByTestId('user-menu').click();
  await page.getByTestId('menu-keys').click();
  await page.getByTestId('keys-page').waitFor();
  await page.getByTestId('keys-empty').waitFor();
  await page.getByTestId('key-name').fill('ci pipeline');
  await page.getByTestId('key-expiry').selectOption('30');
  await page.getByTestId('create-key').click();
  const shown = page.getByTestId('new-key-value');
  await shown.waitFor();
  const key = await shown.inputValue();
  assert.match(key, /^catk_\S{20,}$/);
  await page.getByTestId('copy-key').click();
  await page.getByTestId('copy-key').getByText('Copied').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key);
  await shot(page, 'accounts-04-key-once');

  const me = await bearer(key, '/api/auth/me');
  assert.equal(me.status, 200);
  assert.equal((await me.json()).email, A.email);

  await page.getByTestId('key-done').click();
  const row = page.getByTestId('key-row');
  await row.waitFor();
  assert.equal(await row.count(), 1);
  assert.ok(key.startsWith((await row.getByTestId('key-prefix').textContent()).replace('…', '')));
  const html = await page.content();
  assert.ok(!html.includes(key), 'the key is gone from the page once dismissed');
  assert.match(await row.textContent(), /ci pipeline/);
  await page.reload();
  await page.getByTestId('key-row').waitFor();
  assert.ok(!(await page.content()).includes(key), 'the list never has the key');

  await page.getByTestId('revoke-key').click();
  await page.getByTestId('keys-empty').waitFor();
  assert.equal((await bearer(key, '/api/auth/me')).status, 401, 'a revoked key is refused');
});

test('the admin audit view lists the logins, filters and pages', async () => {
  const { page } = a;
  await page.getByTestId('nav-audit').click();
  await page.getByTestId('audit-page').waitFor();
  await page.getByTestId('audit-row').first().waitFor();

  await page.getByTestId('audit-action').fill('auth.login');
  await page.getByTestId('audit-apply').click();
  await page.locator('[data-testid="audit-row"][data-action="auth.login"]').first().waitFor();
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="audit-row"]')].every((r) => r.getAttribute('data-action') === 'auth.login'));
  const logins = await page.getByTestId('audit-list').textContent();
  assert.ok(logins.includes(A.email) && logins.includes(B.email), `both users' logins: ${logins}`);
  await shot(page, 'accounts-05-audit');

  await page.getByTestId('audit-action').fill('auth.login_failed');
  await page.getByTestId('audit-apply').click();
  const failed = page.locator('[data-testid="audit-row"][data-action="auth.login_failed"]');
  await failed.first().waitFor();
  assert.equal(await failed.first().getAttribute('data-result'), 'denied');
  assert.ok(!(await page.getByTestId('audit-list').textContent()).includes('not the password'), 'no password in the audit log');

  // By actor (typed as an e-mail address), then by clicking one.
  await page.getByTestId('audit-clear').click();
  await page.getByTestId('audit-actor').fill(B.email);
  await page.getByTestId('audit-apply').click();
  await page.waitForFunction((email) => {
    const rows = [...document.querySelectorAll('[data-testid="audit-row-actor"]')];
    return rows.length > 0 && rows.every((r) => r.textContent === email);
  }, B.email);

  // Paging through the API's cursors, 20 entries a page: more than a page of changes first.
  for (let i = 0; i < 21; i++) {
    const r = await api(base, `/api/projects/${state.project}`, { method: 'PATCH', body: JSON.stringify({ description: `edit ${i}` }) });
    assert.equal(r.status, 200, await r.text());
  }
  await page.getByTestId('audit-clear').click();
  await page.getByTestId('audit-result').selectOption('ok');
  await page.getByTestId('audit-apply').click();
  await page.getByTestId('audit-size').selectOption('20');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="audit-row"]').length === 20);
  await page.locator('[data-testid="audit-older"]:not([disabled])').waitFor();
  // Entries are told apart by id: 21 edits in one second read the same.
  const ids = () => page.getByTestId('audit-row').evaluateAll((rows) => rows.map((r) => r.dataset.entryId));
  const firstPage = await ids();
  await page.getByTestId('audit-older').click();
  await page.getByText('page 2').waitFor();
  // The label turns at the click; the rows when the older page has loaded.
  await page.waitForFunction((seen) => {
    const first = document.querySelector('[data-testid="audit-row"]')?.dataset.entryId;
    return first && !seen.includes(first);
  }, firstPage);
  const secondPage = await ids();
  assert.ok(secondPage.length > 0 && secondPage.every((id) => !firstPage.includes(id)), 'page 2 repeats entries of page 1');
  await page.getByTestId('audit-newer').click();
  await page.waitForFunction((id) => document.querySelector('[data-testid="audit-row"]')?.dataset.entryId === id, firstPage[0]);

  // Read-only: the page has nothing that changes an entry.
  assert.equal(await page.locator('[data-testid="audit-list"] button:not([data-testid="audit-row-actor"])').count(), 0);
});

test('the server token still signs in, as the administrator without an account', async () => {
  const ctx = await signedInContext(base);
  const page = await ctx.newPage();
  await page.goto(base + '/');
  await page.getByTestId('user-menu').click();
  assert.equal(await page.getByTestId('user-role').getAttribute('data-role'), 'admin');
  assert.equal(await page.getByTestId('menu-keys').count(), 0);
  await page.getByTestId('menu-audit').waitFor();
  await ctx.close();
});

test('no password ever went into a URL', () => {
  for (const u of urls) {
    for (const p of [A.password, B.password]) assert.ok(!u.includes(p) && !u.includes(encodeURIComponent(p)), `password in ${u}`);
  }
  assert.ok(urls.length > 20);
});
