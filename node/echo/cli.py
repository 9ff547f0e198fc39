"""Command-line flags of `meshgate echo-worker` and its entry point.

`node/cli.py` mounts this as a subcommand: `add_arguments` declares the flags
(rejecting bad values at parse time, naming the flag) and `run` serves until
SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import sys

from node import event_loop
from node.argtypes import arg_type as _arg_type
from node.argtypes import port as _port
from node.argtypes import positive as _positive
from node.echo.faults import (
    FaultSettings,
    check_count,
    check_milliseconds,
    check_rate,
    check_status,
)
from node.echo.server import serve
from node.echo.state import WorkerConfig, WorkerState

_MS = _arg_type(float, check_milliseconds, "milliseconds")
_COUNT = _arg_type(int, check_count, "count")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the echo worker's flags on `parser`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=_arg_type(int, _port, "port"), default=8000)
    parser.add_argument("--model", default="echo-model", help="model id served (echo-model)")
    parser.add_argument("--name", default=None, help="worker name (echo-<port>)")
    parser.add_argument(
        "--token-delay-ms", type=_MS, default=0.0, help="delay between streamed tokens"
    )
    parser.add_argument("--latency-ms", type=_MS, default=0.0, help="added latency per request")
    parser.add_argument(
        "--fail-rate",
        type=_arg_type(float, check_rate, "rate"),
        default=None,
        help="probability (0..1) that an inference request fails (0)",
    )
    parser.add_argument(
        "--fail-status",
        type=_arg_type(int, check_status, "status"),
        default=None,
        help="status of injected failures (500); alone, every inference request fails",
    )
    parser.add_argument(
        "--cut-stream-after",
        type=_COUNT,
        default=None,
        metavar="N",
        help="close streams abruptly after N content chunks (off)",
    )
    parser.add_argument(
        "--max-tokens-default",
        type=_arg_type(int, _positive, "count"),
        default=16,
        help="words generated when a request sets no limit (16)",
    )
    parser.add_argument(
        "--embedding-dim",
        type=_arg_type(int, _positive, "count"),
        default=32,
        help="embedding size when a request sets no dimensions (32)",
    )
    parser.add_argument(
        "--reply-text",
        default=None,
        metavar="TEXT",
        help="answer every chat completion with TEXT (raw think or tool-call text, for "
        "parser tests) instead of generated words; a request's echo_reply field wins",
    )
    parser.add_argument(
        "--reply-chunk-chars",
        type=_arg_type(int, _positive, "count"),
        default=3,
        help="characters per streamed chunk of a scripted reply (3)",
    )
    parser.add_argument(
        "--disaggregation-mode",
        choices=("prefill", "decode"),
        default=None,
        help="act as one half of a prefill/decode pair: requests need SGLang's bootstrap "
        "fields, and a decode request waits for its prefill half (off: a regular worker)",
    )
    parser.add_argument(
        "--bootstrap-port",
        type=_arg_type(int, _port, "port"),
        default=None,
        help="prefill: the port of its bootstrap server (GET /bootstrap/{room}; also served "
        "on --port), reported in /get_server_info",
    )
    parser.add_argument(
        "--bootstrap-wait-ms",
        type=_MS,
        default=5000.0,
        help="decode: how long a request waits for its prefill half (5000)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the failure RNG (0)")
    parser.add_argument(
        "--api-key", default=None, help="require 'Authorization: Bearer KEY' (all but /health)"
    )
    parser.add_argument(
        "--basic-auth",
        default=None,
        metavar="USER:PASSWORD",
        help="require HTTP Basic with these credentials (all but /health)",
    )


def _authorizations(api_key: str | None, basic_auth: str | None) -> tuple[str, ...]:
    accepted = []
    if api_key:
        accepted.append(f"Bearer {api_key}")
    if basic_auth:
        accepted.append("Basic " + base64.b64encode(basic_auth.encode()).decode())
    return tuple(accepted)


def config_from_args(args: argparse.Namespace) -> tuple[WorkerConfig, FaultSettings]:
    """The worker configuration and initial fault settings named by parsed flags."""
    config = WorkerConfig(
        host=args.host,
        port=args.port,
        model=args.model,
        name=args.name or f"echo-{args.port}",
        max_tokens_default=args.max_tokens_default,
        embedding_dim=args.embedding_dim,
        seed=args.seed,
        accepted_authorizations=_authorizations(args.api_key, args.basic_auth),
        api_key=args.api_key,
        reply_text=args.reply_text,
        reply_chunk_chars=args.reply_chunk_chars,
        disaggregation_mode=args.disaggregation_mode,
        bootstrap_port=args.bootstrap_port,
        bootstrap_wait_s=args.bootstrap_wait_ms / 1000.0,
    )
    faults = FaultSettings(
        fail_rate=args.fail_rate,
        fail_status=args.fail_status,
        latency_ms=args.latency_ms,
        token_delay_ms=args.token_delay_ms,
        cut_stream_after=args.cut_stream_after,
    )
    return config, faults


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; 0 on a clean stop."""
    config, faults = config_from_args(args)
    return event_loop.run(
        serve(WorkerState(config, faults)),
        lambda name: print(f"echo-worker {config.name}: event loop {name}", file=sys.stderr),
    )
