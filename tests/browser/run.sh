#!/usr/bin/env bash
# Browser end-to-end test of the dashboard against a real `catalyst serve`.
# Installs what it needs on a fresh Debian machine (chromium from apt,
# playwright-core from npm; playwright never downloads a browser), builds the
# server from this checkout and runs tests/browser/*.test.mjs (each file its own process, one after another).
# Screenshots, the server log and the browser console go to tests/browser/artifacts/.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  echo "== installing Debian chromium"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
command -v go >/dev/null || { [ -x /usr/local/go/bin/go ] && export PATH="$PATH:/usr/local/go/bin"; }

echo "== npm ci (playwright-core)"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error

rm -rf artifacts && mkdir -p artifacts
echo "== browser test (artifacts in $(pwd)/artifacts)"
node --test --test-reporter=spec --test-concurrency=1 ./*.test.mjs
