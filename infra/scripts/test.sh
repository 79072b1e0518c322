#!/usr/bin/env bash
# The project's test command: typecheck, lint, then every test (unit, integration against a real
# nats-server and the Worker in workerd, end to end).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/scripts/install-deps.sh
echo "==> typecheck"
npx --no-install tsc -p .
echo "==> lint"
npx --no-install eslint .
echo "==> tests"
npx --no-install vitest run "$@"
