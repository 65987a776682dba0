import { describe, expect, it } from 'vitest';
import { LIMIT, readable, TypingReader } from './partialjson';

/** Feeds text to a reader in pieces of n characters, as deltas arrive. */
function streamed(text: string, n: number): string {
  const r = new TypingReader();
  for (let i = 0; i < text.length; i += n) r.push(text.slice(i, i + n));
  return r.text();
}

const coder = JSON.stringify({
  files: [
    { path: 'app.js', content: 'const list = [];\nfunction add(x) {\n  list.push("x");\n}\n' },
    { path: 'index.html', content: '<p class="hi">café</p>' },
  ],
  notes: 'two files',
});

const reviewer = JSON.stringify({
  approved: true,
  findings: [
    { severity: 'info', file: 'app.js', line: 1, message: '86 lines, 13 functions' },
    { severity: 'warning', file: 'index.html', line: 12, message: 'no <title>' },
  ],
  summary: 'Looks fine',
});

describe('readable: the typing line of partial JSON', () => {
  it('shows a coder file as its path, then its decoded content', () => {
    const cut = coder.slice(0, coder.indexOf('list.push') + 12);
    expect(cut.endsWith('list.push(\\"')).toBe(true);
    expect(readable(cut)).toBe('files: app.js ▸ const list = []; function add(x) { list.push("');
  });

  it('shows reviewer findings as file:line message', () => {
    expect(readable(reviewer)).toBe(
      'approved: true · findings: info app.js:1 86 lines, 13 functions · warning index.html:12 no <title> · summary: Looks fine',
    );
    const cut = reviewer.slice(0, reviewer.indexOf('86 lines') + 8);
    expect(readable(cut)).toBe('approved: true · findings: info app.js:1 86 lines');
  });

  it('reads a planner answer: labels, strings, arrays of strings', () => {
    const plan = '{"requirements":["Add todos","Delete \\"done\\" todos"],"summary":"A todo app\\nin the browser","user_stories":[{"title":"Add","story":"As a user"}]}';
    expect(readable(plan)).toBe('requirements: Add todos · Delete "done" todos · summary: A todo app in the browser · user_stories: Add As a user');
  });

  it('cut mid-string: shows what came of the value', () => {
    expect(readable('{"summary":"A single-page to')).toBe('summary: A single-page to');
  });

  it('cut mid-escape: the half escape shows nothing until it completes', () => {
    expect(readable('{"summary":"caf\\u00')).toBe('summary: caf');
    expect(readable('{"summary":"caf\\')).toBe('summary: caf');
    expect(readable('{"summary":"caf\\u00e9 ok"}')).toBe('summary: café ok');
    const r = new TypingReader();
    r.push('{"summary":"caf\\u00');
    r.push('e9 \\ud83d');
    r.push('\\ude00"}');
    expect(r.text()).toBe('summary: café 😀');
  });

  it('cut mid-key: the key shows once it is whole, with its value', () => {
    expect(readable('{"summary":"A todo app","requ')).toBe('summary: A todo app');
    expect(readable('{"summary":"A todo app","requirements":')).toBe('summary: A todo app');
    expect(readable('{"summary":"A todo app","requirements":["Ad')).toBe('summary: A todo app · requirements: Ad');
  });

  it('cut mid-number and literal', () => {
    expect(readable('{"approved":tr')).toBe('approved: tr');
    expect(readable('{"findings":[{"file":"a.go","line":12')).toBe('findings: a.go:12');
    expect(readable('{"stats":{"count":-1.5e3,"ok":null}}')).toBe('stats: count: -1.5e3 ok: null');
  });

  it('nested arrays and objects', () => {
    expect(readable('{"a":[[1,2],[3,[4,"x"]]],"b":{"c":{"d":"deep"}}}')).toBe('a: 1 · 2 · 3 · 4 · x · b: deep');
    expect(readable('[{"name":"Store","role":"keeps todos"},{"name":"UI"}]')).toBe('Store keeps todos · UI');
    expect(readable('{"empty":[],"also":{},"next":"shown"}')).toBe('next: shown');
  });

  it('gives the same line however the text is cut into deltas', () => {
    for (const text of [coder, reviewer]) {
      const whole = readable(text);
      for (const n of [1, 2, 3, 7, 48]) expect(streamed(text, n)).toBe(whole);
    }
  });

  it('passes plain text through, whitespace collapsed', () => {
    expect(readable('Here is the plan.\n\n1. Add todos\n2. Done')).toBe('Here is the plan. 1. Add todos 2. Done');
    expect(readable('  leading and "quoted" {not json}')).toBe('leading and "quoted" {not json}');
    expect(readable('[link](http://x) text')).toBe('[link](http://x) text');
  });

  it('reads JSON inside a ``` fence, and keeps a fence of plain text', () => {
    expect(readable('```json\n{"summary":"fenced"}\n```')).toBe('summary: fenced');
    expect(readable('```python\nprint(1)\n```')).toBe('```python print(1) ```');
  });

  it('shows the retry notice, then reads the new answer', () => {
    const notice = '\n[retrying after an error: the answer starts over]\n';
    expect(readable(notice)).toBe('[retrying after an error: the answer starts over]');
    expect(readable('{"summary":"A to' + notice + '{"summary":"A todo')).toBe(
      'summary: A to [retrying after an error: the answer starts over] summary: A todo',
    );
    const r = new TypingReader();
    r.push('{"files":[{"path":"a.js","content":"x = \\"');
    r.push('\n[falling back to openai/gpt after an error: the answer starts over]\n');
    r.push('{"files":[{"path":"b.js"');
    expect(r.text()).toBe('files: a.js ▸ x = " [falling back to openai/gpt after an error: the answer starts over] files: b.js');
    expect(readable('plain answer' + notice + 'again')).toBe('plain answer [retrying after an error: the answer starts over] again');
  });

  describe('midway: the page joined while the agent was typing', () => {
    const mid = (text: string, n = text.length) => {
      const r = new TypingReader({ midway: true });
      for (let i = 0; i < text.length; i += n) r.push(text.slice(i, i + n));
      return r.text();
    };

    it('reads the start as the tail of a string value', () => {
      const tail = 'titles are refused","Mark a todo as done","Delete"],"summary":"A single-page todo"';
      expect(mid(tail)).toBe('titles are refused · Mark a todo as done · Delete · A single-page todo');
      expect(mid(tail, 1)).toBe(mid(tail));
      expect(mid(tail, 7)).toBe(mid(tail));
    });

    it('reads a coder answer joined mid-content', () => {
      const tail = 't(x);\\n}\\n","path":"app.js"},{"path":"b.js","content":"let y = \\"z\\";\\n';
      expect(mid(tail)).toBe('t(x); } · app.js · b.js ▸ let y = "z";');
      expect(mid(tail, 3)).toBe(mid(tail));
    });

    it('finds its way when joined between values', () => {
      const tail = 'ue,"findings":[{"severity":"info","file":"app.js","line":1,"message":"86 lines';
      expect(mid(tail)).toBe('ue, · info app.js:1 86 lines');
      expect(mid(':1,"message":"86 lines"},{"file":"b.js"')).toBe(':1, · 86 lines · b.js');
    });

    it('shows a long first value as it streams, without waiting for its end', () => {
      const long = 'x'.repeat(100);
      expect(mid(long, 10)).toBe(long);
    });

    it('an answer seen from its start is read as usual', () => {
      expect(mid(reviewer)).toBe(readable(reviewer));
      expect(mid('{"summary":"a"}\n[retrying after an error: the answer starts over]\nplain')).toBe(
        'summary: a [retrying after an error: the answer starts over] plain',
      );
    });
  });

  it('empty and odd input', () => {
    expect(readable('')).toBe('');
    expect(readable('   \n ')).toBe('');
    expect(readable('{')).toBe('');
    expect(readable('{"')).toBe('');
    expect(readable(undefined as unknown as string)).toBe('');
    const r = new TypingReader();
    r.push(null as unknown as string);
    expect(r.text()).toBe('');
  });

  it('shows malformed JSON raw from where it broke, never throws', () => {
    expect(readable('{oops: 1}')).toBe('{oops: 1}');
    expect(readable('{"summary":"ok" x y')).toBe('summary: ok x y');
    expect(readable('{"a":"b"}} and more')).toBe('a: b } and more');
    for (const s of ['}', ']', '[,]', '{"a"}', '{"a":}', '{"a":"\\u12zz"}', '"', '\\', '[[[[[[', ']]]', '{"a":1,,}']) {
      expect(() => readable(s)).not.toThrow();
    }
  });

  it('keeps the last LIMIT characters, after an ellipsis', () => {
    const long = '{"summary":"' + 'word '.repeat(100) + 'end"}';
    const out = readable(long);
    expect(out.startsWith('…')).toBe(true);
    expect(out.endsWith('word end')).toBe(true);
    expect(out.length).toBeLessThanOrEqual(LIMIT + 1);
    expect(streamed(long, 5)).toBe(out);
  });

  it('keeps the path of a long content in front of its tail', () => {
    const code = 'let a = 1;\\n'.repeat(40);
    const start = '{"files":[{"path":"src/app.js","content":"' + code;
    const out = readable(start);
    expect(out.startsWith('src/app.js ▸ …')).toBe(true);
    expect(out.endsWith('let a = 1;')).toBe(true);
    expect(out.length).toBeLessThanOrEqual(LIMIT + 1);
    expect(streamed(start, 5)).toBe(out);
    // The content ends: the line is the plain tail again, and the next path shows.
    const next = readable(start + '"},{"path":"b.js","content":"x');
    expect(next.startsWith('…')).toBe(true);
    expect(next.endsWith('let a = 1; · b.js ▸ x')).toBe(true);
    // A short content shows its path where it is, once.
    expect(readable('{"files":[{"path":"a.js","content":"short')).toBe('files: a.js ▸ short');
  });

  it('huge input: one pass, linear in the text, cheap per delta', () => {
    const content = 'const x = \\"y\\";\\n'.repeat(200_000); // 3.6 MB of escaped code
    const huge = '{"files":[{"path":"big.js","content":"' + content;
    let t = performance.now();
    const out = readable(huge);
    const whole = performance.now() - t;
    expect(out.startsWith('big.js ▸ …')).toBe(true);
    expect(out.endsWith('const x = "y";')).toBe(true);
    expect(whole).toBeLessThan(2000);

    // Deltas as a model streams them: the cost of each is its own size, not the text so far.
    const r = new TypingReader();
    r.push(huge);
    t = performance.now();
    for (let i = 0; i < 20_000; i++) {
      r.push('a\\n');
      r.text();
    }
    const perDelta = (performance.now() - t) / 20_000;
    expect(r.text().endsWith('a a a')).toBe(true);
    expect(perDelta).toBeLessThan(0.05); // ms; re-reading 3 MB per delta would take far longer
  });
});
