"""Counting a request's tokens, and settling its account when it ends.

A request whose key, tenant or publication has quotas or usage gets a token
meter; a metered stream asks the worker for its final usage chunk. When the
request ends, however it ends, the quota lease is released with the tokens
the worker reported and the usage is booked for every subject.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from node.limits.quotas import CLIENT, QuotaDecision, Subject
from node.limits.usage import TokenMeter, UsageBook
from node.pipeline.request import InferenceRequest

# Streams that report usage only when asked (`stream_options.include_usage`).
USAGE_STREAMS = frozenset({"/v1/chat/completions", "/v1/completions"})


def meter(request: InferenceRequest) -> None:
    """Count the request's tokens; a stream is asked to report them."""
    request.meter = TokenMeter()
    if request.stream and request.path in USAGE_STREAMS:
        request.body = with_stream_usage(request.body, request.data)


def with_stream_usage(body: bytes, data: dict[str, Any]) -> bytes:
    """The body asking the worker for a final usage chunk.

    Only metered streams are re-serialised (the hot path stays bytes); the client
    receives the extra usage chunk like any other."""
    options = data.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return body
    extra = options if isinstance(options, dict) else {}
    return orjson.dumps({**data, "stream_options": {**extra, "include_usage": True}})


async def settle(
    request: InferenceRequest,
    quota: QuotaDecision | None,
    subjects: Sequence[Subject],
    usage: UsageBook,
) -> None:
    """Release the quota lease with the tokens used, and book the usage."""
    tokens = request.meter.tokens if request.meter is not None else 0
    await release_lease(quota, tokens)
    if subjects:
        usage.record((f"{s.kind}:{s.id}" for s in subjects if s.kind != CLIENT), tokens)


async def release_lease(quota: QuotaDecision | None, tokens: int = 0) -> None:
    """Give back the quota lease, with the tokens the request used (none when it never
    reached a worker)."""
    if quota is not None and quota.lease is not None:
        await quota.lease.release(tokens)
