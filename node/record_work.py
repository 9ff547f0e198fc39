"""Background work for each replicated record a node prepares on its own (a tokenizer, a
WASM module): this node's status of each, the backoff of its retries, and one task per
record, which a bug or a full disk ends as `failed` (through `failed(record_id, reason)`),
never as a silent `pending`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from node.service import cancel_and_wait

log = logging.getLogger(__name__)

Work = Coroutine[Any, Any, None]


@dataclass
class LocalStatus:
    """This node's view of one tokenizer."""

    state: str = "pending"
    reason: str | None = None
    updated_at: float = field(default_factory=time.time)
    retrying: bool = False

    def view(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "updated_at": self.updated_at,
            "retrying": self.retrying,
        }


@dataclass(frozen=True)
class Backoff:
    first: float = 0.5
    most: float = 15.0


DEFAULT_BACKOFF = Backoff()


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
