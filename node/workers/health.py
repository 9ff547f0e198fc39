"""Active health checks: each node probes each worker on an interval.

A worker turns unhealthy after `failure_threshold` failed checks in a row and
healthy again after `success_threshold` passed ones. Health is a node-local
observation (another node may see the worker differently); it decides routing
on this node together with the circuit breaker, which reacts to real traffic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from node.service import Periodic, cancel_and_wait
from node.tcp_probe import tcp_probe
from node.workers.client import WorkerCallFailed, WorkerClient
from node.workers.pool import WorkerPool
from node.workers.worker import Worker

log = logging.getLogger(__name__)

# Probes a gRPC worker within a timeout: (passed, error). Given by the node's gRPC part.
GrpcProbe = Callable[[Worker, float], Awaitable[tuple[bool, str | None]]]


@dataclass(frozen=True)
class HealthSettings:
    interval: float = 10.0
    timeout: float = 5.0
    failure_threshold: int = 3
    success_threshold: int = 2
    endpoint: str = "/health"


class HealthChecker:
    def __init__(
        self,
        pool: WorkerPool,
        client: WorkerClient,
        settings: HealthSettings,
        grpc_probe: GrpcProbe | None = None,
    ):
        self.pool = pool
        self.client = client
        self.grpc_probe = grpc_probe
        self.settings = settings
        # The interval is read each round: a shorter one set at runtime applies at once.
        self._service = Periodic("health-checks", self.check_all, lambda: self.settings.interval)
        self._first_checks: set[asyncio.Task[bool]] = set()  # held: the loop keeps weak refs
        pool.on_added.append(self._check_soon)

    def start(self) -> None:
        self._service.start()

    async def stop(self) -> None:
        await self._service.stop()
        await cancel_and_wait(self._first_checks)

    async def check_all(self) -> None:
        workers = [w for w in self.pool.all() if w.status in ("ready", "draining")]
        if workers:
            await asyncio.gather(*(self.check(w) for w in workers))

    def _check_soon(self, worker: Worker) -> None:
        if worker.status == "ready":
            name = f"health-check-{worker.id}"
            task = asyncio.get_running_loop().create_task(self.check(worker), name=name)
            self._first_checks.add(task)
            task.add_done_callback(self._first_checks.discard)

    async def check(self, worker: Worker) -> bool:
        """Probe once and apply the thresholds; returns whether this probe passed."""
        passed, error = await self.probe(worker)
        worker.last_check = time.time()
        if passed:
            worker.passed_checks += 1
            worker.failed_checks = 0
            worker.last_error = None
            if not worker.healthy and worker.passed_checks >= self.settings.success_threshold:
                worker.healthy = True
                log.info("worker %s (%s) is healthy again", worker.id, worker.url)
        else:
            worker.failed_checks += 1
            worker.passed_checks = 0
            worker.last_error = error
            if worker.healthy and worker.failed_checks >= self.settings.failure_threshold:
                worker.healthy = False
                log.warning("worker %s (%s) is unhealthy: %s", worker.id, worker.url, error)
        return passed

    async def probe(self, worker: Worker) -> tuple[bool, str | None]:
        if worker.connection_mode == "grpc":
            if self.grpc_probe is not None:  # HealthCheck, and the engine's load with it
                return await self.grpc_probe(worker, self.settings.timeout)
            return await tcp_probe(worker.url, self.settings.timeout)
        endpoint = self.settings.endpoint
        try:
            answer = await self.client.get(worker.target, endpoint, timeout=self.settings.timeout)
        except WorkerCallFailed as exc:
            return False, f"{endpoint} {exc}"
        problem = answer.problem(endpoint)
        return problem is None, problem
