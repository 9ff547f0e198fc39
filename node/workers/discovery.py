"""Worker discovery: the background job that turns a `pending` worker `ready` or `failed`.

`POST /workers` answers at once with the new id; this job then asks the worker
for `/health`, `/get_model_info` and `/v1/models` (a gRPC worker: GetModelInfo,
GetServerInfo and its tokenizer, `node.grpc_workers`), retrying every
`check_interval` until `startup_timeout`, and commits the result. The node that
accepted the worker starts the job; the Raft leader also adopts any worker left
pending by a node that went away, so a crash never strands a worker in
`pending`. Running a job twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mesh import commands
from mesh.raft import CommitError, MeshRaft
from node.service import cancel_and_wait
from node.tcp_probe import tcp_probe
from node.workers.client import Answer, WorkerCallFailed, WorkerClient
from node.workers.credentials import CredentialBox, Target

log = logging.getLogger(__name__)

# Discovers a gRPC worker (its record, how to call it): what to record, or DiscoveryFailed.
GrpcDiscover = Callable[[dict[str, Any], Target], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class DiscoverySettings:
    startup_timeout: float = 600.0
    check_interval: float = 2.0
    request_timeout: float = 5.0


class DiscoveryJobs:
    def __init__(
        self,
        raft: MeshRaft,
        client: WorkerClient,
        settings: DiscoverySettings,
        actor: str,
        credentials: CredentialBox,
        grpc_discover: GrpcDiscover | None = None,
    ) -> None:
        self.raft = raft
        self.grpc_discover = grpc_discover
        self.client = client
        self.credentials = credentials
        self.settings = settings
        self.actor = actor
        self.jobs: dict[str, asyncio.Task[None]] = {}
        self.progress: dict[str, dict[str, Any]] = {}  # live job status of jobs run here

    def start(self, worker_id: str) -> None:
        if worker_id not in self.jobs:
            task = asyncio.create_task(self._run(worker_id), name=f"discover-{worker_id}")
            self.jobs[worker_id] = task
            task.add_done_callback(lambda _: self._finished(worker_id))

    async def stop(self) -> None:
        await cancel_and_wait(list(self.jobs.values()))

    def _finished(self, worker_id: str) -> None:
        self.jobs.pop(worker_id, None)
        self.progress.pop(worker_id, None)

    async def _run(self, worker_id: str) -> None:
        started = time.monotonic()
        attempts = 0
        last_error = "not tried"
        while True:
            record = self.raft.state.workers.get(worker_id)
            if record is None or record["status"] != "pending":
                return  # removed, or another job finished it
            attempts += 1
            self.progress[worker_id] = {
                "state": "running",
                "attempts": attempts,
                "message": f"probing the worker (attempt {attempts}); last error: {last_error}",
            }
            try:
                found = await self.probe(record)
            except DiscoveryFailed as exc:
                last_error = str(exc)
            except (
                Exception
            ) as exc:  # a bug or an unforeseen answer: a failed attempt, not a dead job
                log.exception("discovering worker %s", worker_id)
                last_error = f"unexpected error: {type(exc).__name__}"
            else:
                await self._commit(worker_id, "ready", attempts, "worker discovered", found)
                return
            if time.monotonic() - started >= self.settings.startup_timeout:
                message = f"gave up after {attempts} attempts: {last_error}"
                await self._commit(worker_id, "failed", attempts, message, {})
                return
            await asyncio.sleep(self.settings.check_interval)

    async def _commit(
        self, worker_id: str, status: str, attempts: int, message: str, found: dict[str, Any]
    ) -> None:
        job = {
            "state": "succeeded" if status == "ready" else "failed",
            "attempts": attempts,
            "message": message,
            "finished_at": time.time(),
        }
        args = {
            "id": worker_id,
            "status": status,
            "job_status": job,
            "metadata": found.get("metadata", {}),
            "model_id": found.get("model_id"),
        }
        for _ in range(5):
            try:
                await self.raft.submit(commands.make("worker.set_status", args, by=self.actor))
                return
            except CommitError as exc:
                log.warning("could not record discovery of %s (%s); retrying", worker_id, exc)
                await asyncio.sleep(1.0)

    async def probe(self, record: dict[str, Any]) -> dict[str, Any]:
        """Ask the worker who it is; raises DiscoveryFailed when it is not serving."""
        target = self.credentials.target(record)
        if record.get("connection_mode") == "grpc" and self.grpc_discover is not None:
            if target.problem:
                raise DiscoveryFailed(target.problem)
            return await self.grpc_discover(record, target)
        if record.get("connection_mode") == "grpc":
            passed, error = await tcp_probe(target.url, self.settings.request_timeout)
            if not passed:
                raise DiscoveryFailed(error or "unreachable")
            return {"metadata": {}, "model_id": None}
        if target.problem:
            raise DiscoveryFailed(target.problem)
        health = await self._get(target, "/health")
        if health.redirected or health.status >= 400:
            raise DiscoveryFailed(health.problem("/health") or "")
        metadata: dict[str, Any] = {}
        info = await self._get(target, "/get_model_info")
        found = info.json() if info.ok else None
        if isinstance(found, dict):
            metadata = {
                k: v for k, v in found.items() if isinstance(v, str | int | float | bool | list)
            }
        model_ids: list[str] = []
        listed = await self._get(target, "/v1/models")
        models = listed.json() if listed.ok else None
        if isinstance(models, dict) and isinstance(models.get("data"), list):
            model_ids = [m["id"] for m in models["data"] if isinstance(m, dict) and "id" in m]
        if model_ids:
            metadata["served_models"] = model_ids
        if record.get("worker_type") == "prefill":
            await self._bootstrap_port(target, metadata)
        model_id = metadata.get("served_model_name") or (model_ids[0] if model_ids else None)
        return {"metadata": metadata, "model_id": model_id if isinstance(model_id, str) else None}

    async def _bootstrap_port(self, target: Target, metadata: dict[str, Any]) -> None:
        """A prefill worker's KV bootstrap port, as SGLang reports it in its server info
        (only that field is kept: server info also holds the engine's secrets)."""
        info = await self._get(target, "/get_server_info")
        found = info.json() if info.ok else None
        port = found.get("disaggregation_bootstrap_port") if isinstance(found, dict) else None
        if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
            metadata["disaggregation_bootstrap_port"] = port

    async def _get(self, target: Target, path: str) -> Answer:
        try:
            return await self.client.get(target, path, timeout=self.settings.request_timeout)
        except WorkerCallFailed as exc:
            raise DiscoveryFailed(f"GET {path} {exc}") from None


class DiscoveryFailed(Exception):
    pass
