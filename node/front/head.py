"""A strict reader of one HTTP/1.1 request head, for the front's fast path (node/front/).

It takes only the plainest form of an inference request: `POST <one of the fast paths>
HTTP/1.1`, CRLF line ends, token header names, values without control characters, one
Host, one Content-Length, no second of any header aiohttp takes only once, and no
Transfer-Encoding, Expect, Upgrade or Content-Encoding. Anything else, legal or not, is `HANDOVER`:
aiohttp's own parser (llhttp) then reads the connection from its first byte, and answers
or refuses it as it always has. So this reader never has to decide anything ambiguous,
and two parsers never read one request two ways: a request is either taken whole here,
or not read here at all.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from aiohttp.http_parser import SINGLETON_HEADERS

# Longer heads, and longer lines (aiohttp's own line limit is 8190), are aiohttp's to read.
MAX_HEAD_BYTES: Final = 16384
MAX_LINE_BYTES: Final = 8190
MAX_HEADERS: Final = 100

_END: Final = b"\r\n\r\n"
_VERSION: Final = b" HTTP/1.1"
# Control characters other than tab, CR and LF (those two only as a CRLF line end).
_CONTROLS: Final = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_TOKEN: Final = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# Header lines: a token, a colon, a value to the CRLF (by then CR and LF appear only as line
# ends, and no other control character at all). One field's value is read without the
# whitespace around it.
_FIELDS: Final = re.compile(rb"(?:" + _TOKEN + rb":[^\r\n]*\r\n)*")
_FIELD: Final = re.compile(rb"(" + _TOKEN + rb"):[ \t]*((?:[^\r\n]*[^ \t\r\n])?)[ \t]*\r\n")
_DIGITS: Final = re.compile(rb"[0-9]{1,12}")
_OWS: Final = b" \t"
# Headers whose presence sends the request to aiohttp: framing and protocol changes it
# handles (chunked bodies, 100-continue, upgrades), a compressed body (aiohttp inflates
# it, within its size limit), and the old WebSocket key it refuses.
_NOT_HERE: Final = frozenset(
    {b"transfer-encoding", b"expect", b"upgrade", b"content-encoding", b"sec-websocket-key1"}
)
# Headers aiohttp refuses to see twice in a request (Host, Content-Type, ...): its 400.
_SINGLETONS: Final = frozenset(name.encode() for name in SINGLETON_HEADERS)
_READ: Final = _NOT_HERE | _SINGLETONS | {b"connection"}


@dataclass(frozen=True, slots=True)
class Head:
    path: bytes  # one of the fast paths
    headers: tuple[tuple[bytes, bytes], ...]  # names as sent, values without surrounding OWS
    content_length: int
    keep_alive: bool
    size: int  # bytes of the head, its blank line included


class _Handover:
    __slots__ = ()

    def __repr__(self) -> str:
        return "HANDOVER"


HANDOVER: Final = _Handover()


def read_head(
    data: bytes | bytearray, paths: Collection[bytes], max_body: int
) -> Head | _Handover | None:
    """The head at the start of `data`: a `Head`, None while it is incomplete, or HANDOVER
    when this reader does not take it (see the module's doc). A body longer than `max_body`
    is handed over too: aiohttp streams it, or refuses it with its 413."""
    end = data.find(_END, 0, MAX_HEAD_BYTES)
    if end < 0:
        return HANDOVER if len(data) >= MAX_HEAD_BYTES else None
    head = bytes(data[:end])
    line_ends = head.count(b"\r\n")
    if (
        len(head.translate(None, _CONTROLS)) != end
        or head.count(b"\r") != line_ends
        or head.count(b"\n") != line_ends
    ):
        return HANDOVER
    first = head.find(b"\r\n")
    request_line = head if first < 0 else head[:first]
    if not request_line.startswith(b"POST /") or not request_line.endswith(_VERSION):
        return HANDOVER
    path = request_line[5:-9]
    if path not in paths:
        return HANDOVER
    block = b"" if first < 0 else head[first + 2 :] + b"\r\n"
    if _FIELDS.fullmatch(block) is None:
        return HANDOVER
    if end > MAX_LINE_BYTES and max(map(len, head.split(b"\r\n"))) > MAX_LINE_BYTES:
        return HANDOVER
    headers = _FIELD.findall(block)
    if len(headers) > MAX_HEADERS:
        return HANDOVER
    length = None
    keep_alive = True
    singletons: set[bytes] = set()
    for name, value in headers:
        lower = name.lower()
        if lower not in _READ:
            continue
        if lower in _SINGLETONS:
            if lower in singletons:
                return HANDOVER
            singletons.add(lower)
        if lower == b"content-length":
            if _DIGITS.fullmatch(value) is None:
                return HANDOVER
            length = int(value)
        elif lower == b"connection":
            tokens = {t.strip(_OWS).lower() for t in value.split(b",")}
            if b"upgrade" in tokens:
                return HANDOVER
            # Any `close` counts, in any of several Connection headers, as llhttp reads them.
            keep_alive = keep_alive and b"close" not in tokens
        elif lower in _NOT_HERE:
            return HANDOVER
    # aiohttp refuses an HTTP/1.1 request without a Host: its 400, not ours.
    if length is None or length > max_body or b"host" not in singletons:
        return HANDOVER
    return Head(path, tuple(headers), length, keep_alive, end + 4)
