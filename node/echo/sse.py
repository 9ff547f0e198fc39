"""Server-sent-event streaming for the echo worker, with its streaming faults.

Every streaming route produces a sequence of ready-made frames, each marked as
content (one generated word) or not. `send_stream` writes them as they come,
waits `token_delay_ms` between content frames, cuts the connection after
`cut_stream_after` content frames, and stops quietly when the client leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from aiohttp import web

from node.echo.state import WorkerState

Frame = tuple[bytes, bool]
"""One SSE frame and whether it carries a generated word."""

DONE_FRAME = b"data: [DONE]\n\n"
_SENTINEL = "\x00echo-sentinel\x00"
_SENTINEL_JSON = orjson.dumps(_SENTINEL)


def data_frame(payload: Any) -> bytes:
    """`data: <json>` followed by the blank line that ends an event."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def event_frame(event: str, payload: Any) -> bytes:
    """A named event, as the Anthropic Messages stream uses."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def frame_template(payload: Any, event: str | None = None) -> Callable[[str], bytes]:
    """A fast frame builder for `payload`, in which one string value is `SENTINEL`.

    The payload is serialised once; each call only serialises the string that
    replaces the sentinel, which is what makes per-token frames cheap.
    """
    full = event_frame(event, payload) if event else data_frame(payload)
    head, sep, tail = full.partition(_SENTINEL_JSON)
    if not sep:
        raise ValueError("payload does not contain the sentinel")
    dumps = orjson.dumps

    def build(text: str) -> bytes:
        return head + dumps(text) + tail

    return build


SENTINEL = _SENTINEL


async def send_stream(
    request: web.Request, state: WorkerState, frames: Iterable[Frame], done: bytes | None
) -> web.StreamResponse:
    """Write `frames` (then `done`, if any) as an event stream, honouring stream faults."""
    faults = state.faults
    cut_after = faults.cut_stream_after
    delay = faults.token_delay_ms / 1000.0
    response = web.StreamResponse(headers={"Cache-Control": "no-cache"})
    response.content_type = "text/event-stream"
    sent = 0
    try:
        await response.prepare(request)
        for frame, is_content in frames:
            if is_content:
                if cut_after is not None and sent >= cut_after:
                    _cut(request)
                    return response
                if delay > 0.0 and sent:
                    await asyncio.sleep(delay)
                sent += 1
                state.generated_tokens += 1
            await response.write(frame)
        if done is not None:
            await response.write(done)
        await response.write_eof()
    except ConnectionResetError:  # the client went away (aiohttp's error subclasses this)
        pass
    return response


def _cut(request: web.Request) -> None:
    """Close the connection mid-stream: the client sees a body that never ends properly."""
    transport = request.transport
    if transport is not None:
        transport.close()
