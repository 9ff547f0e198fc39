"""The applied-command stream: from the Raft thread to subscribers on the event loop.

pysyncobj applies commands on its own thread. Derived views (worker pools,
policy objects, WebSocket clients) live on the asyncio loop. This hub carries
each applied command across with `call_soon_threadsafe`, so subscribers see
commands one at a time, in log order, on the loop, and never race the Raft
thread. The same stream is what a future per-core log subscriber would read.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from mesh.commands import Command, Outcome

log = logging.getLogger(__name__)


class Applied(NamedTuple):
    """One applied log entry.

    `command` is None for a reset (a snapshot was loaded; `outcome` is None too).
    A committed entry that could not be applied at all (see mesh/raft.py) has an
    empty command `{}` and the failed outcome that says why."""

    # Shadows tuple.index(), which nobody calls on an Applied: the field name is the API.
    index: int  # type: ignore[assignment]
    command: Command | None
    outcome: Outcome | None

    @property
    def op(self) -> str:
        """The command's op; "reset" for a snapshot; "" for an entry that is not a command."""
        if self.command is None:
            return "reset"
        op = self.command.get("op") if isinstance(self.command, dict) else None
        return op if isinstance(op, str) else ""


Subscriber = Callable[[Applied], Any]


class AppliedStream:
    """Fan-out of applied commands to loop-side subscribers, in commit order."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: list[Subscriber] = []
        self._backlog: list[Applied] = []  # applied before the loop was bound
        self._lock = threading.Lock()  # keeps backlog and live items in order across bind()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver from now on through `loop`; flush what arrived before."""
        with self._lock:
            self._loop = loop
            backlog, self._backlog = self._backlog, []
            for item in backlog:
                loop.call_soon_threadsafe(self._deliver, item)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber(applied)` on the loop for every applied command; returns unsubscribe."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def publish(self, item: Applied) -> None:
        """Called on the Raft thread right after a command is applied."""
        with self._lock:
            loop = self._loop
            if loop is None:
                self._backlog.append(item)
                return
            try:
                loop.call_soon_threadsafe(self._deliver, item)
            except RuntimeError:  # loop closed during shutdown: nobody is listening
                pass

    def _deliver(self, item: Applied) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(item)
            except Exception:
                log.exception("applied-command subscriber failed on %s", item.op)
