"""The committed stubs in node/plane/generated/ are what scripts/gen_proto.sh makes now."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = Path("node/plane/generated")


def test_the_generated_stubs_match_the_proto(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    subprocess.run([str(ROOT / "scripts/gen_proto.sh")], env=env, check=True, timeout=60)
    made = sorted(p.name for p in (tmp_path / GENERATED).iterdir())
    assert made == ["node_pb2.py", "node_pb2.pyi", "node_pb2_grpc.py"]
    for name in made:
        fresh = (tmp_path / GENERATED / name).read_text()
        committed = (ROOT / GENERATED / name).read_text()
        assert fresh == committed, f"{GENERATED / name} is stale: run scripts/gen_proto.sh"
