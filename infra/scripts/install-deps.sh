#!/usr/bin/env bash
# Installs what the mesh needs on a fresh Debian machine: the npm packages (from package-lock.json)
# and Debian's nats-server, sqlite3, openssl and chromium. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> npm ci" >&2
  npm ci --no-audit --no-fund >&2
fi

# Debian packages: nats-server (the log), sqlite3 and openssl (the tests: the edge spool's watchdog
# test edits workerd's stored alarms; the production NATS configs are checked with a throwaway certificate),
# chromium (the report export's headless engine and the pages' browser tests, driven by playwright-core:
# Playwright's own browser download cannot run on a closed network, Debian's package can).
missing=()
if [ -z "${NATS_SERVER_BIN:-}" ] && ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then missing+=(nats-server); fi
command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ -z "${CHROMIUM_BIN:-}" ] && ! command -v chromium >/dev/null 2>&1; then missing+=(chromium); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing Debian's ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi
