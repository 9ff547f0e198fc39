"""Settings that change at runtime, for every node at once, without a restart.

`PUT /admin/config` validates a change against the same declarations as the
command line (the settings marked `runtime=True` in node/config/sections.py),
then commits the merged overrides as one replicated config key
(`meshgate.runtime`). Every node applies the committed overrides to its live
parts (admission limits, retries, circuit breakers, health checks, the
default policy, the upstream timeout, the output parsers) when the command is
applied, so all nodes change together and a restarted node comes back with
them. Each part's settings are built by the same functions as at start
(node/part_settings.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from node.config import RUNTIME_SETTINGS, Config, ConfigError, convert_option
from node.limits.admission import Admission
from node.part_settings import (
    admission_limits,
    breaker_settings,
    health_settings,
    output_parsers,
    retry_settings,
    upstream_timeout,
)
from node.proxy.forward import Forwarder
from node.routing.selector import PolicySelector
from node.workers.health import HealthChecker
from node.workers.pool import WorkerPool

log = logging.getLogger(__name__)

RUNTIME_KEY = "meshgate.runtime"
__all__ = ["RUNTIME_KEY", "RUNTIME_SETTINGS", "LiveParts", "apply_runtime", "effective"]


def validate_overrides(changes: dict[str, Any]) -> dict[str, Any]:
    """Check a change against the declarations; ConfigError naming the first bad setting."""
    unknown = sorted(set(changes) - set(RUNTIME_SETTINGS))
    if unknown:
        raise ConfigError(
            f"{unknown[0]}: not a runtime setting (runtime settings: {', '.join(RUNTIME_SETTINGS)})"
        )
    return {name: convert_option(name, value) for name, value in changes.items()}


def effective(config: Config, overrides: dict[str, Any]) -> dict[str, Any]:
    return {name: overrides.get(name, getattr(config, name)) for name in RUNTIME_SETTINGS}


def valid_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """The committed overrides that pass today's checks; the others are logged and ignored.

    Overrides committed by an older version (or before a check existed, such as
    `health_check_endpoint` having to be a path) are checked again before use."""
    kept = {}
    for name, value in overrides.items():
        try:
            kept.update(validate_overrides({name: value}))
        except ConfigError as exc:
            log.warning("ignoring the committed runtime setting %s", exc)
    return kept


@dataclass(frozen=True)
class LiveParts:
    """The parts whose settings follow the runtime overrides; None for one not built yet."""

    admission: Admission
    pool: WorkerPool
    selector: PolicySelector
    forwarder: Forwarder | None = None
    health: HealthChecker | None = None
    admission_shares: int = 1  # data-plane processes sharing the node's admission limits


def apply_runtime(config: Config, overrides: dict[str, Any], parts: LiveParts) -> Config:
    """Make the live parts follow the flags overlaid with `overrides`; the config in force."""
    live = replace(config, **valid_overrides(overrides))
    limits = admission_limits(live, parts.admission_shares)
    admission = parts.admission
    admission.max_concurrent = limits.max_concurrent
    admission.queue_size = limits.queue_size
    admission.queue_timeout = limits.queue_timeout
    parts.pool.set_breaker_settings(breaker_settings(live))
    parts.selector.fallback["policy"] = live.policy
    if parts.forwarder is not None:
        parts.forwarder.retry = retry_settings(live)
        parts.forwarder.timeout = parts.forwarder.engine.timeout = upstream_timeout(live)
        parts.forwarder.parsers = output_parsers(live)
        parts.forwarder.engine.stream_interval = live.grpc_stream_interval
    if parts.health is not None:
        parts.health.settings = health_settings(live)
    return live
