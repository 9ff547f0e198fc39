#!/usr/bin/env bash
# Run the linter, the type checker (strict on mesh/) and the whole test suite (unit,
# integration with real processes, cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check node mesh tests bench
.venv/bin/python -m mypy mesh
.venv/bin/python -m pytest --durations=15 "$@"
