// A model server speaking the OpenAI Chat Completions wire format (JSON, and
// SSE streaming with a final usage chunk), as Ollama, vLLM or LiteLLM do: the
// browser twin of the openai case of modelServer in
// cmd/catalyst/providers_test.go, with the same five agent answers. It answers
// each agent by response_format.json_schema.name, and the coder's tool loop
// (requests offering write_file) with tool calls: it writes a bug in the first
// round (`return a - b`, so `node --test` really fails in the sandbox) and the
// fix in the second, each round a write_file turn then a finish turn.
//
// callMs spreads each answer over that much time, so the dashboard shows every
// state; hold(agent, call) may return a promise that the answer waits on halfway
// through its stream (the agent is seen typing, held in place for a screenshot).
import http from 'node:http';

const SUM_TEST = `const test = require('node:test');
const assert = require('node:assert');
const { sum } = require('./sum.js');
test('sum adds two numbers', () => {
  assert.strictEqual(sum(2, 3), 5, 'sum(2, 3) should be 5');
});
test('sum of nothing is zero', () => {
  assert.strictEqual(sum(0, 0), 0);
});
`;

function answer(agent, call) {
  switch (agent) {
    case 'planner':
      return {
        summary: 'A sum function for a calculator',
        requirements: ['sum(a, b) returns a + b'],
        user_stories: [{ title: 'Add', story: 'As a user I add two numbers', acceptance_criteria: ['sum(2, 3) is 5'] }],
      };
    case 'architect':
      return {
        stack: { language: 'javascript', runtime: 'node', framework: 'none', test_command: ['node', '--test'] },
        components: [{ name: 'sum', responsibility: 'adds two numbers' }],
        files: [
          { path: 'sum.js', purpose: 'the function' },
          { path: 'sum.test.js', purpose: 'its tests' },
        ],
        interfaces: [{ name: 'sum(a, b)', description: 'returns a + b' }],
      };
    case 'tester':
      return { files: [], notes: "the coder's tests cover the requirement" };
    case 'reviewer':
      return { approved: true, summary: 'Small and clear.', findings: [] };
  }
  return {};
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// pieces cuts s as a model streams it.
const pieces = (s) => Array.from({ length: Math.ceil(s.length / 40) }, (_, i) => s.slice(i * 40, i * 40 + 40));

export async function fakeOpenAI({ callMs = 400, hold = () => null } = {}) {
  const calls = {}; // agent -> calls so far
  const auth = []; // the Authorization header of every call
  const models = []; // the model every call asked for
  const coder = []; // the messages of every coder call, as sent
  const usage = { prompt_tokens: 1200, completion_tokens: 300, total_tokens: 1500 };

  const server = http.createServer(async (req, res) => {
    let raw = '';
    for await (const b of req) raw += b;
    let body;
    try {
      body = JSON.parse(raw);
    } catch {
      body = null;
    }
    const fail = (code, message) => {
      res.writeHead(code, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { message, type: 'invalid_request_error' } }));
    };
    if (req.method !== 'POST' || !body) return fail(400, 'bad request');
    if (req.url !== '/v1/chat/completions') return fail(404, 'not found');

    const meta = () => ({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model: body.model });
    auth.push(req.headers.authorization ?? '');
    models.push(body.model);
    // The coder runs a tool loop (its requests offer write_file): the first
    // turn of a round writes the files, the next one finishes. calls.coder
    // counts rounds.
    if ((body.tools ?? []).some((t) => t?.function?.name === 'write_file')) {
      const firstTurn = !(body.messages ?? []).some((m) => m.role === 'assistant');
      const call = firstTurn ? (calls.coder = (calls.coder ?? 0) + 1) : calls.coder;
      if (firstTurn) coder.push(JSON.stringify(body.messages));
      const fix = JSON.stringify(body.messages).includes('Fix round');
      const body2 = fix ? 'a + b' : 'a - b'; // the bug of the first attempt
      const toolCalls = firstTurn
        ? [
            ['write_file', { path: 'sum.js', content: `function sum(a, b) {\n  return ${body2};\n}\nmodule.exports = { sum };\n` }],
            ['write_file', { path: 'sum.test.js', content: SUM_TEST }],
          ]
        : [['finish', { summary: `attempt ${call}` }]];
      const text = firstTurn ? `Writing sum.js (return ${body2}) and its tests, then running them.` : 'Done.';
      if (!body.stream) {
        await sleep(callMs);
        if (firstTurn) await hold('coder', call);
        res.writeHead(200, { 'Content-Type': 'application/json' });
        const tcs = toolCalls.map(([name, args], i) => ({ id: `call_${i}`, type: 'function', function: { name, arguments: JSON.stringify(args) } }));
        res.end(JSON.stringify({ ...meta(), object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: text, tool_calls: tcs }, finish_reason: 'tool_calls' }], usage }));
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      const chunk = (v) => res.write(`data: ${JSON.stringify({ ...meta(), ...v })}\n\n`);
      const parts = pieces(text);
      const gap = callMs / (parts.length + 2);
      for (const [i, p] of parts.entries()) {
        if (res.destroyed) return;
        if (firstTurn && i === Math.floor(parts.length / 2)) await hold('coder', call);
        chunk({ choices: [{ index: 0, delta: { content: p }, finish_reason: null }] });
        await sleep(gap);
      }
      for (const [i, [name, args]] of toolCalls.entries()) {
        chunk({ choices: [{ index: 0, delta: { tool_calls: [{ index: i, id: `call_${i}`, type: 'function', function: { name, arguments: '' } }] }, finish_reason: null }] });
        for (const p of pieces(JSON.stringify(args))) chunk({ choices: [{ index: 0, delta: { tool_calls: [{ index: i, function: { arguments: p } }] }, finish_reason: null }] });
      }
      chunk({ choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }] });
      chunk({ choices: [], usage });
      res.end('data: [DONE]\n\n');
      return;
    }
    const agent = body.response_format?.json_schema?.name ?? '';
    const call = (calls[agent] = (calls[agent] ?? 0) + 1);
    const content = JSON.stringify(answer(agent, call));

    if (!body.stream) {
      await sleep(callMs);
      await hold(agent, call);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(
        JSON.stringify({
          ...meta(),
          object: 'chat.completion',
          choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
          usage,
        }),
      );
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    const chunk = (v) => res.write(`data: ${JSON.stringify({ ...meta(), ...v })}\n\n`);
    const parts = pieces(content);
    const gap = callMs / (parts.length + 1);
    for (const [i, p] of parts.entries()) {
      if (res.destroyed) return;
      if (i === Math.floor(parts.length / 2)) await hold(agent, call);
      chunk({ choices: [{ index: 0, delta: { content: p }, finish_reason: null }] });
      await sleep(gap);
    }
    chunk({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
    chunk({ choices: [], usage });
    res.end('data: [DONE]\n\n');
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    calls,
    auth,
    models,
    coder,
    close: () => new Promise((resolve) => (server.close(resolve), server.closeAllConnections())),
  };
}
