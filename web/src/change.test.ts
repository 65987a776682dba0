import { describe, expect, it } from 'vitest';
import { parseDiff } from './components/Change';

const PATCH = `From 1234 Mon Sep 17 00:00:00 2001
From: Catalyst <catalyst@localhost>
Subject: [PATCH] Fix add

---
 math.js | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

diff --git a/math.js b/math.js
index 1111111..2222222 100644
--- a/math.js
+++ b/math.js
@@ -1,3 +1,3 @@
 function add(a, b) {
-  return a - b;
+  return a + b;
 }
-- 
2.39.5
`;

describe('parseDiff', () => {
  it('reads a format-patch into files with numbered lines, without the mail parts', () => {
    const files = parseDiff(PATCH);
    expect(files.length).toBe(1);
    const f = files[0];
    expect(f.path).toBe('math.js');
    expect([f.added, f.removed]).toEqual([1, 1]);
    expect(f.lines.map((l) => [l.kind, l.oldNo, l.newNo])).toEqual([
      ['meta', undefined, undefined],
      ['ctx', 1, 1],
      ['del', 2, undefined],
      ['add', undefined, 2],
      ['ctx', 3, 3],
    ]);
  });
  it('keeps a new file and a deleted one apart', () => {
    const files = parseDiff('diff --git a/n.py b/n.py\nnew file mode 100644\n--- /dev/null\n+++ b/n.py\n@@ -0,0 +1 @@\n+x = 1\ndiff --git a/o.go b/o.go\n--- a/o.go\n+++ /dev/null\n@@ -1 +0,0 @@\n-package o\n');
    expect(files.map((f) => [f.path, f.added, f.removed])).toEqual([
      ['n.py', 1, 0],
      ['o.go', 0, 1],
    ]);
  });
});
