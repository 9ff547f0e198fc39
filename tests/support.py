"""Helpers for tests that run real processes on loopback.

Every process is started with its own free port, its output captured to a log
file under the test's tmp dir, and stopped at teardown. Waiting is always a
poll of a condition with a deadline, never a bare sleep.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis

from node.identity.strength import weakness
from node.localmesh import Child, EchoWorker, LocalNode
from node.localmesh import free_port as free_port
from node.localmesh import http_ok as http_ok

ROOT = Path(__file__).resolve().parent.parent


def free_port_run(count: int) -> int:
    """A free port whose next `count - 1` ports are free too, held at once while checked
    (`meshgate demo --port P` takes P, P+1, ...: a port after the first may be taken)."""
    for _ in range(100):
        base = free_port()
        held: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError(f"no run of {count} free ports found")


def strong(label: str) -> str:
    """A test secret derived from `label` that passes the node's strength check (so no
    words in it: the check refuses secrets made of words like "secret" or "admin")."""
    digest = hashlib.sha256(label.encode()).digest()
    value = "k" + base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert weakness(value) is None, label
    return value


# Every test mesh shares this secret (a mesh refuses to start without one).
MESH_SECRET = strong("test-mesh-secret")


@contextlib.contextmanager
def http_server(handler: Callable[..., BaseHTTPRequestHandler]) -> Iterator[str]:
    """A loopback HTTP server of `handler` in a thread, for the block; its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def wait_for(
    condition: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll `condition` until it returns a truthy value; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the condition may fail while a process starts
            last_error = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what or condition}: {last_error}"
    )


def systemd_unit_values(key: str) -> list[str]:
    """Every value of `key=` in the shipped systemd unit (deploy/systemd/meshgate@.service)."""
    text = (ROOT / "deploy/systemd/meshgate@.service").read_text()
    return [v for line in re.findall(rf"^{key}=(.*)$", text, re.M) for v in line.split()]


# Nodes and workers are started by the package's local-mesh harness, as the demo and
# the benchmarks start them; these keep the names and signatures the tests use.
Proc = Child


def start_echo_worker(tmp_path: Path, *extra: str, model: str = "echo-model") -> tuple[Proc, str]:
    """Start `meshgate echo-worker` on a free port; return it and its base URL once healthy."""
    worker = EchoWorker(tmp_path, free_port(), model, extra=extra)
    worker.wait_healthy(timeout=15)
    return worker.proc, worker.url


# Flags every test node gets first (a test's own flags come after, and win).
TEST_NODE_FLAGS = ("--log-level", "info", "--drain-delay-secs", "0")


class Node(LocalNode):
    """A `meshgate serve` process on a free port (or `port`), and how to reach it."""

    def __init__(
        self,
        tmp_path: Path,
        *args: str,
        name: str = "node-1",
        port: int | None = None,
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        flags = [*TEST_NODE_FLAGS, *args]
        super().__init__(tmp_path, name, port or free_port(), flags, env, data_dir=data_dir)


def start_node(tmp_path: Path, *args: str, ready: bool = True, **kwargs: Any) -> Node:
    node = Node(tmp_path, *args, **kwargs)
    if ready:
        node.wait_ready()
    else:
        node.wait_serving()
    return node


class RedisServer:
    """A redis-server child process on a fixed loopback port; can be killed and restarted."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no"]  # nothing on disk
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self.ping, timeout=10, what=f"redis-server on {self.port}:\n{self.log()}")

    def ping(self) -> bool:
        with self.client() as client:
            return bool(client.ping())

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2.0)

    def signal(self, sig: signal.Signals) -> None:
        assert self.popen is not None
        self.popen.send_signal(sig)

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)  # in case a test paused it
            self.popen.kill()
        if self.popen is not None:
            self.popen.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
