"""The data dir is 0700 and its files 0600, whatever umask the node starts with."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import requests

from tests.integration.conftest import Cluster
from tests.support import wait_for


def _modes(data_dir: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(data_dir.stat().st_mode)}
    for path in data_dir.rglob("*"):
        found[str(path.relative_to(data_dir))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_every_file_in_the_data_dir_is_private_under_a_permissive_umask(
    cluster: Cluster, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data-open"
    data_dir.mkdir(mode=0o777)
    data_dir.chmod(0o777)
    stale = data_dir / "left-by-an-older-version.json"
    stale.write_text("{}")
    stale.chmod(0o666)
    previous = os.umask(0)  # the node inherits it, as from a careless init system
    try:
        node = cluster.node(
            "--data-dir",
            str(data_dir),
            "--mesh-log-compaction-entries",
            "10",
            "--mesh-log-compaction-secs",
            "1",
            ready=False,
        )
    finally:
        os.umask(previous)
    for i in range(15):  # journal, then a snapshot, and audit entries
        requests.post(node.url + "/ha/config", json={"key": f"k{i}", "value": i}, timeout=5)
    wait_for(lambda: (data_dir / "raft.dump").exists(), what="a snapshot written")
    modes = _modes(data_dir)
    for name in ("mesh.secret", "raft.journal", "raft.dump", "audit.jsonl", stale.name):
        assert name in modes, name
    assert modes["."] == 0o700
    loose = {name: oct(mode) for name, mode in modes.items() if name != "." and mode & 0o077}
    assert loose == {}
