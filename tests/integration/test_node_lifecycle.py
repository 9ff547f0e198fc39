"""A node's parts start in one declared order and stop in its reverse.

In process, with a real Raft member on loopback: the stop order is the one a
rolling restart relies on (background duties, then the peer poller, discovery
and health checks, the limiters, the upstream session, and leaving Raft last),
and a start that fails half-way stops what had already started instead of
leaking a Raft thread.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mesh.raft import MeshRaft
from node import config as node_config
from node.app import Node
from node.ha.peers import PeerPoller
from node.limits.hot_store import HotStore
from node.limits.usage import UsageBook
from node.proxy.upstream import Upstream
from node.workers.discovery import DiscoveryJobs
from node.workers.health import HealthChecker
from tests.support import free_port

# (class, method) of each part's stop, in the order a node must call them.
STOP_ORDER = (
    (PeerPoller, "stop"),
    (DiscoveryJobs, "stop"),
    (HealthChecker, "stop"),
    (UsageBook, "stop"),
    (HotStore, "close"),
    (Upstream, "close"),
    (MeshRaft, "stop"),
)


def standalone_config(tmp_path: Path) -> node_config.Config:
    parser = argparse.ArgumentParser()
    node_config.add_arguments(parser)
    argv = ["--node-name", "n1", "--data-dir", str(tmp_path / "data")]
    argv += ["--mesh-bind", f"127.0.0.1:{free_port()}"]
    return node_config.load(parser.parse_args(argv), environ={})


def record_stops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every part's stop note its name in the returned list, then do its work."""
    stopped: list[str] = []
    for cls, method in STOP_ORDER:
        original = getattr(cls, method)
        name = f"{cls.__name__}.{method}"
        if inspect.iscoroutinefunction(original):
            monkeypatch.setattr(cls, method, _async_recorder(stopped, name, original))
        else:
            monkeypatch.setattr(cls, method, _recorder(stopped, name, original))
    return stopped


def _recorder(stopped: list[str], name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def stop(self: Any, *args: Any) -> Any:
        stopped.append(name)
        return original(self, *args)

    return stop


def _async_recorder(
    stopped: list[str], name: str, original: Callable[..., Any]
) -> Callable[..., Any]:
    async def stop(self: Any, *args: Any) -> Any:
        stopped.append(name)
        return await original(self, *args)

    return stop


def test_parts_stop_in_the_reverse_of_their_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped = record_stops(monkeypatch)

    async def run() -> Node:
        node = Node(standalone_config(tmp_path))
        await node.start()
        assert node.raft.tick_alive()
        await node.stop()
        return node

    node = asyncio.run(run())
    assert stopped == [f"{cls.__name__}.{method}" for cls, method in STOP_ORDER]
    assert not node.raft.tick_alive()


def test_a_start_that_fails_half_way_stops_what_had_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped = record_stops(monkeypatch)

    def broken_start(self: UsageBook) -> None:
        raise RuntimeError("the usage book cannot start")

    monkeypatch.setattr(UsageBook, "start", broken_start)

    async def run() -> Node:
        node = Node(standalone_config(tmp_path))
        with pytest.raises(RuntimeError, match="usage book"):
            await node.start()
        return node

    node = asyncio.run(run())
    # What started before the usage book stopped, in reverse; nothing after it was touched.
    assert stopped == [
        "HotStore.close",
        "Upstream.close",
        "MeshRaft.stop",
    ]
    assert not node.raft.tick_alive()
