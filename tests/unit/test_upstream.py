"""The upstream session against an in-process server: what every call sends, and what it
never keeps from an answer (cookies); request ids never repeat."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from node.pipeline.request import RandomIds
from node.proxy.upstream import make_session, parsed


def test_calls_ask_for_identity_as_meshgate_and_never_replay_a_workers_cookie() -> None:
    seen: list[CIMultiDict[str]] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(CIMultiDict(request.headers))
        response = web.json_response({"ok": True})
        response.set_cookie("session", "worker-secret")
        return response

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", answer)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        session = make_session()
        # A name, not an IP address: aiohttp's default jar would keep its cookies.
        url = f"http://localhost:{server.port}/v1/chat/completions"
        try:
            for _ in range(2):  # the second call would carry the first answer's cookie
                async with session.post(url, data=b"{}", headers={"X-Request-Id": "r"}) as r:
                    assert r.status == 200
                    assert await r.read() == b'{"ok": true}'
        finally:
            await session.close()
            await server.close()

    asyncio.run(main())
    assert len(seen) == 2
    for headers in seen:
        assert headers["Accept-Encoding"] == "identity"  # bytes are relayed as they come
        assert headers["User-Agent"] == "meshgate"
        assert headers["X-Request-Id"] == "r"
        assert "Cookie" not in headers


def test_a_url_is_parsed_once() -> None:
    url = "http://127.0.0.1:1/v1/chat/completions"
    assert parsed(url) is parsed(url)
    assert parsed(url).path == "/v1/chat/completions"


def test_request_ids_are_32_hex_digits_and_never_repeat_across_blocks() -> None:
    ids = RandomIds()
    got = [ids.next() for _ in range(3 * RandomIds.BLOCK // 16 + 5)]
    assert len(set(got)) == len(got)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in got)
    ids.reset()  # as a forked child does: a fresh block
    assert ids.next() not in got
