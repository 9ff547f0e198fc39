"""`meshgate cluster rolling-restart`: its flags, and when it moves to the next node."""

from __future__ import annotations

import time
from typing import Any

import pytest

from node import cluster_cli
from node.cli import main


@pytest.mark.parametrize(
    ("flag", "bad", "said"),
    [
        ("--settle-secs", "-1", "expected a non-negative number of seconds"),
        ("--settle-secs", "nan", "expected a non-negative number of seconds"),
        ("--settle-secs", "inf", "expected a non-negative number of seconds"),
        ("--settle-secs", "soon", "expected a non-negative number of seconds"),
        ("--settle-secs", "", "expected a non-negative number of seconds"),
        ("--node-timeout", "0", "expected more than 0 seconds"),
        ("--node-timeout", "-5", "expected a non-negative number of seconds"),
    ],
)
def test_a_bad_time_is_a_usage_error_naming_the_flag(
    flag: str, bad: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused before any request: no node is stopped (the URL answers nothing anyway)."""
    with pytest.raises(SystemExit) as exited:
        main(["cluster", "rolling-restart", "--url", "http://127.0.0.1:1", f"{flag}={bad}"])
    assert exited.value.code == 2
    assert f"argument {flag}: {said}" in capsys.readouterr().err


def test_settle_time_accepts_zero_and_fractions() -> None:
    assert cluster_cli.seconds("0") == 0.0
    assert cluster_cli.seconds("0.25") == 0.25


def node(name: str, boot: str, **seen: Any) -> dict[str, Any]:
    view = {"status": "alive", "ready": True, "caught_up": True, "voter": True, **seen}
    return {"name": name, "boot_id": boot, "http_url": f"http://{name}", **view}


class FakeMesh(cluster_cli.Client):
    """n2 is restarting; each peer's /ha/status is scripted, one answer per call."""

    def __init__(self, views: dict[str, list[dict[str, Any]]]) -> None:
        super().__init__("http://n1", None)
        self.views = views
        self.calls: list[str] = []

    def call(
        self, base: str, method: str, path: str, body: Any = None, timeout: float = 10.0
    ) -> Any:
        self.calls.append(base)
        answers = self.views[base]
        n2 = answers.pop(0) if len(answers) > 1 else answers[0]
        return {"nodes": [node("n1", "b1"), n2, node("n3", "b3")]}


def test_it_moves_on_only_once_every_peer_sees_the_new_run_healthy() -> None:
    old = node("n2", "old")
    client = FakeMesh(
        {
            # n1 sees the new run at once; n3 first still the old one, then not caught up
            "http://n1": [node("n2", "new")],
            "http://n3": [node("n2", "old"), node("n2", "new", caught_up=False), node("n2", "new")],
        }
    )
    cluster_cli._wait_settled(client, old, ["http://n1", "http://n3"], 0.0, deadline=1e18)
    assert client.calls.count("http://n3") == 3


def test_it_gives_up_at_the_deadline_naming_the_doubt() -> None:
    client = FakeMesh(
        {"http://n1": [node("n2", "new")], "http://n3": [node("n2", "new", ready=False)]}
    )
    with pytest.raises(cluster_cli.ClusterError, match="http://n3 does not see n2 healthy"):
        cluster_cli._wait_settled(
            client, node("n2", "old"), ["http://n1", "http://n3"], 0.0, time.monotonic() + 0.3
        )
