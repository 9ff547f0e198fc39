#!/usr/bin/env bash
# Run the whole test suite (unit, integration with real processes, cluster) and the linter.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check node mesh tests bench
.venv/bin/python -m pytest "$@"
