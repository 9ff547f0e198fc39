"""Unit tests of the per-worker circuit breaker (`node/workers/breaker.py`), on a fake clock."""

from __future__ import annotations

import pytest

from node.workers.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    STATE_NUMBER,
    BreakerSettings,
    CircuitBreaker,
)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


SETTINGS = BreakerSettings(failure_threshold=3, success_threshold=2, timeout=10.0, window=30.0)


def make(settings: BreakerSettings = SETTINGS) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    return CircuitBreaker(settings, clock=clock), clock


def open_breaker(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.settings.failure_threshold):
        breaker.record_failure()
    assert breaker.state == OPEN


def test_defaults_match_smg() -> None:
    s = BreakerSettings()
    assert (s.failure_threshold, s.success_threshold, s.timeout, s.window, s.enabled) == (
        10,
        3,
        60.0,
        120.0,
        True,
    )
    assert STATE_NUMBER == {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


def test_starts_closed_and_allows() -> None:
    breaker, _ = make()
    assert breaker.state == CLOSED
    assert breaker.allows()
    assert breaker.snapshot() == {"state": CLOSED, "recent_failures": 0, "transitions": 0}


def test_opens_after_threshold_failures_inside_window() -> None:
    breaker, clock = make()
    breaker.record_failure()
    clock.advance(10)
    breaker.record_failure()
    assert breaker.state == CLOSED and breaker.allows()
    assert breaker.snapshot()["recent_failures"] == 2
    clock.advance(20)  # third failure exactly `window` after the first: still inside
    breaker.record_failure()
    assert breaker.state == OPEN
    assert not breaker.allows()
    assert breaker.transitions == 1


def test_failures_spread_wider_than_window_do_not_open() -> None:
    breaker, clock = make()
    for _ in range(10):
        breaker.record_failure()
        clock.advance(16)  # any three failures span 32 s > 30 s window
        assert breaker.state == CLOSED
    assert breaker.allows()
    assert breaker.snapshot()["recent_failures"] <= 2
    assert breaker.transitions == 0


def test_success_while_closed_forgets_failures() -> None:
    breaker, _ = make()
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    assert breaker.snapshot()["recent_failures"] == 0
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == CLOSED


def test_open_becomes_half_open_after_timeout() -> None:
    breaker, clock = make()
    open_breaker(breaker)
    clock.advance(9.999)
    assert breaker.state == OPEN and not breaker.allows()
    clock.advance(0.001)
    assert breaker.state == HALF_OPEN
    assert breaker.allows()
    assert breaker.transitions == 2


def test_failures_while_open_are_ignored_and_do_not_extend_it() -> None:
    breaker, clock = make()
    open_breaker(breaker)
    clock.advance(5)
    breaker.record_failure()  # e.g. a request sent before the circuit opened
    clock.advance(5)
    assert breaker.state == HALF_OPEN


def test_half_open_admits_at_most_success_threshold_trials() -> None:
    breaker, clock = make()
    open_breaker(breaker)
    clock.advance(10)
    admitted = 0
    for _ in range(5):
        if breaker.allows():
            breaker.on_attempt()
            admitted += 1
    assert admitted == SETTINGS.success_threshold
    assert not breaker.allows()
    # A finished trial frees its slot for another one.
    breaker.record_success()
    assert breaker.state == HALF_OPEN
    assert breaker.allows()


def test_on_attempt_takes_no_slot_when_closed() -> None:
    breaker, _ = make()
    for _ in range(100):
        assert breaker.allows()
        breaker.on_attempt()
    assert breaker.state == CLOSED


def test_success_threshold_successes_close_it() -> None:
    breaker, clock = make()
    open_breaker(breaker)
    clock.advance(10)
    for _ in range(SETTINGS.success_threshold):
        assert breaker.allows()
        breaker.on_attempt()
    breaker.record_success()
    assert breaker.state == HALF_OPEN
    breaker.record_success()
    assert breaker.state == CLOSED
    assert breaker.allows()
    assert breaker.snapshot() == {"state": CLOSED, "recent_failures": 0, "transitions": 3}
    # Closed again from scratch: it takes a full threshold of failures to reopen.
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == CLOSED


def test_failure_in_half_open_reopens_for_a_full_timeout() -> None:
    breaker, clock = make()
    open_breaker(breaker)
    clock.advance(10)
    assert breaker.allows()
    breaker.on_attempt()
    breaker.record_success()
    breaker.on_attempt()
    breaker.record_failure()  # any failure reopens, even after a success
    assert breaker.state == OPEN
    assert not breaker.allows()
    clock.advance(9.9)
    assert breaker.state == OPEN  # the open period restarted at the failure
    clock.advance(0.1)
    assert breaker.state == HALF_OPEN
    # The earlier half-open success does not count toward closing now.
    breaker.on_attempt()
    breaker.record_success()
    assert breaker.state == HALF_OPEN


def test_disabled_breaker_always_allows() -> None:
    breaker, clock = make(BreakerSettings(failure_threshold=1, enabled=False))
    for _ in range(50):
        breaker.on_attempt()
        breaker.record_failure()
        clock.advance(0.1)
        assert breaker.allows()
    assert breaker.state == CLOSED
    assert breaker.transitions == 0


def test_reset_closes_and_forgets() -> None:
    breaker, clock = make()
    open_breaker(breaker)
    breaker.reset()
    assert breaker.state == CLOSED and breaker.allows()
    assert breaker.snapshot()["recent_failures"] == 0
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == CLOSED  # the failures before reset do not count

    open_breaker(breaker)
    clock.advance(10)
    while breaker.allows():
        breaker.on_attempt()
    assert breaker.state == HALF_OPEN
    breaker.reset()  # also frees half-open trial slots
    assert breaker.state == CLOSED and breaker.allows()


@pytest.mark.parametrize("threshold", [1, 5])
def test_threshold_is_exact(threshold: int) -> None:
    breaker, _ = make(BreakerSettings(failure_threshold=threshold, window=100.0))
    for _ in range(threshold - 1):
        breaker.record_failure()
    assert breaker.state == CLOSED
    breaker.record_failure()
    assert breaker.state == OPEN


def test_abandoned_trials_free_their_half_open_slot() -> None:
    breaker, clock = make()
    for _ in range(breaker.settings.failure_threshold):
        breaker.record_failure()
    clock.advance(breaker.settings.timeout)
    for _ in range(breaker.settings.success_threshold):
        assert breaker.allows()
        breaker.on_attempt()
    assert not breaker.allows()
    for _ in range(breaker.settings.success_threshold):
        breaker.settle(None)  # e.g. the client disconnected: no verdict on the worker
    assert breaker.state == "half_open" and breaker.allows()
