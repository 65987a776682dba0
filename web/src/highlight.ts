// A small bundled highlighter: highlight.js core with the languages the
// agents generate most. Nothing is fetched at run time.
import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import css from 'highlight.js/lib/languages/css';
import dockerfile from 'highlight.js/lib/languages/dockerfile';
import go from 'highlight.js/lib/languages/go';
import ini from 'highlight.js/lib/languages/ini';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import markdown from 'highlight.js/lib/languages/markdown';
import python from 'highlight.js/lib/languages/python';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';

hljs.registerLanguage('bash', bash);
hljs.registerLanguage('css', css);
hljs.registerLanguage('dockerfile', dockerfile);
hljs.registerLanguage('go', go);
hljs.registerLanguage('ini', ini);
hljs.registerLanguage('javascript', javascript);
hljs.registerLanguage('json', json);
hljs.registerLanguage('markdown', markdown);
hljs.registerLanguage('python', python);
hljs.registerLanguage('sql', sql);
hljs.registerLanguage('typescript', typescript);
hljs.registerLanguage('xml', xml);
hljs.registerLanguage('yaml', yaml);

const BY_EXT: Record<string, string> = {
  sh: 'bash', bash: 'bash', zsh: 'bash',
  css: 'css',
  go: 'go', mod: 'go',
  ini: 'ini', toml: 'ini', cfg: 'ini', env: 'ini',
  js: 'javascript', mjs: 'javascript', cjs: 'javascript', jsx: 'javascript',
  json: 'json',
  md: 'markdown', markdown: 'markdown',
  py: 'python',
  sql: 'sql',
  ts: 'typescript', tsx: 'typescript',
  html: 'xml', htm: 'xml', xml: 'xml', svg: 'xml', vue: 'xml',
  yml: 'yaml', yaml: 'yaml',
};

export function languageFor(path: string): string | null {
  const base = path.split('/').pop() ?? '';
  if (/^dockerfile/i.test(base)) return 'dockerfile';
  if (/^makefile$/i.test(base)) return 'bash';
  const ext = base.includes('.') ? base.split('.').pop()!.toLowerCase() : '';
  return BY_EXT[ext] ?? null;
}

const LIMIT = 300_000;

/** Highlighted HTML (escaped by highlight.js), one string per line so lines can be numbered. */
export function highlightLines(path: string, code: string): { lang: string | null; lines: string[] } {
  const lang = languageFor(path);
  let html: string;
  if (lang && code.length <= LIMIT) {
    html = hljs.highlight(code, { language: lang, ignoreIllegals: true }).value;
  } else {
    html = escape(code);
  }
  return { lang, lines: splitKeepingSpans(html) };
}

function escape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

// highlight.js spans may cross newlines (block comments, template strings):
// close open spans at each line end and reopen them on the next line.
function splitKeepingSpans(html: string): string[] {
  const out: string[] = [];
  const open: string[] = [];
  let cur = '';
  const re = /(<span[^>]*>)|(<\/span>)|(\n)|([^<\n]+|<)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(html))) {
    if (m[1]) {
      open.push(m[1]);
      cur += m[1];
    } else if (m[2]) {
      open.pop();
      cur += m[2];
    } else if (m[3]) {
      out.push(cur + '</span>'.repeat(open.length));
      cur = open.join('');
    } else cur += m[4];
  }
  out.push(cur + '</span>'.repeat(open.length));
  if (out.length > 1 && out[out.length - 1] === '') out.pop();
  return out;
}
