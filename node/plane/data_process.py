"""A data-plane process (`meshgate serve --processes N` starts N of them): the node's
parts around a replica fed by the control process, listening on the node's HTTP port
beside its siblings (SO_REUSEPORT).

It tells its control process it is ready once it listens and its replica is linked,
hands the requests it does not serve itself to the control process
(node/plane/handover.py), and never outlives it (node/plane/parent.py): an orphan
stops at once and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import time
from typing import Final

from mesh.events import AppliedStream
from node import config as config_module
from node import exit_status
from node.app import Node
from node.plane.codec import PLANE_VERSION
from node.plane.data_routes import install
from node.plane.data_side import PlaneLinkError, PlaneReplica
from node.plane.handover import Handover, answer_bound
from node.plane.node_metrics import NodeMetrics
from node.plane.node_shares import borrow_from_control
from node.plane.parent import ParentLink, die_with_parent, orphaned
from node.plane.paths import control_socket, plane_socket
from node.plane.siblings import Siblings, process_socket, serve_siblings
from node.serving import listen_on_port, make_runner, refuse, set_up, wait_and_clean_up
from node.web import MIDDLEWARES as NODE_MIDDLEWARES
from node.web import build_app

log = logging.getLogger("meshgate")

ORPHANED: Final = 1  # the control process is gone: exit as an error would
UNLINKED: Final = 1  # no snapshot in time: the supervisor starts this process again
PROCESS_HEADER: Final = "X-Meshgate-Process"


async def serve_data(
    config: config_module.Config, config_file: str | None, args: argparse.Namespace
) -> int:
    parent = args.plane_parent if args.plane_parent is not None else os.getppid()
    die_with_parent(parent)
    name = str(args.plane_name)
    for handler in logging.getLogger().handlers:  # one log for the node: say which process
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s [{name}] %(name)s: %(message)s")
        )
    link = ParentLink(args.plane_link) if args.plane_link is not None else None

    replicas: list[PlaneReplica] = []

    def replica(stream: AppliedStream) -> PlaneReplica:
        replicas.append(PlaneReplica(plane_socket(config.data_path), stream, PLANE_VERSION, name))
        return replicas[0]

    node = Node(config, config_file, replica=replica)
    # The node's middlewares, the audit log's too: it audits what this process answers
    # itself (predict calls, writes no route takes), to files of its own; the control
    # process audits what is handed to it (`Installed.elsewhere`).
    app = build_app(config, node, NODE_MIDDLEWARES, {PROCESS_HEADER: name}, process=name)
    siblings = Siblings(config.data_path, name)
    handover = Handover(
        control_socket(config.data_path),
        node.applied,
        siblings,
        config.min_index_wait_secs,
        answer_bound(config.mesh_commit_timeout_secs, config.blob_fetch_timeout_secs),
        replicas[0],
    )
    app.on_startup.append(lambda _: handover.start())
    app.on_cleanup.append(lambda _: handover.close())
    own_socket = process_socket(config.data_path, name)
    install(app, handover, NodeMetrics(node.metrics, siblings))
    runner = make_runner(app, config)
    try:
        refused = await set_up(runner)  # links the replica: the control's snapshot
    except PlaneLinkError as exc:  # another version will not change: refuse; else retry
        # (data_side.PlaneReplica._version_message names the "plane version" of each side)
        refuse(f"data-plane process {name}: {exc}")
        return exit_status.REFUSED if "plane version" in str(exc) else UNLINKED
    if refused is None:
        refused = await listen_on_port(runner, config, reuse_port=True)
    if refused is not None:
        return refused
    log.info(
        "data-plane process %s (pid %d) serving on %s:%d (%.1f s CPU to start)",
        name,
        os.getpid(),
        config.host,
        config.port,
        time.process_time(),
    )

    def orphan(why: str) -> None:
        """Nobody drains us: stop at once, cutting short a drain a signal started."""
        node.stopper.exit_code = ORPHANED
        node.stopper.stop_at_once(why + " (the control process is gone)")

    def stop(why: str) -> None:
        if orphaned(parent):
            orphan(why)
        else:
            node.stopper.request(
                why,
                grace=config.shutdown_grace_secs,
                drain_delay=config.drain_delay_secs,
                hand_over=False,
            )

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, f"signal {sig.name}")
    # Before it says ready: its siblings ask it for its metrics and what it has applied.
    sibling_site = await serve_siblings(
        node.metrics,
        node.applied,
        config.min_index_wait_secs,
        own_socket,
        lambda: {"rate_limits": node.ratelimiter.stats()},
        lambda sent_at, part: borrow_from_control(node.quotas, sent_at, part),
    )
    if link is not None:

        def drain(grace: float, drain_delay: float) -> None:
            node.stopper.request(
                "the control process stops", grace=grace, drain_delay=drain_delay, hand_over=False
            )

        # End-of-file means the control process is gone, whatever getppid() says meanwhile
        # (PR_SET_PDEATHSIG fires as its first thread exits, while it may still be there).
        link.watch(drain, lambda: orphan("the link to the control process closed"))
        link.announce_ready()
    try:
        return await wait_and_clean_up(node, runner)
    finally:
        await sibling_site.cleanup()
        own_socket.unlink(missing_ok=True)
        if link is not None:
            await link.close()
