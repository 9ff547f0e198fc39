"""A real HAProxy in front of a mesh, with the shipped config (deploy/haproxy/haproxy.cfg):
health checks on `/readiness`, and its stats page, which says which nodes are UP.

With `stats_socket=True` a second config file adds an admin stats socket (`show stat`
on a Unix socket, as an operator's tooling reads it), and `watch_up()` samples from
it how many nodes HAProxy has UP, every 50 ms, in a thread. `checks` runs a copy of
the config with other health-check timings (`{"downinter": "1s"}`), for a test that
must not wait out the shipped ones.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import requests

from node.localmesh import LocalMesh
from tests.support import ROOT, free_port, wait_for

# Quicker health checks than the shipped 500 ms/2 s, for tests that watch nodes go DOWN
# and come back UP; a DOWN node is still checked less often than a rising or falling
# one, as shipped. Checks more often only make "stays UP" a stricter claim.
FAST_CHECKS = {"inter": "200ms", "fastinter": "200ms", "downinter": "1s"}


class HAProxy:
    """Started routing to every node of `mesh`; `stop()` ends it."""

    def __init__(
        self,
        tmp_path: Path,
        mesh: LocalMesh,
        stats_socket: bool = False,
        checks: dict[str, str] | None = None,
    ) -> None:
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
        configs = ["-f", str(_with_checks(tmp_path, checks) if checks else ROOT / CONFIG)]
        self.socket = tmp_path / "haproxy.sock"
        if stats_socket:
            extra = tmp_path / "haproxy-socket.cfg"
            extra.write_text(f"global\n    stats socket {self.socket} mode 600 level admin\n")
            configs += ["-f", str(extra)]
        self._log = open(tmp_path / "haproxy.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [shutil.which("haproxy") or "/usr/sbin/haproxy", "-db", *configs],
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
        return _node_states(requests.get(self.stats_url, timeout=2).text)

    def socket_states(self) -> dict[str, str]:
        """The same, read with `show stat` from the admin stats socket."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(self.socket))
            sock.sendall(b"show stat\n")
            chunks = iter(lambda: sock.recv(65536), b"")
            return _node_states(b"".join(chunks).decode())

    def rows(self) -> dict[str, dict[str, str]]:
        """Each node's row of the stats page (gw1, gw2, gw3 -> status, stot, ...)."""
        return _node_rows(requests.get(self.stats_url, timeout=2).text)

    def watch_up(self, interval: float = 0.05) -> UpWatch:
        return UpWatch(self, interval)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._log.close()


def _with_checks(tmp_path: Path, checks: dict[str, str]) -> Path:
    """A copy of the shipped config whose `default-server` line has these timings."""
    text = (ROOT / CONFIG).read_text()
    for key, value in checks.items():
        text, found = re.subn(
            rf"^(\s*default-server .*\b{key}) \S+", rf"\1 {value}", text, flags=re.M
        )
        assert found == 1, f"no `{key}` on the default-server line of {CONFIG}"
    copy = tmp_path / "haproxy.cfg"
    copy.write_text(text)
    return copy


def _node_states(stat_csv: str) -> dict[str, str]:
    # "UP 1/2" while rising or falling
    return {name: row["status"].split()[0] for name, row in _node_rows(stat_csv).items()}


def _node_rows(stat_csv: str) -> dict[str, dict[str, str]]:
    return {
        row["svname"]: row
        for row in csv.DictReader(io.StringIO(stat_csv.lstrip("# ")))
        if row["pxname"] == "meshgate_nodes" and row["svname"] not in ("FRONTEND", "BACKEND")
    }


class UpWatch:
    """Samples, until `stop()`, how many nodes HAProxy has UP (from its stats socket)."""

    def __init__(self, haproxy: HAProxy, interval: float) -> None:
        self.samples: list[dict[str, str]] = []
        self.errors: list[str] = []  # a socket that failed to answer: the test says so
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(haproxy, interval), daemon=True)
        self._thread.start()

    def _run(self, haproxy: HAProxy, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.samples.append(haproxy.socket_states())
            except OSError as exc:
                self.errors.append(repr(exc))

    def stop(self) -> list[dict[str, str]]:
        self._stop.set()
        self._thread.join(5)
        return self.samples

    def fewest_up(self) -> tuple[int, dict[str, str]]:
        """The fewest nodes UP in any sample, and that sample."""
        counts = [(sum(v == "UP" for v in s.values()), s) for s in self.samples]
        return min(counts, key=lambda c: c[0])


CONFIG = "deploy/haproxy/haproxy.cfg"
