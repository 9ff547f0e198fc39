"""`MeshRaft.submit`: what each way pysyncobj reports a command means for the answer.

pysyncobj is replaced by a script: each call of the replicated `apply` gets the next
scripted answer through its callback (or none at all). What is checked is the
classification (issue 8): NOT_COMMITTED only when no copy can be in a log that can
commit it, UNKNOWN otherwise, and then only once the proposer's clock is past the
command's expiry plus the clock allowance; resubmissions send the very same command.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from pysyncobj import FAIL_REASON

from mesh import commands
from mesh.events import AppliedStream
from mesh.raft import NOT_COMMITTED, UNKNOWN, CommitError, MeshRaft, RaftSettings

BUDGET = 0.3  # the commit timeout of these tests
SKEW = 0.2  # their clock allowance
SILENT = object()  # no callback at all (a follower cut off from everyone)
OK = ({"ok": True, "value": {"version": 7}}, FAIL_REASON.SUCCESS)


class Script:
    """Stands in for `_Replica.apply`: answers each submitted copy from a list."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.sent: list[dict[str, Any]] = []

    def __call__(self, command: dict[str, Any], callback: Any) -> None:
        self.sent.append(command)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer is not SILENT:
            delay, (result, error) = answer if isinstance(answer[0], float) else (0.0, answer)
            asyncio.get_running_loop().call_later(delay, callback, result, error)


def submit(tmp_path: Path, script: Script) -> tuple[Any, float]:
    """Run one submit against `script`; return its outcome (or CommitError) and duration."""
    settings = RaftSettings(
        data_dir=tmp_path,
        self_address=None,
        commit_timeout=BUDGET,
        clock_skew_allowance=SKEW,
    )
    raft = MeshRaft(settings, AppliedStream())
    raft._replica.apply = script  # type: ignore[method-assign]

    async def run() -> Any:
        try:
            return await raft.submit(commands.make("config.set", {"key": "k"}, by="t"))
        except CommitError as exc:
            return exc

    started = time.monotonic()
    result = asyncio.run(run())
    return result, time.monotonic() - started


def fail(code: int) -> tuple[None, int]:
    return (None, code)


@pytest.mark.parametrize(
    "code",
    [
        FAIL_REASON.MISSING_LEADER,  # no leader known: it never left this node
        FAIL_REASON.NOT_LEADER,  # the node it reached refused it: not in its log
        FAIL_REASON.DISCARDED,  # its (index, term) went to another entry: cannot commit
    ],
    ids=["missing_leader", "not_leader", "discarded"],
)
def test_known_not_logged_is_resubmitted_then_not_committed_without_the_allowance(
    tmp_path: Path, code: int
) -> None:
    script = Script(fail(code))
    error, took = submit(tmp_path, script)
    assert isinstance(error, CommitError) and error.outcome == NOT_COMMITTED
    assert error.request_id == script.sent[0]["rid"]
    assert len(script.sent) > 3  # resubmitted until the budget ran out
    assert BUDGET <= took < BUDGET + SKEW  # no need to wait: nothing can land later


def test_a_queue_full_is_final_and_not_committed(tmp_path: Path) -> None:
    script = Script(fail(FAIL_REASON.QUEUE_FULL))
    error, took = submit(tmp_path, script)
    assert error.outcome == NOT_COMMITTED and error.reason == "queue_full"
    assert len(script.sent) == 1 and took < BUDGET


@pytest.mark.parametrize(
    "code", [FAIL_REASON.LEADER_CHANGED, FAIL_REASON.UNKNOWN_OUTCOME], ids=["changed", "unknown"]
)
def test_maybe_logged_stays_unknown_whatever_follows(tmp_path: Path, code: int) -> None:
    """Fault 1: the copy was handed to the leader's link; later copies find no leader."""
    script = Script(fail(code), fail(FAIL_REASON.MISSING_LEADER))
    error, took = submit(tmp_path, script)
    assert isinstance(error, CommitError) and error.outcome == UNKNOWN
    assert not error.timed_out  # 503: pysyncobj answered; it just cannot tell
    assert error.request_id == script.sent[0]["rid"]
    assert error.expires_at == script.sent[0]["exp"]
    # Answered only once the proposer's clock is past the expiry plus the allowance.
    assert time.time() >= error.expires_at + SKEW
    assert took >= BUDGET + SKEW


def test_no_callback_is_unknown_and_timed_out(tmp_path: Path) -> None:
    script = Script(SILENT)
    error, took = submit(tmp_path, script)
    assert error.outcome == UNKNOWN and error.timed_out and error.reason == "timeout"
    assert len(script.sent) == 1 and BUDGET + SKEW <= took < BUDGET + SKEW + 1.0


def test_resubmissions_send_the_same_command(tmp_path: Path) -> None:
    script = Script(fail(FAIL_REASON.LEADER_CHANGED), fail(FAIL_REASON.NOT_LEADER), OK)
    outcome, _ = submit(tmp_path, script)
    assert outcome == OK[0]
    assert len(script.sent) == 3 and all(c == script.sent[0] for c in script.sent)
    assert script.sent[0]["exp"] == pytest.approx(time.time() + BUDGET, abs=1.0)


def test_an_answer_that_comes_within_the_allowance_is_still_a_success(tmp_path: Path) -> None:
    script = Script((BUDGET + SKEW / 2, OK))
    outcome, took = submit(tmp_path, script)
    assert outcome == OK[0] and took > BUDGET


def test_an_expired_refusal_is_not_committed_unless_an_earlier_copy_may_land(
    tmp_path: Path,
) -> None:
    expired = ({"ok": False, "error": "expired", "message": "late"}, FAIL_REASON.SUCCESS)
    error, _ = submit(tmp_path, Script(expired))
    assert error.outcome == NOT_COMMITTED and error.reason == "expired"
    error, _ = submit(tmp_path / "2", Script(fail(FAIL_REASON.LEADER_CHANGED), expired))
    assert error.outcome == UNKNOWN and error.reason == "expired"


def test_a_refusal_by_the_state_machine_is_an_outcome_not_an_error(tmp_path: Path) -> None:
    refused = ({"ok": False, "error": "version_mismatch", "message": "no"}, FAIL_REASON.SUCCESS)
    outcome, _ = submit(tmp_path, Script(refused))
    assert outcome == refused[0]
