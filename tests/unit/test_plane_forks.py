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
import asyncio, json, os, signal, socket, sys
from node.plane.fork_server import LINK_FD
from node.plane.forks import ForkServer, fork_spawn

held = 100  # a descriptor of the control (where no child opens one): no child may keep it
os.dup2(os.open(os.devnull, os.O_RDONLY), held)
forks = ForkServer.start()
assert forks is not None


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
        "running": True,
        "link_kept": True,
        "name": "meshgate-p7",
        "killed_status": -9,
        "fallback_status": 0,
        "fallback_is_exec": True,
    }, (seen, done.stderr[-2000:])
