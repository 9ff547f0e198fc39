"""The plane link (node/plane/): a data-plane replica fed by its control process over gRPC.

One real MeshRaft (a voter alone, in this process) and one PlaneServer on a Unix socket
are shared by the module; each test follows it with its own PlaneReplica, on the same
event loop, so a check between two steps sees exactly what each side has applied."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
from grpc import aio

from mesh import commands
from mesh.events import Applied, AppliedStream
from mesh.raft import NOT_COMMITTED, CommitError, MeshRaft, RaftSettings
from mesh.state import ControlState
from node.plane import codec
from node.plane.control_side import PlaneServer
from node.plane.data_side import PlaneLinkError, PlaneReplica
from node.plane.facts import PlaneFacts, WorkerFacts
from node.plane.generated import node_pb2 as pb
from node.plane.generated import node_pb2_grpc as pb_grpc
from node.plane.socket_file import PlaneSocketError
from tests.support import MESH_SECRET, free_port, wait_for

# pysyncobj reads its journal meta with `open(path).read()` and never closes the file.
pytestmark = pytest.mark.filterwarnings(
    "ignore:unclosed file.*raft.journal.meta:ResourceWarning",
)


class Control:
    """The control process's side: Raft, its applied stream, the plane server, facts."""

    def __init__(self, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.stream = AppliedStream()
        self.stream.bind(self.loop)
        settings = RaftSettings(
            data_dir=data_dir,
            self_address=f"127.0.0.1:{free_port()}",
            password=MESH_SECRET,
            tick_period=0.005,
        )
        self.raft = MeshRaft(settings, self.stream)
        self.raft.start()
        wait_for(lambda: self.raft.status().caught_up, 30, what="the voter leads")
        self.facts = PlaneFacts()
        self.socket = data_dir / "plane.sock"
        self.server = self.plane_server(self.socket)
        self.run(self.server.start())

    def plane_server(self, path: Path, **options: Any) -> PlaneServer:
        return PlaneServer(self.raft, self.stream, lambda: self.facts, path, "1", **options)

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def poll(self, condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
        """Run the loop between checks: both sides of the link live on it."""
        return wait_for(
            lambda: self.run(asyncio.sleep(0.01)) or condition(), timeout, 0.0, what=what
        )

    def write(self, count: int, prefix: str, size: int = 16) -> None:
        async def one(n: int) -> None:
            args = {"key": f"{prefix}{n}", "value": "x" * size}
            outcome = await self.raft.submit(commands.make("config.set", args, by="test"))
            assert outcome["ok"], outcome

        async def all_of_them() -> None:
            await asyncio.gather(*(one(n) for n in range(count)))

        self.run(all_of_them())

    def replica(self, name: str, path: Path | None = None, version: str = "1") -> PlaneReplica:
        replica = PlaneReplica(path or self.socket, AppliedStream(), version, name)
        self.run(replica.start())
        return replica

    def close(self) -> None:
        self.run(self.server.stop())
        self.raft.stop()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Control]:
    # A short path: a Unix socket's path may not exceed 107 bytes.
    side = Control(tmp_path_factory.mktemp("plane"))
    yield side
    side.close()


def plain(state: ControlState) -> Any:
    """The state as JSON reads it back: tuples and lists alike."""
    return orjson.loads(orjson.dumps(state.to_snapshot()))


def caught_up(control: Control, replica: PlaneReplica) -> bool:
    return replica.linked and replica.state.applied_index == control.raft.state.applied_index


def test_snapshot_then_stream_equals_the_control_replica(control: Control) -> None:
    control.write(5, "before-")
    replica = control.replica("data-1")
    seen: list[Applied] = []
    replica.stream.subscribe(seen.append)
    try:
        assert replica.linked and replica.state.applied_index > 0
        control.write(30, "after-")
        control.poll(lambda: caught_up(control, replica), "the replica has every write")
        assert plain(replica.state) == plain(control.raft.state)
        # Every write reached the data side's subscribers too, in log order.
        indexes = [item.index for item in seen if item.command is not None]
        assert len(indexes) >= 30 and indexes == sorted(indexes)
        control.poll(lambda: replica.status().caught_up, "the replica reports caught up")
        control.poll(lambda: replica.indexes() == control.raft.indexes(), "the same indexes")
        status, theirs = replica.status(), control.raft.status()
        assert (status.role, status.leader, status.term) == (
            theirs.role,
            theirs.leader,
            theirs.term,
        )
        assert replica.settings.self_address == control.raft.settings.self_address
        assert replica.settings.password is None
    finally:
        control.run(replica.stop())
    assert not replica.linked and not replica.status().ready


def test_submit_answers_once_the_data_side_has_applied_it(control: Control) -> None:
    replica = control.replica("data-2")
    try:
        command = commands.make("config.set", {"key": "ryw", "value": 42}, by="test")
        outcome = control.run(replica.submit(command))
        assert outcome["ok"], outcome
        # Read-your-writes in this process: applied here by the time submit returned.
        assert replica.state.config["ryw"]["value"] == 42
        stale = {"key": "ryw", "value": 0, "expected_version": 1}
        refused = control.run(replica.submit(commands.make("config.set", stale, by="test")))
        assert refused["ok"] is False and refused["error"] == "version_mismatch", refused
        assert replica.state.config["ryw"]["value"] == 42
        barrier = control.run(replica.submit(commands.make("read.barrier", {}, by="test")))
        assert barrier["ok"]
        assert replica.leader_read_index() is None  # consistent reads commit a barrier
    finally:
        control.run(replica.stop())


def test_a_commit_error_crosses_as_raised(control: Control) -> None:
    replica = control.replica("data-3")
    control.raft.clock = lambda: time.time() - 600  # every copy expires before it is applied
    try:
        command = commands.make("config.set", {"key": "late"}, by="test")
        with pytest.raises(CommitError) as raised:
            control.run(replica.submit(command, timeout=0.3))
        error = raised.value
        assert (error.outcome, error.reason) == (NOT_COMMITTED, "expired")
        assert error.request_id == command["rid"] and "expired" in str(error)
        assert "late" not in replica.state.config
    finally:
        control.raft.clock = time.time
        control.run(replica.stop())


def test_another_plane_version_is_refused_with_a_clear_message(control: Control) -> None:
    with pytest.raises(PlaneLinkError) as raised:
        control.replica("data-old", version="0")
    assert str(raised.value) == (
        f"the control process at {control.socket} speaks plane version 1, this process 0: "
        "a stale socket from another version?"
    )

    async def submit(version: str, command: bytes) -> aio.AioRpcError:
        async with aio.insecure_channel(f"unix:{control.socket}") as channel:
            stub = pb_grpc.NodePlaneStub(channel)
            request = pb.SubmitRequest(plane_version=version, command_json=command)
            with pytest.raises(aio.AioRpcError) as refused:
                await stub.Submit(request)
            return refused.value

    refused = control.run(submit("0", b"{}"))
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "plane version 1" in (refused.details() or "")
    assert (codec.VERSION_KEY, "1") in tuple(refused.trailing_metadata() or ())
    for bad in (b"[1]", b"{not json"):
        refused = control.run(submit("1", bad))
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.details() == "command_json is no JSON object"


def test_status_and_facts_follow_the_control_process(control: Control) -> None:
    replica = control.replica("data-4")
    try:
        control.facts = PlaneFacts({"w1": WorkerFacts("unhealthy", "refused", "open")}, True)
        control.poll(lambda: replica.facts == control.facts, "the facts reach the replica")
        control.facts = PlaneFacts()
        control.poll(lambda: replica.facts == PlaneFacts(), "the change reaches it too")
    finally:
        control.run(replica.stop())


def test_a_lost_link_is_not_ready_then_catches_up_from_a_new_snapshot(control: Control) -> None:
    replica = control.replica("data-5")
    try:
        control.run(control.server.stop())
        control.poll(lambda: not replica.linked, "the replica sees the link go")
        assert not replica.status().ready and not replica.status().caught_up
        control.write(10, "while-down-")
        control.run(control.server.start())
        control.poll(lambda: caught_up(control, replica), "the replica follows again")
        assert replica.restores == 1 and replica.last_error
        assert plain(replica.state) == plain(control.raft.state)
        control.poll(lambda: replica.status().caught_up, "and reports caught up")
    finally:
        control.run(replica.stop())


def test_a_reset_is_sent_as_a_new_snapshot(control: Control) -> None:
    replica = control.replica("data-6")
    resets: list[Applied] = []
    replica.stream.subscribe(lambda item: item.command is None and resets.append(item))
    try:
        # What the Raft thread publishes when it loads a snapshot (mesh/raft.py).
        control.stream.publish(Applied(control.raft.state.applied_index, None, None))
        control.poll(lambda: replica.restores == 1, "the replica loads a new snapshot")
        assert [item.index for item in resets] == [control.raft.state.applied_index]
        control.write(3, "after-reset-")
        control.poll(lambda: caught_up(control, replica), "and goes on from it")
    finally:
        control.run(replica.stop())


def test_a_slow_follower_is_cut_off_without_stalling_another(control: Control) -> None:
    path = control.socket.with_name("small.sock")
    server = control.plane_server(path, queue_limit=32)
    control.run(server.start())

    async def follow() -> tuple[aio.Channel, Any]:
        # Without BDP probes the window stays at 64 KiB: what the slow side never reads
        # backs up into its queue on the server.
        channel = aio.insecure_channel(f"unix:{path}", options=[("grpc.http2.bdp_probe", 0)])
        request = pb.FollowRequest(plane_version="1", process_name="slow")
        return channel, pb_grpc.NodePlaneStub(channel).Follow(request)

    channel, slow = control.run(follow())  # never read until the end
    fast = control.replica("fast", path)
    try:
        control.poll(lambda: server.followers == 2, "both follow")
        for batch in range(40):  # big entries: the slow stream's window fills, then its queue
            control.write(8, f"flood-{batch}-", size=16_000)
            if server.cut_offs:
                break
        assert server.cut_offs == 1
        control.poll(lambda: caught_up(control, fast), "the fast follower has every write")
        assert fast.linked and fast.restores == 0

        async def drain() -> grpc.StatusCode:
            async for _event in slow:
                pass
            return await slow.code()

        with pytest.raises(aio.AioRpcError) as cut:
            control.run(drain())
        assert cut.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "fell more than 32 events behind" in (cut.value.details() or "")
    finally:
        control.run(fast.stop())
        control.run(channel.close())
        control.run(server.stop())


def test_the_socket_file_is_claimed_only_when_stale(control: Control) -> None:
    path = control.socket.with_name("stale.sock")
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(path))
    left.close()  # the file stays, and nothing answers on it: a crashed process's socket
    server = control.plane_server(path)
    control.run(server.start())
    try:
        assert path.stat().st_mode & 0o777 == 0o600
        replica = control.replica("data-7", path)
        control.run(replica.stop())
        second = control.plane_server(path)
        with pytest.raises(PlaneSocketError, match="another process is serving"):
            control.run(second.start())
        assert path.is_socket()  # the live server's socket was left alone
    finally:
        control.run(server.stop())
    assert not path.exists()
    path.write_text("not a socket")
    with pytest.raises(PlaneSocketError, match="is not a socket"):
        control.run(control.plane_server(path).start())
    assert path.read_text() == "not a socket"
