"""The fork server (node/plane/forks.py, fork_server.py), in an interpreter of its own
(it makes that process a child subreaper, which this one must not become): a forked
child runs `meshgate ARGUMENTS`, is this process's own child, keeps only the link among
the descriptors this process had, and reports its exit status; SIGKILL shows as -9; a
fork server that is gone makes children start as fresh interpreters instead."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import ROOT

SCENARIO = r"""
import argparse, asyncio, json, logging, os, signal, socket, sys, time
from node import config as config_module
from node.plane.fork_server import LINK_FD
from node.plane.forks import ForkServer, fork_spawn
from node.plane.link_config import config_message
from node.plane.supervisor import SpawnAgain

held = 100  # a descriptor of the control (where no child opens one): no child may keep it
os.dup2(os.open(os.devnull, os.O_RDONLY), held)
logging.basicConfig(level=logging.WARNING)  # the control's: its children must not keep it
# The children's output, to read back (this process keeps its own stderr).
child_log = sys.argv[1] + ".log"
own_stderr = os.dup(2)
os.dup2(os.open(child_log, os.O_WRONLY | os.O_CREAT, 0o600), 2)
forks = ForkServer.start()
os.dup2(own_stderr, 2)
assert forks is not None
parser = argparse.ArgumentParser()
config_module.add_arguments(parser)
debug = ["--log-level", "debug", "--event-loop", "asyncio", "--data-dir", sys.argv[1]]
debug = config_module.load(parser.parse_args(debug), environ={})


async def logged(text):
    deadline = time.monotonic() + 10
    while text not in open(child_log).read() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return text in open(child_log).read()


async def main():
    seen = {}
    ours, theirs = socket.socketpair()
    child = await forks.spawn(["hash-password", "--help"], theirs)
    theirs.close()
    children = open(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read().split()
    seen["own_child"] = str(child.pid) in children
    seen["help_status"] = await child.wait()
    ours, theirs = socket.socketpair()
    # A data-plane process with no control to link to: it retries, so it lives meanwhile.
    arguments = ["serve", "--processes", "2", "--port", "1", "--data-dir", sys.argv[1]]
    arguments += ["--plane-role", "data", "--plane-link", str(LINK_FD), "--plane-name", "p7"]
    arguments += ["--plane-parent", str(os.getpid())]
    sleeper = await forks.spawn(arguments, theirs)
    theirs.close()
    ours.sendall(config_message(debug))  # as the control process sends its settings
    seen["debug_logged"] = await logged(" DEBUG asyncio: Using selector")
    await asyncio.sleep(0.5)
    seen["running"] = sleeper.returncode is None  # its parent is this process: it stays
    fds = sorted(int(fd) for fd in os.listdir(f"/proc/{sleeper.pid}/fd"))
    seen["held_inherited"] = held in fds
    seen["link_kept"] = LINK_FD in fds
    seen["name"] = open(f"/proc/{sleeper.pid}/comm").read().strip()
    sleeper.kill()
    seen["killed_status"] = await sleeper.wait()
    os.kill(forks.pid, signal.SIGKILL)
    spawn = fork_spawn(forks, lambda name, fd: ["--version"], [sys.executable, "-m", "node.cli"])
    ours, theirs = socket.socketpair()
    try:  # the failed request may have passed the link on: the caller starts again
        await spawn("p1", theirs)
    except SpawnAgain:
        seen["again"] = True
    seen["server_reaped"] = not os.path.exists(f"/proc/{forks.pid}")
    fallback = await spawn("p1", theirs)
    seen["fallback_status"] = await fallback.wait()
    seen["fallback_is_exec"] = type(fallback).__name__ == "Process"
    await forks.close()
    print(json.dumps(seen))


asyncio.run(main())
"""


def test_forked_children_run_as_own_children_and_a_gone_server_falls_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run(
        [sys.executable, "-c", SCENARIO, str(tmp_path / "data")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "own_child": True,
        "help_status": 0,
        "held_inherited": False,
        "debug_logged": True,
        "running": True,
        "link_kept": True,
        "name": "meshgate-p7",
        "killed_status": -9,
        "again": True,
        "server_reaped": True,
        "fallback_status": 0,
        "fallback_is_exec": True,
    }, (seen, done.stderr[-2000:])


SILENT = r"""
import asyncio, json, os, signal, sys, time
import node.plane.forks as forks_module
from node.plane.forks import ForkServer, fork_spawn
from node.plane.supervisor import Backoff, Supervisor

forks_module.ANSWER_SECS = 0.5
silent, idle = ForkServer.start(), ForkServer.start()
# A child that leaves a copy of its link behind in a process of its own (as a second,
# untracked fork of it would hold one).
HOLDER = "import os, time\nos.fork()\ntime.sleep(60)"


def children(pid):
    return open(f"/proc/{pid}/task/{pid}/children").read().split()


async def until(condition):
    deadline = time.monotonic() + 10
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return condition()


async def main():
    seen = {}
    silent.watch()
    idle.watch()
    os.kill(idle.pid, signal.SIGKILL)  # a server that dies idle is reaped at once
    seen["idle_reaped"] = await until(lambda: not os.path.exists(f"/proc/{idle.pid}"))
    os.kill(silent.pid, signal.SIGSTOP)  # its requests queue, unanswered
    spawn = fork_spawn(silent, lambda name, fd: [], [sys.executable, "-c", HOLDER])
    supervisor = Supervisor(spawn, 1, lambda why: None, Backoff(0.05, 0.1))
    await supervisor.spawn()
    child = supervisor.children[0]
    seen["server_reaped"] = not os.path.exists(f"/proc/{silent.pid}")
    seen["fallback_is_exec"] = type(child.proc).__name__ == "Process"
    first = child.proc.pid
    seen["link_copied"] = await until(lambda: len(children(first)) == 1)
    os.kill(first, signal.SIGKILL)  # its link stays open in the holder: its exit still counts
    seen["restarted"] = await until(lambda: child.starts == 2 and child.pid != first)
    await supervisor.stop(1)
    for pid in children(os.getpid()):
        os.kill(int(pid), signal.SIGKILL)
    print(json.dumps(seen))


asyncio.run(main())
"""


def test_a_silent_fork_server_is_killed_and_a_child_exit_counts_without_its_link_closing() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SILENT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "idle_reaped": True,
        "server_reaped": True,
        "fallback_is_exec": True,
        "link_copied": True,
        "restarted": True,
    }, (seen, done.stderr[-2000:])
