"""One meshgate node: its parts, wired together in one place, and their start and stop order.

Start (`Node._start_parts`, in that order): bind the applied-command stream to
the loop, start Raft (which replays the journal), open the upstream session,
the limiters and the usage book, health checks, discovery and the peer poller,
and last the control loop (node/control_loop.py), which waits for a leader,
announces this node, registers `--worker-urls` and carries out the node's
other duties to the mesh. Stop: the exact reverse, kept by an
AsyncExitStack. This module never imports the HTTP layer: `node.web` builds
the application around a Node, and handlers reach it through `request.app[NODE]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from mesh import commands
from mesh.events import Applied, AppliedStream
from mesh.raft import NOT_COMMITTED, CommitError, MeshRaft, RaftStatus
from node import __version__, idempotency
from node.applied_wait import AppliedWaiter
from node.auth import Authenticator, Principal
from node.blobs.fetch import BlobFetcher, Peer
from node.blobs.store import BlobStore
from node.config import Config
from node.control_loop import ControlLoop, Identity
from node.datadir import make_private
from node.errors import ApiError
from node.gauges import (
    admission_gauges,
    mesh_gauges,
    raft_gauges,
    rate_limit_gauges,
    worker_gauges,
)
from node.grpc_workers.workers import GrpcSettings, GrpcWorkers
from node.grpcproxy.clients import links_from
from node.grpcproxy.forward import EngineForwarder
from node.ha.peers import MESH_TOKEN_HEADER, PeerPoller
from node.ha.quota_shares import lends_quota_shares, share_quotas
from node.ha.rotation import MeshKeys, everyone_sends_with
from node.ha.secret import mesh_secret
from node.ha.shutdown import Stopper
from node.identity.throttle import LoginThrottle
from node.limits.admission import Admission
from node.limits.hot_store import HotStore
from node.limits.quotas import SPANS, QuotaEngine
from node.limits.ratelimit import RateLimiter, Rule
from node.limits.shares import Shares
from node.limits.usage import UsageBook
from node.loaded_state import LoadedState
from node.metrics import Metrics
from node.part_settings import (
    admission_limits,
    breaker_settings,
    discovery_settings,
    health_settings,
    idp_settings,
    management_limits,
    output_parsers,
    raft_settings,
    retry_settings,
)
from node.pipeline.pipeline import Pipeline
from node.plane.linked import Replica, health_verdicts, linked_state
from node.plane.node_limits import ProcessLimits
from node.proxy.forward import Forwarder
from node.proxy.upstream import make_session
from node.proxy.worker_http import WorkerHttp
from node.read_index import ReadIndex
from node.readiness import Readiness
from node.routing.selector import PolicySelector
from node.runtime import RUNTIME_KEY, LiveParts, apply_runtime
from node.service import Periodic, cancel_and_wait
from node.text.resolve import TokenizerResolver
from node.tokenizers.registry import TokenizerRegistry
from node.wasm_required import readiness_problem
from node.workers.client import WorkerClient
from node.workers.credentials import CredentialBox, basic, split_userinfo
from node.workers.discovery import DiscoveryJobs
from node.workers.health import HealthChecker
from node.workers.pool import WorkerPool

if TYPE_CHECKING:  # loaded only for a node with tokens (token_service)
    from node.identity.tokens import TokenService
    from node.wasm.hooks import WasmHooks  # loaded only with --enable-wasm
    from node.wasm.registry import WasmRegistry

log = logging.getLogger(__name__)

FACTS_SECS = 0.2  # how often a data-plane process takes its control process's facts

NODE: web.AppKey[Node] = web.AppKey("node")


def connection_mode(url: str) -> str:
    return "grpc" if urlsplit(url).scheme in ("grpc", "grpcs") else "http"


def normalise_url(url: str) -> str:
    """A worker URL as duplicate detection compares it: trimmed, no trailing slash, and
    the scheme and host lower-cased (they are case-insensitive; userinfo and path are not)."""
    url = url.strip().rstrip("/")
    try:
        parts = urlsplit(url)
    except ValueError:
        return url  # the caller's validation says what is wrong with it
    if not parts.netloc:
        return url
    userinfo, at, host = parts.netloc.rpartition("@")
    return urlunsplit(
        parts._replace(scheme=parts.scheme.lower(), netloc=userinfo + at + host.lower())
    ).rstrip("/")


class Node:
    """A node's parts. `replica`, when given, makes this a data-plane process
    (`--processes N`): it builds the stand-in for Raft (node/plane/) on the node's
    applied stream, and the node then has no control duties (no journal, health
    checks, discovery, peer polling or control loop): its control process has them."""

    def __init__(
        self,
        config: Config,
        config_file: str | None = None,
        replica: Callable[[AppliedStream], Replica] | None = None,
    ) -> None:
        self.config = config
        self.config_file = config_file  # re-read by POST /admin/reload
        self.name = config.node_name
        self.boot_id = uuid.uuid4().hex  # tells this run of the node from earlier ones
        self.started_at = time.time()
        self.metrics = Metrics(config.node_name)
        self.tokens = token_service(config)
        self.auth = Authenticator(
            config.api_key,
            config.control_plane_api_keys,
            tokens=self.tokens,
            keys=lambda: self.raft.state,
            loaded=lambda: self.loaded.loaded(),
            cut_off=lambda: self.raft.status().stale,
        )
        make_private(config.data_path)  # before anything is written there
        # Sends with the mesh secret; accepts the previous one too while it is rotated.
        self.mesh_keys = MeshKeys(
            mesh_secret(config.mesh_secret, config.data_path), config.mesh_secret_previous
        )
        self.credentials = CredentialBox(self.mesh_keys.secret, self.mesh_keys.previous)
        # Files shared by digest (tokenizers): this node's copies, and its peers' on demand.
        self.blobs = BlobStore(config.data_path, config.blob_max_bytes)
        self.blob_fetcher = BlobFetcher(
            self.blobs,
            lambda: self.session,
            self._blob_peers,
            {MESH_TOKEN_HEADER: self.mesh_keys.token},
            lambda: self.config.blob_fetch_timeout_secs,
        )
        self.stream = AppliedStream()
        self.data_plane = replica is not None
        self.raft: MeshRaft = (
            MeshRaft(raft_settings(config, *self.mesh_keys.accepted), self.stream)
            if replica is None
            else replica(self.stream)  # type: ignore[assignment]  # duck-types MeshRaft
        )
        # Read-your-writes on any node: X-Meshgate-Min-Index waits here, and handlers that
        # decide from the state make it current first (node/read_index.py).
        self.applied = AppliedWaiter(self.raft.indexes, self.stream)
        self.read_index = ReadIndex(
            self.raft, self.applied, config.min_index_wait_secs, self.actor(None)
        )
        # Static stability: the state this node may serve from, even without a leader.
        self.loaded = LoadedState(config.data_path, self.raft.status)
        if self.data_plane:  # a data-plane process has a state once linked to its control
            self.loaded = linked_state(self.raft, self.loaded)  # type: ignore[arg-type]
        self.pool = WorkerPool(breaker_settings(config), self.credentials)
        # Registered tokenizers, loaded on this node; the resolver finds one for a request.
        self.tokenizer_registry = TokenizerRegistry(
            lambda: self.raft.state.tokenizers,
            lambda: self.raft.state.digests_in_use(),
            self.blobs,
            self.blob_fetcher,
            config.data_path / "tokenizers",
        )
        self.tokenizers = TokenizerResolver(self.pool.ready_records, self.tokenizer_registry)
        # WASM middleware (--enable-wasm): every registered module, made ready on this node.
        self.wasm: WasmRegistry | None = self._wasm_registry() if config.enable_wasm else None
        # gRPC workers: a channel each, their tokenizers (GetTokenizer's files by digest).
        self.grpc_workers = GrpcWorkers(
            self.pool,
            self.blobs,
            self.tokenizer_registry,
            config.data_path / "grpc-tokenizers",
            GrpcSettings(request_timeout=config.health_check_timeout_secs),
        )
        self.selector = PolicySelector(config.policy)
        # Data-plane processes split the node's admission limits and its local shares of
        # rate limits and quotas between them (with Redis, counts are exact as ever).
        self.shares = config.process_count if self.data_plane else 1
        self.admission = Admission(**asdict(admission_limits(config, self.shares)))
        self.retry = retry_settings(config)
        self.parsers = output_parsers(config)
        # The one Redis client, when configured: rate limits, quotas and usage share it.
        self.hot_store = HotStore(config.redis_url, config.redis_timeout_secs)
        self.ratelimiter = RateLimiter(
            config.node_name, self.hot_store, lambda: self.serving_nodes() * self.shares
        )
        self.quotas = QuotaEngine(
            config.node_name,
            self.hot_store,
            lambda: self.mesh_size() * self.shares,
            # A data-plane process borrows from and lends to its control process alone,
            # which speaks for the node to its peers (node/plane/node_shares.py).
            shares=Shares(config.node_name, SPANS, capped=False, shrinks=False)
            if self.data_plane
            else None,
        )
        self.management_limits = management_limits(config)
        self.login_throttle = LoginThrottle()
        self.login_slots = asyncio.Semaphore(2)  # scrypt is memory- and CPU-hard by design
        self.usage = UsageBook(
            lambda args, rid: self.commit("usage.flush", args, None, request_id=rid),
            store=self.hot_store,
        )
        self.stopper = Stopper(
            self.name, self.boot_id, self.raft, self.admission, self._peer_reachable
        )
        self.readiness = Readiness(
            self.loaded,
            self.raft.status,
            self.pool.all,
            self.is_draining,
            config.readiness_requires_workers,
            self._wasm_missing,
        )
        self.pool.on_removed.append(lambda worker: self.selector.forget(worker.id))
        self.stream.subscribe(self._on_applied)
        self._add_gauges()
        # Model ids the workers serve: the only values the `model` metric label takes, so
        # junk names cannot add series (and no tenant's deployment name is shown).
        self.model_names: frozenset[str] = frozenset()
        self.control: ControlLoop | None = None  # built at start, with discovery
        # A control process's data-plane processes, as its supervisor describes them.
        self.processes: Callable[[], list[dict[str, Any]]] | None = None
        # A control process's reading of its data-plane processes' rate-limit counters.
        self.process_limits: ProcessLimits | None = None
        self._running = contextlib.AsyncExitStack()
        self._runtime_applied: dict[str, Any] | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start the parts in their declared order; if one fails, stop those already started."""
        async with contextlib.AsyncExitStack() as starting:
            await self._start_parts(starting)
            self._running = starting.pop_all()

    async def stop(self) -> None:
        """Stop the parts in the reverse of their start order: Raft is left last."""
        await self._running.aclose()

    async def _start_parts(self, stack: contextlib.AsyncExitStack) -> None:
        """The start order. Each part's stop is pushed right after it starts, so the stop
        order is the reverse: the background duties first, then the peer poller,
        discovery and health checks, the limiters, the upstream session, and Raft last."""
        loop = asyncio.get_running_loop()
        self.stream.bind(loop)
        if self.data_plane:
            # The views the first snapshot updates read the upstream parts (the rate
            # limiter's shares ask the peer poller): build those first.
            self._open_upstream(stack)
            await self.raft.start()  # type: ignore[misc]  # the control process's snapshot
            stack.push_async_callback(self.raft.stop)  # type: ignore[arg-type]
        else:
            self.raft.start()  # replays the journal
            stack.push_async_callback(self._leave_raft)
            marking = Periodic("caught-up-marker", self.loaded.record, 0.2, immediately=True)
            marking.start()
            stack.push_async_callback(marking.stop)
            self._open_upstream(stack)
        await self.hot_store.start()
        stack.push_async_callback(self.hot_store.close)
        self.usage.start()
        stack.push_async_callback(self.usage.stop)
        if self.tokens is not None:
            await self.tokens.refresh()
            self._run_in_background(stack, self._refresh_keys(), "jwks-refresh")
        self._sync_views()
        self.tokenizer_registry.start()  # fetches what it lacks from peers, in the background
        stack.push_async_callback(self.tokenizer_registry.stop)
        if self.wasm is not None:
            self.wasm.start()  # fetches and compiles in the background
            stack.push_async_callback(self.wasm.stop)
        if self.data_plane:  # the control process checks workers and keeps the mesh duties
            taking = Periodic("plane-facts", self._take_facts, FACTS_SECS, immediately=True)
            taking.start()
            stack.push_async_callback(taking.stop)
            return
        self.health.start()
        stack.push_async_callback(self.health.stop)
        stack.push_async_callback(self.discovery.stop)  # jobs start from here on
        self.peers.start()
        stack.push_async_callback(self.peers.stop)
        self.control = self._control_loop()
        self.control.start()
        stack.push_async_callback(self.control.stop)

    def _open_upstream(self, stack: contextlib.AsyncExitStack) -> None:
        """The upstream session and the parts that use it (their stops pushed on `stack`)."""
        self.session = make_session()
        stack.push_async_callback(self.session.close)
        self.worker_http = WorkerHttp()
        stack.push_async_callback(self.worker_http.close)
        self.worker_client = WorkerClient(self.session)
        stack.push_async_callback(self.grpc_workers.close)
        self._build_upstream_parts()

    def _build_upstream_parts(self) -> None:
        """The parts that call workers and peers through the session (built, not started)."""
        timeout = self.config.request_timeout_secs
        engine = EngineForwarder(
            self.metrics,
            timeout,
            links_from(self.grpc_workers),
            stream_interval=self.config.grpc_stream_interval,
        )
        self.forwarder = Forwarder(
            self.worker_http, self.retry, timeout, self.metrics, self.parsers, engine
        )
        self.pipeline = Pipeline(
            pool=self.pool,
            selector=self.selector,
            forwarder=self.forwarder,
            ratelimiter=self.ratelimiter,
            quotas=self.quotas,
            admission=self.admission,
            usage=self.usage,
            metrics=self.metrics,
            state=lambda: self.raft.state,
            model_label=self.model_label,
            request_id_headers=self.config.request_id_headers,
            wasm=self._wasm_hooks(),
        )
        self.health = HealthChecker(
            self.pool,
            self.worker_client,
            health_settings(self.config),
            grpc_probe=self.grpc_workers.probe,
        )
        self.discovery = DiscoveryJobs(
            self.raft,
            self.worker_client,
            discovery_settings(self.config, self.config),
            actor=self.actor(None),
            credentials=self.credentials,
            grpc_discover=self.grpc_workers.discovered,
        )
        self.peers = PeerPoller(
            self.session, lambda: self.raft.state.members, self.name, self.mesh_keys.token
        )
        if lends_quota_shares(self.config.process_count):
            share_quotas(self.peers, self.quotas)

    async def _leave_raft(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.raft.stop)

    @staticmethod
    def _run_in_background(
        stack: contextlib.AsyncExitStack, duty: Coroutine[Any, Any, None], name: str
    ) -> None:
        task = asyncio.create_task(duty, name=name)
        stack.push_async_callback(cancel_and_wait, [task])

    def _add_gauges(self) -> None:
        """One scrape-time reader per part; the peer poller is read once the node has started."""
        self.metrics.add_gauges(lambda: worker_gauges(self.pool))
        self.metrics.add_gauges(lambda: admission_gauges(self.admission))
        self.metrics.add_gauges(lambda: raft_gauges(self.raft, self.config.data_path / "raft.dump"))
        self.metrics.add_gauges(
            lambda: mesh_gauges(self.is_draining(), self.serving_nodes(), self.peers)
        )
        self.metrics.add_gauges(lambda: rate_limit_gauges(self.ratelimiter))
        if self.wasm is not None:
            self.metrics.add_gauges(self.wasm.gauges)

    def _control_loop(self) -> ControlLoop:
        """The loop that carries out this node's duties to the mesh (node/control_loop.py)."""
        settings = self.raft.settings
        identity = Identity(
            self.name,
            self.boot_id,
            self.started_at,
            __version__,
            self.config.advertised_http_url,
            voter=settings.self_address is not None,
            raft_address=settings.self_address,
        )
        configured = [split_userinfo(normalise_url(raw)) for raw in self.config.worker_urls]
        return ControlLoop(
            identity,
            self.raft,
            self.stopper,
            self.discovery,
            self.credentials,
            lambda op, args: self.commit(op, args, None),
            self.register_worker_url,
            worker_urls=configured,
            guarded=self.auth.static,
            actor=self.actor(None),
            interval=lambda: max(1.0, self.config.worker_startup_check_interval),
            stale_job_after=self.config.worker_startup_check_interval * 3 + 5.0,
            probe=self.peers.report_of,
            everyone_sends_mine=self._everyone_sends_mine,
        )

    def _everyone_sends_mine(self) -> bool:
        """Does every other member send with this node's mesh secret (so it can open what
        this node seals)?"""
        members, views = self.raft.state.members, self.peers.views
        return everyone_sends_with(self.mesh_keys.sends, members, self.name, views)

    def _wasm_registry(self) -> WasmRegistry:
        from node.wasm.parts import wasm_registry  # wasmtime loads only with --enable-wasm

        return wasm_registry(self.config, self.blobs, self.blob_fetcher, lambda: self.raft.state)

    def _wasm_missing(self) -> str | None:
        """Why this node, started without --enable-wasm, must not serve (or None)."""
        return None if self.wasm is not None else readiness_problem(self.raft.state)

    def _wasm_hooks(self) -> WasmHooks | None:
        if self.wasm is None:
            return None
        from node.wasm.hooks import WasmHooks

        return WasmHooks(self.wasm, self.metrics.wasm_call, self.config.wasm_max_body_bytes)

    def _blob_peers(self) -> list[Peer]:
        """Every other member, those answering the peer poll first."""
        members = [m for n, m in self.raft.state.members.items() if n != self.name]
        peers = [Peer(m["name"], m["http_url"]) for m in members if m.get("http_url")]
        return sorted(peers, key=lambda peer: not self._peer_reachable(peer.name))

    def _peer_reachable(self, name: str) -> bool:
        view = self.peers.views.get(name)
        return bool(view and view.reachable)

    async def _refresh_keys(self) -> None:
        """Reload the identity provider's keys every 5 minutes, sooner after an unknown kid."""
        waited = 0.0
        while True:
            await asyncio.sleep(5.0)
            waited += 5.0
            tokens = self.tokens
            if tokens is not None and (waited >= 300 or tokens.unknown_kid_seen):
                waited = 0.0
                await tokens.refresh()

    def existing_worker(self, url: str) -> str | None:
        """The id of the worker at `url` (without userinfo), however its URL was recorded."""
        found = self.raft.state.worker_urls.get(url)
        if found is not None:
            return found
        for worker in self.pool.all():  # records from before userinfo was split out of URLs
            if worker.url == url:
                return worker.id
        return None

    async def register_worker_url(self, url: str, userinfo: tuple[str, str] | None) -> None:
        existing = self.existing_worker(url)
        if existing is not None:
            if self.raft.state.workers[existing]["status"] == "failed":
                job = {"state": "queued", "message": "retrying at node start", "attempts": 0}
                args = {"id": existing, "status": "pending", "job_status": job}
                await self.commit("worker.set_status", args, None)
                self.discovery.start(existing)
            return
        spec = {"id": str(uuid.uuid4()), "url": url, "connection_mode": connection_mode(url)}
        if userinfo is not None:
            spec["api_key"] = self.credentials.seal(basic(*userinfo))
        try:
            await self.commit("worker.add", {"worker": spec}, None)
        except ApiError as exc:
            if exc.status == 409:
                return  # another node registered it first
            raise
        self.discovery.start(spec["id"])

    # -- views of the replicated state ------------------------------------------------

    def _on_applied(self, applied: Applied) -> None:
        op = applied.op
        reset = op == "reset"
        if op.startswith("worker.") or reset:
            self.pool.sync(self.raft.state.workers)
        if op.startswith("policy.") or reset:
            self.selector.sync(self.raft.state.policies)
        if op.startswith("model.") or reset:
            self.selector.sync_deployments(self.raft.state.models)
        if op.startswith("worker.") or reset:
            self.model_names = known_models(self.pool)
        if op.startswith("ratelimit.") or reset:
            self.ratelimiter.set_rules(rate_rules(self.raft.state.rate_limits))
        if (op.startswith("member.") or reset) and self.control is not None:  # started
            self.peers.poll_newcomers()  # a member that just joined is seen alive at once
        if op == "shutdown.plan" and self.control is not None:
            self.control.follow_plans()  # at once, if the plan names this run of the node
        if op.startswith("config.") or reset:
            self._apply_runtime()
        if op.startswith("tokenizer.") or reset:
            self.tokenizer_registry.sync()
        if (op.startswith("wasm.") or reset) and self.wasm is not None:
            self.wasm.sync()
        if op == "breaker.reset" and (applied.outcome or {}).get("ok"):
            self._reset_breakers(applied.outcome["value"]["worker_id"])

    def _sync_views(self) -> None:
        self.pool.sync(self.raft.state.workers)
        self.selector.sync(self.raft.state.policies)
        self.selector.sync_deployments(self.raft.state.models)
        self.model_names = known_models(self.pool)
        self.ratelimiter.set_rules(rate_rules(self.raft.state.rate_limits))
        self._apply_runtime()

    def runtime_overrides(self) -> dict[str, Any]:
        record = self.raft.state.config.get(RUNTIME_KEY)
        return dict(record["value"]) if record and isinstance(record["value"], dict) else {}

    def _apply_runtime(self) -> None:
        overrides = self.runtime_overrides()
        if overrides != self._runtime_applied:
            parts = LiveParts(
                self.admission,
                self.pool,
                self.selector,
                getattr(self, "forwarder", None),  # built at start
                getattr(self, "health", None),
                self.shares,
            )
            live = apply_runtime(self.config, overrides, parts)
            self.retry, self.parsers = retry_settings(live), output_parsers(live)
            self._runtime_applied = overrides

    def _reset_breakers(self, worker_id: str | None) -> None:
        for worker in self.pool.all():
            if worker_id is None or worker.id == worker_id:
                worker.breaker.reset()

    # -- reading -----------------------------------------------------------------------

    def is_draining(self) -> bool:
        member = self.raft.state.members.get(self.name)
        if self.data_plane and self.raft.facts.draining:  # type: ignore[attr-defined]
            return True  # its control process drains the node
        return self.stopper.draining or bool(member and member.get("draining"))

    async def _take_facts(self) -> None:
        """A data-plane process takes worker health from its control process's checks."""
        self.pool.take_health(health_verdicts(self.raft.facts))  # type: ignore[attr-defined]

    def serving_nodes(self) -> int:
        """Nodes taking traffic now (this one included): each takes 1/N of a rate limit.
        A member not polled yet counts as serving, and so does a configured voter not yet
        known as a member: a node that has just started errs towards the smaller share."""
        members = [name for name in self.raft.state.members if name != self.name]
        unknown = max(0, len(self.raft.settings.peers) - len(members))
        return 1 + unknown + sum(1 for name in members if self.peers.serving_or_unpolled(name))

    def mesh_size(self) -> int:
        """Members of the mesh, or the configured voters while fewer are known: each node
        owns ceil(L / N) of a quota L, so a node that knows few members yet errs towards the
        smaller share."""
        return max(len(self.raft.state.members), len(self.raft.settings.peers) + 1)

    def model_label(self, model: str | None) -> str:
        """The `model` label of a request's metrics: bounded by what the mesh serves."""
        if model is None:
            return "none"
        return model if model in self.model_names else "unknown"

    def leader_name(self) -> str | None:
        leader = self.raft.status().leader
        for member in self.raft.state.members.values():
            if member.get("raft_address") == leader:
                return member["name"]  # type: ignore[no-any-return]
        return None

    def info(self) -> dict[str, Any]:
        return {
            "node": self.name,
            "version": __version__,
            "uptime_secs": round(time.time() - self.started_at, 3),
        }

    # -- writing control state -------------------------------------------------------

    def actor(self, principal: Principal | None) -> str:
        return f"{self.name}/{principal.id}" if principal else f"{self.name}/node"

    async def commit(
        self,
        op: str,
        args: dict[str, Any],
        principal: Principal | None,
        *,
        shows_secret: bool = False,
        request_id: str | None = None,
    ) -> Any:
        """Submit a command and return its value; failures become ApiError with the right status.

        Called from a handler, the command's request id comes from the request's
        Idempotency-Key when it has one (node.idempotency), so a client's retry is
        applied at most once and answered from the first attempt's outcome. A
        handler whose answer shows a secret only the first attempt held passes
        `shows_secret`: a replay then answers 409 instead of a secret that does not work.
        Every error says what is known of the command: `outcome` is "rejected"
        (applied as a refusal: nothing changed), "not_committed" or "unknown", with
        its `request_id` (see `commit_failure`). Arguments that break the command's rule
        are refused before submitting, with the code apply would give them."""
        problem = commands.command_problem(op, args)
        if problem:  # the rule apply would refuse it by: a 400, and nothing enters the log
            raise ApiError(400, problem, code="INVALID")
        context = idempotency.current()
        rid = request_id  # a caller outside a request that resends a command names it
        if rid is None and context is not None:
            rid = context.next_request_id(principal.id if principal else "node")
        command = commands.make(op, args, by=self.actor(principal), rid=rid)
        try:
            cut_off = cut_off_from_quorum(self.raft.status(), command["rid"])
            if cut_off is not None:  # nothing was sent: fail now, not after the commit timeout
                raise cut_off
            outcome = await self.raft.submit(command)
        except CommitError as exc:
            if context is not None:
                context.committed(command["rid"], replayed=False)
            raise commit_failure(exc, "the change") from None
        replayed = bool(outcome.get("replayed"))
        if context is not None:
            context.committed(command["rid"], replayed=replayed)
        if replayed and shows_secret and outcome["ok"]:
            raise ApiError(
                409,
                f"this {idempotency.HEADER} was already used: the first request was applied, "
                "and the secret it created was shown to it alone; rotate the key to get a "
                "new secret, or send a new key to create another",
                code="IDEMPOTENCY_KEY_REUSED",
                extra={
                    "outcome": "applied",
                    "request_id": command["rid"],
                    "value": outcome["value"],
                },
            )
        if not outcome["ok"]:
            status = commands.ERRORS.get(outcome["error"], 400)
            extra = {k: v for k, v in outcome.items() if k not in ("ok", "error", "message")}
            extra.update(outcome="rejected", request_id=command["rid"])
            raise ApiError(status, outcome["message"], code=outcome["error"].upper(), extra=extra)
        return outcome["value"]


def cut_off_from_quorum(status: RaftStatus, request_id: str) -> CommitError | None:
    """A write this node cannot commit now: it reaches no majority of voters and has not
    heard from the leader it knew for `stale_after`. Without this, a follower that still
    names its dead leader would send it the command and answer "unknown" once the wait
    ran out; refused before sending, the command is known never to commit (static
    stability: the control plane answers 503 at once while the data plane serves on).
    A node that has heard from no leader yet in this run (it is starting, or restarted
    without quorum) waits for one as usual, and answers 503 not_committed if none comes."""
    if not status.cut_off:
        return None
    return CommitError(
        "no_quorum",
        "no majority of voters is reachable, and no leader has been heard from",
        outcome=NOT_COMMITTED,
        request_id=request_id,
    )


def commit_failure(exc: CommitError, what: str) -> ApiError:
    """The answer to a write whose command did not (knowingly) commit: what is known of it.

    not_committed (503, or 429 for a full queue): no copy reached a leader's log that
    can commit it, so it never will be applied; retry. unknown (503, or 504 when the
    wait ran out): it may have been applied, or may still be, but never after anything
    sent from now on; retry with the same Idempotency-Key, or re-read and write with
    expected_version, or ask GET /ha/requests/{request_id}."""
    retry = {"Retry-After": str(max(1, round(exc.retry_after)))}
    extra: dict[str, Any] = {"outcome": exc.outcome, "request_id": exc.request_id}
    if exc.outcome == NOT_COMMITTED:
        status = 429 if exc.reason == "queue_full" else 503
        return ApiError(
            status,
            f"{what} was not committed ({exc.reason}) and never will be: no copy of it reached "
            "a leader's log. The mesh may have no leader or quorum right now; retry shortly",
            code="not_committed",
            headers=retry,
            extra=extra,
        )
    if exc.expires_at is not None:
        extra["expires_at"] = exc.expires_at
    return ApiError(
        504 if exc.timed_out else 503,
        f"{what} may or may not have been committed ({exc.reason}); if it was, it took effect "
        "before anything sent from now on. Retry with the same Idempotency-Key (applied at "
        "most once), or re-read and write with expected_version, or ask "
        "GET /ha/requests/{request_id}",
        code="outcome_unknown",
        headers=retry,
        extra=extra,
    )


def known_models(pool: WorkerPool) -> frozenset[str]:
    """Model ids served by a worker (its model_id and the models it listed). Deployment
    names are a tenant's own and are never a label of the public /metrics."""
    names = set(pool.models())
    for worker in pool.all():
        served = worker.record.get("metadata", {}).get("served_models", [])
        names.update(m for m in served if isinstance(m, str))
    return frozenset(names)


def token_service(config: Config) -> TokenService | None:
    """Tokens are on when meshgate signs its own (--jwt-secret) or trusts an IdP's."""
    idp = idp_settings(config)
    if not config.jwt_secret and idp is None:
        return None
    from node.identity.tokens import TokenService  # PyJWT: only for a node with tokens

    return TokenService(
        config.jwt_secret,
        issuer=config.jwt_issuer,
        audience=config.jwt_audience,
        lifetime_secs=config.jwt_lifetime_secs,
        idp=idp,
    )


def rate_rules(records: dict[str, dict[str, Any]]) -> dict[str, Rule]:
    return {
        scope: Rule(scope=scope, rate=float(r["requests_per_second"]), burst=float(r["burst"]))
        for scope, r in records.items()
    }
