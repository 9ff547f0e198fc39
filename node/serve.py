"""`meshgate serve`: run one node until it is told to stop, then stop gracefully.

SIGTERM/SIGINT and a committed shutdown plan take the same path (see
`node.ha.shutdown`): not-ready at once, keep serving for the drain delay, wait
for in-flight requests up to the grace period, hand over Raft leadership,
then close the HTTP server, leave the Raft group and exit. The exit statuses
(node/exit_status.py) tell a supervisor what to do next: 0 after a stop of this
node (restart it), `CLUSTER_SHUTDOWN` after a cluster shutdown (leave it down),
`REFUSED` when it cannot run as configured.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

from mesh.raft import RaftBindError
from node import config as config_module
from node import event_loop, exit_status
from node.app import NODE
from node.datadir import UMASK
from node.ha.secret import MeshSecretError
from node.read_timeouts import GuardedAppRunner, ReadTimeouts
from node.web import create_app

log = logging.getLogger("meshgate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config_module.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        config = config_module.load(args)
    except config_module.ConfigError as exc:
        print(f"meshgate serve: error: {exc}", file=sys.stderr)
        return exit_status.REFUSED
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    os.umask(UMASK)  # whatever umask we were started with, what we write is ours alone
    main = _serve(config, args.config or os.environ.get("MESHGATE_CONFIG"))
    try:
        return event_loop.run(
            main, lambda name: log.info("event loop: %s", name), config.event_loop
        )
    except event_loop.LoopUnavailable as exc:
        print(f"meshgate serve: error: --event-loop {config.event_loop}: {exc}", file=sys.stderr)
        return exit_status.REFUSED


async def _serve(config: config_module.Config, config_file: str | None) -> int:
    try:
        app = create_app(config, config_file)
    except MeshSecretError as exc:
        print(f"meshgate serve: error: --mesh-secret: {exc}", file=sys.stderr)
        return exit_status.REFUSED
    timeouts = ReadTimeouts(
        headers=config.header_read_timeout_secs,
        body=config.body_read_timeout_secs,
        idle=config.keepalive_timeout_secs,
    )
    runner = GuardedAppRunner(app, timeouts, handler_cancellation=True, access_log=None)
    try:
        await runner.setup()  # starts the node, Raft first
    except RaftBindError as exc:
        print(f"meshgate serve: error: --mesh-bind: {exc}", file=sys.stderr)
        return exit_status.REFUSED
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
        return exit_status.REFUSED
    node = app[NODE]
    print(
        f"meshgate node {node.name} serving on http://{config.host}:{config.port} "
        f"(raft {node.raft.settings.self_address or 'read-only member'}, data {config.data_dir})",
        flush=True,
    )
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        node.stopper.request(
            f"signal {name}", grace=config.shutdown_grace_secs, drain_delay=config.drain_delay_secs
        )

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    await node.stopper.stopped.wait()
    log.info("node %s stopping: %s", node.name, node.stopper.reason)
    code = node.stopper.exit_code  # decided before cleanup, which must not change it
    try:
        await runner.cleanup()
    except Exception:  # a part that failed to stop; a supervisor still needs the status
        log.exception("node %s: a part failed to stop cleanly", node.name)
    if code == exit_status.REFUSED:
        print(f"meshgate serve: error: {node.stopper.reason}", file=sys.stderr)
    elif code == exit_status.CLUSTER_SHUTDOWN:
        print(
            f"meshgate serve: stopped by a cluster shutdown ({node.stopper.reason}); exit "
            f"status {code} asks the supervisor not to restart this node",
            file=sys.stderr,
        )
    return code
