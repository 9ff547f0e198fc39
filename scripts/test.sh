#!/usr/bin/env bash
# Run the linter, the type checker (strict on mesh/) and the whole test suite (unit,
# integration with real processes, cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# The console's browser tests drive Debian's Chromium (tests/browser): install it when
# missing and we may; otherwise those tests skip and say why.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get install -y -qq chromium || { apt-get update -qq && apt-get install -y -qq chromium; }
fi
.venv/bin/ruff check node mesh tests bench
.venv/bin/python -m mypy mesh
.venv/bin/python -m pytest --durations=15 "$@"
