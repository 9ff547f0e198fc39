"""Every registered WASM module, made ready on this node: pending -> ready | failed.

A subscriber of the applied stream (`sync` runs on each `wasm.*` command and at start).
For a new record it makes sure the component is in the blob store and still hashes to its
digest (fetching it from a peer, retrying with backoff), compiles it once (or loads the
compiled artifact a previous run cached, node/wasm/artifacts.py) and builds its runner.
A compile error is final: the same bytes would fail again. A runner that could not be
built (no instance fits the limits) is built again when the record changes (a PATCH).

`chain(point)` is what the inference path runs: the ready, enabled modules that attach
there, in order. A removed module leaves the chain at once; a call already running keeps
its runner and finishes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from node.blobs.fetch import BlobFetcher, FetchFailed
from node.blobs.store import BlobStore
from node.record_work import DEFAULT_BACKOFF, Backoff, LocalStatus, RecordWork
from node.wasm import runtime
from node.wasm.artifacts import ArtifactCache
from node.wasm.breaker import ModuleBreaker
from node.wasm.holds import Holds

Record = dict[str, Any]


@dataclass(frozen=True)
class BreakerSettings:
    failures: int = 5
    cooldown: float = 30.0


DEFAULT_BREAKER = BreakerSettings()


@dataclass
class Loaded:
    """One module ready on this node: the record it was built from, its runner, its breaker."""

    record: Record
    runner: runtime.ModuleRunner
    breaker: ModuleBreaker
    calls: int = field(default=0)


class WasmRegistry:
    def __init__(
        self,
        records: Callable[[], dict[str, Record]],
        in_use: Callable[[], set[str]],  # every digest a record names (ControlState's)
        store: BlobStore,
        fetcher: BlobFetcher,
        artifacts: ArtifactCache,
        breaker: BreakerSettings = DEFAULT_BREAKER,
        runner: runtime.RunnerSettings = runtime.DEFAULT_RUNNER,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        self.records = records
        self.in_use = in_use
        self.store = store
        self.fetcher = fetcher
        self.artifacts = artifacts
        self.breaker = breaker
        self.runner = runner
        self.backoff = backoff
        self._known: dict[str, Record] = {}
        self._status: dict[str, LocalStatus] = {}
        self._loaded: dict[str, Loaded] = {}
        # Compiled, but no runner could be built under the record's limits: the next
        # change of the record tries again, keeping the breaker it had.
        self._unbuilt: dict[str, tuple[runtime.CompiledComponent, ModuleBreaker]] = {}
        self._work = RecordWork("wasm", lambda i, why: self._set(i, "failed", why))
        self._started = False
        self.holds = Holds()  # components a POST /wasm here is taking in

    # -- what the inference path runs ------------------------------------------------

    def chain(self, point: str) -> list[Loaded]:
        """The modules to run at `point`, in order: enabled here, ready, attached there."""
        modules = [
            loaded
            for module_id, loaded in self._loaded.items()
            if (record := self._known.get(module_id)) is not None
            and record["enabled"]
            and point in record["attach_points"]
        ]
        return sorted(modules, key=lambda m: (m.record["order"], m.record["created_at"]))

    def not_ready(self, point: str) -> list[str]:
        """Modules enabled at `point` that must not be skipped (`on_error: "fail"`) but are
        not ready on this node: the request waits for them rather than pass unchecked."""
        return sorted(
            record["name"]
            for module_id, record in self._known.items()
            if record["enabled"]
            and point in record["attach_points"]
            and record.get("on_error", "fail") != "continue"
            and module_id not in self._loaded
        )

    # -- status ---------------------------------------------------------------------

    def status(self, module_id: str) -> dict[str, Any]:
        local = self._status.get(module_id)
        view = local.view() if local else LocalStatus(reason="not seen yet").view()
        loaded = self._loaded.get(module_id)
        view["breaker"] = loaded.breaker.view() if loaded else None
        return view

    def report(self) -> dict[str, dict[str, Any]]:
        """This node's view of every module (for its /ha/local report)."""
        return {module_id: self.status(module_id) for module_id in self._status}

    def gauges(self) -> Iterator[tuple[str, str, dict[str, str], float]]:
        """Scrape-time metrics: each module's readiness and breaker on this node."""
        for module_id, record in list(self._known.items()):
            labels = {"module": record["name"]}
            loaded = self._loaded.get(module_id)
            yield (
                "meshgate_wasm_module_ready",
                "1 while the module is ready here",
                labels,
                float(loaded is not None),
            )
            state = loaded.breaker.state if loaded else "closed"
            yield (
                "meshgate_wasm_breaker_open",
                "1 while the module's circuit breaker keeps it off here (open or half-open)",
                labels,
                float(state != "closed"),
            )

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._started = True
        self.sync()

    async def stop(self) -> None:
        self._started = False
        await self._work.stop()

    def sync(self) -> None:
        """Follow the replicated records: prepare new ones, forget removed ones, take
        changed ones (a new limit builds a new runner; order, enabled, on_error are read
        from the record on every request). A module still being prepared takes its record
        as it is when its runner is built, so a change made meanwhile is not lost."""
        if not self._started:
            return
        records = self.records()
        for gone in set(self._known) - set(records):
            self._forget(gone)
        for module_id, record in records.items():
            before = self._known.get(module_id)
            self._known[module_id] = record
            if before is None:
                self._status[module_id] = LocalStatus()
                self._work.run(module_id, self._prepare(record))
                continue
            loaded = self._loaded.get(module_id)
            if loaded is None:
                if module_id in self._unbuilt and before != record:
                    self._set(module_id, "pending", None)
                    self._work.run(module_id, self._build(module_id, *self._unbuilt.pop(module_id)))
                continue  # still being prepared (or failed): it reads _known when built
            loaded.record = record
            if before["limits"] != record["limits"]:
                self._work.run(module_id, self._rebuild(module_id))
            if before["enabled"] is False and record["enabled"]:
                loaded.breaker.succeeded()  # re-enabled: a fresh start

    def _forget(self, module_id: str) -> None:
        record = self._known.pop(module_id)
        self._status.pop(module_id, None)
        self._loaded.pop(module_id, None)  # a call already running holds its runner
        self._unbuilt.pop(module_id, None)
        self._work.cancel(module_id)
        self.drop_unused([record["sha256"]])

    def drop_unused(self, digests: list[str]) -> None:
        """Remove the components (and their compiled artifacts) of `digests` that no record
        names and no registration under way here is taking in."""
        for digest in self.store.remove_unused(digests, self.in_use() | self.holds.held()):
            self.artifacts.forget(digest)

    def _set(self, module_id: str, state: str, reason: str | None, retrying: bool = False) -> None:
        if module_id in self._known:
            self._status[module_id] = LocalStatus(state, reason, time.time(), retrying)

    # -- preparing one module --------------------------------------------------------------

    async def _prepare(self, record: Record) -> None:
        await self._fetch_missing(record)
        try:
            compiled = await asyncio.to_thread(self._compile, record)
        except (runtime.WasmInvalid, OSError) as exc:  # final: the same bytes fail again
            self._set(record["id"], "failed", f"load error: {exc}")
            return
        breaker = ModuleBreaker(self.breaker.failures, self.breaker.cooldown)
        await self._build(record["id"], compiled, breaker)

    async def _rebuild(self, module_id: str) -> None:
        """New limits: a new runner; the old one finishes the calls it has."""
        loaded = self._loaded[module_id]
        await self._build(module_id, loaded.runner.compiled, loaded.breaker)

    async def _build(
        self, module_id: str, compiled: runtime.CompiledComponent, breaker: ModuleBreaker
    ) -> None:
        try:
            runner = await self._current_runner(module_id, compiled)
        except (runtime.WasmInvalid, runtime.WasmFailed) as exc:
            self._loaded.pop(module_id, None)
            self._unbuilt[module_id] = (compiled, breaker)
            self._set(module_id, "failed", f"load error: {exc}")
            return
        self._loaded[module_id] = Loaded(self._known[module_id], runner, breaker)
        self._set(module_id, "ready", None)

    async def _current_runner(
        self, module_id: str, compiled: runtime.CompiledComponent
    ) -> runtime.ModuleRunner:
        """A runner under the module's limits as they are once it is built: a change
        applied while it was built (a PATCH) builds it again."""
        while True:
            limits = self._known[module_id]["limits"]
            runner = await asyncio.to_thread(self._runner, compiled, self._known[module_id])
            if self._known[module_id]["limits"] == limits:
                return runner

    def _compile(self, record: Record) -> runtime.CompiledComponent:
        return self.artifacts.load(record["sha256"], self.store.path(record["sha256"]))

    def _runner(self, compiled: runtime.CompiledComponent, record: Record) -> runtime.ModuleRunner:
        limits = runtime.Limits(**record["limits"])
        return runtime.ModuleRunner(compiled, record["name"], limits, settings=self.runner)

    async def _fetch_missing(self, record: Record) -> None:
        """Return once the component is here and verified: fetch, retry with backoff."""
        delay, digest = self.backoff.first, record["sha256"]
        while await asyncio.to_thread(self.store.verified, digest) is None:
            try:
                await self.fetcher.fetch(digest, record["size"])
            except FetchFailed as exc:
                self._set(record["id"], "pending", str(exc), retrying=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff.most)
