"""The control process's end of the plane link: `PlaneServer` serves `NodePlane`.

Each follower gets its own bounded queue. The applied stream and the status
ticker put into every queue without waiting; a follower whose queue is full is
cut off (RESOURCE_EXHAUSTED) and follows again from a new snapshot, so a slow
data-plane process never slows the others or the control process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import grpc
from grpc import aio

from mesh.events import Applied, AppliedStream
from mesh.raft import CommitError, MeshRaft
from mesh.state import ControlState
from node.plane import codec, socket_file
from node.plane.facts import PlaneFacts
from node.plane.generated import node_pb2 as pb
from node.plane.generated import node_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

QUEUE_LIMIT: Final = 10_000  # events a follower may lag behind before it is cut off
STATUS_EVERY: Final = 0.1  # how often status and facts are compared with the last sent
HEARTBEAT_EVERY: Final = 1.0  # status and facts are sent at least this often
SNAPSHOT_TIMEOUT: Final = 10.0  # to read the state on the Raft thread
LONGEST_SUBMIT: Final = 60.0
STOP_GRACE: Final = 1.0
MAX_REQUEST_BYTES: Final = 4 * 1024 * 1024  # a command (its arguments are bounded far lower)
MAX_NAME_CHARS: Final = 64  # of a follower's process name, in logs


class _Resnapshot:
    """Queued on a reset: the follower sends a new snapshot before anything after it."""


RESNAPSHOT: Final = _Resnapshot()
Item = pb.FollowEvent | _Resnapshot


@dataclass(eq=False)  # each follower is itself: hashed by identity
class _Follower:
    name: str
    queue: asyncio.Queue[Item]
    lagging: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, item: Item) -> bool:
        """Queue `item`; False (and cut off from now on) when the queue is full."""
        if self.lagging.is_set():
            return True
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.lagging.set()
            return False
        return True


class PlaneServer(pb_grpc.NodePlaneServicer):
    """Serves the node's control state, its Raft status and hot facts on a Unix socket."""

    def __init__(
        self,
        raft: MeshRaft,
        stream: AppliedStream,
        facts: Callable[[], PlaneFacts],
        socket_path: Path,
        version: str = codec.PLANE_VERSION,
        *,
        queue_limit: int = QUEUE_LIMIT,
    ) -> None:
        self._raft = raft
        self._stream = stream
        self._facts = facts
        self.socket_path = socket_path
        self.version = version
        self._queue_limit = queue_limit
        self._followers: set[_Follower] = set()
        self._server: aio.Server | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._previous = 0  # the index of the last entry (or reset) the stream carried
        self._closing = asyncio.Event()  # ends every Follow stream when set
        self.cut_offs = 0  # followers cut off for lagging (since start)

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        socket_file.claim(self.socket_path)
        self._closing = asyncio.Event()
        server = aio.server(
            options=[
                ("grpc.max_send_message_length", codec.MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
            ]
        )
        pb_grpc.add_NodePlaneServicer_to_server(self, server)
        server.add_insecure_port(f"unix:{self.socket_path.absolute()}")
        self._previous = self._raft.state.applied_index
        self._unsubscribe = self._stream.subscribe(self._on_applied)
        await server.start()
        self.socket_path.chmod(0o600)  # only this node's user may feed or submit
        self._server = server
        self._ticker = asyncio.create_task(self._tick(), name="plane-status")
        log.info("plane link serving on %s (version %s)", self.socket_path, self.version)

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._closing.set()
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace=STOP_GRACE)  # for submits under way
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    @property
    def followers(self) -> int:
        return len(self._followers)

    # -- what every follower gets ---------------------------------------------

    def _on_applied(self, item: Applied) -> None:
        entry: Item = RESNAPSHOT
        if item.command is not None:
            try:
                entry = pb.FollowEvent(
                    applied=pb.Applied(
                        index=item.index,
                        previous_index=self._previous,
                        command_json=codec.dumps(item.command),
                        outcome_json=codec.dumps(item.outcome),
                    )
                )
            except TypeError:  # not JSON: the followers read the state it made instead
                log.exception(
                    "plane link: log entry %d is not JSON; resending the state", item.index
                )
        self._previous = item.index
        for follower in self._followers:
            follower.offer(entry)

    async def _tick(self) -> None:
        """Offer status and facts to every follower on change, and as a heartbeat."""
        sent_status: pb.Status | None = None
        sent_facts: pb.Facts | None = None
        sent_at = 0.0
        while True:
            try:
                status, facts = self._status_event(), self._facts_event()
            except Exception:  # a heartbeat missed, never the ticker lost
                log.exception("plane link: cannot read the status or facts")
                await asyncio.sleep(STATUS_EVERY)
                continue
            now = time.monotonic()
            beat = now - sent_at >= HEARTBEAT_EVERY
            if beat or not _same_status(status.status, sent_status):
                sent_status = status.status
                for follower in self._followers:
                    follower.offer(status)
            if beat or facts.facts != sent_facts:
                sent_facts = facts.facts
                for follower in self._followers:
                    follower.offer(facts)
            if beat:
                sent_at = now
            await asyncio.sleep(STATUS_EVERY)

    def _status_event(self) -> pb.FollowEvent:
        # The status first, then the state's index: every command at or below the status's
        # applied position is then at or below that index, so a data plane that has applied
        # that far may claim the position (PlaneReplica._applied_index), never more.
        status = self._raft.status()
        return pb.FollowEvent(status=codec.status_message(status, self._raft.state.applied_index))

    def _facts_event(self) -> pb.FollowEvent:
        return pb.FollowEvent(facts=codec.facts_message(self._facts()))

    async def _snapshot(self) -> pb.FollowEvent:
        """The state as the Raft thread holds it between two applies, and its index."""
        fields = await self._raft.on_raft_thread(
            lambda _sync: self._raft.state.to_snapshot(), timeout=SNAPSHOT_TIMEOUT
        )
        data = await asyncio.to_thread(codec.dumps, fields)
        return pb.FollowEvent(
            snapshot=pb.Snapshot(
                index=fields["applied_index"],
                state=data,
                settings=codec.settings_message(self._raft.settings),
            )
        )

    # -- the service ----------------------------------------------------------

    async def Follow(  # the rpc's name, as gRPC calls it
        self, request: pb.FollowRequest, context: aio.ServicerContext[Any, Any]
    ) -> None:
        await self._check_version(request.plane_version, context)
        name = request.process_name[:MAX_NAME_CHARS] or "?"
        follower = _Follower(name, asyncio.Queue(self._queue_limit))
        self._followers.add(follower)
        log.info("plane link: %s follows", follower.name)
        # The writer may wait on a follower that reads nothing: the cut-off must not.
        writer = asyncio.create_task(self._write(follower, context))
        lagging = asyncio.create_task(follower.lagging.wait())
        closing = asyncio.create_task(self._closing.wait())
        try:
            await asyncio.wait({writer, lagging, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._followers.discard(follower)
            for task in (lagging, closing, writer):
                task.cancel()
        if writer.done() and not writer.cancelled():
            writer.result()  # its error, if it failed
        if not follower.lagging.is_set():
            return  # stopping: the stream ends, and the follower comes back to a new server
        self.cut_offs += 1
        log.warning("plane link: %s fell too far behind; cut off", follower.name)
        await context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"{follower.name} fell more than {self._queue_limit} events behind; "
            "follow again from a new snapshot",
        )

    async def _write(self, follower: _Follower, context: aio.ServicerContext[Any, Any]) -> None:
        """A snapshot, status and facts, then what the queue brings, in order."""
        snapshot = await self._snapshot()
        at = snapshot.snapshot.index
        for first in (snapshot, self._status_event(), self._facts_event()):
            await context.write(first)
        while True:
            item = await follower.queue.get()
            if isinstance(item, _Resnapshot):
                item = await self._snapshot()
                at = item.snapshot.index
            elif item.HasField("applied"):
                if item.applied.index <= at:
                    continue  # already in the snapshot sent
                at = item.applied.index
            await context.write(item)

    async def Submit(  # the rpc's name, as gRPC calls it
        self, request: pb.SubmitRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.SubmitReply:
        await self._check_version(request.plane_version, context)
        try:
            command = codec.loads(request.command_json)
        except ValueError:
            command = None
        if not isinstance(command, dict):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "command_json is no JSON object")
        timeout = min(request.timeout_secs, LONGEST_SUBMIT) if request.timeout_secs > 0 else None
        try:
            outcome = await self._raft.submit(command, timeout)
        except CommitError as exc:
            return pb.SubmitReply(error=codec.error_message(exc))
        return pb.SubmitReply(
            outcome_json=codec.dumps(outcome),
            applied_index=_applied_at(self._raft.state, command),
        )

    async def _check_version(self, theirs: str, context: aio.ServicerContext[Any, Any]) -> None:
        if theirs == self.version:
            return
        context.set_trailing_metadata(((codec.VERSION_KEY, self.version),))
        await context.abort(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"this control process speaks plane version {self.version}, the caller {theirs!r}",
        )


def _same_status(a: pb.Status, b: pb.Status | None) -> bool:
    """Equal but for the leader contact, which moves with every append: the heartbeat
    carries that (a data plane judges `stale` within a second of the control process)."""
    if b is None:
        return False
    a2, b2 = pb.Status(), pb.Status()
    a2.CopyFrom(a)
    b2.CopyFrom(b)
    for message in (a2, b2):
        message.ClearField("last_leader_contact")
        message.ClearField("last_leader_contact_wall")
    return a2 == b2


def _applied_at(state: ControlState, command: dict[str, Any]) -> int:
    """The index the command was applied at, if remembered, else an index at or after it."""
    seen = state.request(command.get("rid", "")) if isinstance(command.get("rid"), str) else None
    index = seen.get("index") if seen is not None else None
    return index if isinstance(index, int) else state.applied_index
