"""The audit log of a node of several processes: each writes files of its own (one
writer per file, so each rotates its own), and a tail reads them together."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from node import audit
from node.audit import AuditLog


@contextmanager
def logs(path: Path) -> Iterator[tuple[AuditLog, AuditLog]]:
    """The control process's log and process p1's, closed after."""
    control, p1 = AuditLog(path, "n1"), AuditLog(path, "n1", process="p1")
    try:
        yield control, p1
    finally:
        control.close()
        p1.close()


def test_a_tail_reads_every_process_s_files_in_time_order(tmp_path: Path) -> None:
    with logs(tmp_path / "audit.jsonl") as (control, p1):
        written(control, p1)
        assert [e["n"] for e in control.tail(10)] == [0, 1, 2, 3, 4]
        assert [e["n"] for e in p1.tail(3, refusals=True)] == [2, 3, 4]  # any writer's
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "audit-refused.jsonl",
        "audit-refused.p1.jsonl",
        "audit.jsonl",
        "audit.p1.jsonl",
    ]


def written(control: AuditLog, p1: AuditLog) -> None:
    for n, log in enumerate([control, p1, control, p1, p1]):
        log.write({"n": n, "status": 200})
        log.write({"n": n, "status": 404})


def test_each_process_rotates_its_own_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "MAX_BYTES", 200)
    with logs(tmp_path / "audit.jsonl") as (control, p1):
        for n in range(6):
            p1.write({"n": n, "status": 200})
        control.write({"n": 6, "status": 200})
        assert [e["n"] for e in control.tail(100)][-1] == 6
    assert (tmp_path / "audit.p1.jsonl.1").exists()
    assert not (tmp_path / "audit.jsonl.1").exists()  # the control's file kept whole
