// The Task page's "Coder steps": the coder's tool calls (tool, arguments,
// result), collapsed by default, arriving live while the task runs. The
// offline provider scripts the coder's tool loop (write_file per file, then
// finish); its arguments carry the app's HTML, which must show as text.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { api, setup, teardown, startServer, signedInContext, shot, watch, TASK_TIMEOUT } from './lib.mjs';

before(setup);
after(teardown);

test('the coder steps show each tool call live, collapsed, arguments as text', { timeout: TASK_TIMEOUT + 60_000 }, async () => {
  // Slow enough that the coder's two turns and the checks after them take
  // seconds: the page must show steps while the task still runs.
  const url = await startServer('coder', { CATALYST_OFFLINE_LATENCY: '3s' });
  const project = await (await api(url, '/api/projects', { method: 'POST', body: JSON.stringify({ name: 'Coder steps', description: 'd' }) })).json();
  const ctx = await signedInContext(url, { viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  watch(page, 'coder', url);
  page.setDefaultTimeout(20_000);
  // Nothing may run from the arguments' HTML.
  await page.addInitScript(() => {
    window.__injected = 0;
    window.alert = () => (window.__injected += 1);
  });
  const task = await (await api(url, '/api/tasks', { method: 'POST', body: JSON.stringify({ project_id: project.id, prompt: 'Build a todo app' }) })).json();
  await page.goto(`${url}/#/tasks/${task.id}`);
  await page.getByTestId('task-page').waitFor();
  const doc = await page.evaluate(() => (window.__doc = Math.random()));

  // Live: the steps appear while the task still runs, without a reload.
  const samples = [];
  for (const end = Date.now() + TASK_TIMEOUT; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
    const sample = await page.evaluate(() => ({
      steps: document.querySelectorAll('[data-testid="coder-step"]').length,
      status: document.querySelector('[data-testid="task-page"]')?.getAttribute('data-status'),
    }));
    samples.push(sample);
    if (sample.steps > 0 && sample.status === 'running') break;
    if (['completed', 'failed', 'cancelled'].includes(sample.status)) break;
  }
  const seen = samples.find((x) => x.steps > 0 && x.status === 'running');
  assert.ok(seen, `no coder step shown while the task ran: ${JSON.stringify(samples.slice(-5))}`);
  await shot(page, 'coder-01-steps-live');

  // Wait for the end, then compare with the stored tool_call events.
  for (const end = Date.now() + TASK_TIMEOUT; ; await new Promise((r) => setTimeout(r, 300))) {
    const t = await (await api(url, `/api/tasks/${task.id}`)).json();
    if (t.status === 'completed') break;
    assert.ok(!['failed', 'cancelled'].includes(t.status) && Date.now() < end, `task ${t.status}: ${t.error ?? ''}`);
  }
  const logs = await (await api(url, `/api/logs/${task.id}?limit=1000`)).json();
  const calls = logs.filter((l) => l.type === 'tool_call');
  assert.ok(calls.length >= 2, `tool_call events: ${calls.length}`);
  assert.deepEqual(
    calls.map((c) => c.data.tool),
    [...calls.slice(0, -1).map(() => 'write_file'), 'finish'],
    'the offline coder writes each file, then finishes',
  );
  const steps = page.getByTestId('coder-step');
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid="coder-step"]').length === n, calls.length);
  assert.deepEqual(await steps.evaluateAll((els) => els.map((e) => e.getAttribute('data-tool'))), calls.map((c) => c.data.tool));
  assert.ok((await steps.evaluateAll((els) => els.map((e) => e.getAttribute('data-ok')))).every((ok) => ok === 'true'));

  // Collapsed by default: no arguments shown until a step is opened.
  assert.equal(await page.locator('[data-testid="coder-steps"] details[open]').count(), 0, 'steps start collapsed');
  assert.ok(!(await page.getByTestId('coder-step-args').first().isVisible()), 'arguments hidden while collapsed');

  // Open the step that wrote index.html: its arguments are the JSON the model
  // sent, HTML shown as text; the result says what happened.
  const html = steps.filter({ hasText: 'index.html' }).first();
  await html.locator('summary').click();
  const args = await html.getByTestId('coder-step-args').innerText();
  assert.match(args, /"path": "index.html"/);
  assert.match(args, /<(!doctype|html|script)/i, 'HTML in the arguments shown literally');
  assert.match(await html.getByTestId('coder-step-result').innerText(), /ok: created index\.html/);
  assert.equal(await page.locator('[data-testid="coder-steps"] script, [data-testid="coder-steps"] img, [data-testid="coder-steps"] iframe').count(), 0, 'no element came from the arguments');
  assert.equal(await page.evaluate(() => window.__injected), 0);
  assert.equal(await page.evaluate(() => window.__doc), doc, 'the page was never reloaded');
  await shot(page, 'coder-02-step-open');
  await ctx.close();
});
