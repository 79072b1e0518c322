#!/usr/bin/env bash
# The project's test command: typecheck, lint, format, layout, then every test (unit, integration against a real
# nats-server and the Worker in workerd, end to end).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/scripts/install-deps.sh
echo "==> typecheck"
npx --no-install tsc -p .
echo "==> lint"
npx --no-install eslint .
echo "==> format (prettier --check; npm run format fixes it)"
npx --no-install prettier --check --log-level warn .
echo "==> layout (imports point one way, no cycles)"
npx --no-install depcruise platform contracts edge projections consumers read powerbi reports console infra bench --config .dependency-cruiser.cjs
echo "==> tests"
mkdir -p .build
status=0
npx --no-install vitest run --reporter=default --reporter=json --outputFile.json=.build/vitest-results.json "$@" || status=$?
node -e 'const r = require("./.build/vitest-results.json"); console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`)' || true
exit $status
