// A task of kind change through the dashboard: a project linked to a real git
// repository (served by `git daemon` on loopback) whose test fails, a scripted
// developer model over the OpenAI wire format that edits the code through tool
// calls, and the task page's Change tab: the diff highlighted, the test before
// and after, the branch and the patch.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import { TASK_TIMEOUT, closers, freePort, servers, setup, shot, signedInContext, startServer, teardown, tmp, watch } from './lib.mjs';

before(setup);
after(teardown);

const MATH = 'function add(a, b) {\n  return a - b;\n}\n\nfunction sub(a, b) {\n  return a - b;\n}\n\nmodule.exports = { add, sub };\n';
const MATH_TEST =
  "const test = require('node:test');\nconst assert = require('node:assert');\nconst { add, sub } = require('./math.js');\n\n" +
  "test('add', () => { assert.strictEqual(add(2, 3), 5); });\ntest('sub', () => { assert.strictEqual(sub(5, 3), 2); });\n";

const git = (cwd, ...args) =>
  execFileSync('git', args, {
    cwd,
    env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'Dev', GIT_AUTHOR_EMAIL: 'dev@example.com', GIT_COMMITTER_NAME: 'Dev', GIT_COMMITTER_EMAIL: 'dev@example.com' },
  }).toString();

// serveRepo publishes the repository with `git daemon` and returns its git:// URL.
async function serveRepo() {
  const root = fs.mkdtempSync(path.join(tmp, 'repos-'));
  const src = path.join(root, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'math.js'), MATH);
  fs.writeFileSync(path.join(src, 'math.test.js'), MATH_TEST);
  git(src, 'init', '-q', '-b', 'main');
  git(src, 'add', '-A');
  git(src, 'commit', '-q', '-m', 'initial');
  git(root, 'clone', '-q', '--bare', src, path.join(root, 'math.git'));
  const port = await freePort();
  const d = spawn('git', ['daemon', '--reuseaddr', '--export-all', `--base-path=${root}`, '--listen=127.0.0.1', `--port=${port}`, root], { stdio: 'ignore' });
  servers.push(d);
  for (let i = 0; i < 50; i++) {
    try {
      git(root, 'ls-remote', `git://127.0.0.1:${port}/math.git`);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return `git://127.0.0.1:${port}/math.git`;
}

// The scripted developer: one model turn per step, streamed with tool calls.
const CODER = [
  [['search', { pattern: 'function add' }]],
  [['read_file', { path: 'math.js' }]],
  [['edit_file', { path: 'math.js', search: 'function add(a, b) {\n  return a - b;', replace: 'function add(a, b) {\n  return a + b;' }]],
  [['run', { command: 'node --test' }]],
  [['finish', { summary: 'add subtracted; it now adds.' }]],
];

async function fakeDeveloper() {
  const server = http.createServer(async (req, res) => {
    let raw = '';
    for await (const b of req) raw += b;
    const body = JSON.parse(raw);
    const agent = body.response_format?.json_schema?.name ?? 'coder';
    const turn = body.messages.filter((m) => m.role === 'assistant').length;
    const meta = { id: 'c1', object: 'chat.completion.chunk', created: 1, model: body.model };
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    const chunk = (delta, finish = null) => res.write(`data: ${JSON.stringify({ ...meta, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`);
    chunk({ role: 'assistant', content: '' });
    if (agent === 'coder') {
      const calls = CODER[Math.min(turn, CODER.length - 1)];
      calls.forEach(([name, args], i) => {
        chunk({ tool_calls: [{ index: i, id: `call_${turn}_${i}`, type: 'function', function: { name, arguments: '' } }] });
        const s = JSON.stringify(args);
        for (let j = 0; j < s.length; j += 9) chunk({ tool_calls: [{ index: i, function: { arguments: s.slice(j, j + 9) } }] });
      });
      chunk({}, 'tool_calls');
    } else {
      const answer =
        agent === 'planner'
          ? { summary: 'Fix add', requirements: ['add returns the sum'], user_stories: [{ title: 'Sum', story: 'As a caller I get a + b', acceptance_criteria: ['add(2, 3) is 5'] }] }
          : { approved: true, summary: 'A one-line fix.', findings: [] };
      chunk({ content: JSON.stringify(answer) });
      chunk({}, 'stop');
    }
    res.write(`data: ${JSON.stringify({ ...meta, choices: [], usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 } })}\n\n`);
    res.end('data: [DONE]\n\n');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => (server.close(r), server.closeAllConnections())));
  return `http://127.0.0.1:${server.address().port}`;
}

test('a change task: repository in the project form, the diff, the tests before and after, the branch and the patch', { timeout: TASK_TIMEOUT + 60_000 }, async () => {
  const repoURL = await serveRepo();
  const model = await fakeDeveloper();
  const url = await startServer('change', {
    OPENAI_API_KEY: 'sk-change-test', OPENAI_BASE_URL: `${model}/v1/`, DEFAULT_LLM_PROVIDER: 'openai', DEFAULT_LLM_MODEL: 'gpt-4o', CATALYST_OLLAMA_URL: 'off',
    // The test's git server listens on loopback, which change tasks refuse by default.
    CATALYST_EXPLORER_ALLOW_PRIVATE: 'true',
  });
  const ctx = await signedInContext(url, { viewport: { width: 1440, height: 1000 } });
  const page = await ctx.newPage();
  watch(page, 'change', url);
  page.setDefaultTimeout(20_000);

  // The project form takes the repository and the credential's variable name.
  await page.goto(url + '/');
  await page.getByTestId('project-name').fill('math');
  await page.getByTestId('project-repo-url').fill(repoURL);
  await page.getByTestId('project-repo-credential').fill('catalyst_repo_token_math');
  assert.equal(await page.getByTestId('project-repo-credential').inputValue(), 'CATALYST_REPO_TOKEN_MATH', 'the variable name is upper-cased');
  await page.getByTestId('project-repo-credential').fill('');
  await page.getByTestId('create-project').click();
  await page.getByTestId('project-page').waitFor();
  assert.match(await page.getByTestId('project-repo').innerText(), /math\.git/);

  // With a repository, a task changes it by default.
  assert.ok(await page.getByTestId('task-kind-change').isChecked());
  await page.getByTestId('task-prompt').fill('Fix the failing test of add');
  await page.getByTestId('submit-task').click();
  await page.getByTestId('task-page').waitFor();
  await page.locator('[data-testid="task-page"][data-status="completed"]').waitFor({ timeout: TASK_TIMEOUT });
  const taskId = await page.getByTestId('task-page').getAttribute('data-task-id');

  await page.getByTestId('tab-change').click();
  await page.getByTestId('change-view').waitFor();
  // The branch, and the diff of the commit, highlighted as JavaScript.
  assert.equal(await page.getByTestId('change-branch').innerText(), `catalyst/task-${taskId}`);
  await page
    .locator('[data-testid="diff-file"][data-path="math.js"][data-highlighted="true"]')
    .waitFor()
    .catch(async (e) => {
      await shot(page, 'change-tab-no-diff');
      throw new Error(`${e.message}\nChange tab:\n${await page.getByTestId('change-view').innerHTML()}`);
    });
  const added = page.locator('[data-testid="diff-file"] tr[data-kind="add"]');
  const removed = page.locator('[data-testid="diff-file"] tr[data-kind="del"]');
  assert.equal(await added.count(), 1);
  assert.equal(await removed.count(), 1);
  assert.match(await added.innerText(), /return a \+ b;/);
  assert.match(await removed.innerText(), /return a - b;/);
  assert.ok((await added.locator('.hljs-keyword').count()) > 0, 'the added line is syntax highlighted');
  // The tests before and after: add was failing and now passes; nothing broke.
  const addRow = page.locator('[data-testid="baseline-row"][data-name="add"]');
  assert.equal(await addRow.getAttribute('data-before'), 'failed');
  assert.equal(await addRow.getAttribute('data-after'), 'passed');
  assert.equal(await page.locator('[data-testid="baseline-row"][data-name="sub"]').getAttribute('data-after'), 'passed');
  assert.match(await page.getByTestId('baseline-fixed').innerText(), /Fixed: 1/);
  assert.match(await page.getByTestId('baseline-new').innerText(), /Broken by the change: 0/);
  await shot(page, 'change-tab');

  // The patch link serves the commit as git format-patch text.
  const href = await page.getByTestId('change-patch').getAttribute('href');
  const patch = await page.evaluate(async (h) => {
    const r = await fetch(h);
    return { status: r.status, type: r.headers.get('Content-Type'), text: await r.text() };
  }, href);
  assert.equal(patch.status, 200);
  assert.match(patch.type, /^text\/x-patch/);
  assert.match(patch.text, /^From [0-9a-f]{40} /);
  assert.match(patch.text, /-  return a - b;\n\+  return a \+ b;\n/);
  await ctx.close();
});
