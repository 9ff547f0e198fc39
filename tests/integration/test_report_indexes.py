"""The reports read `commit_index` and `applied_index` together: under steady writes no
report on /ha/local, /ha/status or /ha/health shows applied ahead of commit."""

from __future__ import annotations

import time

import requests

from tests.integration.conftest import Cluster
from tests.support import free_port, strong
from tests.writers import Writers

ADMIN = strong("admin-key")
REPORTS = ("/ha/local", "/ha/status", "/ha/health")


def test_applied_never_exceeds_commit_under_writes(cluster: Cluster) -> None:
    node = cluster.node(
        "--mesh-bind",
        f"127.0.0.1:{free_port()}",
        "--control-plane-api-keys",
        f"a:ops:admin:{ADMIN}",
        ready=False,  # no worker: serving the control plane is enough here
    )
    headers = {"Authorization": f"Bearer {ADMIN}"}
    seen: list[tuple[str, int, int]] = []
    with requests.Session() as session, Writers([node], headers=headers, pause=0) as writers:
        deadline = time.monotonic() + 20
        # Reads interleaved with at least 100 acknowledged writes.
        while len(writers.acknowledged()) < 100 and time.monotonic() < deadline:
            path = REPORTS[len(seen) % len(REPORTS)]
            body = session.get(node.url + path, headers=headers, timeout=5).json()
            seen.append((path, body["commit_index"], body["applied_index"]))
    ahead = [report for report in seen if report[2] > report[1]]
    assert len(writers.acknowledged()) >= 100, writers.snapshot()[-3:]
    assert ahead == [], f"{len(ahead)} of {len(seen)} reports: {ahead[:5]}"
    assert seen[-1][2] > seen[0][2]
