"""What every kind of `meshgate serve` process does alike around its application: set it
up (the node starts with it), listen, stop on SIGTERM/SIGINT, and exit with the status
the stop decided (node/exit_status.py). `node.serve` picks the kind of process."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aiohttp import web

from mesh.raft import RaftBindError
from node import config as config_module
from node import exit_status
from node.api.openai import INFERENCE_ROUTES
from node.app import Node
from node.front.site import FrontSite
from node.read_timeouts import GuardedAppRunner, ReadTimeouts

log = logging.getLogger("meshgate")


def refuse(message: str) -> int:
    print(f"meshgate serve: error: {message}", file=sys.stderr, flush=True)
    return exit_status.REFUSED


def make_runner(app: web.Application, config: config_module.Config) -> GuardedAppRunner:
    timeouts = ReadTimeouts(
        headers=config.header_read_timeout_secs,
        body=config.body_read_timeout_secs,
        idle=config.keepalive_timeout_secs,
    )
    return GuardedAppRunner(app, timeouts, handler_cancellation=True, access_log=None)


async def set_up(runner: web.AppRunner) -> int | None:
    """Start the application (and the node with it); REFUSED if Raft cannot bind."""
    try:
        await runner.setup()
    except RaftBindError as exc:
        return refuse(f"--mesh-bind: {exc}")
    return None


async def listen_on_port(
    runner: web.AppRunner, config: config_module.Config, *, reuse_port: bool = False
) -> int | None:
    """Listen on the node's HTTP port; REFUSED (after cleaning up) if it cannot."""
    site = FrontSite(
        runner,
        config.host,
        config.port,
        paths=INFERENCE_ROUTES,
        max_body=config.max_payload_size,
        backlog=1024,
        reuse_address=True,
        reuse_port=reuse_port or None,
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        return refuse(f"--port: cannot listen on {config.host}:{config.port}: {exc.strerror}")
    return None


def stop_on_signals(node: Node, config: config_module.Config) -> None:
    """SIGTERM and SIGINT start the node's stop (node/ha/shutdown.py)."""
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        node.stopper.request(
            f"signal {name}", grace=config.shutdown_grace_secs, drain_delay=config.drain_delay_secs
        )

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)


async def wait_and_clean_up(node: Node, runner: web.AppRunner) -> int:
    """Wait until the node has stopped, close the application, and return its exit status."""
    await node.stopper.stopped.wait()
    log.info("node %s stopping: %s", node.name, node.stopper.reason)
    code = node.stopper.exit_code  # decided before cleanup, which must not change it
    try:
        await runner.cleanup()
    except Exception:  # a part that failed to stop; a supervisor still needs the status
        log.exception("node %s: a part failed to stop cleanly", node.name)
    if code == exit_status.REFUSED:
        refuse(str(node.stopper.reason))
    elif code == exit_status.CLUSTER_SHUTDOWN:
        print(
            f"meshgate serve: stopped by a cluster shutdown ({node.stopper.reason}); exit "
            f"status {code} asks the supervisor not to restart this node",
            file=sys.stderr,
        )
    return code
