"""The control process's data-plane children: start N, restart one that dies, drain them all.

Each child runs `meshgate serve <the control's own arguments> --plane-role data ...`
(node/plane/control_process.py builds it), forked from the fork server
(node/plane/forks.py) or as a fresh interpreter (`exec_spawn`), and reads this
process's loaded settings from its link (node/plane/link_config.py), never the config
file, which may have changed since (the mesh secret stays off any command line). A
socket pair links each child to this process: the child writes `ready` on it once it
listens and its replica is linked, and reads end-of-file on it when this process is
gone (node/plane/parent.py), so no child outlives the control process.

A child that dies is started again after a backoff that doubles while it keeps dying
young, and the log says why it died. A ready child that does not answer `ping` for
HUNG_SECS (a stopped or stuck process: its siblings would wait for it on every
write) is killed, and so started again. A child that refuses its settings (exit 2) is
not restarted: the node cannot run as configured, and the control process refuses too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from node import exit_status

log = logging.getLogger(__name__)

READY_LINE = b"ready\n"  # child -> control
DRAIN = b"drain"  # control -> child: "drain GRACE DRAIN_DELAY\n", the stop's own timings
READY_POLL_SECS = 0.05
YOUNG_SECS = 10.0  # a child that dies younger than this backs off longer before its restart
PING_EVERY = 1.0  # each ready child is asked this often whether it runs
HUNG_SECS = 3.0  # a ready child that answers no ping for this long is killed

Ping = Callable[[str], Awaitable[bool]]  # a child's name -> did it answer (within PING_EVERY)


class Child(Protocol):
    """A running child, as `asyncio.subprocess.Process` holds one."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


# A child's name and its end of the link -> the child, started.
Spawn = Callable[[str, socket.socket], Awaitable[Child]]


def exec_spawn(command: Callable[[str, int], Sequence[str]]) -> Spawn:
    """Start each child as `command(name, fd)`, `fd` being its end of the link in it."""

    async def spawn(name: str, link: socket.socket) -> Child:
        return await asyncio.create_subprocess_exec(
            *command(name, link.fileno()),
            pass_fds=(link.fileno(),),
            stdin=asyncio.subprocess.DEVNULL,
        )

    return spawn


class SpawnAgain(Exception):
    """A start failed after its link may have been passed on (a fork request that a
    silent fork server still holds): start the child again, with a fresh link."""


class ChildRefused(Exception):
    """A data-plane process cannot run as configured (it exited 2)."""


@dataclass(frozen=True)
class Backoff:
    first: float = 0.1
    longest: float = 5.0

    def after(self, delay: float) -> float:
        return min(self.longest, max(self.first, delay * 2))


def why(returncode: int) -> str:
    """A child's exit status in words."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


@dataclass
class DataProcess:
    """One data-plane child: its name, its current run, and whether that run is ready."""

    name: str
    proc: Child | None = None
    link: socket.socket | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    started_at: float = 0.0
    starts: int = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class Supervisor:
    """Starts `count` data-plane children (`spawn(name, link)` starts one, `link` its end of
    the link, on which `greeting` comes first), keeps them running, and drains them.
    `refused(reason)` is called when a child cannot run as configured."""

    def __init__(
        self,
        spawn: Spawn,
        count: int,
        refused: Callable[[str], None],
        backoff: Backoff = Backoff(),
        ping: Ping | None = None,
        greeting: bytes = b"",
    ) -> None:
        self.spawn_child = spawn
        self.ping = ping
        self.greeting = greeting  # written first on each child's link: its settings
        self.children = [DataProcess(f"p{i + 1}") for i in range(count)]
        self.refused = refused
        self.backoff = backoff
        self.stopping = False
        self._refusal = asyncio.Event()
        self._draining = asyncio.Event()
        self._refused_why = ""
        self._watchers: list[asyncio.Task[None]] = []

    # -- reading -------------------------------------------------------------------------

    def all_ready(self) -> bool:
        return all(c.alive() and c.ready.is_set() for c in self.children)

    def alive(self) -> int:
        return sum(1 for c in self.children if c.alive())

    def describe(self) -> list[dict[str, Any]]:
        """Each child as /ha/local shows it."""
        return [
            {
                "name": c.name,
                "pid": c.pid,
                "ready": c.alive() and c.ready.is_set(),
                "starts": c.starts,
            }
            for c in self.children
        ]

    # -- running -------------------------------------------------------------------------

    async def start(self, timeout: float) -> None:
        """Start every child and return once each listens and is linked, or once draining
        starts; TimeoutError, or ChildRefused when one refuses its settings first (its
        output says why)."""
        await self.spawn()
        await self.wait_ready(timeout)

    async def spawn(self) -> None:
        """Start every child (each links once the plane link serves, retrying till then)."""
        for child in self.children:
            await self._spawn(child)
            self._watchers.append(asyncio.create_task(self._watch(child), name=child.name))
            if self.ping is not None:
                pinger = self._kill_if_hung(child, self.ping)
                self._watchers.append(asyncio.create_task(pinger, name=f"{child.name}-ping"))

    async def wait_ready(self, timeout: float) -> None:
        """Return once every child listens and is linked, or once draining starts (see
        `start`)."""
        waits = {
            asyncio.create_task(self._all_ready()),
            asyncio.create_task(self._refusal.wait()),
            asyncio.create_task(self._draining.wait()),  # stopped while starting
        }
        try:
            await asyncio.wait(waits, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            for wait in waits:
                wait.cancel()
        if self._refusal.is_set():
            raise ChildRefused(self._refused_why)
        if not self.all_ready() and not self.stopping:
            raise TimeoutError(f"not every data-plane process was ready within {timeout:g} s")

    async def _all_ready(self) -> None:
        while not self.all_ready():  # a child may die and start again meanwhile
            await asyncio.sleep(READY_POLL_SECS)

    async def _spawn(self, child: DataProcess) -> None:
        child.ready.clear()
        child.starts += 1
        child.started_at = time.monotonic()
        try:
            child.proc, child.link = await self._start_linked(child.name)
        except SpawnAgain as exc:
            log.warning("starting data-plane process %s again: %s", child.name, exc)
            child.proc, child.link = await self._start_linked(child.name)
        log.info("data-plane process %s started (pid %d)", child.name, child.proc.pid)

    async def _start_linked(self, name: str) -> tuple[Child, socket.socket]:
        """Start a child on a new socket pair: the child, and this process's end."""
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        try:
            proc = await self.spawn_child(name, theirs)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the child holds its own copy
        with contextlib.suppress(OSError):  # a child that died at once: its watch says so
            await asyncio.get_running_loop().sock_sendall(ours, self.greeting)
        return proc, ours

    async def _watch(self, child: DataProcess) -> None:
        """Read the child's link until it is ready, wait for it to exit, and start it again."""
        delay = self.backoff.first
        while True:
            assert child.proc is not None and child.link is not None
            await self._until_gone(child)
            code = await child.proc.wait()
            child.link.close()
            if self.stopping:
                log.info(
                    "data-plane process %s (pid %d) stopped: %s",
                    child.name,
                    child.proc.pid,
                    why(code),
                )
                return
            if code == exit_status.REFUSED:
                reason = f"data-plane process {child.name} refused to run ({why(code)})"
                log.error("%s; see its output above", reason)
                self._refused_why = reason
                self._refusal.set()
                self.refused(reason)
                return
            lived = time.monotonic() - child.started_at
            delay = self.backoff.after(delay) if lived < YOUNG_SECS else self.backoff.first
            log.warning(
                "data-plane process %s (pid %d) died after %.1fs: %s; restarting it in %.1fs",
                child.name,
                child.proc.pid,
                lived,
                why(code),
                delay,
            )
            await asyncio.sleep(delay)
            while not self.stopping:
                try:
                    await self._spawn(child)
                    break
                except OSError as exc:  # no memory or pids left, say: try again later
                    log.error("cannot start data-plane process %s: %s", child.name, exc)
                    await asyncio.sleep(self.backoff.longest)
            if self.stopping:
                return

    async def _kill_if_hung(self, child: DataProcess, ping: Ping) -> None:
        """Kill `child` once it has been ready and answered no ping for HUNG_SECS; `_watch`
        then starts it again."""
        loop = asyncio.get_running_loop()
        answered = before = loop.time()
        while not self.stopping:
            await asyncio.sleep(PING_EVERY)
            now = loop.time()
            # Not ready (starting), or this process itself was stopped meanwhile: not its fault.
            if not (child.alive() and child.ready.is_set()) or now - before > 3 * PING_EVERY:
                answered = before = now
                continue
            before = now
            if await ping(child.name):
                answered = before = loop.time()
            elif now - answered >= HUNG_SECS and child.proc is not None and child.alive():
                log.warning(
                    "data-plane process %s (pid %d) has answered no ping for %.0fs: killing it",
                    child.name,
                    child.proc.pid,
                    now - answered,
                )
                with contextlib.suppress(ProcessLookupError):
                    child.proc.kill()
                answered = now

    async def _until_gone(self, child: DataProcess) -> None:
        """Read the child's link until it closes or the child exits, whichever comes first:
        a copy of its link held elsewhere must not hide its exit."""
        assert child.proc is not None
        reading = asyncio.create_task(self._read_ready(child))
        exited = asyncio.create_task(child.proc.wait())
        try:
            await asyncio.wait({reading, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reading.cancel()
            exited.cancel()

    @staticmethod
    async def _read_ready(child: DataProcess) -> None:
        """Set `ready` when the child says so; return when its link closes (it exited)."""
        assert child.link is not None
        loop = asyncio.get_running_loop()
        seen = b""
        with contextlib.suppress(OSError):
            while chunk := await loop.sock_recv(child.link, 64):
                seen += chunk
                if READY_LINE in seen:
                    child.ready.set()
                seen = seen[-len(READY_LINE) :]

    def drain(self, grace: float | None = None, drain_delay: float | None = None) -> None:
        """Tell every child to stop: each turns not-ready, serves `drain_delay` more,
        finishes its requests within `grace` and exits 0. Over its link with these
        timings (a shutdown plan's, a refusal's), else with SIGTERM (its own flags')."""
        self.stopping = True
        self._draining.set()
        told = f"{DRAIN.decode()} {grace} {drain_delay}\n".encode()
        for child in self.children:
            if not child.alive():
                continue
            assert child.proc is not None
            if grace is not None and drain_delay is not None and child.link is not None:
                with contextlib.suppress(OSError):
                    child.link.send(told)
                    continue
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signal.SIGTERM)

    async def stop(self, grace: float) -> None:
        """Drain every child, wait up to `grace` seconds for them, then SIGKILL the rest."""
        self.drain()
        running = [c.proc for c in self.children if c.proc is not None and c.alive()]
        if running:
            await asyncio.wait([asyncio.create_task(p.wait()) for p in running], timeout=grace)
            for proc in running:
                if proc.returncode is None:
                    log.warning(
                        "data-plane pid %d still running after %.0fs: killed", proc.pid, grace
                    )
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        for child in self.children:
            if child.link is not None:
                child.link.close()
