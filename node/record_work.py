"""Background work for each replicated record a node prepares on its own (a tokenizer, a
WASM module): one task per record, and a bug or a full disk ends it as `failed` (through
`failed(record_id, reason)`), never as a silent `pending`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from node.service import cancel_and_wait

log = logging.getLogger(__name__)

Work = Coroutine[Any, Any, None]


class RecordWork:
    def __init__(self, kind: str, failed: Callable[[str, str], None]) -> None:
        self.kind = kind
        self.failed = failed
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def busy(self, record_id: str) -> bool:
        task = self.tasks.get(record_id)
        return task is not None and not task.done()

    def run(self, record_id: str, work: Work) -> None:
        """Start `work` for the record, in place of any it has running."""
        self.cancel(record_id)
        guarded = self._guarded(record_id, work)
        self.tasks[record_id] = asyncio.create_task(guarded, name=f"{self.kind}-{record_id}")

    def cancel(self, record_id: str) -> None:
        task = self.tasks.pop(record_id, None)
        if task is not None:
            task.cancel()

    async def stop(self) -> None:
        await cancel_and_wait(list(self.tasks.values()))
        self.tasks.clear()

    async def _guarded(self, record_id: str, work: Work) -> None:
        try:
            await work
        except Exception as exc:
            log.exception("%s %s: preparing it failed", self.kind, record_id)
            self.failed(record_id, f"{type(exc).__name__}: {exc}")
