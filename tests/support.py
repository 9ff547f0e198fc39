"""Helpers for tests that run real processes on loopback.

Every process is started with its own free port, its output captured to a log
file under the test's tmp dir, and stopped at teardown. Waiting is always a
poll of a condition with a deadline, never a bare sleep.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import requests

from node.identity.strength import weakness

ROOT = Path(__file__).resolve().parent.parent


def strong(label: str) -> str:
    """A test secret derived from `label` that passes the node's strength check (so no
    words in it: the check refuses secrets made of words like "secret" or "admin")."""
    digest = hashlib.sha256(label.encode()).digest()
    value = "k" + base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert weakness(value) is None, label
    return value


# Every test mesh shares this secret (a mesh refuses to start without one).
MESH_SECRET = strong("test-mesh-secret")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


class Proc:
    """A child process started with `python -m node.cli ...`."""

    def __init__(
        self,
        args: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        wrap: list[str] | None = None,  # e.g. ["ip", "netns", "exec", NS] (it execs, same pid)
    ):
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.popen = subprocess.Popen(
            [*(wrap or []), sys.executable, "-m", "node.cli", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=full_env,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)
        self._log.close()

    def terminate(self) -> None:
        """Send SIGTERM without waiting (stop() then waits)."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        self._log.close()
        return self.popen.returncode

    def wait_exit(self, timeout: float = 30.0) -> int:
        code = self.popen.wait(timeout=timeout)
        self._log.close()
        return code


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        return requests.get(url, timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def start_echo_worker(tmp_path: Path, *extra: str, model: str = "echo-model") -> tuple[Proc, str]:
    """Start `meshgate echo-worker` on a free port; return it and its base URL once healthy."""
    port = free_port()
    proc = Proc(
        ["echo-worker", "--host", "127.0.0.1", "--port", str(port), "--model", model, *extra],
        tmp_path / f"echo-{port}.log",
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_ok(url + "/health"), what=f"echo worker {url} healthy:\n{proc.log()}")
    return proc, url


class Node:
    """A `meshgate serve` process and how to reach it."""

    def __init__(
        self,
        tmp_path: Path,
        *args: str,
        name: str = "node-1",
        port: int | None = None,
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = name
        self.data_dir = data_dir or tmp_path / f"data-{name}"
        self.args = [
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--node-name",
            name,
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            "info",
            "--drain-delay-secs",
            "0",
            *args,
        ]
        self.tmp_path = tmp_path
        self.env = env
        self.proc = Proc(self.args, tmp_path / f"{name}.log", env=env)

    def restart(self) -> None:
        self.proc = Proc(self.args, self.tmp_path / f"{self.name}.log", env=self.env)

    def wait_ready(self, timeout: float = 20.0) -> None:
        wait_for(
            lambda: http_ok(self.url + "/readiness"),
            timeout=timeout,
            what=f"{self.name} ready:\n{self.proc.log()[-3000:]}",
        )

    def wait_serving(self, timeout: float = 20.0) -> None:
        """Up and answering HTTP (ready or not)."""
        wait_for(
            lambda: http_ok(self.url + "/liveness"),
            timeout=timeout,
            what=f"{self.name} serving:\n{self.proc.log()[-3000:]}",
        )


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


def clear_of_minute_boundary(margin: float = 15.0) -> None:
    """Per-minute quotas use clock-aligned windows: start a measurement well inside one."""
    wait_for(
        lambda: time.time() % 60 < 60 - margin, timeout=margin + 1, what="a fresh minute window"
    )
