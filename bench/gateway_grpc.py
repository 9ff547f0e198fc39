"""gateway_overhead.py --grpc: streaming through one gateway to an HTTP echo worker and to a
`grpc-echo-worker`, side by side: requests and tokens per second, first-byte and total
latency, and the gateway's CPU per request.

Over HTTP the gateway relays the worker's SSE bytes; over gRPC it does the text work the
engine leaves to it (the chat template and tokenization in, detokenization and SSE
chunks out), so the gateway's CPU per request is the figure to compare. Both workers
answer exactly `--max-tokens` tokens (the HTTP echo worker one word per token, the gRPC
one a long scripted reply cut at the limit), so tokens per second is requests per second
times `--max-tokens`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.request
from pathlib import Path

import aiohttp
from common import BenchError, cpu_seconds, percentile, progress, until_sigterm
from gateway_load import CHAT_PATH, Phase, ms, preflight, request_body, run_window
from gateway_report import render
from gateway_setup import Cluster, gateway_ready, wait_until

from node.localmesh import GrpcEchoWorker
from node.localmesh.process import free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' tokenizer fixture (a tokenizer trained locally)
from tests.tokenizer_files import build_tokenizer_dir  # noqa: E402

TARGETS = ("http", "grpc")


def reply(max_tokens: int) -> str:
    """A scripted reply longer than `max_tokens`: every answer ends at the limit."""
    return "word " * (max_tokens + 16)


def grpc_model(args: argparse.Namespace) -> str:
    return args.model + "-grpc"


def start_grpc_worker(args: argparse.Namespace, cluster: Cluster) -> GrpcEchoWorker:
    """A grpc-echo-worker, registered with the gateway under its own model name."""
    tokenizer = build_tokenizer_dir(cluster.tmp / "tokenizer", "qwen25", model_max_length=65536)
    worker = GrpcEchoWorker(
        cluster.tmp,
        free_port(),
        tokenizer,
        grpc_model(args),
        extra=("--reply-text", reply(args.max_tokens)),
    )
    worker.wait_listening(args.startup_timeout)
    fields = {"url": worker.url, "model_id": grpc_model(args), "tokenizer_path": str(tokenizer)}
    request = urllib.request.Request(
        cluster.gateway_url + "/workers",
        data=json.dumps(fields).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        if resp.status != 202:
            raise BenchError(f"registering the gRPC worker answered {resp.status}")
    workers = len(cluster.backend_urls) + 1
    check = gateway_ready(cluster.gateway_url, workers)
    wait_until(worker.proc, f"all {workers} workers healthy", check, args.startup_timeout)
    return worker


async def measure(
    args: argparse.Namespace, cluster: Cluster, worker: GrpcEchoWorker
) -> dict[str, Phase]:
    url = cluster.gateway_url + CHAT_PATH
    bodies = {
        "http": request_body(args.model, args.max_tokens, True),
        "grpc": request_body(grpc_model(args), args.max_tokens, True),
    }

    def snapshot() -> dict[str, float | None]:
        gateway = cluster.gateway
        return {
            "gateway": cpu_seconds(gateway) if gateway else None,
            "http worker": cpu_seconds(cluster.workers[0]) if cluster.workers else None,
            "grpc worker": cpu_seconds(worker.proc),
        }

    phases = {t: Phase("concurrent", t, args.concurrency) for t in TARGETS}
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=args.request_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for target in TARGETS:
            await preflight(session, {target: [url]}, bodies[target], True)
        for rnd in range(args.rounds):
            for target in TARGETS if rnd % 2 == 0 else TARGETS[::-1]:
                window = await run_window(
                    session,
                    [url],
                    bodies[target],
                    True,
                    args.concurrency,
                    args.warmup,
                    args.duration,
                    snapshot,
                )
                phases[target].add(window)
                rps = len(window.totals) / window.seconds if window.seconds else 0.0
                progress(f"round {rnd + 1}/{args.rounds} {target:<4} {rps:9.1f} req/s")
    return phases


def report(args: argparse.Namespace, phases: dict[str, Phase]) -> dict[str, object]:
    """Print the table; return the figures (for --json)."""
    result: dict[str, object] = {}
    rows = []
    for target in TARGETS:
        p = phases[target]
        cpu = p.cpu.get("gateway")
        per_request = cpu / p.requests * 1e6 if cpu is not None and p.requests else None
        figures = {
            "requests": p.requests,
            "requests_per_s": round(p.rps, 1),
            "tokens_per_s": round(p.rps * args.max_tokens, 1),
            "first_byte_p50_ms": ms(percentile(p.ttfbs, 50)),
            "total_p50_ms": ms(percentile(p.totals, 50)),
            "gateway_cpu_us_per_request": round(per_request) if per_request is not None else None,
            "errors": sum(p.errors.values()),
        }
        result[target] = figures
        rows.append((target, *(str(v) for v in figures.values())))
    header = ("worker", "requests", "req/s", "tokens/s", "TTFB p50 ms", "total p50 ms")
    header += ("gateway CPU us/req", "errors")
    print(
        f"\nstreaming through the gateway, {args.max_tokens} tokens per answer, "
        f"concurrency {args.concurrency}, {args.rounds} x {args.duration:.0f} s per worker"
    )
    print(render(rows, header))
    return result


def run(args: argparse.Namespace, cluster: Cluster) -> int:
    """The --grpc mode, once the gateway and its HTTP echo worker are up."""
    worker = start_grpc_worker(args, cluster)
    cluster.extra.append(worker.proc)
    phases = asyncio.run(until_sigterm(measure(args, cluster, worker)))
    result = report(args, phases)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0 if all(phases[t].requests for t in TARGETS) else 1
