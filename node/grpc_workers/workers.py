"""This node's gRPC workers: a channel each, what discovery learnt, their tokenizers.

`client(worker_id)` is what the OpenAI routes over gRPC use: the worker's stub, the
call metadata carrying its credential, its loaded tokenizer and model info. The
channel opens on first use and closes when the worker is removed (or its URL or
credential changes). On a node that did not run the worker's discovery, the
tokenizer is loaded in the background as the worker turns ready, from where
discovery recorded it came (`tokenizer` in the worker's metadata).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from smg_grpc_proto.generated import common_pb2
from smg_grpc_proto.generated import sglang_scheduler_pb2 as pb
from smg_grpc_proto.generated.sglang_scheduler_pb2_grpc import SglangSchedulerStub

from node.blobs.store import BlobStore
from node.grpc_workers import tokenizer_files
from node.grpc_workers.calls import GrpcCallFailed, unary
from node.grpc_workers.channel import Metadata, auth_metadata, open_channel
from node.grpc_workers.discover import (
    TokenizerChoice,
    TokenizerUnavailable,
    choose_tokenizer,
    described,
)
from node.service import cancel_and_wait
from node.text.resolve import TokenizerCatalog
from node.text.tokenizer import TextTokenizer, TokenizerLoadError, load_tokenizer
from node.workers.credentials import Target
from node.workers.discovery import DiscoveryFailed
from node.workers.pool import WorkerPool
from node.workers.worker import Worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GrpcSettings:
    request_timeout: float = 5.0  # every unary call's deadline
    tokenizer_timeout: float = 60.0  # GetTokenizer's whole stream


@dataclass
class GrpcClient:
    """One gRPC worker as the serving path uses it."""

    worker_id: str
    url: str
    channel: grpc.aio.Channel
    stub: SglangSchedulerStub
    metadata: Metadata  # send with every call: the worker's credential
    tokenizer: TextTokenizer | None = None
    model_info: pb.GetModelInfoResponse | None = None
    server_info: dict[str, Any] = field(default_factory=dict)
    key: tuple[str, Metadata] = ("", ())


RETRY_MAX_SECS = 15.0


class GrpcWorkers:
    def __init__(
        self,
        pool: WorkerPool,
        blobs: BlobStore,
        catalog: TokenizerCatalog,
        unpack_root: Path,
        settings: GrpcSettings,
    ) -> None:
        self.pool = pool
        self.blobs = blobs
        self.catalog = catalog
        self.unpack_root = unpack_root
        self.settings = settings
        self._clients: dict[str, GrpcClient] = {}
        self._preparing: dict[str, asyncio.Task[None]] = {}
        self.retry_first = 0.5  # seconds before loading a tokenizer again (doubles, to 15 s)
        self._closing: set[asyncio.Task[None]] = set()  # held: the loop keeps weak refs
        pool.on_added.append(self._seen)
        pool.on_changed.append(self._seen)
        pool.on_removed.append(self._removed)

    # -- what the serving path uses -------------------------------------------------

    def client(self, worker_id: str) -> GrpcClient | None:
        """The worker's client (its tokenizer is None until loaded), or None if unknown."""
        worker = self.pool.get(worker_id)
        if worker is None or worker.connection_mode != "grpc":
            return None
        return self.connect(worker.id, worker.target)

    def tokenizer_loaded(self, worker_id: str) -> bool:
        """Whether this node has the worker's tokenizer loaded (opens no channel)."""
        client = self._clients.get(worker_id)
        return client is not None and client.tokenizer is not None

    async def ready_client(self, worker_id: str) -> GrpcClient | None:
        """The worker's client with its tokenizer loaded (loading it now if need be)."""
        client = self.client(worker_id)
        worker = self.pool.get(worker_id)
        if client is None or worker is None:
            return None
        if client.tokenizer is None:
            await self._prepare(worker)
        return client

    def connect(self, worker_id: str, target: Target) -> GrpcClient:
        """The worker's client, opening its channel on first use (or a new URL/credential)."""
        key = (target.url, auth_metadata(target.headers))
        client = self._clients.get(worker_id)
        if client is not None and client.key == key:
            return client
        if client is not None:
            self._close_later(client)
        channel = open_channel(target.url)
        client = GrpcClient(
            worker_id, target.url, channel, SglangSchedulerStub(channel), key[1], key=key
        )
        self._clients[worker_id] = client
        return client

    async def close(self) -> None:
        await cancel_and_wait(list(self._preparing.values()))
        await asyncio.gather(*self._closing, return_exceptions=True)
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(c.channel.close() for c in clients), return_exceptions=True)

    # -- discovery -------------------------------------------------------------------

    async def discovered(self, record: dict[str, Any], target: Target) -> dict[str, Any]:
        """`discover`, its failures told as DiscoveryFailed (discovery retries those)."""
        try:
            return await self.discover(record, target)
        except (GrpcCallFailed, TokenizerUnavailable) as exc:
            raise DiscoveryFailed(str(exc)) from None
        except OSError as exc:  # the data dir: full, or not writable
            log.warning("gRPC worker %s: storing its tokenizer: %s", record["id"], exc)
            raise DiscoveryFailed("could not store the worker's tokenizer on this node") from None

    async def discover(self, record: Mapping[str, Any], target: Target) -> dict[str, Any]:
        """GetModelInfo, GetServerInfo, then the tokenizer; what to record for the worker.
        Raises GrpcCallFailed or TokenizerUnavailable (str() says why)."""
        client = self.connect(record["id"], target)
        timeout = self.settings.request_timeout
        info = await unary(
            "GetModelInfo",
            client.stub.GetModelInfo,
            pb.GetModelInfoRequest(),
            client.metadata,
            timeout,
        )
        server = await unary(
            "GetServerInfo",
            client.stub.GetServerInfo,
            pb.GetServerInfoRequest(),
            client.metadata,
            timeout,
        )
        model_id = record.get("model_id") or info.served_model_name or info.model_path or None
        choice = choose_tokenizer(record, model_id, self.catalog)
        before = TokenizerChoice.from_recorded((record.get("metadata") or {}).get("tokenizer"))
        if choice.source == "worker" and before is not None and before.source == "worker":
            choice = before  # fetched before: loaded from its digest, not fetched again
        tokenizer, choice = await self._load(client, choice, record.get("chat_template"))
        client.model_info, client.tokenizer = info, tokenizer
        client.server_info = MessageToDict(server, preserving_proto_field_name=True)
        metadata = described(info, server)
        metadata["tokenizer"] = choice.recorded()
        return {"metadata": metadata, "model_id": model_id}

    async def _load(
        self,
        client: GrpcClient,
        choice: TokenizerChoice,
        template: str | None,
        follow_record: bool = False,
    ) -> tuple[TextTokenizer, TokenizerChoice]:
        """`follow_record`: the worker's recorded digest is the one to load, whatever the
        worker sends now (a node following the record, not the one discovering it)."""
        if choice.source == "registry":
            found = self.catalog.find(choice.name)
            if found is not None:
                try:
                    return (found.with_chat_template(template) if template else found), choice
                except TokenizerLoadError as exc:
                    raise TokenizerUnavailable(f"the worker's chat_template: {exc}") from None
            raise TokenizerUnavailable(
                f"registered tokenizer {choice.name!r} is not loaded here yet"
            )
        if choice.source == "tokenizer_path":
            try:
                return await asyncio.to_thread(load_tokenizer, Path(choice.name), template), choice
            except TokenizerLoadError as exc:
                raise TokenizerUnavailable(f"tokenizer_path: {exc}") from None
        digest = choice.sha256
        directory = (
            tokenizer_files.unpacked(self.blobs, digest, self.unpack_root) if digest else None
        )
        fetched = ""
        try:
            if directory is None:
                digest = fetched = await self._fetch(client, digest if follow_record else None)
                directory = await asyncio.to_thread(
                    tokenizer_files.unpack, self.blobs, digest, self.unpack_root
                )
            tokenizer = await tokenizer_files.load_unpacked(directory, template)
        except (tokenizer_files.TokenizerFetchFailed, TokenizerLoadError) as exc:
            if fetched:  # a zip that gives no tokenizer: never kept (each retry would add one)
                self._discard_unused(fetched)
            raise TokenizerUnavailable(choice.missing(str(exc))) from None
        return tokenizer, TokenizerChoice("worker", "", digest, choice.model)

    async def _fetch(self, client: GrpcClient, expected: str | None) -> str:
        try:
            return await tokenizer_files.fetch(
                client.stub,
                client.metadata,
                self.blobs,
                self.settings.tokenizer_timeout,
                expected,
            )
        except grpc.aio.AioRpcError as exc:
            raise tokenizer_files.TokenizerFetchFailed(
                str(GrpcCallFailed("GetTokenizer", exc.code()))
            ) from None

    # -- health, loads, cache ----------------------------------------------------------

    async def probe(self, worker: Worker, timeout: float) -> tuple[bool, str | None]:
        """HealthCheck, then GetLoads for the load routing reads: (passed, error)."""
        client = self.connect(worker.id, worker.target)
        try:
            health = await unary(
                "HealthCheck",
                client.stub.HealthCheck,
                pb.HealthCheckRequest(),
                client.metadata,
                timeout,
            )
            if not health.healthy:
                return False, "HealthCheck answered healthy=false"
            loads = await self._loads(client, timeout)
        except GrpcCallFailed as exc:
            return False, str(exc)
        reported = sum(load.num_running_reqs + load.num_waiting_reqs for load in loads.loads)
        worker.engine_load = max(0, reported - worker.in_flight)  # others' requests, not ours
        return True, None

    async def get_load(self, worker: Worker, timeout: float) -> dict[str, Any]:
        """The worker's GetLoads answer as JSON (raises GrpcCallFailed)."""
        client = self.connect(worker.id, worker.target)
        answer = await self._loads(client, timeout)
        return MessageToDict(answer, preserving_proto_field_name=True)

    async def flush_cache(self, worker: Worker, timeout: float) -> dict[str, Any]:
        """FlushCache on the worker: {"success", "message"} (raises GrpcCallFailed)."""
        client = self.connect(worker.id, worker.target)
        answer = await unary(
            "FlushCache",
            client.stub.FlushCache,
            common_pb2.FlushCacheRequest(),
            client.metadata,
            timeout,
        )
        return {"success": answer.success, "message": answer.message}

    async def _loads(self, client: GrpcClient, timeout: float) -> pb.GetLoadsResponse:
        request = pb.GetLoadsRequest()
        return await unary("GetLoads", client.stub.GetLoads, request, client.metadata, timeout)

    # -- following the pool ------------------------------------------------------------

    def _seen(self, worker: Worker) -> None:
        """A worker turned ready on this node: load its tokenizer ahead of the first request."""
        if worker.connection_mode != "grpc" or worker.status != "ready":
            return
        client = self._clients.get(worker.id)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a pool synced before the node runs: the first call loads it
            return
        if (client is None or client.tokenizer is None) and worker.id not in self._preparing:
            task = loop.create_task(
                self._keep_preparing(worker), name=f"grpc-tokenizer-{worker.id}"
            )
            self._preparing[worker.id] = task
            task.add_done_callback(lambda _: self._preparing.pop(worker.id, None))

    async def _keep_preparing(self, worker: Worker) -> None:
        """Load the tokenizer, again with backoff while the worker stays ready here: the
        serving path skips a gRPC worker without one, and a failure (the worker briefly
        unreachable, say) must not leave it skipped until its record next changes."""
        delay = self.retry_first
        while True:
            await self._prepare(worker)
            client = self._clients.get(worker.id)
            current = self.pool.get(worker.id)
            if client is None or client.tokenizer is not None:
                return
            if current is None or current.status != "ready":
                return
            worker = current
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECS)

    async def _prepare(self, worker: Worker) -> None:
        client = self.connect(worker.id, worker.target)
        recorded = (worker.record.get("metadata") or {}).get("tokenizer")
        choice = TokenizerChoice.from_recorded(recorded) or choose_tokenizer(
            worker.record, worker.model_id, self.catalog
        )
        try:
            client.tokenizer, _ = await self._load(
                client, choice, worker.record.get("chat_template"), follow_record=True
            )
        except (TokenizerUnavailable, GrpcCallFailed, OSError) as exc:
            log.warning("gRPC worker %s (%s): no tokenizer yet: %s", worker.id, worker.url, exc)
        except Exception:  # never an unretrieved task exception: the next request retries
            log.exception("gRPC worker %s (%s): loading its tokenizer", worker.id, worker.url)
        if client.model_info is None:
            try:
                client.model_info = await unary(
                    "GetModelInfo",
                    client.stub.GetModelInfo,
                    pb.GetModelInfoRequest(),
                    client.metadata,
                    self.settings.request_timeout,
                )
            except GrpcCallFailed as exc:
                log.warning("gRPC worker %s (%s): %s", worker.id, worker.url, exc)

    def _discard_unused(self, digest: str) -> None:
        """Remove a worker zip and its unpacked directory unless a worker record names it."""
        if all(_zip_digest(w.record) != digest for w in self.pool.all()):
            tokenizer_files.discard(self.blobs, digest, self.unpack_root)

    def _removed(self, worker: Worker) -> None:
        digest = _zip_digest(worker.record)
        if digest:
            self._discard_unused(digest)
        task = self._preparing.pop(worker.id, None)
        if task is not None:
            task.cancel()
        client = self._clients.pop(worker.id, None)
        if client is not None:
            self._close_later(client)

    def _close_later(self, client: GrpcClient) -> None:
        # Calls in flight on the old channel get a moment to finish (grace), then stop.
        task = asyncio.get_running_loop().create_task(client.channel.close(grace=5.0))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


def _zip_digest(record: Mapping[str, Any]) -> str:
    """The sha256 of the worker's own tokenizer zip, as recorded ("" if none)."""
    choice = TokenizerChoice.from_recorded((record.get("metadata") or {}).get("tokenizer"))
    return choice.sha256 if choice is not None and choice.source == "worker" else ""
