// End-to-end test of the dashboard: a real `catalyst serve` (built from this
// checkout) driven through Debian's headless chromium with playwright-core.
//
//   node --test e2e.test.mjs            # builds ./cmd/catalyst, starts it on a free port
//   CATALYST_URL=http://host:port ...   # use a server that is already running instead
//
// Environment: CHROMIUM_PATH (default /usr/bin/chromium), TASK_TIMEOUT_S (default 300),
// SCAN_TIMEOUT_S (default 5: scans are stored as pending until the explorer issue lands), REQUIRE_SCAN=1 (a scan that does not complete fails),
// ARTIFACTS (default ./artifacts: screenshots, server.log, console.log).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const ART = path.resolve(process.env.ARTIFACTS || path.join(here, 'artifacts'));
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const TASK_TIMEOUT = (Number(process.env.TASK_TIMEOUT_S) || 300) * 1000;
const SCAN_TIMEOUT = (Number(process.env.SCAN_TIMEOUT_S) || 5) * 1000;
// REQUIRE_SCAN=1: fail unless the scan completes (the explorer agent runs it).
const REQUIRE_SCAN = process.env.REQUIRE_SCAN === '1';
const NODES = ['planner', 'architect', 'coder', 'tester', 'reviewer', 'deployer'];

let base = process.env.CATALYST_URL?.replace(/\/$/, '');
let server = null;
let tmp = null;
let browser = null;
const consoleLines = [];
const foreignRequests = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitHealthy(url, ms) {
  const end = Date.now() + ms;
  let last = '';
  while (Date.now() < end) {
    if (server && server.exitCode !== null) throw new Error(`catalyst serve exited with ${server.exitCode}; see ${ART}/server.log`);
    try {
      const r = await fetch(url + '/api/health');
      if (r.ok) return;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`server at ${url} not healthy after ${ms} ms: ${last}`);
}

async function shot(page, name, opts = {}) {
  // From the top, so the sticky header sits where it belongs in a full-page shot.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(ART, `${name}.png`), fullPage: true, ...opts });
}

function watch(page, label) {
  const origin = new URL(base).origin;
  page.on('console', (m) => consoleLines.push(`[${label}] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[${label}] pageerror: ${e.message}`));
  page.on('request', (r) => {
    const u = r.url();
    if (/^(data|blob|about):/.test(u)) return;
    if (new URL(u).origin !== origin && !u.startsWith(origin.replace(/^http/, 'ws'))) foreignRequests.push(u);
  });
}

before(async () => {
  fs.mkdirSync(ART, { recursive: true });
  if (!base) {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'catalyst-e2e-'));
    // CATALYST_BIN: a binary built beforehand (scripts/test.sh builds one
    // with -race, reusing the compile cache of `go test -race`).
    let bin = process.env.CATALYST_BIN;
    if (!bin) {
      bin = path.join(tmp, 'catalyst');
      console.log(`# go build -o ${bin} ./cmd/catalyst`);
      execFileSync('go', ['build', '-o', bin, './cmd/catalyst'], { cwd: repo, stdio: 'inherit' });
    }
    const port = await freePort();
    base = `http://localhost:${port}`;
    const data = path.join(tmp, 'data');
    fs.mkdirSync(data);
    const log = fs.openSync(path.join(ART, 'server.log'), 'w');
    server = spawn(bin, ['serve'], {
      // From the checkout, as `go run ./cmd/catalyst serve` would be.
      cwd: repo,
      env: { ...process.env, CATALYST_DATA_DIR: data, BACKEND_PORT: String(port), CATALYST_PUBLIC_URL: base, MOCK_DEPLOYMENT: 'true' },
      stdio: ['ignore', log, log],
    });
    console.log(`# catalyst serve on ${base} (pid ${server.pid}, data ${data})`);
  }
  await waitHealthy(base, 90_000);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // playwright adds --headless and a fresh temporary --user-data-dir itself.
    // The network flags keep chromium from calling out of this closed network.
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => {
      const t = setTimeout(() => (server.kill('SIGKILL'), r()), 5000);
      server.once('exit', () => (clearTimeout(t), r()));
    });
  }
  fs.writeFileSync(path.join(ART, 'console.log'), consoleLines.join('\n') + '\n');
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('a todo app goes from prompt to deployed preview', { timeout: TASK_TIMEOUT + 180_000 }, async () => {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await ctx.newPage();
  watch(page, 'desktop');
  page.setDefaultTimeout(20_000);

  // Projects: create one.
  await page.goto(base + '/');
  await page.getByTestId('projects-page').waitFor();
  await page.getByTestId('project-name').fill(`Todo ${Date.now().toString(36)}`);
  await page.getByTestId('project-description').fill('A small todo list, built by the agents');
  await page.getByTestId('create-project').click();
  await page.getByTestId('project-page').waitFor();
  await page.getByTestId('tasks-empty').waitFor();

  // Submit the task.
  await page.getByTestId('task-prompt').fill('Build a todo app');
  await page.getByTestId('submit-task').click();
  await page.getByTestId('task-page').waitFor();
  const taskId = await page.getByTestId('task-page').getAttribute('data-task-id');
  assert.match(taskId, /\S+/);
  console.log(`# task ${taskId}`);

  // Watch the graph: record every state each node shows, until all are completed.
  const seen = Object.fromEntries(NODES.map((n) => [n, new Set()]));
  let runningShot = false;
  const deadline = Date.now() + TASK_TIMEOUT;
  for (;;) {
    const states = await page.evaluate((nodes) => nodes.map((n) => document.querySelector(`[data-testid="graph-node-${n}"]`)?.getAttribute('data-state') ?? 'missing'), NODES);
    states.forEach((s, i) => seen[NODES[i]].add(s));
    if (!runningShot && states.includes('running')) {
      await shot(page, '02-task-running');
      runningShot = true;
    }
    const status = await page.getByTestId('task-status').getAttribute('data-status');
    if (states.every((s) => s === 'completed')) break;
    if (status === 'failed' || status === 'cancelled') {
      await shot(page, '02-task-failed');
      const err = await page.getByTestId('task-error').textContent().catch(() => '');
      assert.fail(`task ${status} before every node completed: ${JSON.stringify(states)} ${err}`);
    }
    if (Date.now() > deadline) {
      await shot(page, '02-task-timeout');
      assert.fail(`timed out after ${TASK_TIMEOUT} ms; node states ${JSON.stringify(states)}, task ${status}`);
    }
    await page.waitForTimeout(100);
  }
  console.log('# node states seen:', JSON.stringify(Object.fromEntries(NODES.map((n) => [n, [...seen[n]]]))));
  await page.locator('[data-testid="task-status"][data-status="completed"]').waitFor({ timeout: 30_000 });
  for (const n of NODES) assert.equal(await page.getByTestId(`graph-node-${n}`).getAttribute('data-state'), 'completed', n);

  // The log streamed lines from the agents.
  assert.ok((await page.getByTestId('log-line').count()) > 0, 'log lines shown');

  // Deployment card with a 40-hex commit SHA.
  const card = page.getByTestId('deployment-card');
  await card.waitFor({ timeout: 30_000 });
  const sha = (await page.getByTestId('commit-sha').textContent()).trim();
  assert.match(sha, /^[0-9a-f]{40}$/, 'commit SHA');
  await page.waitForTimeout(300);
  await shot(page, '03-task-finished');
  await card.screenshot({ path: path.join(ART, '04-deployment-card.png') });

  // Filter the log by an agent.
  await page.getByTestId('log-filter-coder').click();
  const agents = await page.getByTestId('log-line').evaluateAll((ls) => [...new Set(ls.map((l) => l.getAttribute('data-agent')))]);
  assert.ok(agents.every((a) => a === 'Coder'), `filtered log shows only Coder lines, got ${agents}`);
  await page.getByTestId('log-filter-all').click();

  // Tests and review tabs.
  await page.getByTestId('tab-tests').click();
  await page.getByTestId('test-report').waitFor();
  await shot(page, '05-tests');
  await page.getByTestId('tab-review').click();
  await page.getByTestId('review').waitFor();
  await shot(page, '06-review');

  // Files: open a generated file, highlighted.
  await page.getByTestId('tab-files').click();
  await page.getByTestId('file-item').first().waitFor();
  const paths = await page.getByTestId('file-item').evaluateAll((ls) => ls.map((l) => l.getAttribute('data-path')));
  console.log(`# files: ${paths.join(', ')}`);
  const pick = paths.find((p) => /\.(js|ts|py|go)$/.test(p) && !/test/i.test(p)) ?? paths.find((p) => /\.html$/.test(p)) ?? paths[0];
  await page.locator(`[data-testid="file-item"][data-path="${pick}"]`).click();
  await page.locator(`[data-testid="file-view"][data-path="${pick}"] [data-testid="file-content"]`).waitFor();
  const code = await page.getByTestId('file-content').textContent();
  assert.ok(code.trim().length > 0, `${pick} has content`);
  await shot(page, '07-files');

  // Follow the preview link: the todo app renders.
  await page.getByTestId('tab-activity').click();
  const href = await page.getByTestId('preview-link').getAttribute('href');
  assert.match(href, new RegExp(`/apps/${taskId}/`));
  const [preview] = await Promise.all([ctx.waitForEvent('page'), page.getByTestId('preview-link').click()]);
  watch(preview, 'preview');
  await preview.waitForLoadState('load');
  await preview.waitForTimeout(500);
  const text = (await preview.locator('body').innerText()).trim();
  const html = await preview.content();
  assert.match(text + html, /todo/i, 'preview page is the todo app');
  // Use it: add a todo through the first text box and see it listed.
  const box = preview.locator('input[type="text"], input:not([type])').first();
  assert.ok(await box.count(), 'preview has a text box for new todos');
  await box.fill('Water the plants');
  await box.press('Enter');
  await preview.getByText('Water the plants').first().waitFor({ timeout: 5000 });
  await shot(preview, '08-preview');
  await preview.close();

  // The dashboard loaded nothing from outside the server.
  assert.deepEqual(foreignRequests, [], 'no requests outside the Catalyst server');

  // Phone size: the finished task and the projects list stay usable.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const p2 = await phone.newPage();
  watch(p2, 'phone');
  await p2.goto(`${base}/#/tasks/${taskId}`);
  await p2.locator('[data-testid="task-status"][data-status="completed"]').waitFor();
  await p2.getByTestId('deployment-card').waitFor();
  await shot(p2, '09-phone-task');
  await p2.goto(`${base}/#/projects`);
  await p2.getByTestId('project-row').first().waitFor();
  await shot(p2, '10-phone-projects');
  const overflow = await p2.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no horizontal scrolling on a phone (overflow ${overflow}px)`);
  await phone.close();

  // Projects list, then archive the project.
  await page.goto(`${base}/#/projects`);
  await page.getByTestId('project-row').first().waitFor();
  await shot(page, '01-projects');
  await page.getByTestId('project-row').first().locator('a').click();
  await page.getByTestId('task-row').first().waitFor();
  await shot(page, '01b-project');
  await ctx.close();
});

test('explorer: scan form and results', { timeout: SCAN_TIMEOUT + 60_000 }, async () => {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await ctx.newPage();
  watch(page, 'explorer');
  page.setDefaultTimeout(20_000);
  await page.goto(`${base}/#/explorer`);
  await page.getByTestId('explorer-page').waitFor();
  await page.getByTestId('scan-system').fill('Catalyst itself');
  await page.getByTestId('scan-jira').fill('CAT');
  await page.getByTestId('start-scan').click();
  await page.getByTestId('scan-page').waitFor();
  const scanId = decodeURIComponent(new URL(page.url()).hash.split('/').pop());
  // The page shows the stored scan and follows it by itself until it ends.
  await page.getByTestId('scan-status').waitFor();
  const ended = await page
    .locator('[data-testid="scan-page"]:is([data-status="completed"], [data-status="failed"])')
    .waitFor({ timeout: SCAN_TIMEOUT })
    .then(() => true, () => false);
  const stored = await (await fetch(`${base}/api/explorer/scans/${scanId}`)).json();
  const status = await page.getByTestId('scan-page').getAttribute('data-status');
  assert.equal(status, stored.status, 'page shows the stored status');
  console.log(`# scan ${scanId}: ${status}${ended ? '' : ` (still ${status} after ${SCAN_TIMEOUT} ms: the explorer did not run it)`}`);
  await shot(page, '11-explorer-scan');
  if (status === 'completed') {
    await page.getByTestId('scan-brief').waitFor();
    assert.ok((await page.getByTestId('scan-risks').locator('li').count()) === (stored.risks ?? []).length, 'every risk shown');
    assert.ok((await page.getByTestId('scan-proposals').locator('li').count()) === (stored.proposals ?? []).length, 'every proposal shown');
  } else if (REQUIRE_SCAN) {
    assert.fail(`scan ${status}: ${stored.error ?? ''}`);
  }
  await page.getByTestId('nav-explorer').click();
  await page.locator(`[data-testid="scan-row"]`).first().waitFor();
  await shot(page, '12-explorer');
  await ctx.close();
});

test('cancel a running task, then retry it to completion', { timeout: TASK_TIMEOUT + 120_000 }, async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  watch(page, 'cancel');
  page.setDefaultTimeout(20_000);
  await page.goto(`${base}/#/projects`);
  await page.getByTestId('project-name').fill('Cancel and retry');
  await page.getByTestId('create-project').click();
  await page.getByTestId('task-prompt').fill('Build a todo app');
  await page.getByTestId('submit-task').click();
  await page.getByTestId('task-page').waitFor();
  // Cancel as soon as the button is there; the pipeline may be quicker than us.
  await page.getByTestId('cancel-task').click({ timeout: 10_000 }).catch(() => {});
  await page.locator('[data-testid="task-status"]:is([data-status="cancelled"], [data-status="completed"], [data-status="failed"])').waitFor({ timeout: TASK_TIMEOUT });
  const status = await page.getByTestId('task-status').getAttribute('data-status');
  console.log(`# after cancel: ${status}`);
  if (status === 'cancelled') {
    await shot(page, '13-task-cancelled');
    await page.getByTestId('retry-task').click();
    await page.locator('[data-testid="task-status"][data-status="completed"]').waitFor({ timeout: TASK_TIMEOUT });
    for (const n of NODES) assert.equal(await page.getByTestId(`graph-node-${n}`).getAttribute('data-state'), 'completed', n);
    await page.getByTestId('deployment-card').waitFor({ timeout: 30_000 });
  } else {
    assert.equal(status, 'completed', await page.getByTestId('task-error').textContent().catch(() => ''));
    console.log('# the task finished before the cancel landed; retry not exercised');
  }
  await ctx.close();
});

test('archive a project', { timeout: 60_000 }, async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(20_000);
  page.on('dialog', (d) => d.accept());
  await page.goto(`${base}/#/projects`);
  await page.getByTestId('project-name').fill(`Archive me ${Date.now().toString(36)}`);
  await page.getByTestId('create-project').click();
  await page.getByTestId('project-page').waitFor();
  const id = decodeURIComponent(new URL(page.url()).hash.split('/').pop());
  await page.getByTestId('archive-project').click();
  await page.locator('[data-testid="project-title"] [data-status="archived"]').waitFor();
  const stored = await (await fetch(`${base}/api/projects/${id}`)).json();
  assert.equal(stored.status, 'archived');
  await page.getByTestId('nav-projects').click();
  await page.getByTestId('project-row').first().waitFor(); // the other tests' projects are active
  assert.equal(await page.locator(`[data-testid="project-row"][data-project-id="${id}"]`).count(), 0, 'archived project hidden from the active list');
  await page.getByTestId('show-archived').click();
  await page.locator(`[data-testid="project-row"][data-project-id="${id}"]`).waitFor();

  // An unknown task shows the server's problem+json detail.
  const missing = '00000000-0000-4000-8000-000000000000';
  const problem = await (await fetch(`${base}/api/tasks/${missing}`)).json();
  await page.goto(`${base}/#/tasks/${missing}`);
  const box = page.getByTestId('error');
  await box.waitFor();
  const shown = await box.innerText();
  assert.ok(problem.detail && shown.includes(problem.detail), `error box shows "${problem.detail}", got "${shown}"`);
  await shot(page, '14-error');
  await ctx.close();
});
