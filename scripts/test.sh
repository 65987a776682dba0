#!/usr/bin/env bash
# The whole test suite, from a clean checkout on a fresh Debian machine:
# installs what the tests need (Chromium for the browser test, npm packages),
# then runs formatting and vet checks, every Go test with the race detector,
# the dashboard's build-freshness check and the end-to-end browser test.
set -euo pipefail
cd "$(dirname "$0")/.."

export GOTOOLCHAIN=local
export GOFLAGS=${GOFLAGS:-}
export CATALYST_REQUIRE_SANDBOX=${CATALYST_REQUIRE_SANDBOX:-1} # sandbox tests fail, not skip, where isolation is missing

step() { printf '\n==> %s\n' "$*"; }

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './web/node_modules/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi

step "go vet"
# -race: vet then shares compiled packages with `go test -race` below instead
# of compiling every dependency once more (minutes on a fresh machine).
go vet -race ./...

step "go mod tidy is a no-op"
cp go.mod /tmp/catalyst-go.mod.bak; cp go.sum /tmp/catalyst-go.sum.bak
go mod tidy
if ! git diff --quiet -- go.mod go.sum 2>/dev/null; then
  git diff -- go.mod go.sum | head -40
  cp /tmp/catalyst-go.mod.bak go.mod; cp /tmp/catalyst-go.sum.bak go.sum
  echo "go.mod/go.sum are not tidy"; exit 1
fi

step "test dependencies (pytest for the sandbox's /usr/bin/python3)"
scripts/install-test-deps.sh

step "go test -race (SQLite store)"
go test -race -timeout 15m ./...

step "go test -race of the API, the task lifecycle and the CLI again on the MongoDB wire (FerretDB in-process)"
# One switch, as gotosocial runs its suite on both databases: these tests open
# their store through internal/store/storetest/teststore. Left out here, and
# run on SQLite above: the streaming stress tests (they measure the broker and
# the sockets, and 1,500 events of 8 KiB take minutes on FerretDB's SQLite
# backend) and the crash test whose child process opens its own store (the
# CLI's kill -9 test covers a crash on MongoDB). The scale-out tests run on
# the MongoDB wire in every run.
export CATALYST_TEST_STORE=mongo
go test -race -timeout 15m -skip 'TestLoad|TestWebSocketSlowClient|TestWebSocketSeam' ./internal/api/... ./internal/tasks/...
go test -race -timeout 15m ./internal/pipeline/ \
  -run 'Takeover|Steal|CancelStops|CancelPending|Shutdown|StepError|FixLoop|Stalled|Review|Budget|OfflineTodo|DatabaseOutage|PersistentRunError'
go test -race -timeout 15m ./cmd/catalyst/ -run 'RunBeside|Kill9|TodoApp'
unset CATALYST_TEST_STORE

if [ -x web/check-dist.sh ]; then
  step "dashboard build is up to date with its sources"
  web/check-dist.sh
fi

if [ -x tests/browser/run.sh ]; then
  step "browser test (headless Chromium against a real catalyst serve)"
  # Built with -race: reuses what `go test -race` compiled, and the server
  # under the browser is race-checked as well.
  bindir=$(mktemp -d)
  trap 'rm -rf "$bindir"' EXIT
  go build -race -o "$bindir/catalyst" ./cmd/catalyst
  CATALYST_BIN="$bindir/catalyst" tests/browser/run.sh
fi

step "all tests passed"
