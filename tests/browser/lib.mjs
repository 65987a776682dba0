// Shared set-up of the browser tests: builds and starts `catalyst serve`
// servers, launches Debian's headless chromium, and small helpers. Each
// *.test.mjs file runs in its own process (run.sh) and calls
//   before(setup); after(teardown);
// See e2e.test.mjs for the environment variables.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../..');
export const ART = path.resolve(process.env.ARTIFACTS || path.join(here, 'artifacts'));
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const TASK_TIMEOUT = (Number(process.env.TASK_TIMEOUT_S) || 300) * 1000;
export const SCAN_TIMEOUT = (Number(process.env.SCAN_TIMEOUT_S) || 5) * 1000;
// REQUIRE_SCAN=1: fail unless the scan completes (the explorer agent runs it).
export const REQUIRE_SCAN = process.env.REQUIRE_SCAN === '1';
export const NODES = ['planner', 'architect', 'coder', 'tester', 'reviewer', 'deployer'];
// Per model call of the offline provider on the live test's server; spread over
// the streamed pieces, so agents visibly "type" and nodes stay running a while.
export const LIVE_LATENCY = process.env.LIVE_LATENCY || '1s';

export let base = process.env.CATALYST_URL?.replace(/\/$/, '');
// Per server URL (proxies included): its API token, read from the sign-in
// link it printed, and its previews' origin.
export const tokens = new Map();
export const previews = new Map();
export const dataDirs = new Map();
export const logs = new Map();
if (base) {
  tokens.set(base, process.env.CATALYST_TOKEN ?? '');
  previews.set(base, process.env.CATALYST_PREVIEW_URL ?? '');
}
export const servers = [];
export const closers = []; // other servers the tests started (fake model servers), closed in after()
export let live = null; // the slow server of the live tests, started by the first of them
export let tmp = null;
export let bin = process.env.CATALYST_BIN;
export let browser = null;
export const consoleLines = [];
export const foreignRequests = [];

export function freePort() {
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

export async function waitHealthy(url, ms, server = null, logName = 'server.log') {
  const end = Date.now() + ms;
  let last = '';
  while (Date.now() < end) {
    if (server && server.exitCode !== null) throw new Error(`catalyst serve exited with ${server.exitCode}; see ${ART}/${logName}`);
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

export async function shot(page, name, opts = {}) {
  // From the top, so the sticky header sits where it belongs in a full-page shot.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(ART, `${name}.png`), fullPage: true, ...opts });
}

// The error a failed or cancelled task shows, or ''. It renders with the status,
// so a short wait: a completed task has none, and waiting the page's default
// timeout for it would only slow the test down.
export const taskError = (page) => page.getByTestId('task-error').textContent({ timeout: 1000 }).catch(() => '');

export function watch(page, label, url = base) {
  const origin = new URL(url).origin;
  page.on('console', (m) => consoleLines.push(`[${label}] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[${label}] pageerror: ${e.message}`));
  page.on('request', (r) => {
    const u = r.url();
    if (/^(data|blob|about):/.test(u)) return;
    if (new URL(u).origin !== origin && !u.startsWith(origin.replace(/^http/, 'ws'))) foreignRequests.push(u);
  });
}

// Starts `catalyst serve` on a free port with its own data directory; its
// output goes to ARTIFACTS/<logName>. Stopped in after().
export async function startServer(name, env = {}) {
  if (!bin) {
    // CATALYST_BIN: a binary built beforehand (scripts/test.sh builds one
    // with -race, reusing the compile cache of `go test -race`).
    bin = path.join(tmp, 'catalyst');
    console.log(`# go build -o ${bin} ./cmd/catalyst`);
    execFileSync('go', ['build', '-o', bin, './cmd/catalyst'], { cwd: repo, stdio: 'inherit' });
  }
  const port = await freePort();
  const previewPort = await freePort();
  const url = `http://localhost:${port}`;
  const data = path.join(tmp, `data-${name}`);
  fs.mkdirSync(data);
  const logName = name === 'main' ? 'server.log' : `server-${name}.log`;
  const logPath = path.join(ART, logName);
  const log = fs.openSync(logPath, 'w');
  const server = spawn(bin, ['serve'], {
    // From the checkout, as `go run ./cmd/catalyst serve` would be.
    cwd: repo,
    env: {
      ...process.env, CATALYST_DATA_DIR: data, BACKEND_PORT: String(port), CATALYST_PREVIEW_PORT: String(previewPort),
      CATALYST_PUBLIC_URL: url, MOCK_DEPLOYMENT: 'true', CATALYST_API_TOKEN: '', ...env,
    },
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  servers.push(server);
  console.log(`# catalyst serve (${name}) on ${url} (pid ${server.pid}, data ${data})`);
  await waitHealthy(url, 90_000, server, logName);
  // The token comes from the sign-in link the server printed, as a user's
  // would; it is printed once the executor runs, just after the API answers.
  let out = '';
  for (const end = Date.now() + 30_000; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
    out = fs.readFileSync(logPath, 'utf8');
    if (/sign in: .*\n/.test(out)) break;
  }
  const m = out.match(/sign in: (\S+)\/\?token=(\S+)/);
  assert.ok(m && m[1] === url, `catalyst serve printed no sign-in link for ${url}:\n${out}`);
  const pm = out.match(/previews +(\S+)\/apps\//);
  assert.ok(pm, `catalyst serve printed no preview origin:\n${out}`);
  tokens.set(url, m[2]);
  previews.set(url, pm[1]);
  dataDirs.set(url, data);
  logs.set(url, logPath);
  return url;
}

// A request from a script, with the server's token (node has no cookies).
export function api(url, p, init = {}) {
  const headers = { Authorization: `Bearer ${tokens.get(url)}`, ...(init.headers ?? {}) };
  if (init.method && init.method !== 'GET') headers['Content-Type'] ??= 'application/json';
  return fetch(url + p, { ...init, headers });
}

// A browser context signed in through the server's sign-in link, which must
// leave the token out of the address bar.
export async function signedInContext(url, opts = {}, b = browser) {
  const ctx = await b.newContext(opts);
  const page = await ctx.newPage();
  await page.goto(`${url}/?token=${encodeURIComponent(tokens.get(url))}`);
  assert.equal(page.url(), `${url}/`, 'the sign-in link redirects to the dashboard without the token');
  // Let the dashboard's first requests finish before the page goes.
  await page.getByTestId('projects-page').waitFor({ timeout: 20_000 });
  const cookies = await ctx.cookies(url);
  const session = cookies.find((c) => c.name.startsWith('catalyst_session_'));
  assert.ok(session && session.httpOnly && session.sameSite === 'Strict', `session cookie ${JSON.stringify(cookies)}`);
  await page.close();
  return ctx;
}

// The slow server that the live tests watch tasks on (one for all of them).
export const liveServer = () => (live ??= startServer('live', { CATALYST_OFFLINE_LATENCY: LIVE_LATENCY }));

// Slower still for the polling test: the page starts polling only after its
// WebSocket and SSE attempts failed (about 3 s), then polls every 2 s, so
// the task must run well past that for polls to see it change.
export let slow;
export const slowServer = () => (slow ??= startServer('slow', { CATALYST_OFFLINE_LATENCY: '2s' }));

// A proxy in front of target that forwards plain HTTP, streamed responses
// included, but refuses every WebSocket upgrade with 403: what many corporate
// proxies do. It records the refused upgrades and the event streams asked for.
// refuseEvents: the event streams (SSE) are refused too, with 502, and recorded in refusedEvents.
export async function wsRefusingProxy(target, { refuseEvents = false } = {}) {
  const to = new URL(target);
  const hop = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);
  const pass = (h) => Object.fromEntries(Object.entries(h).filter(([k]) => !hop.has(k.toLowerCase())));
  const refused = [];
  const streams = [];
  const refusedEvents = [];
  const server = http.createServer((req, res) => {
    if (/^\/api\/tasks\/[^/]+\/events/.test(req.url)) {
      streams.push(req.url);
      if (refuseEvents) {
        refusedEvents.push(req.url);
        res.writeHead(502, { 'Content-Type': 'text/plain' }).end('Streaming responses are not allowed');
        return;
      }
    }
    const up = http.request({ hostname: to.hostname, port: to.port, method: req.method, path: req.url, headers: { ...pass(req.headers), host: to.host } }, (r) => {
      res.writeHead(r.statusCode, pass(r.headers));
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  server.on('upgrade', (req, socket) => {
    refused.push(req.url);
    const body = 'WebSockets are not allowed';
    socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  tokens.set(url, tokens.get(target));
  return {
    url,
    refused,
    streams,
    refusedEvents,
    close: () => new Promise((resolve) => (server.close(resolve), server.closeAllConnections())),
  };
}

/** Starts the main server (or waits for CATALYST_URL) and the browser: each test file calls before(setup). */
export async function setup() {
  return setupWith({})();
}

/** setup with extra environment variables for the main server: before(setupWith({...})). */
export function setupWith(env) {
  return () => setupServer(env);
}

async function setupServer(env) {
  fs.mkdirSync(ART, { recursive: true });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'catalyst-e2e-'));
  if (base) await waitHealthy(base, 90_000);
  else base = await startServer('main', env);
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
}

/** Stops what setup and the tests started: each test file calls after(teardown). */
export async function teardown() {
  await browser?.close().catch(() => {});
  await Promise.all(closers.map((close) => close().catch(() => {})));
  await Promise.all(
    servers.map(async (server) => {
      if (server.exitCode !== null || server.signalCode !== null) return;
      server.kill('SIGTERM');
      await new Promise((r) => {
        const t = setTimeout(() => (server.kill('SIGKILL'), r()), 5000);
        server.once('exit', () => (clearTimeout(t), r()));
      });
    }),
  );
  fs.writeFileSync(path.join(ART, 'console.log'), consoleLines.join('\n') + '\n');
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}
