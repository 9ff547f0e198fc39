"""`meshgate serve`: run one node until SIGTERM or SIGINT, then stop gracefully.

On a signal the node first reports not-ready (so a load balancer stops sending
new requests), waits for in-flight requests, streams included, up to the grace
period, then closes the HTTP server and leaves the Raft group.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time

from aiohttp import web

from node import config as config_module
from node.app import NODE, create_app

log = logging.getLogger("meshgate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config_module.add_arguments(parser)
    parser.add_argument(
        "--shutdown-grace-secs",
        type=float,
        default=30.0,
        help="on SIGTERM, wait this long for in-flight requests",
    )


def run(args: argparse.Namespace) -> int:
    try:
        config = config_module.load(args)
    except config_module.ConfigError as exc:
        print(f"meshgate serve: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return asyncio.run(_serve(config, args.shutdown_grace_secs))


async def _serve(config: config_module.Config, grace: float) -> int:
    app = create_app(config)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, backlog=1024, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        print(
            f"meshgate serve: error: --port: cannot listen on {config.host}:{config.port}: "
            f"{exc.strerror}",
            file=sys.stderr,
        )
        await runner.cleanup()
        return 2
    node = app[NODE]
    print(
        f"meshgate node {node.name} serving on http://{config.host}:{config.port} "
        f"(raft {node.raft.settings.self_address}, data {config.data_dir})",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping: draining in-flight requests (up to %.0fs)", grace)
    node.draining = True
    deadline = time.monotonic() + grace
    while node.admission.in_flight > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await runner.cleanup()
    return 0
