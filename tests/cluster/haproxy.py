"""A real HAProxy in front of a mesh, with the shipped config (deploy/haproxy/haproxy.cfg):
health checks on `/readiness`, and its stats page, which says which nodes are UP."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
from pathlib import Path

import requests

from node.localmesh import LocalMesh
from tests.support import ROOT, free_port, wait_for


class HAProxy:
    """Started routing to every node of `mesh`; `stop()` ends it."""

    def __init__(self, tmp_path: Path, mesh: LocalMesh) -> None:
        port, stats = free_port(), free_port()
        env = {
            **os.environ,
            "HAPROXY_BIND": f"127.0.0.1:{port}",
            "HAPROXY_STATS_BIND": f"127.0.0.1:{stats}",
        }
        for i, node in enumerate(mesh.nodes, 1):
            env[f"MESHGATE_GW{i}"] = f"127.0.0.1:{node.port}"
        self.url = f"http://127.0.0.1:{port}"
        self.stats_url = f"http://127.0.0.1:{stats}/stats;csv"
        self._log = open(tmp_path / "haproxy.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [shutil.which("haproxy") or "/usr/sbin/haproxy", "-db", "-f", str(ROOT / CONFIG)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(
                lambda: requests.get(self.url + "/readiness", timeout=1).status_code == 200,
                what="haproxy routing to a ready node",
            )
        except BaseException:
            self.stop()
            raise

    def states(self) -> dict[str, str]:
        """Each node's state in HAProxy (gw1, gw2, gw3 -> UP, DOWN, ...), from its stats page."""
        # "UP 1/2" while rising or falling
        return {name: row["status"].split()[0] for name, row in self.rows().items()}

    def rows(self) -> dict[str, dict[str, str]]:
        """Each node's row of HAProxy's stats page (gw1, gw2, gw3 -> status, stot, ...)."""
        text = requests.get(self.stats_url, timeout=2).text.lstrip("# ")
        return {
            row["svname"]: row
            for row in csv.DictReader(io.StringIO(text))
            if row["pxname"] == "meshgate_nodes" and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._log.close()


CONFIG = "deploy/haproxy/haproxy.cfg"
