#!/usr/bin/env bash
# Run the demo: echo workers and meshgate on loopback, until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/meshgate demo "$@"
