#!/usr/bin/env bash
# Installs what `npm test` needs besides the npm packages in package.json, so that the
# README's one test command passes on a fresh Debian machine: Debian's Chromium (the
# browser tests drive it through playwright-core), python3-feedparser (a real feed
# reader reads our feeds) and python3-prometheus-client (a real parser reads /metrics).
# Run by `npm test` (pretest) and by .ci/run. A no-op when all is present; when something
# is missing and cannot be installed (no root, no passwordless sudo, no apt-get), it fails
# saying exactly what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "test-deps: $*"; }
fail() { echo "test-deps: $*" >&2; exit 1; }

# The browser tests use $CHROMIUM_PATH when it is set, Debian's /usr/bin/chromium otherwise.
missing=()
if [ -n "${CHROMIUM_PATH:-}" ]; then
  [ -x "$CHROMIUM_PATH" ] || fail "CHROMIUM_PATH is set to $CHROMIUM_PATH, which is not an executable file; unset it to use Debian's chromium"
else
  [ -x /usr/bin/chromium ] || missing+=(chromium)
fi
# The feedparser test runs /usr/bin/python3 (python3-feedparser brings it).
/usr/bin/python3 -c 'import feedparser' >/dev/null 2>&1 || missing+=(python3-feedparser)
# The metrics test parses /metrics with the Prometheus project's parser (prometheus_client.parser).
/usr/bin/python3 -c 'import prometheus_client.parser' >/dev/null 2>&1 || missing+=(python3-prometheus-client)

if [ ${#missing[@]} -gt 0 ]; then
  what="${missing[*]}"
  command -v apt-get >/dev/null 2>&1 \
    || fail "missing $what and there is no apt-get here; install Debian's packages $what (or equivalents: chromium at /usr/bin/chromium or CHROMIUM_PATH, the feedparser and prometheus_client modules for /usr/bin/python3), then run npm test again"
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
      as_root=(sudo -n)
    else
      fail "missing $what; installing it needs root: run 'sudo apt-get install $what' once, then npm test again"
    fi
  fi
  say "installing $what with apt-get (once; later runs find it)"
  export DEBIAN_FRONTEND=noninteractive
  ${as_root[@]+"${as_root[@]}"} apt-get update -q \
    || fail "apt-get update failed; install $what yourself ('apt-get install $what'), then run npm test again"
  ${as_root[@]+"${as_root[@]}"} apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || fail "apt-get install $what failed; install it yourself, then run npm test again"
  [ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || fail "chromium was installed but /usr/bin/chromium is still missing"
  /usr/bin/python3 -c 'import feedparser' >/dev/null 2>&1 || fail "python3-feedparser was installed but /usr/bin/python3 still cannot import feedparser"
  /usr/bin/python3 -c 'import prometheus_client.parser' >/dev/null 2>&1 || fail "python3-prometheus-client was installed but /usr/bin/python3 still cannot import prometheus_client"
  say "installed $what"
else
  say "Chromium, python3-feedparser and python3-prometheus-client are installed"
fi

# A fresh clone has no node_modules yet: the type check, the linter and the test runner live there.
if [ ! -e node_modules/.package-lock.json ]; then
  say "node_modules is missing; running npm ci"
  npm ci --no-audit --no-fund || fail "npm ci failed; run it yourself, then npm test again"
fi
