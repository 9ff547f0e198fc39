"""The front's head reader takes only the plainest inference request; all else is aiohttp's."""

from __future__ import annotations

import pytest
from aiohttp import hdrs
from multidict import istr

from node.front.head import HANDOVER, MAX_HEAD_BYTES, Head, read_head
from tests.unit.test_front import NAMES_OF_THEIR_OWN

PATHS = frozenset({b"/v1/chat/completions"})
PLAIN = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\n\r\n{}"
)


def test_a_plain_request_is_read_with_its_framing() -> None:
    head = read_head(PLAIN, PATHS, 100)
    assert isinstance(head, Head)
    assert head.path == b"/v1/chat/completions"
    assert head.content_length == 2 and head.keep_alive
    assert PLAIN[head.size :] == b"{}"
    assert head.headers == (
        (b"Host", b"x"),
        (b"Content-Type", b"application/json"),
        (b"Content-Length", b"2"),
    )


def test_an_incomplete_head_waits_and_an_endless_one_is_handed_over() -> None:
    assert read_head(PLAIN[:40], PATHS, 100) is None
    endless = b"POST /v1/chat/completions HTTP/1.1\r\nX: " + b"a" * MAX_HEAD_BYTES
    assert read_head(endless, PATHS, 100) is HANDOVER


def test_values_lose_surrounding_whitespace_and_connection_close_is_read() -> None:
    data = PLAIN.replace(b"Host: x", b"Host: \t x \t\r\nConnection: keep-alive, Close")
    head = read_head(data, PATHS, 100)
    assert isinstance(head, Head)
    assert (b"Host", b"x") in head.headers
    assert not head.keep_alive


@pytest.mark.parametrize(
    "data",
    [
        PLAIN.replace(b"POST", b"GET"),
        PLAIN.replace(b"/v1/chat/completions", b"/v1/chat/completions?x=1"),
        PLAIN.replace(b"/v1/chat/completions", b"/v1/models"),
        PLAIN.replace(b"/v1/chat/completions", b"http://x/v1/chat/completions"),
        PLAIN.replace(b"HTTP/1.1", b"HTTP/1.0"),
        PLAIN.replace(b"POST ", b"POST  "),
        PLAIN.replace(b"Content-Length: 2\r\n", b""),  # no framing of its own
        PLAIN.replace(b"Content-Length: 2", b"Content-Length: 2\r\nContent-Length: 2"),
        PLAIN.replace(b"Content-Length: 2", b"Content-Length: +2"),
        PLAIN.replace(b"Content-Length: 2", b"Content-Length: 2, 2"),
        PLAIN.replace(b"Content-Length: 2", b"Content-Length: 2\r\nTransfer-Encoding: chunked"),
        PLAIN.replace(b"Host: x", b"Host: x\r\nExpect: 100-continue"),
        PLAIN.replace(b"Host: x", b"Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade"),
        PLAIN.replace(b"Host: x", b"Host: x\r\nHost: y"),
        PLAIN.replace(b"Host: x", b"Host: x\r\ncontent-type: text/plain"),
        PLAIN.replace(b"Host: x", b"Host: x\r\nUser-Agent: a\r\nUSER-AGENT: b"),
        PLAIN.replace(b"Host: x", b"Host: x\r\nContent-Encoding: gzip"),
        PLAIN.replace(b"Host: x", b"Host: x\r\nSec-WebSocket-Key1: 1"),
        PLAIN.replace(b"Host: x", b"Host: x\r\n folded"),  # obs-fold
        PLAIN.replace(b"Host: x", b"Host : x"),  # space before the colon
        PLAIN.replace(b"Host: x", b"Host x"),
        PLAIN.replace(b"Host: x\r\n", b"Host: x\n"),  # a bare LF
        PLAIN.replace(b"Host: x", b"Host: x\ry"),  # a bare CR
        PLAIN.replace(b"Host: x", b"Host: x\x00y"),
        PLAIN.replace(b"Host: x", b"Host: x\x1by"),
        PLAIN.replace(b"Host: x", b"Host: x\r\nX-Long: " + b"a" * 8200),
        PLAIN.replace(b"Host: x\r\n", b""),  # aiohttp refuses HTTP/1.1 without a Host
        PLAIN.replace(b"Content-Length: 2", b"Content-Length: 101"),  # over the limit
    ],
)
def test_anything_but_the_plainest_form_is_handed_over(data: bytes) -> None:
    assert read_head(data, PATHS, 100) is HANDOVER


def test_a_close_in_any_connection_header_closes() -> None:
    both = b"Host: x\r\nConnection: close\r\nConnection: keep-alive"
    head = read_head(PLAIN.replace(b"Host: x", both), PATHS, 100)
    assert isinstance(head, Head)
    assert not head.keep_alive


def test_every_other_header_name_aiohttp_knows_is_read_here() -> None:
    """So the differential test's cases with those names test the front, not aiohttp."""
    names = sorted(
        str(name).encode()
        for name in vars(hdrs).values()
        if isinstance(name, istr) and name.lower() not in NAMES_OF_THEIR_OWN
    )
    for half in (names[::2], names[1::2]):
        extra = b"".join(b"\r\n" + name + b": v" for name in half)
        assert isinstance(
            read_head(PLAIN.replace(b"Host: x", b"Host: x" + extra), PATHS, 100), Head
        )


def test_tabs_and_non_ascii_bytes_in_values_are_read_as_sent() -> None:
    data = PLAIN.replace(b"Host: x", b"Host: x\r\nX-Name: caf\xc3\xa9\tbar")
    head = read_head(data, PATHS, 100)
    assert isinstance(head, Head)
    assert (b"X-Name", b"caf\xc3\xa9\tbar") in head.headers
