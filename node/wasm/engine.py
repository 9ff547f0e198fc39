"""The one wasmtime engine of a process, with the epoch ticker its deadlines count on.

Every call gets an epoch deadline rather than fuel: fuel costs on every instruction,
an epoch check is a load and compare, and the ticker is one sleeping thread."""

from __future__ import annotations

import threading
from functools import cache
from importlib.metadata import version

import wasmtime

# The ticker's period: a deadline is met to within one tick.
TICK_MS = 5


def wasmtime_version() -> str:
    """The installed wasmtime's version: compiled artifacts only load on the same one."""
    return version("wasmtime")


class _Ticker:
    """A daemon thread that advances the engine's epoch every TICK_MS."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wasm-epoch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(TICK_MS / 1000):
            self._engine.increment_epoch()


@cache
def shared_engine() -> wasmtime.Engine:
    """The process's engine (component model on, epoch interruption on), ticking."""
    config = wasmtime.Config()
    config.wasm_component_model = True
    config.epoch_interruption = True
    engine = wasmtime.Engine(config)
    _Ticker(engine)
    return engine


def deadline_ticks(timeout_ms: int) -> int:
    """Epoch ticks for a timeout: the call is interrupted after timeout_ms, within a tick."""
    return max(1, -(-timeout_ms // TICK_MS))
