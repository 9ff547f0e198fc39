"""A command its proposer gave up on cannot land late: a 3-member Raft group in this process.

Issue 8, fault 1: a follower handed a write to the leader's TCP link and was cut off;
it answered "not committed"; the client retried the same config key through the
majority and got 200; after the heal TCP delivered the old command, which committed
and overwrote the acknowledged value. Here the late delivery is made by holding the
follower's outgoing `apply_command` messages in its transport (what a link that drops
packets does to them) and releasing them after the retry was acknowledged. The same
scenario over real network namespaces, with real processes, is in
tests/cluster/test_partitions.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mesh import commands
from mesh.events import Applied, AppliedStream
from mesh.raft import NOT_COMMITTED, UNKNOWN, CommitError, MeshRaft, RaftSettings
from tests.support import MESH_SECRET, free_port, wait_for

pytestmark = pytest.mark.filterwarnings(
    "ignore:unclosed file.*raft.journal.meta:ResourceWarning",
    "ignore::pytest.PytestUnraisableExceptionWarning",
)
BUDGET = 1.0  # the commit timeout here
SKEW = 0.5  # the clock allowance here


class Member:
    def __init__(self, raft: MeshRaft) -> None:
        self.raft = raft
        self.applied: list[Applied] = []
        raft.stream.subscribe(self.applied.append)
        self.held: list[tuple[Any, Any]] = []
        self.holding = False
        self._send: Any = None

    def hold_forwarded(self) -> None:
        """From now on, keep this member's forwarded commands on their way to the leader."""
        sync = self.raft._sync
        assert sync is not None
        transport = sync._SyncObj__transport
        self._send = original = transport.send

        def send(node: Any, message: Any) -> Any:
            if self.holding and isinstance(message, dict) and message["type"] == "apply_command":
                self.held.append((node, message))
                return True
            return original(node, message)

        self.holding = True
        transport.send = send

    async def deliver_held(self) -> None:
        """Let what was held reach the leader now (from the Raft thread, as TCP would)."""
        self.holding = False
        held, self.held = self.held, []
        await self.raft.on_raft_thread(lambda _: [self._send(n, m) for n, m in held])


class Group:
    def __init__(self, tmp_path: Path) -> None:
        addresses = [f"127.0.0.1:{free_port()}" for _ in range(3)]
        self.loop = asyncio.new_event_loop()
        self.members: list[Member] = []
        for i, address in enumerate(addresses):
            stream = AppliedStream()
            stream.bind(self.loop)
            settings = RaftSettings(
                data_dir=tmp_path / f"n{i}",
                self_address=address,
                peers=tuple(a for a in addresses if a != address),
                password=MESH_SECRET,
                commit_timeout=BUDGET,
                clock_skew_allowance=SKEW,
            )
            raft = MeshRaft(settings, stream)
            raft.start()
            self.members.append(Member(raft))
        wait_for(self._settled, 30, what="a leader every member follows")

    def _settled(self) -> bool:
        statuses = [m.raft.status() for m in self.members]
        leaders = {s.leader for s in statuses}
        return len(leaders) == 1 and None not in leaders and all(s.ready for s in statuses)

    @property
    def leader(self) -> Member:
        return next(m for m in self.members if m.raft.status().is_leader)

    @property
    def follower(self) -> Member:
        return next(m for m in self.members if not m.raft.status().is_leader)

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def write(self, via: Member, key: str, value: Any, rid: str | None = None) -> Any:
        command = commands.make("config.set", {"key": key, "value": value}, by="t", rid=rid)

        async def submit() -> Any:
            try:
                return await via.raft.submit(command)
            except CommitError as exc:
                return exc

        return self.run(submit())

    def wait_equal(self) -> None:
        def equal() -> bool:
            self.run(asyncio.sleep(0.02))  # deliver what the Raft threads published
            indexes = {m.raft.state.applied_index for m in self.members}
            return len(indexes) == 1 and self.leader.raft.status().commit_index in indexes

        wait_for(equal, 10, what="every member applied the same log")

    def stop(self) -> None:
        for member in self.members:
            member.raft.stop()
        self.loop.close()


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Group]:
    g = Group(tmp_path)
    try:
        yield g
    finally:
        g.stop()


def test_the_leader_stamps_every_command_with_its_clock_even_forwarded_ones(group: Group) -> None:
    before = time.time()
    assert group.write(group.follower, "k", 1)["ok"]
    after = time.time()
    group.wait_equal()
    stamps = set()
    for member in group.members:
        applied = [a for a in member.applied if a.op == "config.set"]
        assert len(applied) == 1
        command = applied[0].command
        assert command["exp"] == pytest.approx(before + BUDGET, abs=after - before + 0.01)
        assert before <= command["lt"] <= after
        stamps.add(command["lt"])
        assert member.raft.state.log_time == command["lt"]
        record = member.raft.state.request(command["rid"])
        assert record is not None and record["expires_at"] == command["exp"]
    assert len(stamps) == 1  # one stamp, the leader's, replicated as part of the entry


def test_fault_1_a_write_answered_unknown_cannot_overwrite_the_acknowledged_retry(
    group: Group, caplog: pytest.LogCaptureFixture
) -> None:
    cut_off = group.follower
    cut_off.hold_forwarded()
    started = time.monotonic()
    stale = group.write(cut_off, "key", "stale")
    took = time.monotonic() - started
    # Handed to the link, no answer: never "not committed". The wait ran out (504).
    assert isinstance(stale, CommitError) and stale.outcome == UNKNOWN and stale.timed_out
    assert took >= BUDGET + SKEW and stale.expires_at is not None
    assert len(cut_off.held) == 1  # the command is still on its way
    # The client retries the same config key through the majority, and is acknowledged.
    fresh = group.write(group.leader, "key", "fresh")
    assert fresh["ok"]
    # The link heals: TCP delivers the stale command, which the leader now stamps too late.
    with caplog.at_level(logging.WARNING, logger="mesh.raft"):
        group.run(cut_off.deliver_held())
        group.wait_equal()
        wait_for(lambda: "refused" in caplog.text, 5, what="the refusal logged")
    for member in group.members:
        state = member.raft.state
        assert state.config["key"]["value"] == "fresh"
        assert state.config["key"]["version"] == fresh["value"]["version"]
        assert state.request(stale.request_id) is None  # never applied...
        assert state.log_time > stale.expires_at  # ...and never will be, anywhere
        late = [a for a in member.applied if a.command.get("rid") == stale.request_id]
        assert [a.outcome["error"] for a in late if a.outcome] == ["expired"]


def test_fault_1_with_an_idempotency_key_the_late_copy_answers_the_retry(group: Group) -> None:
    cut_off = group.follower
    cut_off.hold_forwarded()
    stale = group.write(cut_off, "key", "v", rid="client-key")
    assert isinstance(stale, CommitError) and stale.outcome == UNKNOWN
    retry = group.write(group.leader, "key", "v", rid="client-key")
    assert retry["ok"]
    group.run(cut_off.deliver_held())
    group.wait_equal()
    for member in group.members:
        record = member.raft.state.request("client-key")
        assert record is not None and record["outcome"] == retry
        assert member.raft.state.config["key"]["version"] == retry["value"]["version"]


def test_a_proposer_whose_clock_lags_by_more_than_its_wait_gets_refusals(group: Group) -> None:
    lagging = group.follower
    lagging.raft.clock = lambda: time.time() - 5 * BUDGET
    refused = group.write(lagging, "key", "late")
    assert isinstance(refused, CommitError)
    assert refused.outcome == NOT_COMMITTED and refused.reason == "expired"
    group.wait_equal()
    assert all("key" not in m.raft.state.config for m in group.members)
    lagging.raft.clock = time.time
    assert group.write(lagging, "key", "on time")["ok"]
