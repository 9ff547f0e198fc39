"""A gRPC channel to one worker: TLS for grpcs://, keepalive, bounded messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

import grpc

MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024  # an engine's answer (logprobs, tokenizer chunks)
DEFAULT_PORTS: Final = {"grpc": 80, "grpcs": 443}
OPTIONS: Final = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Find a dead connection between calls, not at the next request's deadline.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Reconnect soon after a worker restarts.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5_000),
)

Metadata = tuple[tuple[str, str], ...]


def address(url: str) -> str:
    """`grpc://host:port` -> `host:port` (the scheme's default port when none is given)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"{host}:{parts.port or DEFAULT_PORTS.get(parts.scheme, 80)}"


def open_channel(url: str) -> grpc.aio.Channel:
    """A channel to the worker at `url`; grpcs:// uses TLS with the system's roots."""
    target = address(url)
    if urlsplit(url).scheme == "grpcs":
        return grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(), options=OPTIONS)
    return grpc.aio.insecure_channel(target, options=OPTIONS)


def auth_metadata(headers: Mapping[str, str]) -> Metadata:
    """The worker's credential (its `Target` headers) as call metadata: gRPC keys are
    lower case, so `Authorization: Bearer KEY` goes as `authorization`."""
    return tuple((name.lower(), value) for name, value in headers.items())
