"""The event loop a meshgate process runs on: uvloop when it is importable, else asyncio's.

uvloop's loop does the per-request socket and callback work in C. Which loop
costs less CPU per request depends on the machine and its load (bench/README.md
measures both), so `--event-loop` can name one; `auto` takes uvloop when it is
installed. It is chosen per run through a loop factory, never by setting the
global event-loop policy, so nothing leaks into code (or tests) in the same
interpreter that builds its own loops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class LoopUnavailable(Exception):
    """The loop asked for cannot be had here; the message says why."""


def loop_factory(choice: str = "auto") -> tuple[str, LoopFactory]:
    """The loop `choice` names (auto: uvloop if importable), with its name for the log."""
    if choice == "asyncio":
        return "asyncio", asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:  # an install without it (another platform, a stripped image)
        if choice == "uvloop":
            raise LoopUnavailable("uvloop is not installed (pip install uvloop)") from None
        return "asyncio", asyncio.new_event_loop
    return "uvloop", uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], announce: Callable[[str], None], choice: str = "auto") -> T:
    """Run `main` to completion on a fresh loop of `choice`; `announce` gets its name."""
    try:
        name, factory = loop_factory(choice)
    except LoopUnavailable:
        main.close()  # never awaited: say so quietly instead of a RuntimeWarning
        raise
    announce(name)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
