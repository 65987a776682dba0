// End-to-end test of the dashboard: a real `catalyst serve` (built from this
// checkout) driven through Debian's headless chromium with playwright-core.
//
//   node --test e2e.test.mjs            # builds ./cmd/catalyst, starts it on a free port
//   CATALYST_URL=http://host:port ...   # use a server that is already running instead
//                                       # (CATALYST_TOKEN: its API token; CATALYST_PREVIEW_URL: its previews)
//
// Environment: CHROMIUM_PATH (default /usr/bin/chromium), TASK_TIMEOUT_S (default 300),
// SCAN_TIMEOUT_S (default 5: scans are stored as pending until the explorer issue lands), REQUIRE_SCAN=1 (a scan that does not complete fails),
// LIVE_LATENCY (default 1s: CATALYST_OFFLINE_LATENCY of the second, slow server that the
// live tests start even when CATALYST_URL is set; it needs CATALYST_BIN or go),
// ARTIFACTS (default ./artifacts: screenshots, server.log, server-live.log, console.log).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { fakeOpenAI } from './fake-openai.mjs';

import {
  ART, CHROMIUM, LIVE_LATENCY, NODES, REQUIRE_SCAN, SCAN_TIMEOUT, TASK_TIMEOUT, api, base, bin, browser, closers, consoleLines, dataDirs, foreignRequests, freePort, here, live, liveServer, logs, previews, repo, servers, setup, shot, signedInContext, slow, slowServer, startServer, taskError, teardown, tmp, tokens, waitHealthy, watch, wsRefusingProxy,
} from './lib.mjs';

before(setup);
after(teardown);

test('a todo app goes from prompt to deployed preview', { timeout: TASK_TIMEOUT + 180_000 }, async () => {
  const ctx = await signedInContext(base, { viewport: { width: 1440, height: 900 } });
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
      const err = await taskError(page);
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
  // No LLM is configured: the offline demonstration provider served it, and the page says so plainly.
  const served = page.getByTestId('task-provider');
  assert.equal(await served.getAttribute('data-offline'), 'true');
  assert.match(await served.textContent(), /^offline demonstration provider/);
  assert.match(await served.getAttribute('class'), /\bwarn-text\b/, 'the offline provider stands out');

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
  // On the previews' own origin, never the dashboard's.
  assert.notEqual(new URL(href).origin, new URL(base).origin, `preview link ${href} is on the dashboard's origin`);
  if (previews.get(base)) assert.equal(new URL(href).origin, new URL(previews.get(base)).origin, 'preview link on the preview origin');
  const [preview] = await Promise.all([ctx.waitForEvent('page'), page.getByTestId('preview-link').click()]);
  watch(preview, 'preview', href);
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
  const phone = await signedInContext(base, { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
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
  // The dashboard's strict CSP blocked nothing of its own.
  const csp = consoleLines.filter((l) => /^\[(desktop|phone)\]/.test(l) && /Content Security Policy|Refused to/i.test(l));
  assert.deepEqual(csp, [], 'CSP violations on the dashboard');
  await ctx.close();
});

// Runs in the task page from its first byte (context.addInitScript) and records
// what the dashboard shows on every DOM change, so that short-lived states (a
// node running for a second, a typing line growing) are seen however slow the
// test's round trips to the browser are. The test waits on these records.
// secret: a string that must never be shown (document.body.innerText is checked on every change).
function recordLive({ secret = '' } = {}) {
  const rec = {
    doc: Math.random().toString(36).slice(2), // a reload would start a new record
    status: '',
    nodes: {}, // node -> states shown, in order
    runningLook: {}, // node -> how it looked while running
    typing: {}, // agent -> text length shown now
    typingGrew: [], // { agent, from, to }
    longestTyping: 0,
    // The typing line reads the model's partial JSON (web/src/partialjson.ts);
    // its raw text is in the title, and in the line itself after the raw toggle.
    typingRead: { samples: 0, rawLooking: [], decoded: 0, escaped: 0, example: null },
    typingRaw: { samples: 0, json: 0, example: null },
    elapsedRunning: [], // elapsed texts shown while the task ran
    logsRunning: [], // log line counts shown while the task ran
    conn: [],
    transport: [], // the indicator's data-transport values
    sse: { logs: [], nodeChanges: 0 }, // log line counts and node state changes shown while "Live (SSE)"
    poll: { logs: [], nodeChanges: 0 }, // the same while "Polling"
    fixRounds: [], // fix rounds shown
    fixShown: null, // when a fix round was first shown: the tester's and coder's states seen until then
    secret: { samples: 0, shown: [] }, // checks of the page's text for the secret, and where it was seen
  };
  const lastOf = (a) => a[a.length - 1];
  // What the test waits for, by name (true once seen, except typingWhileRunning).
  rec.seen = {
    // Now: an agent types next to its running node, which has finished
    // fading into its running look (a settled moment for a screenshot).
    typingWhileRunning: () =>
      [...document.querySelectorAll('[data-testid^="typing-"]')].some((t) => {
        const g = document.querySelector(`[data-testid="graph-node-${t.getAttribute('data-testid').slice('typing-'.length)}"][data-state="running"]`);
        const box = g?.querySelector('.node-box');
        return box && t.textContent.length >= 40 && !box.getAnimations().some((a) => a instanceof CSSTransition);
      }),
    typingGrows: () => rec.typingGrew.length > 0,
    typingRawShown: () => rec.typingRaw.json > 0,
    runThenComplete: () => Object.values(rec.nodes).some((s) => s.indexOf('completed', s.indexOf('running')) > 0),
    elapsedTicks: () => new Set(rec.elapsedRunning).size >= 2,
    logsGrowLive: () => rec.logsRunning.length >= 3 && rec.conn.includes('Live'),
    // Over Server-Sent Events: log lines arrive and nodes change state while it says so.
    sseStreams: () => rec.sse.logs.length >= 3 && rec.sse.nodeChanges >= 1,
    // By REST polling (every 2 s, so fewer samples): the log grows past the count
    // it had when the indicator turned to "Polling", and a node changes state.
    pollUpdates: () => rec.poll.logs.length >= 2 && rec.poll.nodeChanges >= 1,
    // Now: the coder runs again in fix round 1, the tester's loop edge (which sent
    // the work back) lit and labelled, not the reviewer's (it approved); the
    // tester waits for the new code instead of showing the round before. The
    // round is shown as the fix_round event said it: 1 of MAX_FIX_ITERATIONS
    // (3), the tester failing, the loop body reset.
    coderRunsInFixRound: () =>
      document.querySelector('[data-testid="task-fix-iteration"]')?.textContent === '1' &&
      !!document.querySelector('[data-testid="graph-node-coder"][data-state="running"]') &&
      !!document.querySelector('[data-testid="graph-node-tester"][data-state="pending"]') &&
      !!document.querySelector('[data-testid="fix-loop"][data-active="true"].fixloop-on') &&
      !!document.querySelector('[data-testid="fix-edge-tester"][data-active="true"].edge-fix-on') &&
      !!document.querySelector('[data-testid="fix-edge-reviewer"][data-active="false"]:not(.edge-fix-on)') &&
      document.querySelector('[data-testid="fix-loop"] .fix-label')?.textContent === 'fix round 1 of 3' &&
      !!document.querySelector('[data-testid="fix-round"][data-round="1"][data-max="3"][data-failing="tester"][data-reset="coder reviewer tester"]'),
  };
  window.__live = rec;
  // One sample of a typing line: raw is the model's text (the title), null in raw mode.
  const readTyping = (text, raw) => {
    if (raw === null) {
      rec.typingRaw.samples++;
      if (/^[{[]"|":/.test(text)) {
        rec.typingRaw.json++;
        rec.typingRaw.example ??= text.slice(0, 120);
      }
      return;
    }
    if (!text) return;
    rec.typingRead.samples++;
    if (text.startsWith('{"') && rec.typingRead.rawLooking.length < 5) rec.typingRead.rawLooking.push(text.slice(0, 120));
    // Complete string values of the raw text (a string followed by , } or ], so
    // not a key), decoded: the readable line shows some of them as they are.
    for (const m of raw.matchAll(/"((?:[^"\\]|\\.){8,})"(?=\s*[,}\]])/g)) {
      let v;
      try {
        v = JSON.parse(`"${m[1]}"`).replace(/\s+/g, ' ').trim();
      } catch {
        continue;
      }
      if (!/[A-Za-z]{3}/.test(v) || !text.includes(v)) continue;
      rec.typingRead.decoded++;
      rec.typingRead.example ??= { value: v, text: text.slice(0, 200) };
      if (m[1].includes('\\')) rec.typingRead.escaped++;
      break;
    }
  };
  const sample = () => {
    if (secret && document.body) {
      rec.secret.samples++;
      if (document.body.innerText.includes(secret) && rec.secret.shown.length < 5) rec.secret.shown.push(location.hash);
    }
    if (!document.querySelector('[data-testid="task-page"]')) return;
    const status = document.querySelector('[data-testid="task-status"]')?.getAttribute('data-status') ?? '';
    rec.status = status;
    const running = status === 'running';
    const connEl = document.querySelector('[data-testid="conn"]');
    const conn = connEl?.textContent ?? '';
    // Where changes shown now count as arriving over a fallback transport.
    const via = !running ? null : conn === 'Live (SSE)' ? rec.sse : conn === 'Polling' ? rec.poll : null;
    for (const g of document.querySelectorAll('[data-testid^="graph-node-"]')) {
      const n = g.getAttribute('data-testid').slice('graph-node-'.length);
      const s = g.getAttribute('data-state');
      const seq = (rec.nodes[n] ??= []);
      if (lastOf(seq) !== s) {
        if (via && seq.length) via.nodeChanges++;
        seq.push(s);
      }
      if (s === 'running' && !rec.runningLook[n]) {
        const box = g.querySelector('.node-box');
        rec.runningLook[n] = { cls: g.getAttribute('class'), animation: box && getComputedStyle(box).animationName, sub: g.querySelector('.node-sub')?.textContent };
      }
    }
    const typing = {};
    for (const t of document.querySelectorAll('[data-testid^="typing-"]')) {
      const a = t.getAttribute('data-testid').slice('typing-'.length);
      const el = t.querySelector('.typing-text');
      const text = el?.textContent ?? '';
      const len = text.length;
      typing[a] = len;
      readTyping(text, el?.getAttribute('data-raw') === 'true' ? null : el?.getAttribute('title') ?? '');
      if (rec.typing[a] !== undefined && len > rec.typing[a]) rec.typingGrew.push({ agent: a, from: rec.typing[a], to: len });
      rec.longestTyping = Math.max(rec.longestTyping, len);
    }
    rec.typing = typing;
    const fix = document.querySelector('[data-testid="task-fix-iteration"]')?.textContent;
    if (lastOf(rec.fixRounds) !== fix) rec.fixRounds.push(fix);
    if (fix && fix !== '0' && !rec.fixShown) rec.fixShown = { fix, tester: [...(rec.nodes.tester ?? [])], coder: [...(rec.nodes.coder ?? [])] };
    if (lastOf(rec.conn) !== conn) rec.conn.push(conn);
    const transport = connEl?.getAttribute('data-transport') ?? '';
    if (transport && lastOf(rec.transport) !== transport) rec.transport.push(transport);
    if (!running) return;
    const elapsed = document.querySelector('[data-testid="task-elapsed"]')?.textContent;
    if (lastOf(rec.elapsedRunning) !== elapsed) rec.elapsedRunning.push(elapsed);
    const logs = document.querySelectorAll('[data-testid="log-line"]').length;
    if (lastOf(rec.logsRunning) !== logs) rec.logsRunning.push(logs);
    if (via && lastOf(via.logs) !== logs) via.logs.push(logs);
  };
  new MutationObserver(sample).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
}

// Opens a page on url with the live recorder, submits a todo task in a new
// project and returns the page on that task with helpers to wait on the record.
async function watchLiveTask(url, label, projectName, { prompt = 'Build a todo app', secret = '' } = {}) {
  const ctx = await signedInContext(url, { viewport: { width: 1440, height: 900 } });
  await ctx.addInitScript(recordLive, { secret });
  const page = await ctx.newPage();
  watch(page, label, url);
  page.setDefaultTimeout(20_000);

  await page.goto(url + '/#/projects');
  await page.getByTestId('project-name').fill(projectName);
  await page.getByTestId('create-project').click();
  await page.getByTestId('task-prompt').fill(prompt);
  await page.getByTestId('submit-task').click();
  await page.getByTestId('task-page').waitFor();
  const doc = await page.evaluate(() => window.__live.doc);
  const taskId = await page.getByTestId('task-page').getAttribute('data-task-id');
  const record = () => page.evaluate(() => ({ ...window.__live, seen: undefined }));

  // Waits until the record shows what (a check of rec.seen) or the task has
  // ended, then asserts it: a UI that never shows something fails here with
  // the record (and the screenshot missedShot) instead of hanging until the timeout.
  const during = async (what, check, missedShot) => {
    const got = await page.waitForFunction(
      (c) => (window.__live.seen[c]() ? 'seen' : /^(completed|failed|cancelled)$/.test(window.__live.status) && 'ended'),
      check,
      { timeout: TASK_TIMEOUT, polling: 'raf' },
    );
    if ((await got.jsonValue()) !== 'seen') {
      await shot(page, missedShot);
      assert.fail(`${what} not seen while the task ran: ${JSON.stringify(await record())}`);
    }
  };

  // Waits for the task to end and asserts it completed with every node.
  const completes = async () => {
    await page.locator('[data-testid="task-status"]:is([data-status="completed"], [data-status="failed"], [data-status="cancelled"])').waitFor({ timeout: TASK_TIMEOUT });
    const status = await page.getByTestId('task-status').getAttribute('data-status');
    assert.equal(status, 'completed', await taskError(page));
    for (const n of NODES) await page.locator(`[data-testid="graph-node-${n}"][data-state="completed"]`).waitFor();
    // Nobody types once the task has ended.
    await page.locator('[data-testid^="typing-"]').first().waitFor({ state: 'detached', timeout: 10_000 });
  };
  return { ctx, page, doc, taskId, record, during, completes };
}

// After the task: no gap and no duplicate across transport switches, as every
// stored event (but cost updates, which the log does not show) is a log line,
// once; and the lines shown while it ran (record r) were only ever added.
async function everyEventOnce(page, url, taskId, r) {
  const stored = await (await api(url, `/api/logs/${taskId}?after=0&limit=1000`)).json();
  const shown = stored.filter((e) => e.type !== 'cost').length;
  assert.equal(await page.getByTestId('log-line').count(), shown, 'one log line per stored event');
  assert.ok(r.logsRunning.every((n, i) => i === 0 || n > r.logsRunning[i - 1]), `log lines only added: ${r.logsRunning}`);
}

test('live: agents type, nodes run and the clock ticks while a slow task runs', { timeout: TASK_TIMEOUT + 120_000 }, async () => {
  const url = await liveServer();
  const { ctx, page, doc, taskId, record, during: seen, completes } = await watchLiveTask(url, 'live', 'Live todo');
  const during = (what, check) => seen(what, check, '15-live-missed');

  // An agent types (its token deltas shown as a growing line) while its node runs.
  await during('a typing line next to a running node', 'typingWhileRunning');
  await shot(page, '15-live-running');
  // The raw toggle shows exactly what the model sent (JSON), then back to the readable line.
  const toggle = (pressed) =>
    page.waitForFunction(
      (p) => {
        const b = document.querySelector(`[data-testid="typing-raw-toggle"][aria-pressed="${p}"]`);
        b?.click();
        return !!b || /^(completed|failed|cancelled)$/.test(window.__live.status);
      },
      String(pressed),
      { timeout: TASK_TIMEOUT, polling: 'raf' },
    );
  await toggle(false);
  await during('the raw text of a typing line after the raw toggle', 'typingRawShown');
  await toggle(true);
  await during('a typing line that grows', 'typingGrows');
  await during('a node running, then completed', 'runThenComplete');
  await during('the elapsed time ticking', 'elapsedTicks');
  await during('log lines arriving live', 'logsGrowLive');

  await completes();
  await shot(page, '16-live-finished');

  const r = await record();
  console.log(`# live record: ${JSON.stringify({ nodes: r.nodes, running: r.runningLook, grew: r.typingGrew.length, longest: r.longestTyping, read: r.typingRead, raw: r.typingRaw, elapsed: r.elapsedRunning, logs: r.logsRunning, conn: r.conn, fix: r.fixRounds })}`);
  assert.equal(r.doc, doc, 'the page was never reloaded');
  assert.deepEqual(r.transport, ['ws'], 'followed over the WebSocket, no fallback');
  // A running node stands out: marked, labelled and animated (a finished one is still).
  for (const [n, look] of Object.entries(r.runningLook)) {
    assert.match(look.cls, /\bnode-running\b/, `${n} marked running`);
    assert.equal(look.sub, 'working…', `${n} says it is working`);
    assert.notEqual(look.animation, 'none', `${n} animates while running`);
  }
  // The typing line is read for people: never the model's raw JSON, and it shows decoded values.
  assert.deepEqual(r.typingRead.rawLooking, [], 'the readable typing line never starts with {"');
  assert.ok(r.typingRead.decoded > 0, `the typing line shows decoded string values: ${JSON.stringify(r.typingRead)}`);
  assert.equal(await page.getByTestId('graph-node-planner').evaluate((g) => getComputedStyle(g.querySelector('.node-box')).animationName), 'none', 'a completed node is still');
  // The clock counts whole seconds up while running (no tenth that sits still).
  const secs = r.elapsedRunning.map((t) => (/^(?:(\d+)m )?(\d+)s$/.exec(t) ?? []).slice(1).reduce((a, v) => a * 60 + Number(v ?? 0), 0));
  assert.ok(r.elapsedRunning.every((t) => /^(\d+m )?\d+s$/.test(t)) && secs.every((v, i) => i === 0 || v > secs[i - 1]), `elapsed counts up by whole seconds: ${r.elapsedRunning}`);
  // No more fix rounds shown along the way than the task had.
  const stored = await (await api(url, `/api/tasks/${taskId}`)).json();
  assert.ok(r.fixRounds.every((f) => Number(f) <= stored.fix_iteration), `fix rounds shown ${r.fixRounds}, task had ${stored.fix_iteration}`);
  // Every log line streamed in is still there: the stream only grew.
  assert.ok(r.logsRunning.every((n, i) => i === 0 || n > r.logsRunning[i - 1]), `log lines only added: ${r.logsRunning}`);
  assert.ok((await page.getByTestId('log-line').count()) >= r.logsRunning[r.logsRunning.length - 1], 'log lines kept after the end');
  await ctx.close();
});

// Behind a proxy that refuses WebSocket upgrades (plain HTTP streaming gets
// through), the page follows the task over Server-Sent Events instead of polling.
test('live over SSE when a proxy refuses WebSockets', { timeout: TASK_TIMEOUT + 120_000 }, async () => {
  const proxy = await wsRefusingProxy(await liveServer());
  try {
    const { ctx, page, doc, taskId, record, during, completes } = await watchLiveTask(proxy.url, 'sse', 'SSE todo');
    await during('log lines and node states arriving over SSE', 'sseStreams', '17-sse-missed');
    await page.locator('[data-testid="conn"][data-transport="sse"]').waitFor();
    await shot(page, '17-sse-live');

    await completes();
    // The stream ended with the task: the indicator is gone, not reconnecting or polling.
    await page.getByTestId('conn').waitFor({ state: 'detached', timeout: 10_000 });
    const r = await record();
    console.log(`# sse record: ${JSON.stringify({ nodes: r.nodes, conn: r.conn, transport: r.transport, sse: r.sse, logs: r.logsRunning, refused: proxy.refused.length, streams: proxy.streams })}`);
    assert.equal(r.doc, doc, 'the page was never reloaded');
    assert.ok(proxy.refused.length >= 2 && proxy.refused.every((u) => u.startsWith(`/ws/${taskId}`)), `WebSocket tried and refused: ${proxy.refused}`);
    assert.ok(proxy.streams.length >= 1 && proxy.streams.every((u) => u.startsWith(`/api/tasks/${taskId}/events?after=`)), `event stream opened: ${proxy.streams}`);
    assert.deepEqual(r.transport, ['ws', 'sse'], 'WebSocket, then SSE, never polling');
    assert.ok(r.conn.includes('Live (SSE)') && !r.conn.includes('Live'), `indicator said SSE, never plain Live: ${r.conn}`);
    await everyEventOnce(page, proxy.url, taskId, r);
    await ctx.close();
  } finally {
    await proxy.close();
  }
});

// Behind a proxy that refuses WebSocket upgrades and event streams alike, the
// page gives both up and follows the task by polling REST, to its end.
test('live by polling when a proxy refuses WebSockets and event streams', { timeout: TASK_TIMEOUT + 120_000 }, async () => {
  const proxy = await wsRefusingProxy(await slowServer(), { refuseEvents: true });
  try {
    const started = Date.now();
    const { ctx, page, doc, taskId, record, during, completes } = await watchLiveTask(proxy.url, 'poll', 'Polled todo');
    await during('log lines and node states arriving by polling', 'pollUpdates', '17b-poll-missed');
    const polling = Date.now() - started;
    await shot(page, '17b-poll-live');

    await completes();
    // Polling stops with the task: the indicator is gone.
    await page.getByTestId('conn').waitFor({ state: 'detached', timeout: 10_000 });
    const r = await record();
    console.log(`# poll record (updates by polling after ${polling} ms, done after ${Date.now() - started} ms): ${JSON.stringify({ nodes: r.nodes, conn: r.conn, transport: r.transport, poll: r.poll, logs: r.logsRunning, refused: proxy.refused.length, refusedEvents: proxy.refusedEvents })}`);
    assert.equal(r.doc, doc, 'the page was never reloaded');
    assert.ok(proxy.refused.length >= 2 && proxy.refused.every((u) => u.startsWith(`/ws/${taskId}`)), `WebSocket tried and refused: ${proxy.refused}`);
    assert.ok(proxy.refusedEvents.length >= 2 && proxy.refusedEvents.every((u) => u.startsWith(`/api/tasks/${taskId}/events?after=`)), `event stream tried and refused: ${proxy.refusedEvents}`);
    assert.deepEqual(r.transport, ['ws', 'sse', 'poll'], 'WebSocket, then SSE, then polling');
    assert.ok(r.conn.includes('Polling') && !r.conn.includes('Live') && !r.conn.includes('Live (SSE)'), `indicator said Polling, never Live: ${r.conn}`);
    await everyEventOnce(page, proxy.url, taskId, r);
    await ctx.close();
  } finally {
    await proxy.close();
  }
});

// The fix loop, live, through the real OpenAI provider path (not the offline
// one, whose app passes first time): a fake model server speaking the Chat
// Completions wire format writes buggy code, `node --test` really fails in the
// sandbox, the work goes back to the coder, who fixes it. The fake coder's
// second answer is held halfway until the page has been checked and shot, so
// the fix round is seen however slow the machine is.
test('live fix loop: failing tests send the work back to the coder (OpenAI wire format)', { timeout: TASK_TIMEOUT + 120_000 }, async () => {
  const KEY = 'sk-fake-e2e-7d3b9e51c0a4';
  let release;
  const held = new Promise((r) => (release = r));
  const model = await fakeOpenAI({ callMs: 400, hold: (agent, call) => (agent === 'coder' && call === 2 ? held : null) });
  closers.push(model.close);
  try {
    const url = await startServer('openai', {
      OPENAI_API_KEY: KEY,
      OPENAI_BASE_URL: `${model.url}/v1/`,
      DEFAULT_LLM_PROVIDER: 'openai',
      DEFAULT_LLM_MODEL: 'gpt-4o',
    });
    const { ctx, page, doc, taskId, record, during, completes } = await watchLiveTask(url, 'fix', 'Fix loop', {
      prompt: 'Build a sum function for a calculator',
      secret: KEY,
    });
    const noKey = async (where) => assert.ok(!(await page.evaluate((k) => document.body.innerText.includes(k), KEY)), `the API key is shown (${where})`);

    // Fix round 1: the tests failed, the coder runs again, the loop edges are lit.
    await during('the coder running again in fix round 1 with the fix loop lit', 'coderRunsInFixRound', '18-fix-missed');
    await page.getByTestId('log-line').filter({ hasText: 'sum(2, 3) should be 5' }).first().waitFor({ timeout: 30_000 });
    await page.locator('[data-testid="quick-tests"] .bad', { hasText: '1 failed' }).waitFor({ timeout: 30_000 });
    await page.locator('[data-testid="typing-coder"]').waitFor({ timeout: 30_000 });
    await noKey('fix round, activity');
    await shot(page, '18-fix-round');
    // The Tests tab shows the failing run while the coder fixes it.
    await page.getByTestId('tab-tests').click();
    await page.getByTestId('test-report').waitFor();
    assert.equal(await page.getByTestId('test-verdict').textContent(), 'Tests failed');
    assert.equal(await page.getByTestId('tests-failed').textContent(), '1');
    assert.equal(await page.getByTestId('tests-passed').textContent(), '1');
    assert.match(await page.getByTestId('test-report').innerText(), /sum\(2, 3\) should be 5/, 'the failing assertion in the report');
    await noKey('fix round, tests');
    await shot(page, '19-fix-round-tests');
    release();

    // The fixed code passes: the report is replaced by the passing run.
    await completes();
    await page.locator('[data-testid="test-verdict"]', { hasText: 'Tests passed' }).waitFor({ timeout: 30_000 });
    assert.equal(await page.getByTestId('tests-passed').textContent(), '2');
    assert.equal(await page.getByTestId('tests-failed').textContent(), '0');
    const runs = await page.locator('[data-testid="test-report"] .chip').evaluateAll((cs) => cs.map((c) => `${c.textContent}${c.getAttribute('aria-pressed') === 'true' ? '*' : ''}`));
    assert.deepEqual(runs, ['First run', 'Fix round 1*'], 'both runs listed, the fix round shown');
    await noKey('finished, tests');
    await shot(page, '20-fix-finished-tests');
    await page.getByTestId('tab-activity').click();
    await page.getByTestId('log-line').first().waitFor();
    await noKey('finished, activity');
    await shot(page, '21-fix-finished');

    const r = await record();
    console.log(`# fix record: ${JSON.stringify({ nodes: r.nodes, fix: r.fixRounds, fixShown: r.fixShown, secret: r.secret, calls: model.calls })}`);
    assert.equal(r.doc, doc, 'the page was never reloaded');
    // The counter went 0 → 1 once, and only after the tester's first run completed (failing).
    assert.deepEqual(r.fixRounds.filter((f) => f !== undefined), ['0', '1'], 'fix rounds shown');
    // Events that arrive in one burst render in one frame, so the tester's
    // "completed" may share its frame with the fix round's start: require
    // only that the tester had been shown running before the round.
    const t = r.fixShown.tester;
    assert.ok(t.includes('running'), `fix round shown before the tester had run: ${JSON.stringify(r.fixShown)}`);
    // The coder ran twice; every node ended completed.
    assert.equal(r.nodes.coder.filter((s) => s === 'running').length, 2, `coder states ${r.nodes.coder}`);
    // The tester ran, then waited (pending) for the fix, ran again and ended completed.
    const ts = r.nodes.tester;
    const ran = ts.indexOf('running');
    const waited = ts.indexOf('pending', ran + 1);
    assert.ok(ran >= 0 && waited > ran && ts.indexOf('running', waited + 1) > waited && ts.at(-1) === 'completed',
      `tester states ${ts}: it waits for the fix`);
    for (const n of NODES) assert.equal(await page.getByTestId(`graph-node-${n}`).getAttribute('data-state'), 'completed', n);
    assert.equal(await page.getByTestId('task-fix-iteration').textContent(), '1');
    assert.equal(await page.getByTestId('fix-loop').getAttribute('data-active'), 'true', 'the fix loop stays marked once a round ran');
    assert.equal(await page.getByTestId('fix-edge-tester').getAttribute('data-active'), 'true', "the tester's loop edge stays lit");
    assert.equal(await page.getByTestId('fix-edge-reviewer').getAttribute('data-active'), 'false', "the reviewer's loop edge is not: it approved");
    // Priced from the usage the server reported, by the configured model.
    const cost = await page.getByTestId('task-cost').textContent();
    assert.ok(Number(cost.replace(/^\$/, '')) > 0, `cost ${cost}`);
    const provider = await page.getByTestId('task-provider').textContent();
    assert.equal(provider, 'openai/gpt-4o', 'served by the provider and model the task stored');
    assert.equal(await page.getByTestId('task-provider').getAttribute('data-offline'), 'false');
    // The fake model saw the key and the model on every call; the page never showed the key.
    const { planner, architect, coder, reviewer } = model.calls;
    assert.ok(planner === 1 && architect === 1 && coder === 2 && reviewer >= 1, `calls per agent ${JSON.stringify(model.calls)}: one plan, one design, two coder rounds`);
    assert.ok(model.auth.every((a) => a === `Bearer ${KEY}`) && model.models.every((m) => m === 'gpt-4o'), 'key and model sent on every call');
    assert.ok(model.coder[1].includes('sum(2, 3) should be 5') && !model.coder[0].includes('should be 5'), 'the fix round got the failing output');
    assert.ok(r.secret.samples > 0 && r.secret.shown.length === 0, `the API key was shown: ${JSON.stringify(r.secret)}`);
    assert.ok(!(await page.content()).includes(KEY), 'the API key is in the page');
    const logs = await (await api(url, `/api/logs/${taskId}?limit=1000`)).text();
    assert.ok(!logs.includes(KEY), 'the API key is in the logs');
    await ctx.close();
  } finally {
    release();
  }
});

test('explorer: scan form and results', { timeout: SCAN_TIMEOUT + 60_000 }, async () => {
  const ctx = await signedInContext(base, { viewport: { width: 1440, height: 900 } });
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
  const stored = await (await api(base, `/api/explorer/scans/${scanId}`)).json();
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
  const ctx = await signedInContext(base, { viewport: { width: 1280, height: 800 } });
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
    assert.equal(status, 'completed', await taskError(page));
    console.log('# the task finished before the cancel landed; retry not exercised');
  }
  await ctx.close();
});

// The task page has no node list of its own: it draws the graph that
// GET /api/graphs/{kind} serves. Checked twice: against the server's own build
// graph (the drawing matches the description, one request per kind), then
// with that request intercepted and answered with a graph of another shape
// (an extra check, a fix loop going back further): the page draws that one.
test("the task page draws the graph /api/graphs serves", { timeout: TASK_TIMEOUT + 60_000 }, async () => {
  const call = async (p, body) => {
    const r = await api(base, p, body ? { method: 'POST', body: JSON.stringify(body) } : {});
    assert.ok(r.ok, `${p}: HTTP ${r.status}`);
    return r.json();
  };
  const graphs = await call('/api/graphs');
  const build = await call('/api/graphs/build');
  assert.deepEqual(graphs.find((g) => g.kind === 'build'), build, '/api/graphs lists the build graph as /api/graphs/build serves it');
  const project = await call('/api/projects', { name: `Graphs ${Date.now().toString(36)}`, description: 'drawn from /api/graphs' });
  const task = await call('/api/tasks', { project_id: project.id, prompt: 'Build a todo app' });
  assert.equal(task.kind, 'build');
  const deadline = Date.now() + TASK_TIMEOUT;
  let stored = task;
  while (!/^(completed|failed|cancelled)$/.test(stored.status) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    stored = await call(`/api/tasks/${task.id}`);
  }
  assert.equal(stored.status, 'completed', stored.error);
  const other = await call('/api/tasks', { project_id: project.id, prompt: 'Build a notes app' });

  const drawn = (page) =>
    page.evaluate(() => ({
      nodes: [...document.querySelectorAll('[data-testid^="graph-node-"]')].map((g) => ({
        id: g.getAttribute('data-testid').slice('graph-node-'.length),
        label: g.querySelector('.node-title').textContent,
        state: g.getAttribute('data-state'),
        body: g.getAttribute('data-loop-body') === 'true',
      })),
      edges: [...document.querySelectorAll('[data-testid^="edge-"]')].map((e) => e.getAttribute('data-testid').slice('edge-'.length)),
      fixEdges: [...document.querySelectorAll('[data-testid^="fix-edge-"]')].map((e) => e.getAttribute('data-testid').slice('fix-edge-'.length)),
      target: document.querySelector('[data-testid="fix-loop"]')?.getAttribute('data-target') ?? null,
      chips: [...document.querySelectorAll('[data-testid^="log-filter-"]')].map((c) => c.textContent),
      costs: [...document.querySelectorAll('[data-testid^="cost-"]')].map((c) => c.getAttribute('data-testid').slice('cost-'.length)),
    }));
  const expected = (g) => ({
    nodes: g.nodes.map((n) => n.id),
    labels: g.nodes.map((n) => n.label),
    edges: g.edges.filter((e) => e.when !== 'fail').map((e) => `${e.from}-${e.to}`),
    fixEdges: g.fix_loop?.checks ?? [],
    target: g.fix_loop?.target ?? null,
    body: g.fix_loop?.body ?? [],
  });
  const check = (got, g, why) => {
    const want = expected(g);
    assert.deepEqual(got.nodes.map((n) => n.id), want.nodes, `${why}: nodes in the description's order`);
    assert.deepEqual(got.nodes.map((n) => n.label), want.labels, `${why}: labels`);
    assert.deepEqual(got.edges, want.edges, `${why}: forward edges`);
    assert.deepEqual(got.fixEdges, want.fixEdges, `${why}: a fix edge from each check`);
    assert.equal(got.target, want.target, `${why}: the fix loop goes back to its target`);
    assert.deepEqual(got.nodes.filter((n) => n.body).map((n) => n.id).sort(), [...want.body].sort(), `${why}: the loop body`);
    assert.deepEqual(got.chips, ['All', ...want.labels, 'System'], `${why}: the log filters name the graph's agents`);
    assert.deepEqual(got.costs, want.nodes, `${why}: cost by agent`);
  };

  // 1. The server's graph, fetched once for two tasks of its kind.
  const ctx = await signedInContext(base, { viewport: { width: 1440, height: 900 } });
  const page = await ctx.newPage();
  watch(page, 'graphs');
  page.setDefaultTimeout(20_000);
  const asked = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/api/graphs')) asked.push(u.pathname);
  });
  await page.goto(`${base}/#/tasks/${task.id}`);
  await page.locator(`[data-testid="graph-node-${build.nodes.at(-1).id}"][data-state="completed"]`).waitFor();
  const got = await drawn(page);
  check(got, build, 'server graph');
  assert.ok(got.nodes.every((n) => n.state === 'completed'), `states ${JSON.stringify(got.nodes)}`);
  await page.goto(`${base}/#/tasks/${other.id}`);
  await page.locator(`[data-testid="task-page"][data-task-id="${other.id}"] [data-testid="graph"]`).waitFor();
  check(await drawn(page), build, 'second task');
  assert.deepEqual(asked, ['/api/graphs/build'], 'one request for the graph of the two tasks’ kind');
  await ctx.close();

  // 2. Another shape served for the same kind: the page draws that.
  const audited = {
    kind: 'build',
    label: 'Build, audited',
    nodes: [
      ...build.nodes.filter((n) => n.id !== 'deployer').map((n) => ({ ...n, check: false })),
      { id: 'auditor', label: 'Auditor', description: 'audits the whole change', check: true },
      build.nodes.find((n) => n.id === 'deployer'),
    ],
    edges: [
      ...build.edges.filter((e) => e.when === 'always'),
      { from: 'tester', to: 'auditor', when: 'always' },
      { from: 'reviewer', to: 'auditor', when: 'always' },
      { from: 'auditor', to: 'deployer', when: 'pass' },
      { from: 'auditor', to: 'architect', when: 'fail' },
    ],
    fix_loop: { target: 'architect', checks: ['auditor'], body: ['architect', 'coder', 'tester', 'reviewer', 'auditor'] },
  };
  const ctx2 = await signedInContext(base, { viewport: { width: 1440, height: 900 } });
  const page2 = await ctx2.newPage();
  watch(page2, 'graphs-routed');
  page2.setDefaultTimeout(20_000);
  let served = 0;
  await page2.route('**/api/graphs/build', (route) => {
    served++;
    route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(audited) });
  });
  await page2.goto(`${base}/#/tasks/${task.id}`);
  await page2.getByTestId('graph-node-auditor').waitFor();
  const got2 = await drawn(page2);
  check(got2, audited, 'intercepted graph');
  assert.equal(served, 1, 'the page asked for the graph of the task’s kind');
  // The auditor is no node of the task the server ran: it waits.
  assert.equal(got2.nodes.find((n) => n.id === 'auditor').state, 'pending');
  assert.equal(await page2.getByTestId('graph').getAttribute('data-kind'), 'build');
  assert.match(await page2.locator('.graph-card .card-head').innerText(), /6\/7 done/);
  await shot(page2, '15-graph-from-api');
  await ctx2.close();

  // 3. A graph the server cannot give: the card says so instead of drawing one of its own.
  const ctx3 = await signedInContext(base, { viewport: { width: 1280, height: 800 } });
  const page3 = await ctx3.newPage();
  page3.setDefaultTimeout(20_000);
  await page3.route('**/api/graphs/build', (route) =>
    route.fulfill({ status: 503, contentType: 'application/problem+json', body: JSON.stringify({ title: 'Service Unavailable', status: 503, detail: 'graphs are resting' }) }),
  );
  await page3.goto(`${base}/#/tasks/${task.id}`);
  await page3.locator('.graph-card [data-testid="error"]', { hasText: 'graphs are resting' }).waitFor();
  assert.equal(await page3.locator('[data-testid^="graph-node-"]').count(), 0, 'no node drawn without a graph');
  await ctx3.close();
});

test('archive a project', { timeout: 60_000 }, async () => {
  const ctx = await signedInContext(base, { viewport: { width: 1280, height: 800 } });
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
  const stored = await (await api(base, `/api/projects/${id}`)).json();
  assert.equal(stored.status, 'archived');
  await page.getByTestId('nav-projects').click();
  await page.getByTestId('project-row').first().waitFor(); // the other tests' projects are active
  assert.equal(await page.locator(`[data-testid="project-row"][data-project-id="${id}"]`).count(), 0, 'archived project hidden from the active list');
  await page.getByTestId('show-archived').click();
  await page.locator(`[data-testid="project-row"][data-project-id="${id}"]`).waitFor();

  // An unknown task says "not found" and no more: another tenant's task answers the same 404 (accounts.test.mjs).
  const missing = '00000000-0000-4000-8000-000000000000';
  assert.equal((await api(base, `/api/tasks/${missing}`)).status, 404);
  await page.goto(`${base}/#/tasks/${missing}`);
  const box = page.getByTestId('not-found');
  await box.waitFor();
  assert.match(await box.innerText(), /Task not found/);
  await shot(page, '14-error');
  await ctx.close();
});

// ---------------------------------------------------------------------------
// Issue 12: no web page, DNS-rebinding host name or generated app can call
// the API. Each hostile page runs the same script (attackScript) against the
// API it can reach: reads and writes over REST (JSON, no-cors text/plain, a
// form post), the WebSocket and the event stream, with the victim's browser
// signed in to the dashboard. Nothing may be accepted: not by what the page
// sees, not in the server's access log, not in the store.

// A second chromium without its own guard against pages reaching loopback
// (Private/Local Network Access), which would stop some attacks before the
// server sees them: other browsers have none, so the server must hold alone.
// evil.test resolves to 127.0.0.1 in it (a DNS rebinding's second answer).
let unguarded = null;
async function unguardedBrowser() {
  unguarded ??= await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--host-resolver-rules=MAP evil.test 127.0.0.1',
      '--disable-features=PrivateNetworkAccessSendPreflights,PrivateNetworkAccessRespectPreflightResults,BlockInsecurePrivateNetworkRequests,LocalNetworkAccessChecks,LocalNetworkAccessChecksWebSockets'],
  });
  closers.push(() => unguarded.close());
  return unguarded;
}

let attack = null; // { url, taskId, projectId }: a server with a deployed task
async function attackTarget() {
  if (attack) return attack;
  const url = await startServer('attack');
  const project = await (await api(url, '/api/projects', { method: 'POST', body: JSON.stringify({ name: 'Victim', description: 'd' }) })).json();
  const task = await (await api(url, '/api/tasks', { method: 'POST', body: JSON.stringify({ project_id: project.id, prompt: 'Build a todo app' }) })).json();
  const deadline = Date.now() + TASK_TIMEOUT;
  for (;;) {
    const t = await (await api(url, `/api/tasks/${task.id}`)).json();
    if (t.status === 'completed') break;
    assert.ok(!['failed', 'cancelled'].includes(t.status) && Date.now() < deadline, `victim task ${t.status}: ${t.error ?? ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  attack = { url, taskId: task.id, projectId: project.id };
  return attack;
}

function attackScript(apiBase, taskId, projectId) {
  return `
(async () => {
  const api = ${JSON.stringify(apiBase)}, wsBase = api.replace(/^http/, 'ws');
  const task = ${JSON.stringify(taskId)}, project = ${JSON.stringify(projectId)};
  const R = {};
  const t = async (name, f) => { try { R[name] = await f(); } catch (e) { R[name] = 'error: ' + ((e && e.message) || e); } };
  const read = async (r) => 'status ' + r.status + ' ' + r.type + ' ' + (r.type === 'opaque' ? '' : (await r.text()).slice(0, 120));
  const J = { 'Content-Type': 'application/json' };
  const inc = { credentials: 'include' };
  await t('read task (cors)', async () => read(await fetch(api + '/api/tasks/' + task, inc)));
  await t('read logs (cors)', async () => read(await fetch(api + '/api/logs/' + task, inc)));
  // Without credentials a CORS_ORIGINS=* answer is readable: the page sees the server's refusal itself.
  await t('read task (cors, no cookie)', async () => read(await fetch(api + '/api/tasks/' + task)));
  await t('create project (json, no cookie)', async () => read(await fetch(api + '/api/projects', { method: 'POST', headers: J, body: JSON.stringify({ name: 'pwned-json-2' }) })));
  await t('read tasks (no-cors)', async () => read(await fetch(api + '/api/tasks', { ...inc, mode: 'no-cors' })));
  await t('create project (json)', async () => read(await fetch(api + '/api/projects', { ...inc, method: 'POST', headers: J, body: JSON.stringify({ name: 'pwned-json' }) })));
  await t('create project (no-cors text/plain)', async () => read(await fetch(api + '/api/projects', { ...inc, method: 'POST', mode: 'no-cors', body: JSON.stringify({ name: 'pwned-text' }) })));
  await t('create task (json)', async () => read(await fetch(api + '/api/tasks', { ...inc, method: 'POST', headers: J, body: JSON.stringify({ project_id: project, prompt: 'pwned' }) })));
  await t('create task (no-cors)', async () => read(await fetch(api + '/api/tasks', { ...inc, method: 'POST', mode: 'no-cors', headers: J, body: JSON.stringify({ project_id: project, prompt: 'pwned' }) })));
  await t('retry task (no-cors)', async () => read(await fetch(api + '/api/tasks/' + task + '/retry', { ...inc, method: 'POST', mode: 'no-cors' })));
  await t('archive project (json)', async () => read(await fetch(api + '/api/projects/' + project, { ...inc, method: 'DELETE', headers: J })));
  await t('form post (text/plain)', () => new Promise((res) => {
    const sink = document.createElement('iframe');
    sink.name = 'sink'; document.body.appendChild(sink);
    const f = document.createElement('form');
    f.method = 'POST'; f.action = api + '/api/projects'; f.enctype = 'text/plain'; f.target = 'sink';
    const i = document.createElement('input');
    i.name = '{"name":"pwned-form","x":"'; i.value = '"}';
    f.appendChild(i); document.body.appendChild(f);
    try { f.submit(); } catch (e) { return res('throws ' + e.message); }
    setTimeout(() => res('submitted'), 1500);
  }));
  await t('websocket', () => new Promise((res) => {
    let ws;
    try { ws = new WebSocket(wsBase + '/ws/' + task + '?after=0'); } catch (e) { return res('throws ' + e.message); }
    const to = setTimeout(() => res('timeout'), 8000);
    ws.onopen = () => { clearTimeout(to); ws.onmessage = (e) => res('OPEN, read ' + String(e.data).slice(0, 60)); setTimeout(() => res('OPEN'), 1000); };
    ws.onerror = () => { clearTimeout(to); res('refused'); };
  }));
  await t('event stream', () => new Promise((res) => {
    let es;
    try { es = new EventSource(api + '/api/tasks/' + task + '/events?after=0', { withCredentials: true }); } catch (e) { return res('throws ' + e.message); }
    const to = setTimeout(() => { es.close(); res('timeout'); }, 8000);
    es.onmessage = (e) => { clearTimeout(to); es.close(); res('MESSAGE ' + e.data.slice(0, 60)); };
    es.onerror = () => { clearTimeout(to); es.close(); res('refused'); };
  }));
  window.__attack = R;
})();`;
}

const attackHTML = (...args) => `<!doctype html><meta charset="utf-8"><title>cute cats</title><h1>Cute cats</h1><script>${attackScript(...args)}</script>`;

// What the store holds that an attack would change.
async function victimState({ url, taskId, projectId }) {
  const projects = await (await api(url, '/api/projects?limit=100')).json();
  const tasks = await (await api(url, '/api/tasks?limit=100')).json();
  const project = await (await api(url, `/api/projects/${projectId}`)).json();
  const task = await (await api(url, `/api/tasks/${taskId}`)).json();
  return { projects: projects.map((p) => p.name).sort(), tasks: tasks.length, project: project.status, task: task.status };
}

// Runs the attack in page (already on the hostile document) and checks that
// nothing was accepted. expectStatuses: the statuses the server must have
// answered the page's API requests with (null: the browser may stop them first).
async function assertAttackFails(label, page, target, logFrom, before, { expectStatuses = null, mustReach = false } = {}) {
  const results = await page.waitForFunction(() => window.__attack, null, { timeout: 60_000 }).then((h) => h.jsonValue());
  console.log(`# ${label}: ${JSON.stringify(results)}`);
  for (const [k, v] of Object.entries(results)) {
    assert.ok(!/^status 2\d\d (basic|cors)/.test(v), `${label}: "${k}" was answered: ${v}`);
    assert.ok(!/^(OPEN|MESSAGE)/.test(v), `${label}: "${k}" was accepted: ${v}`);
  }
  await new Promise((r) => setTimeout(r, 500)); // the last access-log lines
  const lines = fs.readFileSync(logs.get(target.url), 'utf8').slice(logFrom).split('\n')
    .filter((l) => l.includes('msg="http request"') && / path=\/(api|ws)\//.test(l) && !/ method=OPTIONS /.test(l));
  const statuses = lines.map((l) => (/ status=(\d+)/.exec(l) ?? [])[1]);
  console.log(`# ${label}: the server answered ${lines.length} API requests with ${[...new Set(statuses)].join(', ') || 'nothing'}`);
  const accepted = lines.filter((l, i) => !(expectStatuses ?? ['401', '403', '415', '421']).includes(statuses[i]));
  assert.deepEqual(accepted, [], `${label}: API requests the server did not refuse`);
  if (mustReach) assert.ok(lines.length >= 5, `${label}: the attack's requests should reach the server (and be refused there): ${lines.length}`);
  assert.deepEqual(await victimState(target), before, `${label}: the store changed`);
}

test('a page on another localhost origin cannot use the API, even with the victim signed in', { timeout: TASK_TIMEOUT + 120_000 }, async () => {
  const target = await attackTarget();
  // Same site as the API (localhost, another port): the browser attaches the
  // SameSite=Strict session cookie to its requests; the server must not count it.
  const evil = http.createServer((req, res) => res.writeHead(200, { 'Content-Type': 'text/html' }).end(attackHTML(target.url, target.taskId, target.projectId)));
  await new Promise((r) => evil.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => (evil.close(r), evil.closeAllConnections())));
  const ctx = await signedInContext(target.url);
  const page = await ctx.newPage();
  watch(page, 'evil-origin', `http://localhost:${evil.address().port}`);
  const before = await victimState(target);
  const logFrom = fs.statSync(logs.get(target.url)).size;
  await page.goto(`http://localhost:${evil.address().port}/cats.html`);
  await assertAttackFails('another localhost origin', page, target, logFrom, before, { mustReach: true });
  await ctx.close();
});

test('a DNS-rebinding host name cannot use the API', { timeout: TASK_TIMEOUT + 120_000 }, async () => {
  const target = await attackTarget();
  const port = new URL(target.url).port;
  // evil.test resolves to 127.0.0.1 (as after a rebinding): the page, served
  // first by "the attacker", then calls the API as its own origin.
  const rebound = await unguardedBrowser();
  {
    const ctx = await rebound.newContext();
    const page = await ctx.newPage();
    const origin = `http://evil.test:${port}`;
    watch(page, 'rebinding', origin);
    await page.route(`${origin}/cats.html`, (route) => route.fulfill({ contentType: 'text/html', body: attackHTML(origin, target.taskId, target.projectId) }));
    const before = await victimState(target);
    const logFrom = fs.statSync(logs.get(target.url)).size;
    await page.goto(`${origin}/cats.html`);
    await assertAttackFails('DNS rebinding', page, target, logFrom, before, { expectStatuses: ['421'], mustReach: true });
    // The dashboard itself is not served under that name either.
    const r = await page.goto(`${origin}/`);
    assert.equal(r.status(), 421, 'dashboard under a foreign Host');
    await ctx.close();
  }
});

test('a generated app opened in its preview cannot use the API', { timeout: TASK_TIMEOUT + 120_000 }, async () => {
  const target = await attackTarget();
  // The model wrote a hostile page into the app: it is served like any other file.
  const ws = path.join(dataDirs.get(target.url), 'tasks', target.taskId, 'workspace');
  fs.writeFileSync(path.join(ws, 'cats.html'), attackHTML(target.url, target.taskId, target.projectId));
  const previewOrigin = previews.get(target.url);
  assert.notEqual(new URL(previewOrigin).origin, new URL(target.url).origin, 'previews on their own origin');
  const ctx = await signedInContext(target.url);
  const page = await ctx.newPage();
  watch(page, 'evil-preview', previewOrigin);
  const before = await victimState(target);
  const logFrom = fs.statSync(logs.get(target.url)).size;
  // The preview origin serves a task's app only under a grant for the
  // reader, which the API's origin hands out when it redirects there.
  const appURL = (await page.goto(`${target.url}/apps/${target.taskId}/cats.html`)).url();
  assert.equal(new URL(appURL).origin, new URL(previewOrigin).origin, 'the API origin redirects to the preview origin');
  assert.match(new URL(appURL).pathname, new RegExp(`^/apps/${target.taskId}/[^/]+/cats\\.html$`), 'with a grant in the path');
  const resp = await page.goto(appURL);
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()['content-security-policy'], /^sandbox allow-scripts allow-forms;/);
  await assertAttackFails('generated app in its preview', page, target, logFrom, before);
  // The preview's CSP stopped those in the browser. Without its connect-src
  // (a weaker browser, a CSP bug) the requests reach the API, which refuses
  // them itself: they come from an opaque origin.
  const weakCtx = await signedInContext(target.url, {}, await unguardedBrowser());
  const weak = await weakCtx.newPage();
  watch(weak, 'evil-preview-weak-csp', previewOrigin);
  await weak.route(appURL, async (route) => {
    const r = await route.fetch();
    await route.fulfill({ response: r, headers: { ...r.headers(), 'content-security-policy': 'sandbox allow-scripts allow-forms' } });
  });
  const logFrom2 = fs.statSync(logs.get(target.url)).size;
  await weak.goto(appURL);
  await assertAttackFails('generated app in its preview, CSP without connect-src', weak, target, logFrom2, before, { expectStatuses: ['401', '403'], mustReach: true });
  await weakCtx.close();
  // The API's origin does not serve it: it sends the browser to the preview origin.
  const viaApi = await page.goto(`${target.url}/apps/${target.taskId}/cats.html`);
  assert.equal(new URL(viaApi.url()).origin, new URL(previewOrigin).origin, 'the API origin redirects previews away');
  await ctx.close();
});

test('sign-in: the page without a session, a wrong link, the pasted token; docs under their CSP', { timeout: 60_000 }, async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  watch(page, 'signin');
  page.setDefaultTimeout(20_000);
  await page.goto(`${base}/#/projects`);
  await page.getByTestId('sign-in').waitFor();
  assert.match(await page.getByTestId('sign-in').innerText(), /sign-in link printed by catalyst serve/i);
  assert.equal(await page.getByTestId('projects-page').count(), 0, 'no data without a session');
  await shot(page, '22-sign-in');
  const wrong = await page.goto(`${base}/?token=not-the-token-0123456789`);
  assert.equal(wrong.status(), 401);
  assert.match(await page.locator('body').innerText(), /not valid/);
  assert.equal((await ctx.cookies(base)).length, 0, 'a wrong link sets no cookie');
  await page.goto(`${base}/`);
  await page.getByTestId('sign-in-token').fill(tokens.get(base));
  await page.getByTestId('sign-in-submit').click();
  await page.getByTestId('projects-page').waitFor();
  assert.ok(!page.url().includes(tokens.get(base)), `the token stays in the address bar: ${page.url()}`);
  // The docs render under their CSP.
  await page.goto(`${base}/docs`);
  await page.locator('.swagger-ui .info').waitFor();
  const csp = consoleLines.filter((l) => l.startsWith('[signin]') && /Content Security Policy|Refused to/i.test(l));
  assert.deepEqual(csp, [], 'CSP violations on the sign-in page or the docs');
  await ctx.close();
});
