"""Relay a worker's SSE stream to the client, chunk by chunk, in as few sends as it can.

Each send on a socket is a system call, and on loopback the receiver's side of TCP runs
inside it too: for a short stream the sends are most of what relaying costs. So the
answer's headers wait for the first bytes of the body and go out with them, and the bytes
that end the worker's stream (those read with its end) go out with the end of the
answer. Neither waits for anything not yet read: a token reaches the client as soon as
it reaches the node. With an output rewriter, which may hold bytes back, the headers go
out at once as before, so a client always sees them when the stream starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp import web

from node.outparse.rewrite import StreamRewriter
from node.pipeline.request import InferenceRequest
from node.proxy.failures import (
    STREAM_BROKE,
    STREAM_ENDED_EARLY,
    UPSTREAM_ERRORS,
    log_failure,
    stream_error,
)
from node.proxy.worker_http import WorkerResponse
from node.workers.worker import Worker

log = logging.getLogger(__name__)

# What the last event of a complete stream holds, by route; a stream without it was cut short.
STREAM_ENDS = {
    "/v1/chat/completions": b"[DONE]",
    "/v1/completions": b"[DONE]",
    "/generate": b"[DONE]",
    "/v1/messages": b"message_stop",
}


class CoalescedStream(web.StreamResponse):
    """A stream whose headers are sent with its first body bytes (one send, not two).
    aiohttp's own `web.Response` buffers its headers the same way."""

    _send_headers_immediately = False


async def relay_stream(
    ex: InferenceRequest,
    worker: Worker,
    resp: WorkerResponse,
    first: bytes,
    first_token: Callable[[str, float], None],
    rewriter: StreamRewriter | None = None,
) -> tuple[web.StreamResponse, bool | None]:
    """Relay an SSE stream (through `rewriter` when the gateway parses the output; usage is
    counted from the worker's own bytes); returns the response and the worker's verdict:
    True, False, or None when the client left first."""
    kind = web.StreamResponse if rewriter is not None else CoalescedStream
    out = kind(
        status=resp.status,
        headers={
            "Content-Type": resp.content_type or "text/event-stream",
            "Cache-Control": "no-cache",
            **ex.reply_headers(worker.id),
        },
    )

    def rewrite(chunk: bytes) -> bytes:
        return rewriter.feed(chunk) if rewriter is not None else chunk

    def rest() -> bytes:
        return rewriter.close() if rewriter is not None else b""

    if ex.before_reply is not None:  # WASM OnResponse: status and headers only
        await ex.before_reply(out, None)
    meter = ex.meter
    upstream = resp
    try:
        await out.prepare(ex.http)
        ex.first_token_secs = time.perf_counter() - ex.started
        first_token(ex.path, ex.first_token_secs)
        chunk, tail, held = first, b"", b""
        while True:
            if meter is not None:
                meter.feed(chunk)
            tail = (tail + chunk)[-64:]
            if upstream.at_eof():  # the worker's last bytes: they go with the answer's end
                held = rewrite(chunk)
                break
            if data := rewrite(chunk):
                await out.write(data)
            try:
                chunk = await upstream.readany()
            except UPSTREAM_ERRORS as exc:
                log_failure(worker.id, worker.url, f"stream of {ex.path}", exc)
                await out.write(rest() + stream_error(ex.path, STREAM_BROKE))
                return out, False
            if not chunk:
                break
        held += rest()
        end = STREAM_ENDS.get(ex.path)
        if end is not None and end not in tail:
            log.warning("worker %s (%s): stream of %s ended early", worker.id, worker.url, ex.path)
            await out.write(held + stream_error(ex.path, STREAM_ENDED_EARLY))
            return out, False
        await out.write_eof(held)
        return out, True
    except ConnectionResetError:
        # The client went away (its transport is closed: counted as 499); closing resp
        # cancels the generation.
        return out, None
