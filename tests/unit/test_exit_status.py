"""The exit statuses of `meshgate serve` and the supervisor config that acts on them."""

from __future__ import annotations

from node import exit_status
from tests.support import systemd_unit_values as unit_values


def test_the_systemd_unit_leaves_a_cluster_shutdown_down_and_restarts_the_rest() -> None:
    code = str(exit_status.CLUSTER_SHUTDOWN)
    assert unit_values("Restart") == ["always"]
    assert unit_values("RestartPreventExitStatus") == [code]
    assert unit_values("SuccessExitStatus") == [code]  # "inactive", not "failed"


def test_each_status_says_one_thing() -> None:
    statuses = {exit_status.STOPPED, exit_status.REFUSED, exit_status.CLUSTER_SHUTDOWN}
    assert len(statuses) == 3
    assert 1 not in statuses  # what Python exits with on an uncaught error
