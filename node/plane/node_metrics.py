"""`/metrics` of a node that runs as several processes: one scrape, every process.

Each data-plane process keeps its own registry (node/metrics.py) and serves it alone
on a Unix socket in the data dir (`metrics-<name>.sock`, mode 0600); the control
process's is on `control.sock`. A scrape of any data-plane process reads them all and
answers every series once per process, labelled `process` (`p1`..`pN`, `control`), so
`sum without (process) (...)` is the node's view. A process that does not answer in
time (one being restarted) is left out of that scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from node.metrics import Metrics
from node.plane.paths import control_socket

SCRAPE_SECS: Final = 2.0  # each other process's answer
MOST_BYTES: Final = 16 * 1024 * 1024  # of one process's metrics
CONTROL: Final = "control"
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


def metrics_socket(data_path: Path, process: str) -> Path:
    return data_path / f"metrics-{process}.sock"


class _Merged(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def merge(texts: Mapping[str, str]) -> bytes:
    """Every process's exposition text as one, each sample labelled with its process."""
    families: dict[str, Metric] = {}
    for process, text in texts.items():
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            for sample in family.samples:
                labels = {**sample.labels, "process": process}
                merged.add_sample(sample.name, labels, sample.value, sample.timestamp)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(list(families.values())))
    return generate_latest(registry)


async def serve_own(metrics: Metrics, path: Path) -> web.AppRunner:
    """Serve this process's registry alone at `path` (GET /metrics), for its siblings."""
    app = web.Application()

    async def own(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), content_type="text/plain")

    app.router.add_get("/metrics", own)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by this process's previous run (the supervisor runs one at a time)
    await web.UnixSite(runner, str(path)).start()
    path.chmod(0o600)
    return runner


class NodeMetrics:
    """The /metrics handler of data-plane process `name`: its own, its siblings', the
    control process's."""

    def __init__(self, metrics: Metrics, data_path: Path, name: str) -> None:
        self.metrics = metrics
        self.data_path = data_path
        self.name = name

    def others(self) -> dict[str, Path]:
        found = {CONTROL: control_socket(self.data_path)}
        for path in sorted(self.data_path.glob("metrics-*.sock")):
            process = path.name.removeprefix("metrics-").removesuffix(".sock")
            if process != self.name:
                found[process] = path
        return found

    async def __call__(self, _: web.Request) -> web.Response:
        others = self.others()
        read = await asyncio.gather(*(_scrape(path) for path in others.values()))
        texts = {self.name: self.metrics.render().decode()}
        texts.update({p: text for p, text in zip(others, read, strict=True) if text is not None})
        return web.Response(body=merge(texts), headers={"Content-Type": CONTENT_TYPE})


async def _scrape(path: Path) -> str | None:
    """GET /metrics over the Unix socket at `path`; None if it does not answer in time."""
    timeout = aiohttp.ClientTimeout(total=SCRAPE_SECS)
    try:
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(path)), timeout=timeout
            ) as session,
            session.get("http://localhost/metrics") as answer,
        ):
            if answer.status != 200:
                return None
            body = await answer.content.read(MOST_BYTES + 1)
            return None if len(body) > MOST_BYTES else body.decode()
    except (aiohttp.ClientError, TimeoutError, OSError, UnicodeDecodeError):
        return None
