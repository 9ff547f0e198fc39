"""Active health checks: each node probes each worker on an interval.

A worker turns unhealthy after `failure_threshold` failed checks in a row and
healthy again after `success_threshold` passed ones. Health is a node-local
observation (another node may see the worker differently); it decides routing
on this node together with the circuit breaker, which reacts to real traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import aiohttp

from node.proxy.failures import REDIRECTED, did_not_answer
from node.proxy.upstream import Upstream, is_redirect
from node.tcp_probe import tcp_probe
from node.workers.pool import WorkerPool
from node.workers.worker import Worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthSettings:
    interval: float = 10.0
    timeout: float = 5.0
    failure_threshold: int = 3
    success_threshold: int = 2
    endpoint: str = "/health"


class HealthChecker:
    def __init__(self, pool: WorkerPool, session: Upstream, settings: HealthSettings):
        self.pool = pool
        self.session = session
        self.settings = settings
        self._task: asyncio.Task[None] | None = None
        pool.on_added.append(self._check_soon)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="health-checks")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        # Wakes at least twice a second, so a shorter interval set at runtime applies at once.
        clock = asyncio.get_running_loop().time
        last = clock()
        while True:
            await asyncio.sleep(min(self.settings.interval, 0.5))
            if clock() - last < self.settings.interval:
                continue
            last = clock()
            workers = [w for w in self.pool.all() if w.status in ("ready", "draining")]
            if workers:
                await asyncio.gather(*(self.check(w) for w in workers))

    def _check_soon(self, worker: Worker) -> None:
        if worker.status == "ready":
            asyncio.get_running_loop().create_task(self.check(worker))

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
            return await tcp_probe(worker.url, self.settings.timeout)
        url = worker.base_url + self.settings.endpoint
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
        try:
            async with self.session.get(url, headers=worker.auth_headers, timeout=timeout) as resp:
                await resp.read()
                if resp.status < 300:
                    return True, None
                if is_redirect(resp.status):
                    return False, f"{self.settings.endpoint} answered {resp.status}: {REDIRECTED}"
                return False, f"{self.settings.endpoint} answered {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.debug(
                "health check of %s (%s): %s: %s", worker.id, worker.url, type(exc).__name__, exc
            )
            return False, f"{self.settings.endpoint} {did_not_answer(exc)}"
