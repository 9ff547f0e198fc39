#!/usr/bin/env bash
# Regenerate node/plane/generated/ from proto/meshgate/v1/node.proto (never edit the output).
# OUT=/some/dir writes there instead (tests/unit/test_plane_proto.py compares the two).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}"
python="${PYTHON:-.venv/bin/python}"
# Mapping the proto under node/plane/generated makes the stubs import each other by
# their package path (grpc_tools has no relative-import option).
"$python" -m grpc_tools.protoc \
  -Inode/plane/generated=proto/meshgate/v1 \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  node/plane/generated/node.proto
