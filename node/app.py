"""One meshgate node: its parts, wired together in one place, and their start and stop order.

Start: bind the applied-command stream to the loop, start Raft (which replays
the journal), open the upstream session, start health checks, then in the
background wait for a leader and register `--worker-urls`. Stop: the reverse.
Handlers reach the node through `request.app[NODE]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from mesh import commands
from mesh.events import Applied, AppliedStream
from mesh.raft import CommitError, MeshRaft, RaftSettings
from node import __version__
from node.auth import Authenticator, Principal
from node.config import Config
from node.errors import ApiError, error_middleware
from node.limits.admission import Admission
from node.metrics import Metrics
from node.proxy.forward import Forwarder, RetrySettings
from node.proxy.upstream import make_session
from node.routing.selector import PolicySelector
from node.workers.breaker import STATE_NUMBER, BreakerSettings
from node.workers.discovery import DiscoveryJobs, DiscoverySettings
from node.workers.health import HealthChecker, HealthSettings
from node.workers.pool import WorkerPool

log = logging.getLogger(__name__)

NODE: web.AppKey[Node] = web.AppKey("node")


def connection_mode(url: str) -> str:
    return "grpc" if urlsplit(url).scheme in ("grpc", "grpcs") else "http"


def normalise_url(url: str) -> str:
    return url.strip().rstrip("/")


class Node:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.name = config.node_name
        self.started_at = time.time()
        self.draining = False
        self.metrics = Metrics(config.node_name)
        self.auth = Authenticator(config.api_key, config.control_plane_api_keys)
        self.stream = AppliedStream()
        self.raft = MeshRaft(raft_settings(config), self.stream)
        self.pool = WorkerPool(
            BreakerSettings(
                failure_threshold=config.cb_failure_threshold,
                success_threshold=config.cb_success_threshold,
                timeout=config.cb_timeout_duration_secs,
                window=config.cb_window_duration_secs,
                enabled=not config.disable_circuit_breaker,
            )
        )
        self.selector = PolicySelector(config.policy)
        self.admission = Admission(
            config.max_concurrent_requests, config.queue_size, config.queue_timeout_secs
        )
        self.retry = RetrySettings(
            max_attempts=1 if config.disable_retries else config.retry_max_retries,
            initial_backoff=config.retry_initial_backoff_ms / 1000,
            max_backoff=config.retry_max_backoff_ms / 1000,
            multiplier=config.retry_backoff_multiplier,
            jitter=config.retry_jitter_factor,
        )
        self.pool.on_removed.append(lambda worker: self.selector.forget(worker.id))
        self.stream.subscribe(self._on_applied)
        self.metrics.add_gauges(self._gauges)
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        self.stream.bind(asyncio.get_running_loop())
        self.raft.start()
        self.session = make_session()
        self.forwarder = Forwarder(
            self.pool,
            self.selector,
            self.session,
            self.retry,
            self.config.request_timeout_secs,
            self.metrics,
        )
        self.health = HealthChecker(
            self.pool,
            self.session,
            HealthSettings(
                interval=self.config.health_check_interval_secs,
                timeout=self.config.health_check_timeout_secs,
                failure_threshold=self.config.health_failure_threshold,
                success_threshold=self.config.health_success_threshold,
                endpoint=self.config.health_check_endpoint,
            ),
        )
        self.discovery = DiscoveryJobs(
            self.raft,
            self.session,
            DiscoverySettings(
                startup_timeout=self.config.worker_startup_timeout_secs,
                check_interval=self.config.worker_startup_check_interval,
                request_timeout=self.config.health_check_timeout_secs,
            ),
            actor=self.actor(None),
        )
        self._sync_views()
        self.health.start()
        self._tasks.append(asyncio.create_task(self._bootstrap(), name="bootstrap"))
        self._tasks.append(asyncio.create_task(self._reconcile_forever(), name="reconcile"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.discovery.stop()
        await self.health.stop()
        await self.session.close()
        await asyncio.get_running_loop().run_in_executor(None, self.raft.stop)

    async def _bootstrap(self) -> None:
        """Once the group has a leader: register `--worker-urls` (idempotent across restarts)."""
        while self.raft.status().leader is None or not self.raft.status().ready:
            await asyncio.sleep(0.05)
        for raw in self.config.worker_urls:
            url = normalise_url(raw)
            while True:
                try:
                    await self.register_worker_url(url)
                    break
                except (CommitError, ApiError) as exc:
                    log.warning("registering %s failed (%s); retrying", url, exc)
                    await asyncio.sleep(1.0)

    async def register_worker_url(self, url: str) -> None:
        existing = self.raft.state.worker_urls.get(url)
        if existing is not None:
            if self.raft.state.workers[existing]["status"] == "failed":
                await self.commit(
                    "worker.set_status",
                    {
                        "id": existing,
                        "status": "pending",
                        "job_status": {
                            "state": "queued",
                            "message": "retrying at node start",
                            "attempts": 0,
                        },
                    },
                    None,
                )
                self.discovery.start(existing)
            return
        spec = {"id": str(uuid.uuid4()), "url": url, "connection_mode": connection_mode(url)}
        command = commands.make("worker.add", {"worker": spec}, by=self.actor(None))
        outcome = await self.raft.submit(command)
        if outcome["ok"]:
            self.discovery.start(spec["id"])
        elif outcome["error"] != "conflict":
            raise ApiError(400, outcome["message"])

    async def _reconcile_forever(self) -> None:
        """Resume this node's unfinished discovery jobs; as leader, adopt stranded ones."""
        mine = self.actor(None)
        while True:
            for worker_id, record in self.raft.state.workers.items():
                if record["status"] == "pending" and record.get("created_by", "").startswith(mine):
                    self.discovery.start(worker_id)
            self.discovery.adopt_stranded()
            await asyncio.sleep(max(1.0, self.config.worker_startup_check_interval))

    # -- views of the replicated state ------------------------------------------------

    def _on_applied(self, applied: Applied) -> None:
        op = applied.op
        if op.startswith("worker.") or op == "reset":
            self.pool.sync(self.raft.state.workers)
        if op.startswith("policy.") or op == "reset":
            self.selector.sync(self.raft.state.policies)

    def _sync_views(self) -> None:
        self.pool.sync(self.raft.state.workers)
        self.selector.sync(self.raft.state.policies)

    # -- writing control state -------------------------------------------------------

    def actor(self, principal: Principal | None) -> str:
        return f"{self.name}/{principal.id}" if principal else f"{self.name}/node"

    async def commit(self, op: str, args: dict[str, Any], principal: Principal | None) -> Any:
        """Submit a command and return its value; failures become ApiError with the right status."""
        try:
            outcome = await self.raft.submit(commands.make(op, args, by=self.actor(principal)))
        except CommitError as exc:
            raise ApiError(
                503,
                f"the change was not committed: {exc} ({exc.reason}); the mesh may have no "
                "leader or quorum right now, retry shortly",
                code="not_committed",
                headers={"Retry-After": str(max(1, round(exc.retry_after)))},
            ) from None
        if not outcome["ok"]:
            status = commands.ERRORS.get(outcome["error"], 400)
            extra = {k: v for k, v in outcome.items() if k not in ("ok", "error", "message")}
            raise ApiError(status, outcome["message"], code=outcome["error"].upper(), extra=extra)
        return outcome["value"]

    # -- metrics read at scrape time ----------------------------------------------------

    def _gauges(self) -> Iterator[tuple[str, str, dict[str, str], float]]:
        for worker in self.pool.all():
            labels = {"worker": worker.id, "url": worker.url}
            yield (
                "meshgate_worker_healthy",
                "1 if this node sees the worker healthy",
                labels,
                float(worker.healthy and worker.status == "ready"),
            )
            yield (
                "meshgate_worker_in_flight",
                "Requests in flight to the worker",
                labels,
                worker.load,
            )
            yield (
                "meshgate_circuit_breaker_state",
                "Circuit state: 0 closed, 1 half-open, 2 open",
                labels,
                STATE_NUMBER[worker.breaker.state],
            )
        yield (
            "meshgate_admission_in_flight",
            "Requests holding a slot",
            {},
            self.admission.in_flight,
        )
        yield (
            "meshgate_admission_queue_depth",
            "Requests waiting for a slot",
            {},
            self.admission.queued,
        )
        for reason, count in self.admission.rejected.items():
            yield (
                "meshgate_admission_rejected",
                "Requests refused (429) so far",
                {"reason": reason},
                count,
            )
        status = self.raft.status()
        yield "meshgate_raft_applied_index", "Last log index applied here", {}, status.applied_index
        yield "meshgate_raft_commit_index", "Commit index known here", {}, status.commit_index
        yield "meshgate_raft_term", "Current Raft term", {}, status.term
        yield "meshgate_raft_is_leader", "1 on the leader", {}, float(status.is_leader)
        yield (
            "meshgate_raft_has_quorum",
            "1 while a majority is reachable",
            {},
            float(status.has_quorum),
        )
        yield "meshgate_raft_log_entries", "Entries in the Raft log", {}, status.log_len
        yield (
            "meshgate_raft_tick_alive",
            "1 while the Raft thread runs",
            {},
            float(self.raft.tick_alive()),
        )
        yield "meshgate_node_draining", "1 while this node drains", {}, float(self.draining)

    def info(self) -> dict[str, Any]:
        return {
            "node": self.name,
            "version": __version__,
            "uptime_secs": round(time.time() - self.started_at, 3),
        }


def raft_settings(config: Config) -> RaftSettings:
    standalone = not config.mesh_peers
    bind = config.mesh_bind or "127.0.0.1:0"
    return RaftSettings(
        data_dir=config.data_path,
        self_address=config.mesh_advertise or bind,
        bind_address=bind,
        peers=tuple(config.mesh_peers),
        password=config.mesh_secret,
        commit_timeout=config.mesh_commit_timeout_secs,
        tick_period=0.005 if standalone else 0.05,
    )


def create_app(config: Config) -> web.Application:
    from node.api import routes

    app = web.Application(
        middlewares=[error_middleware],
        client_max_size=config.max_payload_size,
        handler_args={"max_field_size": 16384},
    )
    node = Node(config)
    app[NODE] = node

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await node.start()
        yield
        await node.stop()

    app.cleanup_ctx.append(lifecycle)
    routes.install(app, node)
    return app
