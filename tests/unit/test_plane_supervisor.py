"""The supervisor of data-plane children, with tiny Python children in place of nodes:
ready over the link, restarted after SIGKILL, a refusal not restarted, drained on stop;
and the tie that makes a child exit when its parent's end of the link closes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from types import SimpleNamespace
from typing import cast

import pytest

from mesh.raft import MeshRaft
from node.api.catalog import ROUTES
from node.ha.shutdown import Stopper
from node.limits.admission import Admission
from node.plane.handover import CLIENT_HEADER, passed_headers, served_here
from node.plane.parent import drain_timings
from node.plane.supervisor import Backoff, ChildRefused, Supervisor, exec_spawn, why

# A child: say ready on the link, then wait for SIGTERM (exit 0), a drain line (exit with
# its grace period as the status) or the link's end of file (the parent is gone: exit 1).
CHILD = """
import os, signal, socket, sys
link = socket.socket(fileno=int(sys.argv[1]))
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
link.send(b"ready\\n")
told = link.recv(64)
os._exit(int(float(told.split()[1])) if told.startswith(b"drain ") else 1)
"""
REFUSING = "import sys; sys.exit(2)"


def child(script: str):  # type: ignore[no-untyped-def]
    return exec_spawn(lambda name, fd: [sys.executable, "-c", script, str(fd)])


def test_children_get_ready_are_restarted_after_sigkill_and_drain_with_exit_zero() -> None:
    async def scenario() -> None:
        refusals: list[str] = []
        supervisor = Supervisor(child(CHILD), 2, refusals.append, Backoff(0.01, 0.05))
        await supervisor.start(timeout=30)
        assert supervisor.all_ready() and supervisor.alive() == 2
        first = supervisor.children[0]
        victim = first.pid
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        for _ in range(600):
            await asyncio.sleep(0.05)
            if first.pid != victim and first.ready.is_set():
                break
        assert first.pid != victim and first.starts == 2 and supervisor.all_ready()
        procs = [c.proc for c in supervisor.children]
        await supervisor.stop(grace=10)
        assert [p.returncode for p in procs if p is not None] == [0, 0]
        assert refusals == []

    asyncio.run(scenario())


def test_a_drain_tells_each_child_the_stops_timings_over_its_link() -> None:
    async def scenario() -> list[int | None]:
        supervisor = Supervisor(child(CHILD), 2, lambda _: None)
        await supervisor.start(timeout=30)
        procs = [c.proc for c in supervisor.children if c.proc is not None]
        supervisor.drain(grace=7.0, drain_delay=0.0)
        await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 10)
        await supervisor.stop(grace=1)
        return [p.returncode for p in procs]

    assert asyncio.run(scenario()) == [7, 7]


def test_drain_lines_are_read_strictly() -> None:
    assert drain_timings(b"drain 30.0 5.0") == (30.0, 5.0)
    for junk in (b"drain", b"drain 1 2 3", b"drain nan 1", b"drain -1 0", b"drain 1e9 0", b"x 1 2"):
        assert drain_timings(junk) is None, junk


def test_a_child_that_refuses_its_settings_is_not_restarted() -> None:
    async def scenario() -> None:
        refusals: list[str] = []
        supervisor = Supervisor(child(REFUSING), 1, refusals.append)
        with pytest.raises(ChildRefused, match="p1 refused to run"):
            await supervisor.start(timeout=30)
        assert refusals == ["data-plane process p1 refused to run (exit status 2)"]
        assert supervisor.children[0].starts == 1
        await supervisor.stop(grace=1)

    asyncio.run(scenario())


def test_why_a_child_died_in_words() -> None:
    assert why(-9) == "killed by SIGKILL"
    assert why(3) == "exit status 3"


def test_a_data_plane_process_serves_inference_and_probes_and_hands_over_the_rest() -> None:
    here = {(r.method, r.path) for r in ROUTES if served_here(r)}
    assert ("POST", "/v1/chat/completions") in here
    assert ("POST", "/models/{name}/{tail:.*}") in here  # a published model
    assert {("GET", "/readiness"), ("GET", "/metrics"), ("GET", "/v1/models")} <= here
    handed = {(r.method, r.path) for r in ROUTES if not served_here(r)}
    assert ("POST", "/workers") in handed and ("POST", "/ha/shutdown") in handed
    assert ("GET", "/ha/status") in handed and ("POST", "/api/admin/login") in handed


def test_headers_cross_without_hop_by_hop_ones_or_a_client_claim() -> None:
    sent = {"Authorization": "Bearer x", "Connection": "close", CLIENT_HEADER: "10.0.0.1"}
    assert dict(passed_headers(sent)) == {"Authorization": "Bearer x"}


def test_a_stop_however_started_tells_its_listeners_once() -> None:

    async def scenario() -> list[tuple[float, float]]:
        raft = SimpleNamespace(status=lambda: SimpleNamespace(is_leader=False, peers=[]))
        stopper = Stopper("n1", "b", cast(MeshRaft, raft), Admission(0, 0, 1.0), lambda _: False)
        told: list[tuple[float, float]] = []
        stopper.on_request.append(lambda grace, delay: told.append((grace, delay)))
        stopper.refuse("a plan named this run")  # not a signal: the children drain all the same
        stopper.request("signal SIGTERM", grace=0, drain_delay=0)  # already stopping
        await stopper.stopped.wait()
        return told

    assert asyncio.run(scenario()) == [(0.0, 0.0)]  # the refusal's timings, once
