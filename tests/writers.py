"""Config writers for fault tests: one thread per node, every answer recorded.

Each writer sends `POST /ha/config` to its own node, one write at a time,
cycling over a few keys of its own (`<prefix>/<node>/<slot>`) with a value
that grows with every write, so that each (key, value) pair is written once.
Every attempt is kept with its times and its answer, which lets a test say
what "no acknowledged write was lost" means precisely: at the end, each key
holds the value of its last acknowledged write, or of a later write whose
outcome was not an acknowledgement (it may have landed after all).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import requests


class Target(Protocol):
    name: str
    url: str


@dataclass
class Write:
    node: str
    key: str
    value: int
    sent: float  # time.monotonic()
    done: float
    status: int | None  # None: no HTTP answer (connection error, timeout)
    body: dict[str, Any] | None
    error: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.status == 200


class Writers:
    def __init__(
        self,
        nodes: Iterable[Target],
        headers: dict[str, str] | None = None,
        prefix: str = "w",
        slots: int = 8,
        pause: float = 0.02,
        timeout: float = 6.0,
    ) -> None:
        self.nodes = list(nodes)
        self.headers = headers or {}
        self.prefix = prefix
        self.slots = slots
        self.pause = pause
        self.timeout = timeout
        self.writes: list[Write] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in self.nodes
        ]

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 2)

    def _run(self, node: Target) -> None:
        session = requests.Session()
        value = 0
        while not self._stop.is_set():
            value += 1
            key = f"{self.prefix}/{node.name}/{value % self.slots}"
            sent = time.monotonic()
            status: int | None = None
            body: dict[str, Any] | None = None
            error = None
            try:
                resp = session.post(
                    node.url + "/ha/config",
                    json={"key": key, "value": value},
                    headers=self.headers,
                    timeout=self.timeout,
                )
                status = resp.status_code
                try:
                    body = resp.json()
                except ValueError:
                    body = None
            except requests.RequestException as exc:
                error = type(exc).__name__
            with self._lock:
                self.writes.append(
                    Write(node.name, key, value, sent, time.monotonic(), status, body, error)
                )
            self._stop.wait(self.pause)
        session.close()

    # -- reading the record ---------------------------------------------------------

    def snapshot(self) -> list[Write]:
        with self._lock:
            return list(self.writes)

    def acknowledged(self) -> list[Write]:
        return [w for w in self.snapshot() if w.acknowledged]

    def acked_between(self, start: float, end: float, nodes: Iterable[str] | None = None) -> int:
        """Acknowledgements that arrived in [start, end), from `nodes` (default: any)."""
        names = set(nodes) if nodes is not None else None
        return sum(
            1
            for w in self.snapshot()
            if w.acknowledged and start <= w.done < end and (names is None or w.node in names)
        )

    def lost(self, config: dict[str, Any]) -> list[str]:
        """Keys whose final value (`config`: key -> value) contradicts the record.

        A key must hold its last acknowledged value, or the value of a later write to it
        that was not acknowledged (its outcome is unknown to the client)."""
        by_key: dict[str, list[Write]] = {}
        for w in self.snapshot():
            by_key.setdefault(w.key, []).append(w)
        problems = []
        for key, writes in by_key.items():
            writes.sort(key=lambda w: w.value)
            acked = [w for w in writes if w.acknowledged]
            if not acked:
                continue
            last = acked[-1]
            allowed = {last.value} | {w.value for w in writes if w.value > last.value}
            final = config.get(key)
            if final not in allowed:
                problems.append(
                    f"{key}: holds {final!r}, last acknowledged {last.value} "
                    f"(via {last.node} at {last.done:.3f})"
                )
        return problems
