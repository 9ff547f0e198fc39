"""This node's pool of workers, derived from the replicated worker records.

The pool is rebuilt from `ControlState.workers` whenever a worker command is
applied (it subscribes to the applied-command stream), keeping each worker's
local observations across record updates. Lookups the router makes on every
request (`serving(model)`) are precomputed tuples sorted by worker id, so every
node offers policies the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from node.workers.breaker import BreakerSettings
from node.workers.credentials import CredentialBox
from node.workers.worker import Worker

Listener = Callable[[Worker], Any]


class WorkerPool:
    def __init__(self, breaker: BreakerSettings, credentials: CredentialBox) -> None:
        self._breaker = breaker
        self._credentials = credentials
        self._workers: dict[str, Worker] = {}
        self._serving: dict[str, tuple[Worker, ...]] = {}
        self._unnamed: tuple[Worker, ...] = ()  # workers whose model is not known yet
        self._all: tuple[Worker, ...] = ()
        self.on_added: list[Listener] = []
        self.on_removed: list[Listener] = []
        self.on_changed: list[Listener] = []

    def set_breaker_settings(self, settings: BreakerSettings) -> None:
        """New circuit-breaker settings for every worker (current states are kept)."""
        self._breaker = settings
        for worker in self._workers.values():
            worker.breaker.settings = settings

    # -- reading ------------------------------------------------------------------

    def get(self, worker_id: str) -> Worker | None:
        return self._workers.get(worker_id)

    def all(self) -> tuple[Worker, ...]:
        return self._all

    def serving(self, model: str | None) -> tuple[Worker, ...] | None:
        """Workers that may serve `model` (None = any); None if no worker knows the model."""
        if model is None:
            return self._all
        named = self._serving.get(model)
        if named is not None:
            return named
        return self._unnamed or None

    def ready_records(self, model: str) -> list[dict[str, Any]]:
        """The records of the ready workers whose model is `model`, by worker id."""
        return [w.record for w in self._all if w.model_id == model and w.status == "ready"]

    def models(self) -> list[str]:
        return sorted(self._serving)

    def take_health(self, verdicts: Mapping[str, tuple[bool | None, str]]) -> None:
        """Each worker's health as another process checks it (in a data-plane process, its
        control process): healthy or not (None: not checked yet, so left as it is) and
        why not. Circuit breakers stay this process's own: they judge its requests."""
        for worker_id, (healthy, reason) in verdicts.items():
            worker = self._workers.get(worker_id)
            if worker is not None and healthy is not None:
                worker.healthy = healthy
                worker.last_error = reason or None

    # -- syncing from the replicated state -------------------------------------------

    def sync(self, records: dict[str, dict[str, Any]]) -> None:
        """Make the pool match `records` (a copy-on-write map from the Raft state)."""
        added, changed = [], []
        for worker_id, record in records.items():
            worker = self._workers.get(worker_id)
            if worker is None:
                worker = Worker(record, self._breaker, self._credentials)
                self._workers[worker_id] = worker
                added.append(worker)
            elif worker.record is not record:
                worker.update(record)
                changed.append(worker)
        removed = [w for wid, w in self._workers.items() if wid not in records]
        for worker in removed:
            worker.retired = True
            del self._workers[worker.id]
        if added or changed or removed:
            self._index()
        for listeners, workers in (
            (self.on_added, added),
            (self.on_changed, changed),
            (self.on_removed, removed),
        ):
            for worker in workers:
                for listener in listeners:
                    listener(worker)

    def _index(self) -> None:
        ordered = tuple(sorted(self._workers.values(), key=lambda w: w.id))
        unnamed = tuple(w for w in ordered if not w.model_id)
        by_model: dict[str, list[Worker]] = {}
        for worker in ordered:
            if worker.model_id:
                by_model.setdefault(worker.model_id, []).append(worker)
        self._all = ordered
        self._unnamed = unnamed
        self._serving = {
            model: tuple(sorted((*named, *unnamed), key=lambda w: w.id))
            for model, named in by_model.items()
        }

    def stats(self, workers: Iterable[Worker] | None = None) -> dict[str, Any]:
        chosen = list(self._all if workers is None else workers)
        by_status: dict[str, int] = {}
        for worker in chosen:
            by_status[worker.status] = by_status.get(worker.status, 0) + 1
        healthy = sum(1 for w in chosen if w.healthy and w.status == "ready")
        return {
            "total": len(chosen),
            "healthy_count": healthy,
            "unhealthy_count": len(chosen) - healthy,
            "total_load": sum(w.load for w in chosen),
            "by_status": by_status,
            "models": sorted({w.model_id for w in chosen if w.model_id}),
        }
