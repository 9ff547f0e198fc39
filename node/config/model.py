"""`Config`: every section at once, one frozen object with each setting as a typed attribute.

Its attributes are the sections' fields (dataclass inheritance), so no list of
settings is written twice; `OPTIONS` reads the declarations back, in order.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

from node.config.declare import Option, Section, options_of
from node.config.sections import (
    Access,
    Admission,
    Blobs,
    Breaker,
    Health,
    HotStore,
    Identity,
    Mesh,
    Serving,
    Shutdown,
    Upstream,
    Wasm,
    Workers,
)


# Bases in reverse: a dataclass takes its bases' fields last base first, so the settings
# (and `--help`) come in the order serving, workers, admission, ... shutdown.
@dataclass(frozen=True)
class Config(
    Shutdown,
    HotStore,
    Wasm,
    Blobs,
    Mesh,
    Identity,
    Access,
    Health,
    Breaker,
    Upstream,
    Admission,
    Workers,
    Serving,
):
    @property
    def advertised_http_url(self) -> str:
        if self.http_advertise_url:
            return self.http_advertise_url.rstrip("/")
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def process_count(self) -> int:
        """How many data-plane processes serve the port (`--processes`, 0: one per usable
        core). 1 is today's single process: no control/data split."""
        return self.processes or len(os.sched_getaffinity(0))

    def public(self) -> dict[str, Any]:
        """The effective settings with every secret masked (safe to show and log)."""
        shown = {}
        for opt in OPTIONS:
            value = getattr(self, opt.name)
            shown[opt.name] = opt.show(value) if opt.show else value
        return shown


SECTIONS: tuple[type[Section], ...] = tuple(reversed(Config.__bases__))
OPTIONS: tuple[Option, ...] = tuple(opt for section in SECTIONS for opt in options_of(section))
BY_NAME: dict[str, Option] = {opt.name: opt for opt in OPTIONS}
# What `PUT /admin/config` may change at runtime, in declaration order.
RUNTIME_SETTINGS: tuple[str, ...] = tuple(opt.name for opt in OPTIONS if opt.runtime)
