"""Settings that change at runtime, for every node at once, without a restart.

`PUT /admin/config` validates a change against the same option table as the
command line, then commits the merged overrides as one replicated config key
(`meshgate.runtime`). Every node applies the committed overrides to its live
parts (admission limits, retries, circuit breakers, health checks, the
default policy, the upstream timeout) when the command is applied, so all
nodes change together and a restarted node comes back with them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from node.config import Config, ConfigError, convert_option
from node.limits.admission import Admission
from node.proxy.forward import Forwarder, RetrySettings
from node.routing.selector import PolicySelector
from node.workers.breaker import BreakerSettings
from node.workers.health import HealthChecker
from node.workers.pool import WorkerPool

log = logging.getLogger(__name__)

RUNTIME_KEY = "meshgate.runtime"
RUNTIME_SETTINGS = (
    "policy",
    "max_concurrent_requests",
    "queue_size",
    "queue_timeout_secs",
    "request_timeout_secs",
    "retry_max_retries",
    "retry_initial_backoff_ms",
    "retry_max_backoff_ms",
    "retry_backoff_multiplier",
    "retry_jitter_factor",
    "disable_retries",
    "cb_failure_threshold",
    "cb_success_threshold",
    "cb_timeout_duration_secs",
    "cb_window_duration_secs",
    "disable_circuit_breaker",
    "health_failure_threshold",
    "health_success_threshold",
    "health_check_timeout_secs",
    "health_check_interval_secs",
    "health_check_endpoint",
)


def validate_overrides(changes: dict[str, Any]) -> dict[str, Any]:
    """Check a change against the option table; ConfigError naming the first bad setting."""
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


def retry_settings(values: dict[str, Any]) -> RetrySettings:
    return RetrySettings(
        max_attempts=1 if values["disable_retries"] else values["retry_max_retries"],
        initial_backoff=values["retry_initial_backoff_ms"] / 1000,
        max_backoff=values["retry_max_backoff_ms"] / 1000,
        multiplier=values["retry_backoff_multiplier"],
        jitter=values["retry_jitter_factor"],
    )


def apply_runtime(config: Config, overrides: dict[str, Any], parts: LiveParts) -> dict[str, Any]:
    """Make the live parts follow the flags overlaid with `overrides`; the values in force."""
    values = effective(config, valid_overrides(overrides))
    admission = parts.admission
    admission.max_concurrent = max(0, values["max_concurrent_requests"])
    admission.queue_size = values["queue_size"]
    admission.queue_timeout = values["queue_timeout_secs"]
    breaker = BreakerSettings(
        failure_threshold=values["cb_failure_threshold"],
        success_threshold=values["cb_success_threshold"],
        timeout=values["cb_timeout_duration_secs"],
        window=values["cb_window_duration_secs"],
        enabled=not values["disable_circuit_breaker"],
    )
    parts.pool.set_breaker_settings(breaker)
    parts.selector.fallback["policy"] = values["policy"]
    if parts.forwarder is not None:
        parts.forwarder.retry = retry_settings(values)
        parts.forwarder.timeout = aiohttp.ClientTimeout(
            total=values["request_timeout_secs"], sock_connect=5
        )
    if parts.health is not None:
        parts.health.settings = replace(
            parts.health.settings,
            interval=values["health_check_interval_secs"],
            timeout=values["health_check_timeout_secs"],
            failure_threshold=values["health_failure_threshold"],
            success_threshold=values["health_success_threshold"],
            endpoint=values["health_check_endpoint"],
        )
    return values
