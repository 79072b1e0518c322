#!/usr/bin/env bash
# Sets up and runs the local mesh on embedded defaults: installs what is missing, then starts
# nats-server, declares the streams and serves the edge Worker in workerd.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/scripts/install-deps.sh
exec npx --no-install tsx infra/cli.ts up "$@"
