"""A data-plane process's end of the plane link: `PlaneReplica` stands in for MeshRaft.

It holds its own ControlState, loaded from the control process's snapshot and
advanced with the same `ControlState.apply` on each applied entry, and publishes
every entry (and a reset on each snapshot) into the process's applied stream, so
the node's parts subscribe as they would to Raft. Writes go to the control
process (`submit`). While the link is down the replica serves what it has, and
`status()` says it is not ready, until a new snapshot has caught it up.

Consistent reads: `leader_read_index()` is always None here, so node/read_index.py
commits a `read.barrier` through `submit`, which the control process proposes; the
answer comes once this replica has applied it."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Final

import grpc
from grpc import aio

from mesh.commands import Command, Outcome
from mesh.events import Applied, AppliedStream
from mesh.raft import NOT_COMMITTED, UNKNOWN, CommitError, RaftSettings, RaftStatus
from mesh.state import ControlState
from node.plane import codec
from node.plane.facts import PlaneFacts
from node.plane.generated import node_pb2 as pb
from node.plane.generated import node_pb2_grpc as pb_grpc
from node.service import cancel_and_wait

log = logging.getLogger(__name__)

START_TIMEOUT: Final = 10.0  # for the first snapshot
RETRY_FIRST: Final = 0.05  # the first reconnect's delay; doubled up to RETRY_MOST
RETRY_MOST: Final = 1.0
RECONNECT_FIRST_MS: Final = 50  # the channel's own first reconnect, as RETRY_FIRST
DOWN_TOO_LONG: Final = 10.0  # a link down this long makes liveness fail: restart the process
SUBMIT_MARGIN: Final = 2.0  # past the command's own wait, for the control process to answer
# The control process sends status at least every second (control_side.HEARTBEAT_EVERY): a
# stream silent for three heartbeats is down, though its socket is open (a frozen process).
SILENT_AFTER: Final = 3.0
# What the control process answers before it hands a command to Raft.
REFUSED_UNSENT: Final = frozenset(
    {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT}
)


class PlaneLinkError(Exception):
    """The control process cannot be followed; the message says why."""


class PlaneReplica:
    """The control state, status and facts of this node, as its control process has them."""

    def __init__(
        self,
        socket_path: Path,
        stream: AppliedStream,
        version: str = codec.PLANE_VERSION,
        process_name: str = "data",
        *,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.socket_path = socket_path
        self.stream = stream
        self.version = version
        self.process_name = process_name
        self._start_timeout = start_timeout
        self.state = ControlState()
        self.settings = RaftSettings(data_dir=socket_path.parent, self_address=None)
        self.facts = PlaneFacts()
        self.restores = 0  # snapshots loaded after the first
        self.last_error: str | None = None  # why the link last went down
        self._status = RaftStatus.starting(None)
        self._control_state_index = 0  # the control replica's applied index, as last told
        self._linked = False
        # status() with this replica's applied index, kept for as long as neither changes:
        # every request asks (the load gate, X-Meshgate-Index) and a copy costs microseconds.
        self._adjusted: tuple[RaftStatus, int, RaftStatus] | None = None
        self._down_since: float | None = time.monotonic()
        self._snapshots = 0
        self._channel: aio.Channel | None = None
        self._stub: pb_grpc.NodePlaneStub | None = None
        self._task: asyncio.Task[None] | None = None
        self._first = asyncio.Event()
        self._down = asyncio.Event()  # set while the link is down
        self._down.set()
        self._applied_waiters: list[tuple[int, asyncio.Future[None]]] = []

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Connect and load the first snapshot; PlaneLinkError if that takes too long."""
        self.stream.bind(asyncio.get_running_loop())
        self._first = asyncio.Event()  # a start after a stop waits for a new snapshot too
        self._channel = aio.insecure_channel(
            f"unix:{self.socket_path.absolute()}",
            options=[
                ("grpc.max_receive_message_length", codec.MAX_MESSAGE_BYTES),
                # A child starts beside its control process and may ask before the
                # link serves: retry a local socket soon, not after gRPC's 1 s and up.
                ("grpc.initial_reconnect_backoff_ms", RECONNECT_FIRST_MS),
                ("grpc.min_reconnect_backoff_ms", RECONNECT_FIRST_MS),
                ("grpc.max_reconnect_backoff_ms", int(RETRY_MOST * 1000)),
            ],
        )
        self._stub = pb_grpc.NodePlaneStub(self._channel)
        self._task = task = asyncio.create_task(self._follow_forever(), name="plane-follow")
        first = asyncio.ensure_future(self._first.wait())
        await asyncio.wait(
            {first, task}, timeout=self._start_timeout, return_when="FIRST_COMPLETED"
        )
        if first.done():
            return
        first.cancel()
        why = self.last_error or "no answer"
        refused = task.exception() if task.done() else None
        await self.stop()
        if isinstance(refused, PlaneLinkError):
            raise refused
        raise PlaneLinkError(
            f"no snapshot from the control process at {self.socket_path} within "
            f"{self._start_timeout:g} s: {why}"
        )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])  # (a PlaneLinkError it ended with is start's)
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()
        self._set_linked(False, "stopped")

    # -- reading (what node/ reads of MeshRaft) -------------------------------

    @property
    def linked(self) -> bool:
        """A snapshot is loaded and the stream is live."""
        return self._linked

    def status(self) -> RaftStatus:
        """The control process's status, with this replica's own applied index; never
        ready while the link is down."""
        status = self._status
        if not self._linked:
            return dataclasses.replace(status, ready=False)
        applied = self._applied_index(status)
        if applied == status.applied_index:
            return status
        kept = self._adjusted
        if kept is not None and kept[0] is status and kept[1] == applied:
            return kept[2]
        commit = max(status.commit_index, applied)
        adjusted = dataclasses.replace(status, applied_index=applied, commit_index=commit)
        self._adjusted = (status, applied, adjusted)
        return adjusted

    def _applied_index(self, status: RaftStatus) -> int:
        """The log position this replica has applied. Once it has every command the control
        process had applied when it sent `status`, the control's position (Raft's no-op
        entries move it without a command) or its own, whichever is further; else its own."""
        own = self.state.applied_index
        if own >= self._control_state_index:
            return max(own, status.applied_index)
        return own

    def indexes(self) -> tuple[int, int]:
        """`(commit_index, applied_index)`, as MeshRaft.indexes."""
        status = self.status()
        return max(status.commit_index, status.applied_index), status.applied_index

    def leader_read_index(self) -> int | None:
        """Never vouched for here: the caller commits a barrier through `submit`."""
        return None

    def down_for(self) -> float:
        """How long the link has been down; 0 while it is up."""
        down = self._down_since
        return 0.0 if down is None else time.monotonic() - down

    async def wait_down(self) -> None:
        """Return once the link is down (at once if it is)."""
        await self._down.wait()

    def tick_alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def liveness_problem(self) -> str | None:
        if not self.tick_alive():
            return "the plane link has stopped"
        down = self._down_since
        if down is not None and time.monotonic() - down > DOWN_TOO_LONG:
            return (
                f"no plane link to the control process for {time.monotonic() - down:.0f} s "
                f"({self.last_error or 'no answer'})"
            )
        return None

    # -- writing --------------------------------------------------------------

    async def submit(self, command: Command, timeout: float | None = None) -> Outcome:
        """The control process submits `command` to Raft; returns once this replica
        has applied it too. Raises CommitError as MeshRaft.submit does."""
        stub = self._stub
        if stub is None or not self._linked:  # nothing is sent: it never commits
            raise CommitError(
                "plane_down",
                "this process is not linked to its control process "
                f"({self.last_error or 'starting'})",
                outcome=NOT_COMMITTED,
                request_id=command.get("rid"),
            )
        wait = timeout or self.settings.commit_timeout
        deadline = wait + self.settings.clock_skew_allowance + SUBMIT_MARGIN
        request = pb.SubmitRequest(
            plane_version=self.version, command_json=codec.dumps(command), timeout_secs=wait
        )
        call = asyncio.ensure_future(stub.Submit(request, timeout=deadline))
        down = asyncio.ensure_future(self.wait_down())
        try:
            await asyncio.wait({call, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            down.cancel()
            answered = call.done()
            call.cancel()
        if not answered:  # the control process stopped answering with the command
            raise CommitError(
                "plane_down",
                f"the link to the control process went down ({self.last_error}) while it "
                "had the command",
                outcome=UNKNOWN,
                request_id=command.get("rid"),
                timed_out=True,
            )
        try:
            reply = call.result()
        except aio.AioRpcError as exc:
            raise self._submit_failed(exc, command) from None
        if reply.HasField("error"):
            raise codec.commit_error(reply.error)
        outcome: Outcome = codec.loads(reply.outcome_json)
        if not await self._applied(reply.applied_index, deadline):
            raise CommitError(
                "plane_lagging",
                f"the control process applied the command at index {reply.applied_index}, "
                "and this process has not caught up with it in time",
                outcome=UNKNOWN,
                request_id=command.get("rid"),
                timed_out=True,
            )
        return outcome

    def _submit_failed(self, exc: aio.AioRpcError, command: Command) -> CommitError:
        code = exc.code()
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            message = self._version_message(exc)
        else:
            message = f"the control process did not answer: {code.name} {exc.details()}"
        # Refused before Raft saw it, or else it may have been proposed before the link
        # failed: the request id will tell.
        return CommitError(
            f"plane_{code.name.lower()}",
            message,
            outcome=NOT_COMMITTED if code in REFUSED_UNSENT else UNKNOWN,
            request_id=command.get("rid"),
            timed_out=code == grpc.StatusCode.DEADLINE_EXCEEDED,
        )

    async def _applied(self, index: int, within: float) -> bool:
        """Wait until this replica has applied `index`; False if it did not in time."""
        if self.state.applied_index >= index:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._applied_waiters.append((index, future))
        try:
            await asyncio.wait_for(asyncio.shield(future), within)
        except TimeoutError:
            return False
        finally:
            self._applied_waiters = [w for w in self._applied_waiters if w[1] is not future]
        return True

    def _wake_waiters(self) -> None:
        applied = self.state.applied_index
        for index, future in self._applied_waiters:
            if index <= applied and not future.done():
                future.set_result(None)

    # -- following ------------------------------------------------------------

    async def _follow_forever(self) -> None:
        delay = RETRY_FIRST
        while True:
            try:
                await self._follow()
                reason = "the control process ended the stream"
            except aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    reason = self._version_message(exc)
                    if not self._first.is_set():  # never linked: `start` says so at once
                        self.last_error = reason
                        raise PlaneLinkError(reason) from None
                else:
                    reason = f"{exc.code().name}: {exc.details()}"
            except _OutOfStep as exc:
                reason = str(exc)
            except Exception as exc:  # a message this replica cannot load: start over
                log.exception("plane link: cannot follow %s", self.socket_path)
                reason = f"{type(exc).__name__}: {exc}"
            if self._linked:
                delay = RETRY_FIRST  # it was up: retry at once, not after the last backoff
            self._set_linked(False, reason)
            log.warning("plane link to %s down (%s); retrying", self.socket_path, reason)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MOST)

    async def _follow(self) -> None:
        assert self._stub is not None
        call = self._stub.Follow(
            pb.FollowRequest(plane_version=self.version, process_name=self.process_name)
        )
        while True:
            try:
                event = await asyncio.wait_for(call.read(), SILENT_AFTER)
            except TimeoutError:
                call.cancel()
                raise _OutOfStep(
                    f"no event from the control process for {SILENT_AFTER:g} s "
                    "(it is stopped or hung)"
                ) from None
            if event is aio.EOF:
                return
            kind = event.WhichOneof("event")
            if kind == "applied":
                self._apply(event.applied)
            elif kind == "snapshot":
                self._load(event.snapshot)
            elif kind == "status":
                self._control_state_index = event.status.state_applied_index
                self._status = codec.raft_status(event.status)
            elif kind == "facts":
                self.facts = codec.plane_facts(event.facts)

    def _load(self, snapshot: pb.Snapshot) -> None:
        self.state = ControlState.from_snapshot(codec.loads(snapshot.state))
        self.settings = codec.raft_settings(snapshot.settings, self.socket_path.parent)
        self._snapshots += 1
        if self._snapshots > 1:
            self.restores += 1
        self.stream.publish(Applied(self.state.applied_index, None, None))
        self._set_linked(True, None)
        self._first.set()
        self._wake_waiters()

    def _apply(self, entry: pb.Applied) -> None:
        if not self._linked:
            raise _OutOfStep("an entry arrived before a snapshot")
        if entry.previous_index != self.state.applied_index:
            raise _OutOfStep(
                f"entry {entry.index} follows {entry.previous_index}, "
                f"and this replica is at {self.state.applied_index}"
            )
        command: dict[str, Any] = codec.loads(entry.command_json)
        self.state.apply(command, entry.index)  # the one state machine
        self.stream.publish(Applied(entry.index, command, codec.loads(entry.outcome_json)))
        self._wake_waiters()

    def _set_linked(self, linked: bool, reason: str | None) -> None:
        self._linked = linked
        if linked:
            self._down_since = None
            self._down.clear()
        else:
            self._down.set()
            if self._down_since is None:
                self._down_since = time.monotonic()
            self.last_error = reason

    def _version_message(self, exc: aio.AioRpcError) -> str:
        theirs = "another version"
        for key, value in exc.trailing_metadata() or ():
            if key == codec.VERSION_KEY:
                theirs = str(value)
        return (
            f"the control process at {self.socket_path} speaks plane version {theirs}, "
            f"this process {self.version}: a stale socket from another version?"
        )


class _OutOfStep(Exception):
    """The stream and this replica disagree: drop the stream and load a new snapshot."""
