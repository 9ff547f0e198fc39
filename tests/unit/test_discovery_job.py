"""A discovery job that meets an error nobody foresaw still ends the worker `failed`
with a reason (it never dies leaving the worker `pending`)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from mesh.raft import MeshRaft
from node.workers.client import WorkerClient
from node.workers.credentials import CredentialBox, Target
from node.workers.discovery import DiscoveryJobs, DiscoverySettings


class Raft:
    def __init__(self, record: dict[str, Any]) -> None:
        self.state = SimpleNamespace(workers={record["id"]: record})
        self.submitted: list[dict[str, Any]] = []

    async def submit(self, command: dict[str, Any]) -> None:
        self.submitted.append(command)
        args = command["args"]
        self.state.workers[args["id"]]["status"] = args["status"]


def test_an_unexpected_error_is_a_failed_attempt_and_the_worker_ends_failed() -> None:
    record = {"id": "w1", "status": "pending", "connection_mode": "grpc", "url": "grpc://w:1"}
    raft = Raft(record)
    calls: list[str] = []

    async def discover(found: dict[str, Any], target: Target) -> dict[str, Any]:
        calls.append(found["id"])
        raise RuntimeError("File is encrypted, password required")

    jobs = DiscoveryJobs(
        cast(MeshRaft, raft),
        cast(WorkerClient, None),
        DiscoverySettings(startup_timeout=0.0, check_interval=0.0),
        "node:n1",
        CredentialBox("s" * 40),
        grpc_discover=discover,
    )
    asyncio.run(jobs._run("w1"))
    assert calls == ["w1"]
    [command] = raft.submitted
    assert command["args"]["status"] == "failed"
    assert command["args"]["job_status"]["message"] == (
        "gave up after 1 attempts: unexpected error: RuntimeError"
    )
