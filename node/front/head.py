"""A strict reader of one HTTP/1.1 request head, for the front's fast path (node/front/).

It takes only the plainest form of an inference request: `POST <one of the fast paths>
HTTP/1.1`, CRLF line ends, token header names, values without control characters, one
Content-Length and no Transfer-Encoding, Expect or Upgrade. Anything else, legal or not,
is `HANDOVER`: aiohttp's own parser (llhttp) then reads the connection from its first
byte, and answers or refuses it as it always has. So this reader never has to decide
anything ambiguous, and two parsers never read one request two ways: a request is either
taken whole here, or not read here at all.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

# Longer heads, and longer lines (aiohttp's own line limit is 8190), are aiohttp's to read.
MAX_HEAD_BYTES: Final = 16384
MAX_LINE_BYTES: Final = 8190
MAX_HEADERS: Final = 100

_END: Final = b"\r\n\r\n"
_VERSION: Final = b" HTTP/1.1"
# A control character other than tab, or a CR or LF that is not part of a CRLF.
_STRAY: Final = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n")
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DIGITS: Final = re.compile(rb"[0-9]{1,12}")
_OWS: Final = b" \t"
# Headers whose presence sends the request to aiohttp: framing and protocol changes it
# handles (chunked bodies, 100-continue, upgrades), and a second Host to be refused.
_NOT_HERE: Final = frozenset({b"transfer-encoding", b"expect", b"upgrade"})


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
    if _STRAY.search(head) is not None:
        return HANDOVER
    lines = head.split(b"\r\n")
    request_line = lines[0]
    if len(lines) > MAX_HEADERS + 1 or not request_line.startswith(b"POST /"):
        return HANDOVER
    path = request_line[5:-9]
    if not request_line.endswith(_VERSION) or path not in paths:
        return HANDOVER
    headers = []
    length = None
    keep_alive = True
    hosts = 0
    for line in lines[1:]:
        if len(line) > MAX_LINE_BYTES:
            return HANDOVER
        name, colon, value = line.partition(b":")
        if not colon or _TOKEN.fullmatch(name) is None:
            return HANDOVER
        value = value.strip(_OWS)
        lower = name.lower()
        if lower == b"content-length":
            if length is not None or _DIGITS.fullmatch(value) is None:
                return HANDOVER
            length = int(value)
        elif lower == b"connection":
            tokens = {t.strip(_OWS).lower() for t in value.split(b",")}
            if b"upgrade" in tokens:
                return HANDOVER
            keep_alive = b"close" not in tokens
        elif lower == b"host":
            hosts += 1
        elif lower in _NOT_HERE:
            return HANDOVER
        headers.append((name, value))
    if length is None or length > max_body or hosts > 1:
        return HANDOVER
    return Head(path, tuple(headers), length, keep_alive, end + 4)
