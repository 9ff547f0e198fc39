"""Unit tests of node/part_settings.py and node/runtime.py: one mapping at start and at runtime."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from node import config
from node.limits.admission import Admission
from node.metrics import Metrics
from node.part_settings import (
    admission_limits,
    breaker_settings,
    discovery_settings,
    health_settings,
    idp_settings,
    management_limits,
    raft_settings,
    retry_settings,
)
from node.proxy.forward import Forwarder
from node.routing.selector import PolicySelector
from node.runtime import LiveParts, apply_runtime
from node.workers.credentials import CredentialBox
from node.workers.health import HealthChecker
from node.workers.pool import WorkerPool

CHANGES: dict[str, Any] = {
    "policy": "random",
    "max_concurrent_requests": -1,
    "queue_size": 3,
    "queue_timeout_secs": 1.5,
    "request_timeout_secs": 7.0,
    "retry_max_retries": 9,
    "retry_initial_backoff_ms": 10,
    "retry_backoff_multiplier": 2.0,
    "cb_failure_threshold": 2,
    "disable_circuit_breaker": True,
    "health_check_interval_secs": 0.5,
    "health_check_endpoint": "/ready",
}


def load(*argv: str) -> config.Config:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.load(parser.parse_args([*argv, "--node-name", "n"]), environ={})


def live_parts(cfg: config.Config) -> LiveParts:
    """The runtime parts built as the node builds them at start."""
    pool = WorkerPool(breaker_settings(cfg), CredentialBox("a-mesh-secret-for-the-test"))
    return LiveParts(
        admission=Admission(**vars(admission_limits(cfg))),
        pool=pool,
        selector=PolicySelector(cfg.policy),
        forwarder=Forwarder(None, retry_settings(cfg), cfg.request_timeout_secs, Metrics("n")),  # type: ignore[arg-type]
        health=HealthChecker(pool, None, health_settings(cfg)),  # type: ignore[arg-type]
    )


def described(parts: LiveParts) -> dict[str, Any]:
    assert parts.forwarder is not None and parts.health is not None
    admission = parts.admission
    return {
        "admission": (admission.max_concurrent, admission.queue_size, admission.queue_timeout),
        "breaker": parts.pool._breaker,
        "policy": parts.selector.fallback["policy"],
        "retry": parts.forwarder.retry,
        "timeout": parts.forwarder.timeout,
        "engine timeout": parts.forwarder.engine.timeout,  # a gRPC worker's attempts
        "health": parts.health.settings,
    }


def test_a_runtime_change_gives_the_parts_what_a_start_with_it_gives() -> None:
    cfg = load()
    parts = live_parts(cfg)
    live = apply_runtime(cfg, CHANGES, parts)
    assert live == replace(cfg, **CHANGES)
    assert described(parts) == described(live_parts(replace(cfg, **CHANGES)))
    assert described(parts) != described(live_parts(cfg))  # the change did reach the parts


def test_no_overrides_leave_the_start_settings() -> None:
    cfg = load("--queue-size", "5", "--disable-retries", "true")
    parts = live_parts(cfg)
    assert apply_runtime(cfg, {}, parts) == cfg
    assert described(parts) == described(live_parts(cfg))
    assert parts.forwarder is not None and parts.forwarder.retry.max_attempts == 1


def test_a_committed_override_that_fails_todays_checks_is_ignored() -> None:
    cfg = load()
    parts = live_parts(cfg)
    live = apply_runtime(cfg, {"health_check_endpoint": "//evil.example/", "queue_size": 4}, parts)
    assert live.health_check_endpoint == "/health" and live.queue_size == 4
    assert parts.health is not None and parts.health.settings.endpoint == "/health"


def test_discovery_asks_with_the_health_check_timeout() -> None:
    cfg = load("--health-check-timeout-secs", "2.5", "--worker-startup-timeout-secs", "30")
    settings = discovery_settings(cfg, cfg)
    assert (settings.request_timeout, settings.startup_timeout) == (2.5, 30.0)


def test_management_limits_are_off_when_both_are_zero() -> None:
    assert (
        management_limits(load("--management-requests-per-minute", "0", "--management-burst", "0"))
        is None
    )
    limits = management_limits(load("--management-burst", "0"))
    assert limits is not None and (limits.requests_per_minute, limits.burst) == (100, None)


def test_an_identity_provider_only_when_its_keys_are_given() -> None:
    assert idp_settings(load()) is None
    idp = idp_settings(
        load(
            "--idp-jwks-file",
            "k.json",
            "--idp-issuer",
            "iss",
            "--idp-audience",
            "aud",
            "--idp-admin-values",
            "ops",
        )
    )
    assert idp is not None and (idp.jwks_file, idp.issuer, idp.admin_values) == (
        "k.json",
        "iss",
        ("ops",),
    )


def test_raft_settings_of_a_lone_node_and_of_a_read_only_member() -> None:
    lone = raft_settings(load(), "secret")
    assert lone.peers == () and lone.bind_address == "127.0.0.1:0" and lone.tick_period == 0.005
    member = raft_settings(
        load(
            "--mesh-peers",
            "127.0.0.1:7001",
            "127.0.0.1:7002",
            "--mesh-bind",
            "127.0.0.1:7002",
            "--mesh-voter",
            "false",
            "--mesh-secret",
            "the-mesh-s3cr3t-9Bc4Df7Gh2Jk5Lm8Np1Qr3St",
        ),
        "secret",
    )
    assert member.self_address is None and member.bind_address is None
    assert member.peers == ("127.0.0.1:7001",) and member.tick_period == 0.05


def test_data_plane_processes_split_the_node_admission_limits() -> None:
    cfg = load("--max-concurrent-requests", "256", "--queue-size", "100")
    limits = admission_limits(cfg, shares=3)
    assert (limits.max_concurrent, limits.queue_size) == (85, 33)  # 3 x 85 <= 256
    assert admission_limits(load("--max-concurrent-requests", "2"), shares=3).max_concurrent == 1
    assert admission_limits(load("--max-concurrent-requests", "0"), shares=3).max_concurrent == 0
    parts = replace(live_parts(cfg), admission_shares=3)
    apply_runtime(cfg, {"max_concurrent_requests": 30}, parts)
    assert parts.admission.max_concurrent == 10  # a runtime change is split alike
