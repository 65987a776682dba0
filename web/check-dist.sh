#!/bin/sh
# Fails when the committed web/dist is not what the sources build to, or when
# the sources' unit tests (npm test: vitest, src/**/*.test.ts) fail.
# CI runs it; after changing web/src run `npm run build` and commit web/dist.
# Set SKIP_NPM_CI=1 to reuse an existing node_modules.
set -eu
cd "$(dirname "$0")"
if [ "${SKIP_NPM_CI:-}" != "1" ] || [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
rm -rf .dist-check
npx tsc --noEmit
npx vitest run --reporter=dot
npx vite build --outDir .dist-check --emptyOutDir --logLevel warn
if diff -r dist .dist-check >/dev/null; then
  rm -rf .dist-check
  echo "web/dist is up to date"
else
  diff -r dist .dist-check | head -20 >&2 || true
  rm -rf .dist-check
  echo "web/dist is stale: run 'npm run build' in web/ and commit web/dist" >&2
  exit 1
fi
