"""Each part's settings object, built from its config section: one function per part.

The node uses the same function when it builds a part at start (node/app.py)
and when a runtime change reaches it (node/runtime.py), so how a flag maps onto
a part is written once. Each function takes the section it reads (a `Config`
is every section at once).
"""

from __future__ import annotations

from dataclasses import dataclass

from mesh.raft import RaftSettings
from node.config.sections import (
    Access,
    Admission,
    Breaker,
    Health,
    Identity,
    Mesh,
    Upstream,
    Workers,
)
from node.identity.claims import IdpSettings
from node.limits.quotas import Limits
from node.outparse.choice import ParserSettings, parser_settings
from node.proxy.forward import RetrySettings
from node.workers.breaker import BreakerSettings
from node.workers.discovery import DiscoverySettings
from node.workers.health import HealthSettings


@dataclass(frozen=True)
class AdmissionLimits:
    """node.limits.admission.Admission's limits, by its own names."""

    max_concurrent: int  # 0: unlimited
    queue_size: int
    queue_timeout: float


def admission_limits(section: Admission, shares: int = 1) -> AdmissionLimits:
    """The node's admission limits, or one process's share of them when `shares`
    data-plane processes serve the node: each admits max(1, L // shares) of a limit L,
    so together they admit no more than L (unless L is smaller than `shares`)."""
    limit, queue = max(0, section.max_concurrent_requests), section.queue_size
    return AdmissionLimits(
        max_concurrent=limit and max(1, limit // shares),
        queue_size=queue and max(1, queue // shares),
        queue_timeout=section.queue_timeout_secs,
    )


def retry_settings(section: Upstream) -> RetrySettings:
    return RetrySettings(
        max_attempts=1 if section.disable_retries else section.retry_max_retries,
        initial_backoff=section.retry_initial_backoff_ms / 1000,
        max_backoff=section.retry_max_backoff_ms / 1000,
        multiplier=section.retry_backoff_multiplier,
        jitter=section.retry_jitter_factor,
    )


def output_parsers(section: Upstream) -> ParserSettings:
    return parser_settings(section.reasoning_parser, section.tool_call_parser)


def upstream_timeout(section: Upstream) -> float:
    """The seconds an attempt on a worker may take, its answer's body included."""
    return section.request_timeout_secs


def breaker_settings(section: Breaker) -> BreakerSettings:
    return BreakerSettings(
        failure_threshold=section.cb_failure_threshold,
        success_threshold=section.cb_success_threshold,
        timeout=section.cb_timeout_duration_secs,
        window=section.cb_window_duration_secs,
        enabled=not section.disable_circuit_breaker,
    )


def health_settings(section: Health) -> HealthSettings:
    return HealthSettings(
        interval=section.health_check_interval_secs,
        timeout=section.health_check_timeout_secs,
        failure_threshold=section.health_failure_threshold,
        success_threshold=section.health_success_threshold,
        endpoint=section.health_check_endpoint,
    )


def discovery_settings(section: Workers, health: Health) -> DiscoverySettings:
    """Discovery asks a starting worker with the health checks' timeout."""
    return DiscoverySettings(
        startup_timeout=section.worker_startup_timeout_secs,
        check_interval=section.worker_startup_check_interval,
        request_timeout=health.health_check_timeout_secs,
    )


def raft_settings(section: Mesh, secret: str, previous: str | None = None) -> RaftSettings:
    standalone = not section.mesh_peers
    bind = section.mesh_bind or "127.0.0.1:0"
    advertise = section.mesh_advertise or bind
    peers = tuple(p for p in section.mesh_peers if p not in (advertise, bind))
    return RaftSettings(
        data_dir=section.data_path,
        self_address=advertise if section.mesh_voter else None,
        bind_address=bind if section.mesh_voter else None,
        peers=peers,
        password=secret,
        previous_password=previous,
        commit_timeout=section.mesh_commit_timeout_secs,
        tick_period=0.005 if standalone else 0.05,
        log_compaction_min_entries=section.mesh_log_compaction_entries,
        log_compaction_min_time=section.mesh_log_compaction_secs,
    )


def idp_settings(section: Identity) -> IdpSettings | None:
    """The identity provider whose tokens are trusted, or None when none is configured."""
    if not (section.idp_jwks_file or section.idp_jwks_url):
        return None
    return IdpSettings(
        jwks_file=section.idp_jwks_file,
        jwks_url=section.idp_jwks_url,
        issuer=section.idp_issuer or "",
        audience=section.idp_audience or "",
        role_claim=section.idp_role_claim,
        admin_values=tuple(section.idp_admin_values),
        minter_values=tuple(section.idp_minter_values),
        tenant_claim=section.idp_tenant_claim,
    )


def management_limits(section: Access) -> Limits | None:
    """The per-user limit on the management API, or None when it is switched off."""
    limits = Limits(
        requests_per_minute=section.management_requests_per_minute or None,
        burst=section.management_burst or None,
    )
    return limits if limits.requests_per_minute or limits.burst else None
