"""Fixtures that start real processes on loopback and always stop them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.localmesh import GrpcEchoWorker, stop_all
from tests.support import Node, Proc, RedisServer, free_port, start_echo_worker


class Cluster:
    """Processes started by one test (or module); stopped together at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[Proc] = []
        self.nodes: list[Node] = []

    def echo(self, *flags: str, model: str = "echo-model") -> tuple[Proc, str]:
        proc, url = start_echo_worker(self.tmp_path, *flags, model=model)
        self.procs.append(proc)
        return proc, url

    def grpc_echo(
        self, tokenizer_dir: Path | None, *flags: str, model: str = "echo-model"
    ) -> GrpcEchoWorker:
        """A `meshgate grpc-echo-worker` on a free port, listening (None: its built-in
        tokenizer)."""
        worker = GrpcEchoWorker(self.tmp_path, free_port(), tokenizer_dir, model, extra=flags)
        self.procs.append(worker.proc)
        worker.wait_listening(timeout=15)
        return worker

    def node(self, *args: str, ready: bool = True, **kwargs: Any) -> Node:
        node = Node(self.tmp_path, *args, **kwargs)
        self.nodes.append(node)  # before waiting: a node that never gets ready is stopped too
        if ready:
            node.wait_ready()
        else:
            node.wait_serving()
        return node

    def stop(self) -> None:
        """Stop everything at once: SIGTERM to all, then wait for each."""
        stop_all([node.proc for node in self.nodes] + self.procs, grace=10)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def module_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A `redis-server` of its own on a free loopback port (no persistence), for one test."""
    srv = RedisServer(tmp_path / "redis.log")
    try:
        srv.start()
        yield srv
    finally:
        srv.kill()
