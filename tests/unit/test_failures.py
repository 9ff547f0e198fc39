"""Upstream failures become fixed phrases; stream errors take the client's API's shape."""

from __future__ import annotations

import socket

import aiohttp
import orjson
import pytest
from aiohttp.client_reqrep import ConnectionKey

from node.proxy.failures import STREAM_BROKE, kind_of, stream_error

KEY = ConnectionKey("10.9.8.7", 8000, False, True, None, None, None)


@pytest.mark.parametrize(
    ("exc", "phrase"),
    [
        (
            aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "refused")),
            "connection refused",
        ),
        (
            aiohttp.ClientConnectorError(KEY, socket.gaierror(-2, "Name unknown")),
            "host name did not resolve",
        ),
        (aiohttp.ServerDisconnectedError(), "closed the connection"),
        (
            aiohttp.ClientPayloadError(
                "Response payload is not completed: <TransferEncodingError>"
            ),
            "the response was cut off",
        ),
        (TimeoutError(), "timed out"),
        (
            ConnectionRefusedError(111, "Connect call failed ('10.9.8.7', 8000)"),
            "connection refused",
        ),
    ],
)
def test_failures_are_told_as_fixed_phrases(exc: BaseException, phrase: str) -> None:
    assert kind_of(exc) == phrase
    assert "10.9.8.7" not in kind_of(exc)


def test_a_broken_anthropic_stream_ends_with_anthropic_s_error_event() -> None:
    event = stream_error("/v1/messages", STREAM_BROKE)
    head, data = event.split(b"\n", 1)
    assert head == b"event: error"
    assert orjson.loads(data.removeprefix(b"data: ")) == {
        "type": "error",
        "error": {"type": "api_error", "message": STREAM_BROKE},
    }
    openai = orjson.loads(stream_error("/v1/chat/completions", STREAM_BROKE).split(b"data: ")[1])
    assert openai["error"]["code"] == "stream_interrupted"
