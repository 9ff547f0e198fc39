"""The partition harness (tests/netns.py): a cut drops packets; nothing is left behind."""

from __future__ import annotations

import subprocess

import pytest

from tests import netns


@pytest.fixture
def lab() -> netns.Lab:
    problem = netns.unavailable()
    if problem:
        pytest.skip(f"partition tests need Linux network namespaces: {problem}")
    return netns.Lab(2)


def _reaches(lab: netns.Lab, i: int, address: str) -> bool:
    """Can namespace i open a TCP connection to `address` (host:port) within 1 s?"""
    host, port = address.rsplit(":", 1)
    code = (
        "import socket,sys\n"
        "s=socket.socket(); s.settimeout(1)\n"
        f"sys.exit(s.connect_ex(({host!r},{port})))"
    )
    run = subprocess.run([*lab.exec_prefix(i), "python3", "-c", code], timeout=10)
    return run.returncode == 0


def test_a_cut_drops_packets_and_close_removes_everything(lab: netns.Lab) -> None:
    try:
        listener = subprocess.Popen(
            [
                *lab.exec_prefix(1),
                "python3",
                "-c",
                "import socket,time\n"
                f"s=socket.socket(); s.bind(({lab.ip(1)!r},9000)); s.listen(); time.sleep(30)",
            ],
        )
        try:
            target = f"{lab.ip(1)}:9000"
            assert netns.wait_for(lambda: _reaches(lab, 0, target), timeout=10, what="a link")
            lab.cut(1)
            assert not _reaches(lab, 0, target)  # dropped: no refusal, no reset, a timeout
            lab.heal(1)
            assert netns.wait_for(lambda: _reaches(lab, 0, target), timeout=10, what="heal")
        finally:
            listener.kill()
            listener.wait()
    finally:
        lab.close()
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "link"], capture_output=True, text=True).stdout
    assert lab.tag not in namespaces
    assert lab.tag not in links
