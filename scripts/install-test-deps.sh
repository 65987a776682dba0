#!/usr/bin/env bash
# Installs what the tester's tests run inside the sandbox and cannot fetch by
# themselves: pytest for the system Python. The sandbox hides /root and /home
# (pyenv, user site-packages), so generated projects' tests run with
# /usr/bin/python3 and its Debian packages; internal/agent's pytest tests fail
# (not skip) when pytest is missing there.
#
# Idempotent: does nothing when /usr/bin/python3 already imports pytest, runs
# `apt-get update` only when the package cannot be installed from the current
# lists, and exits non-zero when pytest still cannot be imported.
set -euo pipefail

python=/usr/bin/python3
pkg=python3-pytest

have_pytest() { "$python" -c 'import pytest' >/dev/null 2>&1; }

if have_pytest; then
  echo "pytest already available: $("$python" -m pytest --version 2>&1)"
  exit 0
fi

if [ ! -x "$python" ]; then
  echo "install-test-deps: $python is missing; install python3 first" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: no apt-get on this machine; install pytest for $python by hand" >&2
  exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-test-deps: need root (or sudo) to apt-get install $pkg" >&2
    exit 1
  fi
  sudo=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() { ${sudo[@]+"${sudo[@]}"} apt-get install -y --no-install-recommends "$pkg"; }

if ! apt_install; then
  echo "install-test-deps: $pkg not installable from the current package lists; running apt-get update"
  ${sudo[@]+"${sudo[@]}"} apt-get update
  apt_install
fi

if ! have_pytest; then
  echo "install-test-deps: $pkg installed but $python still cannot import pytest" >&2
  "$python" -c 'import pytest' || true
  exit 1
fi
echo "pytest installed: $("$python" -m pytest --version 2>&1)"
