"""Numbers from outside input are ASCII digits only: superscript, circled, fullwidth and
Arabic-Indic digits pass str.isdigit(), and int() fails on some (a 500) and reads others."""

from __future__ import annotations

import asyncio
import socket
from email.message import Message
from pathlib import Path

import pytest

from node.browser_guard import _host_name
from node.cluster_cli import Client
from node.config.checks import host_ports
from node.digits import ascii_decimal, ascii_int
from node.index_names import INDEX_HEADER
from node.plane.forks import ForkServer, ForkServerGone
from node.plane.handover import Handover

NOT_ASCII = ["\u00b2", "\u2460", "\uff15", "\u0663", "1\u00b2"]


@pytest.mark.parametrize("text", [*NOT_ASCII, "", " 5", "5 ", "+5", "-5", "1_0", "123"])
def test_only_ascii_digits_within_the_length_are_a_number(text: str) -> None:
    assert ascii_int(text, max_digits=2) is None


def test_ascii_digits_are_read() -> None:
    assert ascii_int("07") == 7 and ascii_int("30", max_digits=2) == 30
    assert ascii_int(7) is None and ascii_int(None) is None


@pytest.mark.parametrize("port", NOT_ASCII)
def test_a_host_port_setting_with_other_digits_is_refused_not_raised(port: str) -> None:
    assert host_ports([f"10.0.0.1:{port}"]) == f"'10.0.0.1:{port}' is not HOST:PORT"


def test_a_host_header_port_in_other_digits_is_not_a_port() -> None:
    assert _host_name("localhost:8080") == "localhost"
    assert _host_name("localhost:\uff18") == "localhost:\uff18"


@pytest.mark.parametrize("value", NOT_ASCII)
def test_an_index_header_in_other_digits_is_ignored(value: str) -> None:
    client = Client("http://127.0.0.1:1", None)
    headers = Message()
    headers[INDEX_HEADER] = value
    client._note_index(headers)
    assert client.index == 0


def test_a_handed_over_answers_index_in_other_digits_is_not_waited_for() -> None:
    handover = Handover(Path("unused"), None, None, 1.0, 1.0, None)  # type: ignore[arg-type]
    for value in NOT_ASCII:
        assert asyncio.run(handover._caught_up(value)) == []  # not applied.wait(int(...))


def test_a_fork_server_reply_in_other_digits_is_the_server_gone() -> None:
    async def scenario() -> str:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        link, other = socket.socketpair()
        ours.setblocking(False)
        theirs.send("\u00b2".encode())  # the reply, waiting before the request is sent
        try:
            # The asking part of spawn (spawn then kills and reaps the server: no process here)
            await ForkServer(ours, 0)._ask(b"serve", link)
        except ForkServerGone as exc:
            return str(exc)
        finally:
            for sock in (ours, theirs, link, other):
                sock.close()
        return "no error"

    assert asyncio.run(scenario()) == "the fork server: \u00b2"


def test_a_time_is_an_ascii_decimal() -> None:
    assert ascii_decimal("1732912345.25") == 1732912345.25 and ascii_decimal("1.7e9") == 1.7e9
    for text in ("\u0661\u0667", "\uff11", " 17", "1_7", "-1", "inf", "nan", "", "1" * 41):
        assert ascii_decimal(text) is None, text
