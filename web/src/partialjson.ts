// A tolerant reader of the partial JSON that agents stream while they "type".
//
// Agents ask models for structured JSON, so the token deltas are raw JSON cut
// anywhere (mid-key, mid-string, mid-escape, mid-number). TypingReader turns
// that into a short line a person can read, one delta at a time: each pushed
// character is looked at once (no re-parsing), and only the tail of the
// rendering is kept, so a long answer costs what its deltas cost.
//
// Rendering rules (what the typing line shows):
//   - String values are decoded (\n, \", \u00e9, surrogate pairs) and shown
//     without their quotes; numbers, true/false/null as they are.
//   - Keys of the top-level object label their values: `summary: A todo app`,
//     `approved: true · findings: …`; members of the top-level object and
//     items of any array are separated by ` · `.
//   - Deeper keys are hidden, except before numbers and literals
//     (`count: 3`), whose meaning is in the key. Members of a nested object
//     are separated by a space.
//   - A `path` or `file` string is followed by ` ▸ ` and its content
//     (`app.js ▸ const list = …`), or by `:line` when a `line` number comes
//     next (`app.js:1 86 lines`). While a content runs longer than the line,
//     its path stays in front: `app.js ▸ …the last characters`.
//   - Whitespace runs, newlines included, collapse to one space.
//   - Text that does not start with `{` or `[` (after an optional ``` fence
//     line) is not JSON: it passes through as it is (whitespace collapsed).
//     JSON that turns out malformed is shown raw from the point it broke.
//   - A reader told that the text may begin mid-answer (`midway`: the page
//     joined while the agent was typing) reads a first answer that does not
//     start with `{` or `[` as the tail of a JSON string, inside a container
//     of unknown kind, so it does not show `tail","next":"…` raw. Values whose
//     place is unknown are separated by ` · ` and shown without labels.
//   - A restart notice ("[retrying after an error: the answer starts over]",
//     streamed as its own delta) is shown as it is, and what follows is read
//     as a new answer.
//   - Only the last LIMIT characters are shown, after a leading "…" once the
//     rendering is longer.
// The reader never throws.

/** Visible characters shown at most. */
export const LIMIT = 200;
/** The rendering kept before it is trimmed back to LIMIT (amortizes the slicing). */
const KEEP = 8 * LIMIT;
/** Raw text of an answer kept until it shows something, for malformed JSON. */
const RAW_KEEP = 256;
const KEY_MAX = 64;

/** The notice a retried or rerouted model call streams before its new answer. */
const NOTICE = /\n?\[[^[\]\n]{0,200}: the answer starts over\]\n?/g;

interface Frame {
  obj: boolean;
  /** The container the text began in, midway (never closed: its kind is a guess). */
  virtual?: boolean;
  /** The key of the member being read (objects). */
  key: string;
  /** Values begun in this container so far. */
  n: number;
  /** The last value was a path/file string: its content or line comes next. */
  file: boolean;
}

type Mode = 'start' | 'fence' | 'json' | 'after' | 'text';
/** `any`: a key or a value (in a virtual container); `role`: a `u` string ended, a key if `:` comes. */
type Expect = 'value' | 'key' | 'colon' | 'sep' | 'any' | 'role';

const isWS = (c: string) => c === ' ' || c === '\n' || c === '\r' || c === '\t';
const isHex = (c: string) => (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
const isDigit = (c: string) => c >= '0' && c <= '9';
const isNumberChar = (c: string) => isDigit(c) || c === '.' || c === '+' || c === '-' || c === 'e' || c === 'E';
const LITERALS = ['true', 'false', 'null'];
const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', '/': '/', '\\': '\\', '"': '"' };

/** The last n characters of s, not starting with half a surrogate pair or a space. */
function tail(s: string, n: number): string {
  let t = s.slice(-n);
  const c = t.charCodeAt(0);
  if (c >= 0xdc00 && c <= 0xdfff) t = t.slice(1);
  return t.trimStart();
}

export class TypingReader {
  // The rendering: out, plus what goes before the next visible character.
  private out = '';
  private cut = false;
  /** Characters appended to out so far (out keeps the last of them). */
  private total = 0;
  /** The path of the content being read (`app.js ▸ `), kept in front of a long one. */
  private pin = '';
  /** total when that content began. */
  private pinFrom = 0;
  /** The path/file string being read or last read. */
  private name = '';
  /** The string value being read is a path/file. */
  private naming = false;
  /** Separator/label owed before the next visible character. */
  private pend = '';
  /** A break between answers or values owed before the next visible character. */
  private brk = '';
  private space = false;

  // The answer being read.
  private mode: Mode = 'start';
  private fence = '';
  private raw = '';
  private shown = false;

  // JSON state.
  private stack: Frame[] = [];
  private expect: Expect = 'value';
  /** In a string: 'k' a key, 'v' a value, 'u' a key or a value (held like a key); '' outside. */
  private str: '' | 'k' | 'v' | 'u' = '';
  /** Escape: -1 none, 0 after the backslash, 1..4 hex digits of \u read so far. */
  private esc = -1;
  private hex = '';
  private key = '';
  /** The last value read was a string (a quote just closed it). */
  private afterString = false;
  /** The number or literal being read ('' outside one). */
  private tok = '';

  /** The text may begin in the middle of an answer (see the rules above). */
  private midway: boolean;

  constructor(opts: { midway?: boolean } = {}) {
    this.midway = !!opts.midway;
  }

  /** Reads the next piece of streamed text. */
  push(chunk: string): void {
    if (typeof chunk !== 'string' || chunk === '') return;
    let at = 0;
    if (chunk.includes('the answer starts over]')) {
      NOTICE.lastIndex = 0;
      for (let m = NOTICE.exec(chunk); m; m = NOTICE.exec(chunk)) {
        this.feed(chunk, at, m.index);
        this.notice(m[0].trim());
        at = m.index + m[0].length;
      }
    }
    this.feed(chunk, at, chunk.length);
  }

  /** The rendering so far: at most LIMIT characters (plus a leading "…"). */
  text(): string {
    if (this.pin && this.total - this.pinFrom > LIMIT - this.pin.length) return this.pin + '…' + tail(this.out, LIMIT - this.pin.length);
    if (this.out.length > LIMIT) this.cut = true;
    return this.cut ? '…' + tail(this.out, LIMIT) : this.out;
  }

  private feed(s: string, from: number, to: number) {
    for (let i = from; i < to; i++) {
      const c = s[i];
      if (!this.shown && this.mode === 'json' && this.raw.length < RAW_KEEP) this.raw += c;
      switch (this.mode) {
        case 'json':
          this.json(c);
          break;
        case 'text':
          this.emit(c);
          break;
        case 'start':
          this.begin(c);
          break;
        case 'fence':
          this.fence += c;
          if (c === '\n') this.mode = 'start';
          else if (this.fence.length > 32) this.toText('');
          break;
        case 'after':
          if (isWS(c) || c === '`') break;
          if (c === '{' || c === '[') {
            this.brk = ' · ';
            this.open(c);
          } else {
            this.brk = ' ';
            this.toText(c);
          }
          break;
      }
    }
  }

  /** The first characters of an answer: JSON, a ``` fence before it, or text. */
  private begin(c: string) {
    if (isWS(c)) {
      if (this.fence) this.fence += c;
    } else if (c === '`' && !this.fence) {
      this.fence = c;
      this.mode = 'fence';
    } else if (c === '{' || c === '[') {
      this.fence = '';
      this.raw = c;
      this.open(c);
    } else if (this.midway && !this.fence) {
      // Joined mid-answer: most of an answer is string values, so guess one.
      this.mode = 'json';
      this.shown = true; // no raw text to fall back on
      this.stack = [{ obj: true, key: '', n: 0, file: false, virtual: true }];
      this.str = 'u';
      this.key = '';
      this.strChar(c);
    } else {
      this.toText(c);
    }
  }

  /** From here on the answer is text: shown as it comes. */
  private toText(c: string) {
    this.mode = 'text';
    this.str = '';
    this.tok = '';
    this.stack = [];
    const held = this.fence;
    this.fence = '';
    for (const h of held) this.emit(h);
    for (const h of c) this.emit(h);
  }

  /** Malformed JSON: show the raw text from where it stops making sense. */
  private broken(c: string) {
    const raw = this.shown ? c : this.raw;
    this.pend = this.shown ? ' ' : '';
    this.toText(raw);
  }

  private notice(text: string) {
    this.midway = false; // the answer after a notice is seen from its start
    this.reset();
    this.brk = ' ';
    for (const c of text) this.emit(c);
    this.reset();
    this.brk = ' ';
  }

  private reset() {
    this.mode = 'start';
    this.fence = '';
    this.raw = '';
    this.shown = false;
    this.stack = [];
    this.expect = 'value';
    this.str = '';
    this.esc = -1;
    this.hex = '';
    this.key = '';
    this.tok = '';
    this.afterString = false;
    this.pin = '';
    this.naming = false;
    this.pend = '';
    this.space = false;
  }

  // --- output ---

  private emit(c: string) {
    if (isWS(c)) {
      this.space = true;
      return;
    }
    let s = '';
    if (this.out) {
      s = this.brk;
      if (this.pend) s += s.endsWith(' ') ? this.pend.trimStart() : this.pend;
      else if (this.space && !s) s = ' ';
    } else {
      s = this.pend.replace(/^[ ·▸]+/, '');
    }
    this.brk = '';
    this.pend = '';
    this.space = false;
    this.shown = true;
    this.out += s + c;
    this.total += s.length + c.length;
    if (this.out.length > KEEP) {
      this.out = this.out.slice(-LIMIT);
      this.cut = true;
    }
  }

  // --- JSON ---

  private json(c: string) {
    if (this.str) {
      this.strChar(c);
      return;
    }
    if (this.tok) {
      const word = this.tok[0] >= 'a';
      if (word ? c >= 'a' && c <= 'z' : isNumberChar(c)) {
        if (this.tok.length >= 64) return; // a number that long is not worth showing on
        this.tok += c;
        if (word && !LITERALS.some((l) => l.startsWith(this.tok))) this.broken(c);
        else this.emit(c);
        return;
      }
      this.tok = '';
      this.valueEnd(false);
    }
    if (isWS(c)) return;
    if (this.expect === 'role') {
      // The string just read was a key if a colon follows, else a value.
      if (c === ':') {
        this.top()!.obj = true;
        this.expect = 'value';
        return;
      }
      this.heldValue();
    }
    switch (this.expect) {
      case 'value':
        if (c === '"') {
          this.valueStart('string');
          this.str = 'v';
        } else if (c === '{' || c === '[') {
          this.open(c);
        } else if (c === '-' || isDigit(c) || c === 't' || c === 'f' || c === 'n') {
          this.valueStart('scalar');
          this.tok = c;
          this.emit(c);
        } else if ((c === ']' || c === '}') && this.stack.length) {
          this.close(); // [] or a trailing comma
        } else {
          this.broken(c);
        }
        return;
      case 'any':
      case 'key':
        if (c === '"') {
          this.str = this.expect === 'any' ? 'u' : 'k';
          this.key = '';
        } else if (this.expect === 'any' && c !== ']' && c !== '}') {
          this.expect = 'value';
          this.json(c);
        } else if (c === '}' || c === ']') {
          this.close();
        } else {
          this.broken(c);
        }
        return;
      case 'colon':
        if (c === ':') this.expect = 'value';
        else this.broken(c);
        return;
      case 'sep': {
        const f = this.top();
        if (c === ',') this.expect = f?.virtual ? 'any' : f?.obj ? 'key' : 'value';
        else if (c === '}' || c === ']') this.close();
        else if (f?.virtual && (c === '{' || c === '[')) this.open(c);
        else if (f?.virtual && this.afterString) {
          // The quote taken for the end of a string began one: read it again as such.
          this.str = 'u';
          this.key = '';
          this.strChar(c);
        } else this.broken(c);
        return;
      }
    }
  }

  private strChar(c: string) {
    if (this.esc === 0) {
      if (c === 'u') {
        this.esc = 1;
        this.hex = '';
        return;
      }
      this.esc = -1;
      this.strOut(ESCAPES[c] ?? c);
      return;
    }
    if (this.esc > 0) {
      if (isHex(c)) {
        this.hex += c;
        if (this.hex.length < 4) return;
        this.esc = -1;
        this.strOut(String.fromCharCode(parseInt(this.hex, 16)));
        return;
      }
      this.esc = -1; // a broken \u escape: drop it, read c as usual
    }
    if (c === '\\') {
      this.esc = 0;
    } else if (c === '"') {
      const str = this.str;
      this.str = '';
      if (str === 'k') this.expect = 'colon';
      else if (str === 'u') this.expect = 'role';
      else this.valueEnd(true);
    } else {
      this.strOut(c);
    }
  }

  private strOut(c: string) {
    if (this.str === 'v') {
      this.emit(c);
      if (this.naming && this.name.length < KEY_MAX) this.name += c;
    }
    else if (this.key.length < KEY_MAX) this.key += c;
    else if (this.str === 'u') {
      // Too long for a key: a value, shown from here on as it comes.
      this.heldValue();
      this.str = 'v';
      this.emit(c);
    }
  }

  /** A `u` string turned out to be a value: shows what was held of it. */
  private heldValue() {
    const held = this.key;
    this.key = '';
    this.valueStart('string');
    for (const h of held) this.emit(h);
    this.valueEnd(true);
  }

  private top(): Frame | undefined {
    return this.stack[this.stack.length - 1];
  }

  private open(c: string) {
    if (this.mode !== 'json') {
      this.mode = 'json';
      this.pend = ''; // owed by an empty container of an answer before
    } else {
      this.valueStart('container');
    }
    this.stack.push({ obj: c === '{', key: '', n: 0, file: false });
    this.expect = c === '{' ? 'key' : 'value';
  }

  private close() {
    if (this.top()?.virtual) {
      // Closes a container begun before the text did: what holds it is unknown too.
      this.afterString = false;
      this.expect = 'sep';
      return;
    }
    this.stack.pop();
    this.valueEnd(false);
  }

  /** Owes the separator and label that go before a value about to begin. */
  private valueStart(kind: 'string' | 'scalar' | 'container') {
    const f = this.top();
    this.pin = '';
    this.naming = false;
    if (!f) return;
    if (f.obj) f.key = this.key;
    let sep = '';
    if (f.virtual) {
      sep = f.n ? ' · ' : '';
      if (kind === 'scalar' && f.obj && f.key) sep += f.key + ': ';
    } else if (!f.obj) {
      sep = f.n ? ' · ' : '';
    } else if (this.stack.length === 1) {
      sep = (f.n ? ' · ' : '') + f.key + ': ';
    } else if (f.file && kind === 'scalar' && f.key === 'line') {
      sep = ':';
    } else {
      sep = f.file ? ' ▸ ' : f.n ? ' ' : '';
      if (kind === 'scalar') sep += f.key + ': ';
      if (f.file && kind === 'string') {
        this.pin = this.name.replace(/\s+/g, ' ').trim() + ' ▸ ';
        this.pinFrom = this.total;
      }
      this.naming = kind === 'string' && (f.key === 'path' || f.key === 'file');
      if (this.naming) this.name = '';
    }
    // The first value of a container adds to what the container owes (its
    // label); a later one replaces what an empty sibling owed and never showed.
    this.pend = f.n ? sep : this.pend + sep;
    f.n++;
    f.file = false;
  }

  private valueEnd(string: boolean) {
    this.afterString = string;
    this.pin = '';
    this.naming = false;
    const f = this.top();
    if (!f) {
      this.mode = 'after';
      this.raw = '';
      return;
    }
    this.expect = 'sep';
    if (f.obj && string && (f.key === 'path' || f.key === 'file')) f.file = true;
  }
}

/** Renders a whole streamed text at once (see TypingReader). */
export function readable(text: string): string {
  try {
    const r = new TypingReader();
    r.push(text);
    return r.text();
  } catch {
    return typeof text === 'string' ? text.slice(-LIMIT) : '';
  }
}
