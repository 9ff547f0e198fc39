"""`/metrics` of a node that runs as several processes: one scrape, every process.

Each data-plane process keeps its own registry (node/metrics.py) and serves it alone
to its siblings (node/plane/siblings.py); the control process's is on `control.sock`.
A scrape of any data-plane process reads them all and answers the node's view: each
series once, as a node of one process shows it (node/plane/node_view.py says how each
is combined). `/metrics?by=process` answers every series once per process instead,
labelled `process` (`p1`..`pN`, `control`). A process that does not answer in time
(one being restarted) is left out of that scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from node.errors import error_response
from node.metrics import Metrics
from node.plane.node_view import node_view
from node.plane.siblings import Siblings, get

SCRAPE_SECS: Final = 2.0  # each other process's answer
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


class _Merged(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def render(families: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(families))
    return generate_latest(registry)


def by_process(texts: Mapping[str, str]) -> list[Metric]:
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
    return list(families.values())


VIEWS: Final = {None: node_view, "process": by_process}  # by ?by=


class NodeMetrics:
    """The /metrics handler of data-plane process `name`: its own, its siblings', the
    control process's."""

    def __init__(self, metrics: Metrics, siblings: Siblings) -> None:
        self.metrics = metrics
        self.siblings = siblings

    async def __call__(self, request: web.Request) -> web.Response:
        view = VIEWS.get(request.query.get("by"))
        if view is None:
            return error_response(
                400, "by takes 'process' (or leave it out for the node's view)", param="by"
            )
        others = self.siblings.with_control()
        read = await asyncio.gather(
            *(get(path, "/metrics", SCRAPE_SECS) for path in others.values())
        )
        texts = {self.siblings.name: self.metrics.render().decode()}
        for process, body in zip(others, read, strict=True):
            with contextlib.suppress(UnicodeDecodeError):
                if body is not None:
                    texts[process] = body.decode()
        return web.Response(body=render(view(texts)), headers={"Content-Type": CONTENT_TYPE})
