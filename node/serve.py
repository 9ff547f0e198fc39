"""`meshgate serve`: run one node until it is told to stop, then stop gracefully.

SIGTERM/SIGINT and a committed shutdown plan take the same path (see
`node.ha.shutdown`): not-ready at once, keep serving for the drain delay, wait
for in-flight requests up to the grace period, hand over Raft leadership,
then close the HTTP server, leave the Raft group and exit. The exit statuses
(node/exit_status.py) tell a supervisor what to do next: 0 after a stop of this
node (restart it), `CLUSTER_SHUTDOWN` after a cluster shutdown (leave it down),
`REFUSED` when it cannot run as configured.

With `--processes N` above 1 this process becomes the node's control process and
starts N data-plane processes (node/plane/): each is this same command with the
hidden `--plane-*` arguments below.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from node import config as config_module
from node import event_loop, exit_status
from node.app import NODE
from node.datadir import UMASK
from node.ha.secret import MeshSecretError
from node.plane.link_config import UNCONFIGURED, LinkConfigError, read_config
from node.serving import listen_on_port, make_runner, set_up, stop_on_signals, wait_and_clean_up
from node.web import create_app

log = logging.getLogger("meshgate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config_module.add_arguments(parser)
    # How a control process starts its data-plane processes: not for operators.
    hidden = argparse.SUPPRESS
    parser.add_argument("--plane-role", choices=("data",), help=hidden)
    parser.add_argument("--plane-link", type=int, help=hidden)
    parser.add_argument("--plane-parent", type=int, help=hidden)
    parser.add_argument("--plane-name", default="p1", help=hidden)


def run(args: argparse.Namespace) -> int:
    data_plane = args.plane_role == "data"
    try:
        config = _control_config(args) if data_plane else config_module.load(args)
    except config_module.ConfigError as exc:
        print(f"meshgate serve: error: {exc}", file=sys.stderr)
        return exit_status.REFUSED
    except LinkConfigError as exc:  # the control process is gone, or broken: a restart
        print(f"meshgate serve: error: {exc}", file=sys.stderr)
        return UNCONFIGURED
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=data_plane,  # a forked child has the control's handler: its own level, anew
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    os.umask(UMASK)  # whatever umask we were started with, what we write is ours alone
    config_file = args.config or os.environ.get("MESHGATE_CONFIG")
    if args.plane_role == "data":
        from node.plane.data_process import serve_data  # only in a data-plane process

        main = serve_data(config, config_file, args)
    elif config.process_count > 1:
        from node.plane.control_process import serve_control  # only with --processes > 1
        from node.plane.forks import ForkServer

        # Now, while this process runs no thread, gRPC channel, loop or Raft: its children
        # are forked from the server with the node's modules loaded.
        main = serve_control(config, config_file, sys.argv[1:], ForkServer.start())
    else:
        main = _serve(config, config_file)
    try:
        return event_loop.run(
            main, lambda name: log.info("event loop: %s", name), config.event_loop
        )
    except event_loop.LoopUnavailable as exc:
        print(f"meshgate serve: error: --event-loop {config.event_loop}: {exc}", file=sys.stderr)
        return exit_status.REFUSED


def _control_config(args: argparse.Namespace) -> config_module.Config:
    """A data-plane process's settings: its control process's, sent on its link."""
    if args.plane_link is None:
        raise LinkConfigError("a data-plane process needs --plane-link")
    return read_config(args.plane_link)


async def _serve(config: config_module.Config, config_file: str | None) -> int:
    """One process: the node's Raft member and its HTTP port together."""
    try:
        app = create_app(config, config_file)
    except MeshSecretError as exc:
        print(f"meshgate serve: error: --mesh-secret: {exc}", file=sys.stderr)
        return exit_status.REFUSED
    runner = make_runner(app, config)
    refused = await set_up(runner)  # starts the node, Raft first
    if refused is None:
        refused = await listen_on_port(runner, config)
    if refused is not None:
        return refused
    node = app[NODE]
    print(
        f"meshgate node {node.name} serving on http://{config.host}:{config.port} "
        f"(raft {node.raft.settings.self_address or 'read-only member'}, data {config.data_dir})",
        flush=True,
    )
    stop_on_signals(node, config)
    return await wait_and_clean_up(node, runner)
