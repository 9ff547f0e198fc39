"""A by-hand throughput check of a running echo worker (not a test, not a benchmark suite).

The echo worker is the backend the gateway is benchmarked against, so it must
be much faster than the gateway. This sends non-streamed chat completions from
N concurrent keep-alive connections for a few seconds and prints requests per
second, so a regression in the worker's hot path is easy to spot:

    python -m node.echo.loadcheck --url http://127.0.0.1:8000 --concurrency 32 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
import orjson


async def _client_loop(
    session: aiohttp.ClientSession, url: str, body: bytes, deadline: float, counts: list[int]
) -> None:
    headers = {"Content-Type": "application/json"}
    while time.monotonic() < deadline:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            counts[0 if response.status == 200 else 1] += 1


async def measure(url: str, concurrency: int, seconds: float, max_tokens: int) -> None:
    body = orjson.dumps(
        {"messages": [{"role": "user", "content": "how fast are you"}], "max_tokens": max_tokens}
    )
    target = url.rstrip("/") + "/v1/chat/completions"
    counts = [0, 0]
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        deadline = started + seconds
        loops = [_client_loop(session, target, body, deadline, counts) for _ in range(concurrency)]
        await asyncio.gather(*loops)
        elapsed = time.monotonic() - started
    ok, failed = counts
    print(
        f"{ok + failed} requests in {elapsed:.2f}s with {concurrency} connections: "
        f"{(ok + failed) / elapsed:.0f} req/s ({failed} non-200)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(measure(args.url, args.concurrency, args.seconds, args.max_tokens))


if __name__ == "__main__":
    main()
