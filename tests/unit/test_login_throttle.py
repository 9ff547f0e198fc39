"""Failed logins slow down further tries, per username and per client address."""

from __future__ import annotations

from node.identity.throttle import LoginThrottle, Policy


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_few_failures_are_free_then_waits_double() -> None:
    clock = Clock()
    policy = Policy(free_failures=3, base_delay=1.0, max_delay=8.0)
    throttle = LoginThrottle(address=policy, username=policy, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("admin", "10.0.0.1") == 0
        throttle.failed("admin", "10.0.0.1")
    assert throttle.retry_after("admin", "10.0.0.1") == 0
    waits = []
    for _ in range(5):
        throttle.failed("admin", "10.0.0.1")
        waits.append(throttle.retry_after("admin", "10.0.0.1"))
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0]  # doubling, up to the ceiling
    clock.now += 8.0
    assert throttle.retry_after("admin", "10.0.0.1") == 0


def test_the_username_is_throttled_from_any_address_and_the_address_for_any_name() -> None:
    clock = Clock()
    policy = Policy(free_failures=1, base_delay=1.0, max_delay=60.0)
    throttle = LoginThrottle(address=policy, username=policy, clock=clock)
    throttle.failed("admin", "10.0.0.1")
    throttle.failed("admin", "10.0.0.1")
    assert throttle.retry_after("admin", "10.0.0.99") > 0  # same user, other address
    assert throttle.retry_after("root", "10.0.0.1") > 0  # same address, other user
    assert throttle.retry_after("root", "10.0.0.99") == 0


def test_a_username_is_slowed_gently_so_nobody_can_lock_the_admin_out() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for i in range(200):  # a distributed guesser, one failure per address
        throttle.failed("admin", f"10.1.{i // 250}.{i % 250}")
    assert 0 < throttle.retry_after("admin", "10.9.9.9") <= 60.0


def test_success_clears_and_records_are_bounded() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_records=10, clock=clock)
    throttle.failed("admin", "10.0.0.1")
    throttle.succeeded("admin", "10.0.0.1")
    assert throttle.retry_after("admin", "10.0.0.1") == 0
    for i in range(100):
        throttle.failed(f"user{i}", f"10.0.1.{i}")
    assert len(throttle._records) == 10
