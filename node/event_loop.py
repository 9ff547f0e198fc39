"""The event loop a meshgate process runs on: uvloop when it is importable, else asyncio's.

uvloop's loop does the per-request socket and callback work in C, which cuts
the node's CPU per proxied request. It is chosen per run through a loop
factory, never by setting the global event-loop policy, so nothing leaks into
code (or tests) in the same interpreter that builds its own loops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The fastest loop available here, with its name for the start-up log."""
    try:
        import uvloop
    except ImportError:  # an install without it (another platform, a stripped image)
        return "asyncio", asyncio.new_event_loop
    return "uvloop", uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], announce: Callable[[str], None]) -> T:
    """Run `main` to completion on a fresh loop from `loop_factory`; `announce` gets its name."""
    name, factory = loop_factory()
    announce(name)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
