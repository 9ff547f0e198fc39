"""The threads that run request CPU work: tokenizing, chat templates, detokenizing and
the parser utilities.

Never the event loop (a big prompt would stall every request on the node), and
never asyncio's default thread pool, which blob verification, tokenizer loads
and the HA blob routes share: a flood of tokenize calls must not queue those.
Sized from the cores, since the work is CPU-bound; admission bounds how many
requests wait for it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, TypeVar

T = TypeVar("T")
THREADS: Final = max(2, min(8, os.cpu_count() or 2))
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="meshgate-cpu")
    return _pool


async def run_cpu(work: Callable[[], T]) -> T:
    """`work()` in the CPU pool, awaited."""
    return await asyncio.get_running_loop().run_in_executor(_executor(), work)
