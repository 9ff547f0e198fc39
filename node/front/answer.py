"""A whole answer (`web.Response` with bytes) written as aiohttp would write it, without
its response machinery: the same headers, in the same order, from the same hooks.

aiohttp prepares an answer in three steps, and this follows them: its own headers
(Content-Length, Content-Type when there is a body, Date, Server, and Connection: close
when the connection ends), then the app's `on_response_prepare` hooks, then the status
line and the headers. What this does not take (a stream, a payload object, compression,
cookies, a status without a body) aiohttp's own `prepare` writes.
`tests/unit/test_front.py` compares the bytes.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.http_writer import _serialize_headers


def takes(response: web.StreamResponse) -> bool:
    """Whether `write_whole` writes this answer (else aiohttp's `prepare` does)."""
    return (
        type(response) is web.Response
        and not response.prepared
        and isinstance(response.body, bytes)
        and not response.compression
        and not response.chunked
        and response.status >= 200
        and response.status not in (204, 304)
        and not response.cookies
    )


async def write_whole(
    request: web.Request, response: web.Response, app: web.Application
) -> tuple[bytes, bytes]:
    """The answer's head and body, once the app's hooks have had their say."""
    body: bytes = response.body  # type: ignore[assignment]
    headers = response.headers
    if hdrs.CONTENT_LENGTH not in headers:
        headers[hdrs.CONTENT_LENGTH] = str(len(body))
    keep_alive = response.keep_alive
    if keep_alive is None:
        keep_alive = request.keep_alive
    if body:
        headers.setdefault(hdrs.CONTENT_TYPE, "application/octet-stream")
    if hdrs.DATE not in headers:
        headers[hdrs.DATE] = rfc822_formatted_time()
    headers.setdefault(hdrs.SERVER, SERVER_SOFTWARE)
    if hdrs.CONNECTION not in headers and not keep_alive:
        headers[hdrs.CONNECTION] = "close"
    for hook in app.on_response_prepare:
        await hook(request, response)
    if not keep_alive:
        response.force_close()
    # aiohttp's own serializer: the same bytes, and the same refusal of a header with a
    # control character (a line break in it would split the answer).
    head = _serialize_headers(f"HTTP/1.1 {response.status} {response.reason}", headers)
    return head, body
