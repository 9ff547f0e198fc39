"""Command-line flags of `meshgate grpc-echo-worker` and its entry point."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from node.argtypes import arg_type as _arg_type
from node.argtypes import port as _port
from node.argtypes import positive as _positive
from node.echo.faults import check_count, check_milliseconds
from node.grpc_echo.config import DISAGGREGATION_MODES, Faults, SimConfig, check_status_name
from node.grpc_echo.record import Recorder
from node.grpc_echo.scheduler import Scheduler
from node.grpc_echo.server import serve
from node.text.tokenizer import TokenizerLoadError, load_tokenizer
from node.text.trained import default_tokenizer_dir

DEFAULT_CONTEXT = 4096


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the gRPC echo worker's flags on `parser`."""
    count = _arg_type(int, check_count, "count")
    positive = _arg_type(int, _positive, "count")
    milliseconds = _arg_type(float, check_milliseconds, "milliseconds")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=_arg_type(int, _port, "port"), default=50051)
    parser.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        metavar="DIR",
        help="directory with tokenizer.json and tokenizer_config.json (default: a small "
        "built-in byte-level BPE with a Llama 3 style chat template)",
    )
    parser.add_argument("--model-id", default="echo-model", help="served model name (echo-model)")
    parser.add_argument("--model-path", default=None, help="model path reported (the model id)")
    parser.add_argument(
        "--max-context-length",
        type=positive,
        default=None,
        help="context length reported (the tokenizer's, else 4096)",
    )
    parser.add_argument(
        "--max-new-tokens-default",
        type=positive,
        default=16,
        help="tokens generated when a request sets no max_new_tokens (16)",
    )
    parser.add_argument(
        "--reply-text",
        default=None,
        metavar="TEXT",
        help="answer every Generate with TEXT, token by token (default: echo the prompt's "
        "last tokens); a prompt's [[reply:TEXT]] marker wins",
    )
    parser.add_argument(
        "--token-delay-ms",
        type=milliseconds,
        default=0.0,
        help="delay before each generated token",
    )
    parser.add_argument("--embedding-dim", type=positive, default=32, help="Embed size (32)")
    parser.add_argument(
        "--load", type=count, default=0, help="running requests added to what GetLoads reports"
    )
    parser.add_argument(
        "--api-key", default=None, help="require 'authorization: Bearer KEY' metadata"
    )
    parser.add_argument(
        "--record-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="append each request received (with its raw bytes) as a JSON line",
    )
    parser.add_argument(
        "--fail-status",
        type=_arg_type(str, check_status_name, "status"),
        default=None,
        metavar="CODE",
        help="fail every Generate with this gRPC status (e.g. INTERNAL, UNAVAILABLE)",
    )
    parser.add_argument("--hang", action="store_true", help="never answer a Generate")
    parser.add_argument(
        "--cut-after", type=count, default=None, metavar="K", help="abort streams after K tokens"
    )
    parser.add_argument(
        "--unhealthy", action="store_true", help="HealthCheck answers healthy=false"
    )
    parser.add_argument(
        "--no-get-tokenizer",
        action="store_true",
        help="GetTokenizer answers UNIMPLEMENTED (an engine that cannot send its tokenizer)",
    )
    parser.add_argument(
        "--disaggregation-mode",
        choices=DISAGGREGATION_MODES,
        default="null",
        help="serve as a prefill or decode server (requests must carry bootstrap fields)",
    )
    parser.add_argument(
        "--bootstrap-port",
        type=_arg_type(int, _port, "port"),
        default=None,
        metavar="PORT",
        help="prefill: the port of its bootstrap server (HTTP GET /bootstrap/{room}), "
        "reported in GetServerInfo",
    )
    wait_help = "decode: how long a Generate waits for its prefill half (5000)"
    parser.add_argument("--bootstrap-wait-ms", type=milliseconds, default=5000.0, help=wait_help)


def config_from_args(args: argparse.Namespace, context_length: int | None) -> SimConfig:
    return SimConfig(
        host=args.host,
        port=args.port,
        tokenizer_dir=args.tokenizer.resolve(),
        model_id=args.model_id,
        model_path=args.model_path or args.model_id,
        max_context_length=args.max_context_length or context_length or DEFAULT_CONTEXT,
        max_new_tokens_default=args.max_new_tokens_default,
        reply_text=args.reply_text,
        token_delay_ms=args.token_delay_ms,
        embedding_dim=args.embedding_dim,
        base_load=args.load,
        api_key=args.api_key,
        record_file=args.record_file,
        disaggregation_mode=args.disaggregation_mode,
        bootstrap_port=args.bootstrap_port,
        bootstrap_wait_s=args.bootstrap_wait_ms / 1000.0,
        faults=Faults(
            fail_status=args.fail_status,
            hang=args.hang,
            cut_after=args.cut_after,
            unhealthy=args.unhealthy,
            no_tokenizer=args.no_get_tokenizer,
        ),
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; 0 on a clean stop, 2 on a bad tokenizer."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.tokenizer is None:
        args.tokenizer = default_tokenizer_dir()
    try:
        tokenizer = load_tokenizer(args.tokenizer)
    except TokenizerLoadError as exc:
        print(f"meshgate grpc-echo-worker: {exc}", file=sys.stderr)
        return 2
    config = config_from_args(args, tokenizer.max_model_len)
    scheduler = Scheduler(config, tokenizer, Recorder(config.record_file))
    return asyncio.run(serve(scheduler))
